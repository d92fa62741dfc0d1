// Embedding backward: a scatter-add of output-gradient rows into the rows of dW named by ids.
// Sequential over ids, so the result is deterministic (same order of additions every call).
#include <cstring>

#include "rnnkit/embedding.h"

namespace rnnkit {

template <typename T>
void embedding_backward(const int64_t* ids, int64_t N, const T* dout, int64_t D, T* dW,
                        int64_t skip_id) {
  for (int64_t n = 0; n < N; ++n) {
    const int64_t id = ids[n];
    if (id == skip_id) continue;
    T* dst = dW + id * D;
    const T* src = dout + n * D;
    for (int64_t j = 0; j < D; ++j) dst[j] += src[j];
  }
}

template void embedding_backward<float>(const int64_t*, int64_t, const float*, int64_t, float*, int64_t);
template void embedding_backward<double>(const int64_t*, int64_t, const double*, int64_t, double*, int64_t);

}  // namespace rnnkit
