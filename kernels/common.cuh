// Shared by every kernel file.  Indices are 64-bit so arrays past 2^31 elements are safe; every
// kernel walks its elements with a grid-stride loop, so any grid size covers any problem size.
//
// Kernels are written once as __device__ templates; each file's ENTRIES macro then defines one
// extern "C" __global__ entry point per instantiation, named <kernel>_<dtype suffixes>
// (im2col_f32, maxpool_forward_f64_u8).  Plain C names let gpucnn load a module without
// NVRTC name expressions, the one way CuPy 13.x and 14.0 read its on-disk kernel cache
// (cupy#9667, #10173), and they are what gpucnn/cuda/kernels.py lists and the host emulation
// calls.
#pragma once

typedef long long idx_t;

#define GRID_STRIDE_LOOP(i, n)                                              \
    for (idx_t i = (idx_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (idx_t)blockDim.x * gridDim.x)

// Reductions keep one partial per thread in shared memory; blockDim.x must be a power of two
// no larger than this.
#define MAX_REDUCE_BLOCK 256

// Tree-reduce buf[0 .. blockDim.x) into buf[0] with op (a functor); all threads must call it.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T* buf, T v, Op op) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) buf[threadIdx.x] = op(buf[threadIdx.x], buf[threadIdx.x + s]);
        __syncthreads();
    }
    T r = buf[0];
    __syncthreads();  // buf is reused by the caller's next reduction
    return r;
}

struct SumOp {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a > b ? a : b; }
};
