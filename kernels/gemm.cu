// Dense matrix products C (M, N) = op(A) @ op(B), row-major, for convolution as a GEMM and the
// linear layers where cuBLAS cannot run: CuPy refuses every cuBLAS call while a stream captures
// a CUDA graph (cupy_backends/cuda/libs/cublas.pyx, setStream), so a captured training step
// takes these (gpucnn/cuda/host.py, Primitives.gemm).  Eager steps keep cuBLAS unless asked.
//   gemm_<a><b>: a, b in {n, t}.  A is stored (M, K) for n, (K, M) for t; B (K, N) for n,
//     (N, K) for t; all C-contiguous.  The four cover every product the conv and linear
//     layers take (w @ cols, dout @ cols^T, w^T @ dout, x @ w, x^T @ dout, dout @ w^T) with no
//     transposed copy.
//   Tiling: a block of GEMM_THREADS threads computes a GEMM_TILE x GEMM_TILE tile of C, one
//     GEMM_BK slice of K at a time through shared memory; each thread keeps a 4 x 4 block of C
//     in registers (rows ty + 16 i, columns tx + 16 j: a warp reads B's slice row without bank
//     conflicts and A's as a broadcast).
//   Split K: blocks walk (split, tile row, tile column); split s sums k in
//     [s * klen, min(K, (s + 1) * klen)) and, with splits > 1, writes its partial product to
//     C + s * M * N, which gemm_sum_splits adds up in split order.  A product with a long K
//     and few tiles (the conv's weight gradient: 32 x 147 tiles of C over 10^5 values of K)
//     would otherwise run a handful of blocks on a 132-SM GPU.  The host picks splits from the
//     shapes alone, so every run sums in the same order: the same bits every time.
// Device templates; ENTRIES below defines their extern "C" entry points (see common.cuh).
#include "common.cuh"

#define GEMM_TILE 64
#define GEMM_BK 16
#define GEMM_THREADS 256  // 16 x 16, each a 4 x 4 block of the 64 x 64 tile
// gpucnn/cuda/host.py launches GEMM_THREADS threads per block (GEMM_LAUNCH there).

template <typename T, bool TA, bool TB>
__device__ __forceinline__ void gemm(const T* __restrict__ A, const T* __restrict__ B,
                                     T* __restrict__ C, idx_t M, idx_t N, idx_t K, idx_t klen,
                                     idx_t splits) {
    // k-major tiles; one column of padding spreads the transposed stores over the banks
    __shared__ T As[GEMM_BK][GEMM_TILE + 1];
    __shared__ T Bs[GEMM_BK][GEMM_TILE + 1];
    const idx_t rows = (M + GEMM_TILE - 1) / GEMM_TILE, cols = (N + GEMM_TILE - 1) / GEMM_TILE;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    for (idx_t blk = blockIdx.x; blk < rows * cols * splits; blk += gridDim.x) {
        const idx_t m0 = (blk / cols) % rows * GEMM_TILE, n0 = blk % cols * GEMM_TILE;
        const idx_t split = blk / (rows * cols);
        const idx_t k_begin = split * klen;
        const idx_t k_end = k_begin + klen < K ? k_begin + klen : K;
        T acc[4][4];
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
        for (idx_t k0 = k_begin; k0 < k_end; k0 += GEMM_BK) {
            // each tile: GEMM_TILE * GEMM_BK values, consecutive threads on consecutive
            // addresses of the stored matrix (64 for a t operand, 16 for an n one)
            for (int e = threadIdx.x; e < GEMM_TILE * GEMM_BK; e += GEMM_THREADS) {
                const int r = TA ? e % GEMM_TILE : e / GEMM_BK, k = TA ? e / GEMM_TILE : e % GEMM_BK;
                const idx_t gr = m0 + r, gk = k0 + k;
                As[k][r] = gr < M && gk < k_end ? (TA ? A[gk * M + gr] : A[gr * K + gk]) : T(0);
            }
            for (int e = threadIdx.x; e < GEMM_TILE * GEMM_BK; e += GEMM_THREADS) {
                const int c = TB ? e / GEMM_BK : e % GEMM_TILE, k = TB ? e % GEMM_BK : e / GEMM_TILE;
                const idx_t gc = n0 + c, gk = k0 + k;
                Bs[k][c] = gc < N && gk < k_end ? (TB ? B[gc * K + gk] : B[gk * N + gc]) : T(0);
            }
            __syncthreads();
#pragma unroll
            for (int k = 0; k < GEMM_BK; ++k) {
                T a[4], b[4];
                for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
                for (int j = 0; j < 4; ++j) b[j] = Bs[k][tx + 16 * j];
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
            }
            __syncthreads();  // the next slice overwrites the tiles
        }
        T* __restrict__ out = C + split * M * N;
        for (int i = 0; i < 4; ++i) {
            const idx_t r = m0 + ty + 16 * i;
            if (r >= M) break;
            for (int j = 0; j < 4; ++j) {
                const idx_t c = n0 + tx + 16 * j;
                if (c < N) out[r * N + c] = acc[i][j];
            }
        }
    }
}

// C[i] = sum over s of parts[s * MN + i], in split order.
template <typename T>
__device__ __forceinline__ void gemm_sum_splits(const T* __restrict__ parts, T* __restrict__ C,
                                                idx_t MN, idx_t splits) {
    GRID_STRIDE_LOOP(i, MN) {
        T acc = parts[i];
        for (idx_t s = 1; s < splits; ++s) acc += parts[s * MN + i];
        C[i] = acc;
    }
}

#define GEMM_ENTRY(T, S, AB, TA, TB)                                                         \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_##AB##_##S(             \
        const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, idx_t M,         \
        idx_t N, idx_t K, idx_t klen, idx_t splits) {                                        \
        gemm<T, TA, TB>(A, B, C, M, N, K, klen, splits);                                     \
    }
#define ENTRIES(T, S)                                                                        \
    GEMM_ENTRY(T, S, nn, false, false)                                                       \
    GEMM_ENTRY(T, S, nt, false, true)                                                        \
    GEMM_ENTRY(T, S, tn, true, false)                                                        \
    GEMM_ENTRY(T, S, tt, true, true)                                                         \
    extern "C" __global__ void gemm_sum_splits_##S(const T* __restrict__ parts,              \
                                                   T* __restrict__ C, idx_t MN,              \
                                                   idx_t splits) {                           \
        gemm_sum_splits<T>(parts, C, MN, splits);                                            \
    }
ENTRIES(float, f32)
ENTRIES(double, f64)
#undef ENTRIES
#undef GEMM_ENTRY
