#!/usr/bin/env bash
# Builds rnnkit's _core with AddressSanitizer + UndefinedBehaviorSanitizer (RNNKIT_SANITIZE=ON)
# into build/asan, next to a copy of the Python package, and runs the tests that reach the C++
# core with libasan preloaded (CPython itself is not instrumented, so the runtime must be
# loaded before it). Any report fails the run: ASan aborts on its first error and UBSan is
# built with -fno-sanitize-recover.
#
#   tools/sanitize.sh           the full set (parity at remainder sizes, every ISA, gradient
#                               checks, threads and thread teams, normalised loops, bad input,
#                               fuzzing, faults in the pool)
#   tools/sanitize.sh --ci      the subset .ci/run runs (a few minutes)
#   tools/sanitize.sh -- ARGS   pytest ARGS instead of either set
#
# Environment kept deliberately narrow (docs/security.md, "Sanitizers"):
#   detect_leaks=0            CPython and NumPy keep interned objects, type caches and module
#                             state alive until exit by design; LeakSanitizer reports those
#                             (thousands, none from rnnkit). rnnkit's own leaks are tested
#                             directly instead (tests/test_memory.py: live handles, RSS).
#   allocator_may_return_null=1  the tests ask for buffers larger than the machine (they
#                             must become MemoryError); glibc's malloc returns NULL for those,
#                             ASan's aborts unless told to behave the same.
#   no suppressions.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
BUILD=${RNNKIT_SANITIZE_BUILD:-build/asan}
MODE=full
if [[ "${1:-}" == "--ci" ]]; then MODE=ci; shift; fi
if [[ "${1:-}" == "--" ]]; then MODE=custom; shift; fi

cmake -S . -B "$BUILD" -G Ninja -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" \
  -DRNNKIT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRNNKIT_MODULE_DIR="$PWD/$BUILD/module" >/dev/null
cmake --build "$BUILD"

# the package with the sanitized module in place of the developer's
PKG="$BUILD/python"
rm -rf "$PKG"
mkdir -p "$PKG"
cp -r python/rnnkit "$PKG/"
find "$PKG" -name '__pycache__' -prune -exec rm -rf {} +
rm -f "$PKG"/rnnkit/_core*.so
cp "$BUILD"/module/*.so "$PKG/rnnkit/"  # _core and _cuda_emulation, both sanitized

# libstdc++ is preloaded too: python does not link it, and ASan's __cxa_throw interceptor
# must find the real one when it starts (otherwise the first C++ exception aborts in ASan's
# own CHECK, "real___cxa_throw != 0").
ASAN_LIB=$("${CXX:-g++}" -print-file-name=libasan.so)
STDCXX_LIB=$("${CXX:-g++}" -print-file-name=libstdc++.so.6)
export LD_PRELOAD="$ASAN_LIB $STDCXX_LIB"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$PWD/$PKG"
export RNNKIT_SANITIZED=1  # tests that measure RSS skip (ASan's shadow and quarantine grow it)
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}

CORE_TESTS=(tests/test_parity.py tests/test_gradcheck.py tests/test_core_seam.py
  tests/test_functional_inputs.py tests/test_segment.py tests/test_recurrent_mask.py
  tests/test_fuzz_core.py tests/test_concurrency.py tests/test_memory.py tests/test_embedding.py
  tests/test_normalized_core.py)
FULL_EXTRA=(tests/test_nn_recurrent.py tests/test_nn_recurrent_grad.py tests/test_nn_gradcheck.py
  tests/test_nn_layers.py tests/test_dropin.py tests/test_cells.py tests/test_runtime_blas.py
  tests/test_fuzz_files.py tests/test_save_load.py tests/test_train_trainer.py tests/test_faults.py)

"$PYTHON" -c "import rnnkit, sys; assert rnnkit.__file__.startswith('$PWD/$PKG'), rnnkit.__file__; print('sanitized rnnkit:', rnnkit.__file__, rnnkit.info()['build'])"
case "$MODE" in
  ci) TESTS=("${CORE_TESTS[@]}") ;;
  full) TESTS=("${CORE_TESTS[@]}" "${FULL_EXTRA[@]}") ;;
  custom) TESTS=("$@") ;;
esac
# --capture=sys: pytest then captures Python's sys.stderr only, so a sanitizer report (written
# to file descriptor 2 by the runtime, just before it ends the process) reaches the terminal;
# with the default fd capture a process that dies never hands its captured output back.
exec "$PYTHON" -m pytest -q -p no:cacheprovider --capture=sys "${TESTS[@]}"
