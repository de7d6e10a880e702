// Elementwise relu and sigmoid, forward and backward, over n contiguous elements.
// They follow gpucnn/functional.py's NumPy expressions, NaN behaviour included.
#include "common.cuh"

template <typename T>
__global__ void relu_forward(const T* __restrict__ x, T* __restrict__ out, idx_t n) {
    GRID_STRIDE_LOOP(k, n) {
        const T v = x[k];
        out[k] = (v > T(0) || v != v) ? v : T(0);  // np.maximum propagates NaN
    }
}

// dout * (out > 0): a multiply, not a select, so inf/NaN in dout behave as in NumPy.
template <typename T>
__global__ void relu_backward(const T* __restrict__ dout, const T* __restrict__ out,
                              T* __restrict__ dx, idx_t n) {
    GRID_STRIDE_LOOP(k, n) { dx[k] = dout[k] * T(out[k] > T(0)); }
}

// exp(-|x|) lies in (0, 1], so neither branch overflows.
template <typename T>
__global__ void sigmoid_forward(const T* __restrict__ x, T* __restrict__ out, idx_t n) {
    GRID_STRIDE_LOOP(k, n) {
        const T v = x[k];
        const T e = exp(-fabs(v));
        out[k] = v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    }
}

template <typename T>
__global__ void sigmoid_backward(const T* __restrict__ dout, const T* __restrict__ out,
                                 T* __restrict__ dx, idx_t n) {
    GRID_STRIDE_LOOP(k, n) { dx[k] = dout[k] * out[k] * (T(1) - out[k]); }
}

#define INSTANTIATE(T)                                                                  \
    template __global__ void relu_forward<T>(const T*, T*, idx_t);                     \
    template __global__ void relu_backward<T>(const T*, const T*, T*, idx_t);          \
    template __global__ void sigmoid_forward<T>(const T*, T*, idx_t);                  \
    template __global__ void sigmoid_backward<T>(const T*, const T*, T*, idx_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE
