#!/usr/bin/env bash
# The CUDA backend's check on a machine with a GPU, run once (well under 10 minutes on 16
# cores): builds rnnkit with RNNKIT_CUDA=ON into the source tree, prints `rnnkit info`, runs
# the CUDA tests (tests/test_cuda_backend.py, the backend-vs-reference parity test, whose
# BACKENDS gain "cuda" where a GPU is visible, segment= on the device, and rnnkit.nn / Trainer
# on CuPy, tests/test_nn_device.py; the host-only emulation tests are left out)
# and times the CUDA backend against the CPU backend and torch's cuDNN RNNs.
#
#   bash tests/gpu/device_check.sh            (results under $OUT, else build/gpu-out)
#
# With the device tool: run(command="bash tests/gpu/device_check.sh", timeout_s=600,
# carry=[".whl"]) from a checkout with this script. The lent H200 image has no
# scipy-openblas32 (the CPU backend's BLAS; without it the CPU baseline is not timed) and no
# network; to time the CPU backend too, first, on the development machine:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux_2_28_x86_64 -d .whl scipy-openblas32
#
# Writes: device_check.log (everything), build.log, tests.log, junit.xml, timing.csv,
# summary.txt. Needs nvcc, cmake, ninja, pybind11, numpy, pytest, cupy-cuda13x and
# nvidia-cublas (the lent H200 image has them all; elsewhere: pip install cupy-cuda13x
# nvidia-cublas). Offline machines: wheels placed in .whl/ (e.g. scipy-openblas32 for the CPU
# backend's BLAS) are installed into /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/build/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device_check.log") 2>&1
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
nvcc --version | tail -1
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site
fi
for pkg in cupy:cupy-cuda13x nvidia.cu13:nvidia-cublas pybind11:pybind11; do
  $PY -c "import ${pkg%%:*}" 2>/dev/null || $PY -m pip install -q --retries 0 --timeout 10 "${pkg##*:}" ||
    echo "MISSING: ${pkg##*:} (no network? carry it as a wheel in .whl/)"
done

stamp "build (RNNKIT_CUDA=ON, sm_90 + PTX)"
if ! { cmake -S . -B build/gpu -G Ninja -DRNNKIT_CUDA=ON -DRNNKIT_CUDA_ARCHITECTURES=90 \
         -DPython_EXECUTABLE="$(command -v $PY)" -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" &&
       cmake --build build/gpu -j "$(nproc)"; } > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  echo "BUILD FAILED (full log: build.log)" | tee "$OUT/summary.txt"
  exit 1
fi
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}

stamp "rnnkit info"
$PY -m rnnkit.cli info

stamp "CUDA tests"
timeout 300 $PY -m pytest -q -p no:cacheprovider --junitxml="$OUT/junit.xml" \
  tests/test_cuda_backend.py "tests/test_parity.py::test_functional_matches_reference" \
  tests/test_nn_device.py "tests/test_segment.py::test_segmented_on_device_equals_plain_device_and_host" \
  -k "not emulated" 2>&1 | tee "$OUT/tests.log"
tests_status=${PIPESTATUS[0]}

stamp "timing"
timeout 240 $PY tests/gpu/bench_cuda.py --out "$OUT/timing.csv"
bench_status=$?

{
  echo "device_check: tests exit $tests_status, timing exit $bench_status, $(( $(date +%s) - start )) s"
  tail -1 "$OUT/tests.log"
  [ -f "$OUT/timing.csv" ] && cat "$OUT/timing.csv"
} | tee "$OUT/summary.txt"
[ "$tests_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
