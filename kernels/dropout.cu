// Dropout keep-masks from the counter-based generator of gpucnn/backend.py (random_bits):
// element i draws z = (counter + key + i) * golden (mod 2^64), SplitMix64's finaliser, and keeps
// the top 24 bits; it is kept when they are >= threshold.  Bit-identical to the NumPy path.
#include "common.cuh"

typedef unsigned long long u64;

__device__ __forceinline__ u64 splitmix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ bool kept(u64 key, u64 counter, u64 threshold, idx_t i) {
    return (splitmix64((counter + key + (u64)i) * 0x9E3779B97F4A7C15ULL) >> 40) >= threshold;
}

extern "C" __global__ void dropout_keep_mask(u64 key, u64 counter, u64 threshold, bool* keep,
                                             idx_t n) {
    GRID_STRIDE_LOOP(i, n) { keep[i] = kept(key, counter, threshold, i); }
}

// Dropout's forward in one pass: the mask and out = x * mask * scale (NumPy's expression, so
// NaN/inf in dropped x give NaN as there), where mask + two array multiplies took 3 launches
// and 3 allocations.  The backward likewise: dx = dout * mask * scale in one launch, not 2.
template <typename T>
__device__ __forceinline__ void dropout_forward(u64 key, u64 counter, u64 threshold,
                                                const T* __restrict__ x, T* __restrict__ out,
                                                bool* __restrict__ keep, T scale, idx_t n) {
    GRID_STRIDE_LOOP(i, n) {
        const bool k = kept(key, counter, threshold, i);
        keep[i] = k;
        out[i] = x[i] * T(k) * scale;
    }
}

// The same with the counter read from device memory, and advance_counter adding n to it after:
// a captured CUDA graph replays fixed kernel arguments, so its dropout must find each step's
// counter on the device and move it on itself (the host's counter advances by the same n).
template <typename T>
__device__ __forceinline__ void dropout_forward_at(u64 key, const u64* __restrict__ counter,
                                                   u64 threshold, const T* __restrict__ x,
                                                   T* __restrict__ out, bool* __restrict__ keep,
                                                   T scale, idx_t n) {
    dropout_forward(key, *counter, threshold, x, out, keep, scale, n);
}

// One thread, its own launch: no thread of the dropout_forward_at before it may still read the
// counter when it changes (blocks are not ordered within a launch; launches on a stream are).
extern "C" __global__ void advance_counter(u64* counter, u64 n) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *counter += n;
}

template <typename T>
__device__ __forceinline__ void dropout_backward(const T* __restrict__ dout,
                                                 const bool* __restrict__ keep,
                                                 T* __restrict__ dx, T scale, idx_t n) {
    GRID_STRIDE_LOOP(i, n) { dx[i] = dout[i] * T(keep[i]) * scale; }
}

#define ENTRIES(T, S)                                                                        \
    extern "C" __global__ void dropout_forward_##S(u64 key, u64 counter, u64 threshold,      \
                                                   const T* __restrict__ x,                  \
                                                   T* __restrict__ out,                      \
                                                   bool* __restrict__ keep, T scale,         \
                                                   idx_t n) {                                \
        dropout_forward<T>(key, counter, threshold, x, out, keep, scale, n);                 \
    }                                                                                        \
    extern "C" __global__ void dropout_forward_at_##S(                                       \
        u64 key, const u64* __restrict__ counter, u64 threshold, const T* __restrict__ x,    \
        T* __restrict__ out, bool* __restrict__ keep, T scale, idx_t n) {                    \
        dropout_forward_at<T>(key, counter, threshold, x, out, keep, scale, n);              \
    }                                                                                        \
    extern "C" __global__ void dropout_backward_##S(const T* __restrict__ dout,              \
                                                    const bool* __restrict__ keep,           \
                                                    T* __restrict__ dx, T scale, idx_t n) {  \
        dropout_backward<T>(dout, keep, dx, scale, n);                                       \
    }
ENTRIES(float, f32)
ENTRIES(double, f64)
#undef ENTRIES
