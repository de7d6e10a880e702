// Max pooling over size x size windows every `stride` (no padding); x (N, C, H, W) any strides,
// out and dout C-contiguous; argmax and dx C-contiguous, or with CNHW != 0 (N, C, ...) views of
// memory laid out (C, N, ...): the layout a conv output has, so the conv's backward reads dx
// as (C, N*H*W) rows without a copy (one copy launch and allocation less per conv per step).
// argmax holds the row-major offset i*size + j of the FIRST maximum in each window (type A:
// unsigned char when size*size <= 256, else int), as gpucnn/cpu.py does; a window holding NaN
// gives NaN and the offset of its first NaN.
// With RELU the same kernels pool relu(x), fused: the relu_maxpool_* entry points; with BIAS
// too, relu(x + bias[c]): the bias_relu_maxpool_forward entry, for a conv that left its bias
// out (one pass over the conv output less).  Each element gets its bias added before it is
// compared, in T as the conv's own add would round it, so values, NaN and ties stay exact.
// Device templates; ENTRIES below defines their extern "C" entry points (see common.cuh).
#include "common.cuh"

// One thread per output element; x is read through its element strides (sN, sC, sH, sW), so any
// strided view works without a copy, e.g. the (N, C, H, W) view of memory stored (C, N, H, W).
template <bool RELU, bool BIAS, typename T, typename A>
__device__ __forceinline__ void maxpool_forward(const T* __restrict__ x,
                                                const T* __restrict__ bias, T* __restrict__ out,
                                                A* __restrict__ argmax, idx_t N, idx_t C,
                                                idx_t sN, idx_t sC, idx_t sH, idx_t sW,
                                                idx_t size, idx_t stride, idx_t OH, idx_t OW,
                                                idx_t CNHW) {
    GRID_STRIDE_LOOP(k, N * C * OH * OW) {
        const idx_t ow = k % OW;
        const idx_t oh = (k / OW) % OH;
        const idx_t c = (k / (OW * OH)) % C;
        const idx_t n = k / (OW * OH * C);
        const T* win = x + n * sN + c * sC + oh * stride * sH + ow * stride * sW;
        const T b = BIAS ? bias[c] : T(0);
        T best = BIAS ? win[0] + b : win[0];
        // RELU: the running max starts at relu(x0) >= 0 (or NaN), after which `v > best` on raw
        // values picks the same element as on relu(x): pooling relu(x) without computing it.
        if (RELU && !(best > T(0)) && best == best) best = T(0);
        idx_t arg = 0;
        // A NaN wins and stops the scan (best != best), so the argmax is the first NaN, as in
        // NumPy: `v > best` alone never takes a NaN and would hide a diverging run.  ±inf compare
        // as numbers.  Strict `>`: a later equal value never takes the max.
        for (idx_t i = 0; i < size && best == best; ++i) {
            for (idx_t j = 0; j < size && best == best; ++j) {
                const T v = BIAS ? win[i * sH + j * sW] + b : win[i * sH + j * sW];
                if (v > best || v != v) {
                    best = v;
                    arg = i * size + j;
                }
            }
        }
        out[k] = best;
        argmax[CNHW ? ((c * N + n) * OH + oh) * OW + ow : k] = (A)arg;
    }
}

// Gather: one thread per input element (n, c, h, w), in dx's memory order, sums dout over the windows that cover it and
// name it as their argmax.  Windows covering row h are oh in [ceil((h-size+1)/stride), h/stride].
// RELU: a window passes dout only where its pooled relu output `out` is > 0 (out unused else).
template <bool RELU, typename T, typename A>
__device__ __forceinline__ void maxpool_backward(const T* __restrict__ dout,
                                                 const A* __restrict__ argmax,
                                                 const T* __restrict__ out, T* __restrict__ dx,
                                                 idx_t N, idx_t C, idx_t H, idx_t W,
                                                 idx_t size, idx_t stride, idx_t OH, idx_t OW,
                                                 idx_t CNHW) {
    GRID_STRIDE_LOOP(k, N * C * H * W) {
        const idx_t w = k % W;
        const idx_t h = (k / W) % H;
        const idx_t plane = k / (W * H);  // c * N + n with CNHW, else n * C + c
        const idx_t nc = CNHW ? (plane % N) * C + plane / N : plane;
        const idx_t base = nc * OH * OW, abase = plane * OH * OW;
        const idx_t oh0 = h < size ? 0 : (h - size) / stride + 1;
        const idx_t ow0 = w < size ? 0 : (w - size) / stride + 1;
        const idx_t oh1 = h / stride < OH - 1 ? h / stride : OH - 1;
        const idx_t ow1 = w / stride < OW - 1 ? w / stride : OW - 1;
        T acc = T(0);
        for (idx_t oh = oh0; oh <= oh1; ++oh) {
            for (idx_t ow = ow0; ow <= ow1; ++ow) {
                const idx_t o = base + oh * OW + ow;
                if ((idx_t)argmax[abase + oh * OW + ow] == (h - oh * stride) * size + (w - ow * stride) &&
                    (!RELU || out[o] > T(0)))
                    acc += dout[o];
            }
        }
        dx[k] = acc;
    }
}

#define FORWARD(NAME, RELU, T, A, S)                                                         \
    extern "C" __global__ void NAME##_##S(                                                   \
        const T* __restrict__ x, T* __restrict__ out, A* __restrict__ argmax, idx_t N,       \
        idx_t C, idx_t sN, idx_t sC, idx_t sH, idx_t sW, idx_t size, idx_t stride, idx_t OH, \
        idx_t OW, idx_t CNHW) {                                                              \
        maxpool_forward<RELU, false, T, A>(x, nullptr, out, argmax, N, C, sN, sC, sH, sW,    \
                                           size, stride, OH, OW, CNHW);                      \
    }
#define ENTRIES(T, A, S)                                                                     \
    FORWARD(maxpool_forward, false, T, A, S)                                                 \
    FORWARD(relu_maxpool_forward, true, T, A, S)                                             \
    extern "C" __global__ void bias_relu_maxpool_forward_##S(                                \
        const T* __restrict__ x, const T* __restrict__ bias, T* __restrict__ out,            \
        A* __restrict__ argmax, idx_t N, idx_t C, idx_t sN, idx_t sC, idx_t sH, idx_t sW,    \
        idx_t size, idx_t stride, idx_t OH, idx_t OW, idx_t CNHW) {                          \
        maxpool_forward<true, true, T, A>(x, bias, out, argmax, N, C, sN, sC, sH, sW, size,  \
                                          stride, OH, OW, CNHW);                             \
    }                                                                                        \
    extern "C" __global__ void maxpool_backward_##S(                                         \
        const T* __restrict__ dout, const A* __restrict__ argmax, T* __restrict__ dx,        \
        idx_t N, idx_t C, idx_t H, idx_t W, idx_t size, idx_t stride, idx_t OH, idx_t OW,    \
        idx_t CNHW) {                                                                        \
        maxpool_backward<false, T, A>(dout, argmax, nullptr, dx, N, C, H, W, size, stride,   \
                                      OH, OW, CNHW);                                         \
    }                                                                                        \
    extern "C" __global__ void relu_maxpool_backward_##S(                                    \
        const T* __restrict__ dout, const A* __restrict__ argmax, const T* __restrict__ out, \
        T* __restrict__ dx, idx_t N, idx_t C, idx_t H, idx_t W, idx_t size, idx_t stride,    \
        idx_t OH, idx_t OW, idx_t CNHW) {                                                    \
        maxpool_backward<true, T, A>(dout, argmax, out, dx, N, C, H, W, size, stride, OH,    \
                                     OW, CNHW);                                              \
    }
ENTRIES(float, unsigned char, f32_u8)
ENTRIES(double, unsigned char, f64_u8)
ENTRIES(float, int, f32_i32)
ENTRIES(double, int, f64_i32)
#undef ENTRIES
#undef FORWARD
