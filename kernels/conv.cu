// im2col / col2im for convolution as one GEMM, and the bias gradient.
// Layouts: x (N, C, H, W), any strides for im2col, C-contiguous dx for col2im; cols
// (C*KH*KW, N*OH*OW) C-contiguous with rows ordered (c, i, j) and columns (n, oh, ow) -- the
// same matrix gpucnn/cpu.py builds.
// Each kernel is a device template; ENTRIES below defines its extern "C" entry points
// (see common.cuh), e.g. im2col_f32, which gpucnn/cuda/kernels.py lists.
#include "common.cuh"

// One thread per cols element: gather the input pixel under kernel offset (i, j) of window
// (oh, ow), or 0 in the padding.  x is read through its element strides (sN, sC, sH, sW), so
// any strided view works without a copy, e.g. the (N, C, H, W) view of a conv output that is
// stored (C, N, H, W).
template <typename T>
__device__ __forceinline__ void im2col(const T* __restrict__ x, T* __restrict__ cols, idx_t N,
                                       idx_t C, idx_t H, idx_t W, idx_t sN, idx_t sC, idx_t sH,
                                       idx_t sW, idx_t KH, idx_t KW, idx_t stride, idx_t pad,
                                       idx_t OH, idx_t OW) {
    const idx_t total = C * KH * KW * N * OH * OW;
    GRID_STRIDE_LOOP(k, total) {
        idx_t t = k;
        const idx_t ow = t % OW; t /= OW;
        const idx_t oh = t % OH; t /= OH;
        const idx_t n = t % N;   t /= N;
        const idx_t j = t % KW;  t /= KW;
        const idx_t i = t % KH;
        const idx_t c = t / KH;
        const idx_t h = oh * stride + i - pad;
        const idx_t w = ow * stride + j - pad;
        const bool inside = h >= 0 && h < H && w >= 0 && w < W;
        cols[k] = inside ? x[n * sN + c * sC + h * sH + w * sW] : T(0);
    }
}

// Adjoint of im2col as a gather: one thread per input pixel (n, c, h, w) sums the cols entries
// of every (i, j, oh, ow) with oh*stride + i - pad == h and ow*stride + j - pad == w.
// No atomics, so the result is the same on every run.
template <typename T>
__device__ __forceinline__ void col2im(const T* __restrict__ dcols, T* __restrict__ dx, idx_t N,
                                       idx_t C, idx_t H, idx_t W, idx_t KH, idx_t KW,
                                       idx_t stride, idx_t pad, idx_t OH, idx_t OW) {
    const idx_t total = N * C * H * W;
    const idx_t ncols = N * OH * OW;
    GRID_STRIDE_LOOP(k, total) {
        idx_t t = k;
        const idx_t w = t % W; t /= W;
        const idx_t h = t % H; t /= H;
        const idx_t c = t % C;
        const idx_t n = t / C;
        T acc = T(0);
        for (idx_t i = 0; i < KH; ++i) {
            const idx_t rh = h + pad - i;  // = oh * stride
            if (rh < 0) break;
            if (rh % stride != 0 || rh / stride >= OH) continue;
            const idx_t oh = rh / stride;
            for (idx_t j = 0; j < KW; ++j) {
                const idx_t rw = w + pad - j;
                if (rw < 0) break;
                if (rw % stride != 0 || rw / stride >= OW) continue;
                const idx_t ow = rw / stride;
                acc += dcols[((c * KH + i) * KW + j) * ncols + (n * OH + oh) * OW + ow];
            }
        }
        dx[k] = acc;
    }
}

// db[f] = sum of dout (N, F, S) over n and s, for conv (S = OH*OW) and linear (S = 1) biases.
// One block per (f, chunk) of f's N*S elements (grid-stride over them), a tree reduction in
// shared memory, out[f * chunks + chunk]: with one chunk that is db; with more, the host sums
// the partials (F, chunks) by a second launch with N = 1, S = chunks.  One block per filter
// alone would leave most SMs idle (32 filters on 132 SMs) while each block sums ~10^5 values.
template <typename T>
__device__ __forceinline__ void bias_grad(const T* __restrict__ dout, T* __restrict__ out,
                                          idx_t N, idx_t F, idx_t S, idx_t chunks) {
    __shared__ T buf[MAX_REDUCE_BLOCK];
    const idx_t per = N * S, len = (per + chunks - 1) / chunks;
    for (idx_t b = blockIdx.x; b < F * chunks; b += gridDim.x) {
        const idx_t f = b / chunks, end = (b % chunks + 1) * len < per ? (b % chunks + 1) * len : per;
        T acc = T(0);
        for (idx_t k = (b % chunks) * len + threadIdx.x; k < end; k += blockDim.x) {
            acc += dout[((k / S) * F + f) * S + k % S];
        }
        acc = block_reduce(buf, acc, SumOp());
        if (threadIdx.x == 0) out[b] = acc;
    }
}

#define ENTRIES(T, S)                                                                        \
    extern "C" __global__ void im2col_##S(                                                   \
        const T* __restrict__ x, T* __restrict__ cols, idx_t N, idx_t C, idx_t H, idx_t W,   \
        idx_t sN, idx_t sC, idx_t sH, idx_t sW, idx_t KH, idx_t KW, idx_t stride, idx_t pad, \
        idx_t OH, idx_t OW) {                                                                \
        im2col<T>(x, cols, N, C, H, W, sN, sC, sH, sW, KH, KW, stride, pad, OH, OW);         \
    }                                                                                        \
    extern "C" __global__ void col2im_##S(                                                   \
        const T* __restrict__ dcols, T* __restrict__ dx, idx_t N, idx_t C, idx_t H, idx_t W, \
        idx_t KH, idx_t KW, idx_t stride, idx_t pad, idx_t OH, idx_t OW) {                   \
        col2im<T>(dcols, dx, N, C, H, W, KH, KW, stride, pad, OH, OW);                       \
    }                                                                                        \
    extern "C" __global__ void bias_grad_##S(const T* __restrict__ dout, T* __restrict__ out, \
                                             idx_t N, idx_t F, idx_t S_, idx_t chunks) {     \
        bias_grad<T>(dout, out, N, F, S_, chunks);                                           \
    }
ENTRIES(float, f32)
ENTRIES(double, f64)
#undef ENTRIES
