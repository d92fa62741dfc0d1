// What the CUDA runtime reports, for `rnnkit info` and the device bindings' pointer checks
// (backend.cu). Plain C++: the bindings include it without the CUDA headers.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace rnnkit::cuda {

struct DeviceInfo {
  int ordinal;
  std::string name;
  int major, minor;  // compute capability
  size_t memory;     // bytes
};

// Devices the runtime sees; 0 with the runtime's error in *error when it sees none (no
// driver, no device).
int device_count(std::string* error);
std::vector<DeviceInfo> devices();
int runtime_version();  // e.g. 13000
int driver_version();   // 0 without a driver
// "" when p is device (or managed) memory usable on `device`, else why not
std::string check_device_pointer(const void* p, int device);

}  // namespace rnnkit::cuda
