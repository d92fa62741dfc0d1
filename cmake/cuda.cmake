# The CUDA backend: rnnkit._cuda (CMake option RNNKIT_CUDA=ON). Included from CMakeLists.txt.
#
# Needs nvcc (CUDA 13; CMAKE_CUDA_COMPILER or nvcc on PATH), the CUDA runtime (linked
# statically: nothing of the toolkit is needed at run time) and cuBLAS. cuBLAS comes from the
# toolkit when it has it (CUDAToolkit's CUDA::cublas), else from the nvidia-cublas wheel
# (pip install nvidia-cublas: site-packages/nvidia/cu13/{include,lib}), found through the
# build's Python (also from pip's isolated build) or given as RNNKIT_CUBLAS_ROOT (CMake or
# environment variable: a directory with include/cublas_v2.h and lib/libcublas.so*). The module finds the wheel's cuBLAS at run time through its rpath
# ($ORIGIN/../nvidia/cu13/lib, i.e. the wheel next to rnnkit in site-packages); rnnkit also
# preloads it from there (rnnkit/_device.py) for builds whose rpath does not reach it.

# One real architecture plus its PTX by default: sm_90 (H100/H200) SASS, compute_90 PTX for
# newer GPUs (JIT-compiled at first use). Override: -DRNNKIT_CUDA_ARCHITECTURES="80;90".
set(RNNKIT_CUDA_ARCHITECTURES "90" CACHE STRING "CUDA architectures of rnnkit._cuda (CMake syntax)")
set(CMAKE_CUDA_ARCHITECTURES ${RNNKIT_CUDA_ARCHITECTURES})
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)

set(RNNKIT_CUBLAS_ROOT "" CACHE PATH "Directory with include/cublas_v2.h and lib/libcublas.so* (default: the toolkit, then the nvidia-cublas wheel)")
set(_rnnkit_cublas_hints "")
if(RNNKIT_CUBLAS_ROOT)
  list(APPEND _rnnkit_cublas_hints ${RNNKIT_CUBLAS_ROOT})
endif()
# Where the wheel lies: on the build Python's path, or in its environment's site-packages
# (pip's isolated build environment hides those from sys.path, not from sysconfig).
execute_process(
  COMMAND ${Python_EXECUTABLE} -c
    "import importlib.util, os, sysconfig; s = importlib.util.find_spec('nvidia'); roots = list(s.submodule_search_locations) if s else []; roots += [os.path.join(sysconfig.get_path(k), 'nvidia') for k in ('purelib', 'platlib')]; print(';'.join(os.path.join(p, 'cu13') for p in roots))"
  OUTPUT_VARIABLE _rnnkit_wheel_roots OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(DEFINED ENV{RNNKIT_CUBLAS_ROOT})
  list(APPEND _rnnkit_cublas_hints $ENV{RNNKIT_CUBLAS_ROOT})
endif()
list(APPEND _rnnkit_cublas_hints ${_rnnkit_wheel_roots})

if(TARGET CUDA::cublas AND NOT RNNKIT_CUBLAS_ROOT)
  set(RNNKIT_CUBLAS_TARGET CUDA::cublas)
  message(STATUS "rnnkit CUDA: cuBLAS from the CUDA toolkit")
else()
  find_path(RNNKIT_CUBLAS_INCLUDE_DIR cublas_v2.h
    HINTS ${_rnnkit_cublas_hints} PATH_SUFFIXES include NO_DEFAULT_PATH)
  find_library(RNNKIT_CUBLAS_LIBRARY NAMES cublas libcublas.so.13
    HINTS ${_rnnkit_cublas_hints} PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)
  find_library(RNNKIT_CUBLASLT_LIBRARY NAMES cublasLt libcublasLt.so.13
    HINTS ${_rnnkit_cublas_hints} PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)
  if(NOT RNNKIT_CUBLAS_INCLUDE_DIR OR NOT RNNKIT_CUBLAS_LIBRARY)
    message(FATAL_ERROR "rnnkit CUDA: cuBLAS not found. Install it (pip install nvidia-cublas, "
      "into the Python that builds rnnkit) or pass -DRNNKIT_CUBLAS_ROOT=<dir with include/ and lib/>. "
      "Searched: ${_rnnkit_cublas_hints}")
  endif()
  add_library(rnnkit_cublas INTERFACE)
  target_include_directories(rnnkit_cublas INTERFACE ${RNNKIT_CUBLAS_INCLUDE_DIR})
  target_link_libraries(rnnkit_cublas INTERFACE ${RNNKIT_CUBLAS_LIBRARY} ${RNNKIT_CUBLASLT_LIBRARY})
  set(RNNKIT_CUBLAS_TARGET rnnkit_cublas)
  get_filename_component(RNNKIT_CUBLAS_LIBDIR ${RNNKIT_CUBLAS_LIBRARY} DIRECTORY)
  message(STATUS "rnnkit CUDA: cuBLAS ${RNNKIT_CUBLAS_LIBRARY}")
endif()

# The kernels and the time loops; no Python headers here.
add_library(rnnkit_cuda_backend STATIC cpp/src/cuda/backend.cu)
target_include_directories(rnnkit_cuda_backend PRIVATE cpp/include cpp/src)
target_link_libraries(rnnkit_cuda_backend PUBLIC CUDA::cudart_static ${RNNKIT_CUBLAS_TARGET})
target_compile_options(rnnkit_cuda_backend PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 -Xcompiler=-fPIC>)
set_target_properties(rnnkit_cuda_backend PROPERTIES POSITION_INDEPENDENT_CODE ON)

pybind11_add_module(_cuda MODULE
  cpp/bindings/cuda_module.cpp
  cpp/bindings/device_recurrent.cpp
)
target_include_directories(_cuda PRIVATE cpp cpp/src)
target_compile_definitions(_cuda PRIVATE RNNKIT_CUDA_ARCHITECTURES="${RNNKIT_CUDA_ARCHITECTURES}")
target_include_directories(_cuda PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(_cuda PRIVATE rnnkit_cuda_backend rnnkit_core)
# the wheel's cuBLAS next to rnnkit in site-packages, and where this build found it
set_target_properties(_cuda PROPERTIES
  INSTALL_RPATH "$ORIGIN/../nvidia/cu13/lib"
  BUILD_RPATH "${RNNKIT_CUBLAS_LIBDIR}")
rnnkit_install_module(_cuda)
