// The per-unit gate maths of the CUDA backend, written once as __host__ __device__ functions:
// nvcc compiles them into the kernels (backend.cu), the host compiler into the emulated
// backend (emulation.cpp), whose tests run them against rnnkit.reference on machines without
// a GPU. Equations: docs/design.md "Cell equations"; the formulas mirror the CPU kernels
// (cpu/simd/pointwise.h), one hidden unit of one row at a time.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RNNKIT_HD __host__ __device__ __forceinline__
#else
#define RNNKIT_HD inline
#endif

namespace rnnkit::cuda {

// The C library names: both libm (host) and CUDA's device maths define them.
RNNKIT_HD float exp_(float x) { return ::expf(x); }
RNNKIT_HD double exp_(double x) { return ::exp(x); }
RNNKIT_HD float tanh_(float x) { return ::tanhf(x); }
RNNKIT_HD double tanh_(double x) { return ::tanh(x); }

// 1 / (1 + e^-x): 0 and 1 at the ends (e^1000 = inf gives 0), NaN stays NaN
template <typename T>
RNNKIT_HD T sigmoid(T x) { return T(1) / (T(1) + exp_(-x)); }

// relu that lets NaN through, as the CPU kernels do (a NaN must never turn into a clean 0)
template <typename T>
RNNKIT_HD T relu(T x) { return (x > T(0) || x != x) ? x : T(0); }

// ---- RNN: h = phi(a)
template <typename T>
RNNKIT_HD T rnn_forward(T a, bool is_relu) { return is_relu ? relu(a) : tanh_(a); }
// da from the output h (phi' of tanh is 1 - h^2; of relu, 1 where h > 0)
template <typename T>
RNNKIT_HD T rnn_backward(T h, T dh, bool is_relu) {
  return is_relu ? (h > T(0) ? dh : T(0)) : dh * (T(1) - h * h);
}

// ---- LSTM, gates i, f, g, o
template <typename T>
struct LstmUnit {
  T i, f, g, o, c, h;
};
// a*: pre-activations (input and recurrent parts summed); c_prev: c_{t-1}; peep: whether
// p_i, p_f (reading c_{t-1}) and p_o (reading c_t) take part.
template <typename T>
RNNKIT_HD LstmUnit<T> lstm_forward(T ai, T af, T ag, T ao, T c_prev, bool peep, T pi, T pf,
                                   T po) {
  LstmUnit<T> u;
  if (peep) {
    ai += pi * c_prev;
    af += pf * c_prev;
  }
  u.i = sigmoid(ai);
  u.f = sigmoid(af);
  u.g = tanh_(ag);
  u.c = u.f * c_prev + u.i * u.g;
  if (peep) ao += po * u.c;
  u.o = sigmoid(ao);
  u.h = u.o * tanh_(u.c);
  return u;
}

template <typename T>
struct LstmGrad {
  T da_i, da_f, da_g, da_o, dc_prev;
};
// dh: gradient reaching h_t (the cell's output before any projection); dc: reaching c_t
// from step t+1.
template <typename T>
RNNKIT_HD LstmGrad<T> lstm_backward(T i, T f, T g, T o, T c, T c_prev, T dh, T dc, bool peep,
                                    T pi, T pf, T po) {
  LstmGrad<T> r;
  const T tc = tanh_(c);
  r.da_o = dh * tc * o * (T(1) - o);
  // total gradient reaching c_t: through h_t = o tanh(c_t), from c_{t+1}, and with peepholes
  // through o's pre-activation, which reads c_t
  T dct = dh * o * (T(1) - tc * tc) + dc;
  if (peep) dct += r.da_o * po;
  r.da_i = dct * g * i * (T(1) - i);
  r.da_f = dct * c_prev * f * (T(1) - f);
  r.da_g = dct * i * (T(1) - g * g);
  r.dc_prev = dct * f;
  if (peep) r.dc_prev += r.da_i * pi + r.da_f * pf;  // i and f read c_{t-1} too
  return r;
}

// ---- GRU, gates r, z, n; h = (1 - z) n + z h_prev
template <typename T>
struct GruUnit {
  T r, z, n, hn, h;  // hn: the reset-after n block's recurrent term h_prev @ Wh_n + bh_n
};
// Reset after the product (PyTorch/cuDNN): n = tanh(ax_n + r * (ah_n + bh_n)).
template <typename T>
RNNKIT_HD GruUnit<T> gru_forward(T ar, T az, T ax_n, T ah_n, T bh_n, T h_prev) {
  GruUnit<T> u;
  u.r = sigmoid(ar);
  u.z = sigmoid(az);
  u.hn = ah_n + bh_n;
  u.n = tanh_(ax_n + u.r * u.hn);
  u.h = u.z * (h_prev - u.n) + u.n;
  return u;
}

template <typename T>
struct GruGrad {
  T da_r, da_z, dah_n, dax_n, dh_prev;  // dah_n: w.r.t. ah_n + bh_n; dax_n: w.r.t. ax_n
};
template <typename T>
RNNKIT_HD GruGrad<T> gru_backward(T r, T z, T n, T hn, T h_prev, T dh) {
  GruGrad<T> g;
  g.dax_n = dh * (T(1) - z) * (T(1) - n * n);
  g.da_z = dh * (h_prev - n) * z * (T(1) - z);
  g.da_r = g.dax_n * hn * r * (T(1) - r);
  g.dah_n = g.dax_n * r;
  g.dh_prev = dh * z;  // the direct path h_prev -> h
  return g;
}

// Reset before the product (Cho et al.): stage 1 gives r, z and r * h_in (h_in: h_prev as it
// enters the product, masked); stage 2 n = tanh(ax_n + (r h_in) @ Wh_n) and the new state.
template <typename T>
struct GruRz {
  T r, z, rh;
};
template <typename T>
RNNKIT_HD GruRz<T> gru_forward_rz(T ar, T az, T h_in) {
  GruRz<T> u;
  u.r = sigmoid(ar);
  u.z = sigmoid(az);
  u.rh = u.r * h_in;
  return u;
}
template <typename T>
struct GruN {
  T n, h;
};
template <typename T>
RNNKIT_HD GruN<T> gru_forward_n(T ax_n, T ah_n, T z, T h_prev) {
  GruN<T> u;
  u.n = tanh_(ax_n + ah_n);
  u.h = z * (h_prev - u.n) + u.n;
  return u;
}
template <typename T>
struct GruZnGrad {
  T da_z, da_n, dh_prev;
};
template <typename T>
RNNKIT_HD GruZnGrad<T> gru_backward_zn(T z, T n, T h_prev, T dh) {
  GruZnGrad<T> g;
  g.da_n = dh * (T(1) - z) * (T(1) - n * n);
  g.da_z = dh * (h_prev - n) * z * (T(1) - z);
  g.dh_prev = dh * z;
  return g;
}
// d_rh: the gradient reaching r * h_in (da_n @ Wh_n^T); gives da_r and the one reaching h_in
template <typename T>
struct GruRGrad {
  T da_r, d_hin;
};
template <typename T>
RNNKIT_HD GruRGrad<T> gru_backward_r(T r, T h_in, T d_rh) {
  return {d_rh * h_in * r * (T(1) - r), d_rh * r};
}

}  // namespace rnnkit::cuda
