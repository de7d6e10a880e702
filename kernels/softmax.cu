// Fused softmax cross-entropy: loss terms and dscores in one pass over scores (N, K).
// One block per row (grid-stride over rows): reduce the row max, then the sum of exp, then write
//   dscores[r, k] = (exp(s_k - max) / sum - [k == y_r]) / N
//   row_loss[r]   = log(sum) - (s_{y_r} - max), stored as float64
// reduce.cu's loss_total averages row_loss over the N rows in float64: float64 rows need no
// cast pass before the sum.  A label outside [0, K) makes its row_loss and
// dscores row NaN (and so the mean loss): labels on the device are not range-checked on the host,
// which would cost a device-to-host sync per step; the NaN reports them instead.  A device template; ENTRIES below defines its
// extern "C" entry points (see common.cuh).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void softmax_cross_entropy(const T* __restrict__ scores,
                                                      const long long* __restrict__ y,
                                                      T* __restrict__ dscores,
                                                      double* __restrict__ row_loss, idx_t N, idx_t K) {
    __shared__ T buf[MAX_REDUCE_BLOCK];
    for (idx_t r = blockIdx.x; r < N; r += gridDim.x) {
        const T* s = scores + r * K;
        T* d = dscores + r * K;
        T m = s[0];
        for (idx_t k = threadIdx.x; k < K; k += blockDim.x) m = s[k] > m ? s[k] : m;
        m = block_reduce(buf, m, MaxOp());
        T sum = T(0);
        for (idx_t k = threadIdx.x; k < K; k += blockDim.x) sum += exp(s[k] - m);
        sum = block_reduce(buf, sum, SumOp());
        const idx_t label = y[r];
        const bool valid = label >= 0 && label < K;
        const T nan_ = T(nan(""));
        for (idx_t k = threadIdx.x; k < K; k += blockDim.x) {
            d[k] = valid ? (exp(s[k] - m) / sum - T(k == label)) / T(N) : nan_;
        }
        if (threadIdx.x == 0) row_loss[r] = valid ? double(log(sum) - (s[label] - m)) : nan_;
    }
}

#define ENTRIES(T, S)                                                                        \
    extern "C" __global__ void softmax_cross_entropy_##S(                                    \
        const T* __restrict__ scores, const long long* __restrict__ y,                       \
        T* __restrict__ dscores, double* __restrict__ row_loss, idx_t N, idx_t K) {          \
        softmax_cross_entropy<T>(scores, y, dscores, row_loss, N, K);                        \
    }
ENTRIES(float, f32)
ENTRIES(double, f64)
#undef ENTRIES
