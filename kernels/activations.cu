// Elementwise relu and sigmoid, forward and backward, over n contiguous elements, and relu
// with a per-channel bias added first.
// They follow gpucnn/cpu.py's NumPy expressions, NaN behaviour included.
// Device templates; ENTRIES below defines their extern "C" entry points (see common.cuh).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void relu_forward(const T* __restrict__ x, T* __restrict__ out,
                                             idx_t n) {
    GRID_STRIDE_LOOP(k, n) {
        const T v = x[k];
        out[k] = (v > T(0) || v != v) ? v : T(0);  // np.maximum propagates NaN
    }
}

// relu(x + b[c]) in one pass, for a conv or linear layer that left its bias out: the add and
// the relu were two passes (and, after a conv, a copy of its (C, N, ...) output to (N, C, ...)
// before the relu).  out (N, C, S) C-contiguous; x laid out the same, or with CNHW (C, N, S),
// a conv output's memory.  x + b rounds in T as the layer's own add does: the same values.
template <typename T>
__device__ __forceinline__ void bias_relu_forward(const T* __restrict__ x,
                                                  const T* __restrict__ b, T* __restrict__ out,
                                                  idx_t N, idx_t C, idx_t S, idx_t CNHW) {
    GRID_STRIDE_LOOP(k, N * C * S) {
        const idx_t s = k % S;
        const idx_t c = (k / S) % C;
        const idx_t n = k / (S * C);
        const T v = x[CNHW ? (c * N + n) * S + s : k] + b[c];
        out[k] = (v > T(0) || v != v) ? v : T(0);
    }
}

// dout * (out > 0): a multiply, not a select, so inf/NaN in dout behave as in NumPy.
template <typename T>
__device__ __forceinline__ void relu_backward(const T* __restrict__ dout,
                                              const T* __restrict__ out, T* __restrict__ dx,
                                              idx_t n) {
    GRID_STRIDE_LOOP(k, n) { dx[k] = dout[k] * T(out[k] > T(0)); }
}

// exp(-|x|) lies in (0, 1], so neither branch overflows.
template <typename T>
__device__ __forceinline__ void sigmoid_forward(const T* __restrict__ x, T* __restrict__ out,
                                                idx_t n) {
    GRID_STRIDE_LOOP(k, n) {
        const T v = x[k];
        const T e = exp(-fabs(v));
        out[k] = v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    }
}

template <typename T>
__device__ __forceinline__ void sigmoid_backward(const T* __restrict__ dout,
                                                 const T* __restrict__ out, T* __restrict__ dx,
                                                 idx_t n) {
    GRID_STRIDE_LOOP(k, n) { dx[k] = dout[k] * out[k] * (T(1) - out[k]); }
}

#define ENTRIES(T, S)                                                                        \
    extern "C" __global__ void relu_forward_##S(const T* __restrict__ x, T* __restrict__ out, \
                                                idx_t n) {                                   \
        relu_forward<T>(x, out, n);                                                          \
    }                                                                                        \
    extern "C" __global__ void bias_relu_forward_##S(const T* __restrict__ x,                \
                                                     const T* __restrict__ b,                \
                                                     T* __restrict__ out, idx_t N, idx_t C,  \
                                                     idx_t S, idx_t CNHW) {                  \
        bias_relu_forward<T>(x, b, out, N, C, S, CNHW);                                      \
    }                                                                                        \
    extern "C" __global__ void relu_backward_##S(const T* __restrict__ dout,                 \
                                                 const T* __restrict__ out,                  \
                                                 T* __restrict__ dx, idx_t n) {              \
        relu_backward<T>(dout, out, dx, n);                                                  \
    }                                                                                        \
    extern "C" __global__ void sigmoid_forward_##S(const T* __restrict__ x,                  \
                                                   T* __restrict__ out, idx_t n) {           \
        sigmoid_forward<T>(x, out, n);                                                       \
    }                                                                                        \
    extern "C" __global__ void sigmoid_backward_##S(const T* __restrict__ dout,              \
                                                    const T* __restrict__ out,               \
                                                    T* __restrict__ dx, idx_t n) {           \
        sigmoid_backward<T>(dout, out, dx, n);                                               \
    }
ENTRIES(float, f32)
ENTRIES(double, f64)
#undef ENTRIES
