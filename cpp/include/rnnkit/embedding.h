// Embedding op family of the core (the lookup itself is a NumPy take in Python).
#pragma once

#include <cstdint>

namespace rnnkit {

// Embedding backward: dW[ids[n]] += dout[n] for n in [0, N); dW is [V, D] and is not cleared.
// Ids must be in [0, V) (checked by callers). Ids equal to skip_id (e.g. a padding index; pass
// -1 for none) contribute nothing. Sequential over ids, so the result is deterministic.
template <typename T>
void embedding_backward(const int64_t* ids, int64_t N, const T* dout, int64_t D, T* dW,
                        int64_t skip_id);

}  // namespace rnnkit
