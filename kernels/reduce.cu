// The losses' float64 reductions, deterministic: each block sums a fixed share of the values in
// a fixed order into one partial, and one small launch sums the partials (no float atomics,
// whose order, and so the last bits of the loss, would vary from run to run).
//   sum_squares_all: the squares of every array of a table (L2's weights), read once each in
//     their own dtype and accumulated in float64, one partial per block; it replaces a float64
//     copy and a cuBLAS dot per weight (2 launches and an allocation each).
//   loss_total: out = scale * sum(parts) / div [+ *plus], in one block: the softmax's row
//     losses to their mean (div = N), the L2 partials to 0.5 * reg * sum(W^2) plus the data loss
//     in the same launch (was a CuPy sum and a divide; adds, a multiply and the data loss add).
// Device templates; ENTRIES below defines their extern "C" entry points (see common.cuh).
#include "common.cuh"

// The arrays of one sum_squares_all launch, passed by value as a kernel argument (as
// optim.cu's SgdTable): nothing to upload or allocate.  Entries [0, count) are used.
// gpucnn/cuda/kernels.py mirrors this layout (sq_table_dtype); tests/test_kernels_launch.py
// holds the two equal.
#define SQ_TABLE 32
template <typename T>
struct SqTable {
    const T* a[SQ_TABLE];
    idx_t n[SQ_TABLE];
};

// Every block walks every array with the grid-stride loop (coalesced reads) and writes
// parts[blockIdx.x]: the host sizes the grid, so which thread adds which value is fixed.
template <typename T>
__device__ __forceinline__ void sum_squares_all(const SqTable<T>& t, idx_t count,
                                                double* __restrict__ parts) {
    __shared__ double buf[MAX_REDUCE_BLOCK];
    double acc = 0.0;
    for (idx_t k = 0; k < count; ++k) {
        const T* __restrict__ a = t.a[k];
        GRID_STRIDE_LOOP(i, t.n[k]) {
            const double v = a[i];  // a float's square is exact in double (48 bits)
            acc += v * v;
        }
    }
    acc = block_reduce(buf, acc, SumOp());
    if (threadIdx.x == 0) parts[blockIdx.x] = acc;
}

// Launched as one block.  plus is read only when has_plus is set, so the
// host passes any float64 array for it otherwise.  Not a template: it reads float64 only.
extern "C" __global__ void loss_total(const double* __restrict__ parts, idx_t n, double scale,
                                      double div, const double* __restrict__ plus,
                                      idx_t has_plus, double* __restrict__ out) {
    __shared__ double buf[MAX_REDUCE_BLOCK];
    double s = 0.0;
    for (idx_t i = threadIdx.x; i < n; i += blockDim.x) s += parts[i];
    s = block_reduce(buf, s, SumOp());
    if (threadIdx.x == 0) *out = scale * s / div + (has_plus ? *plus : 0.0);
}

#define ENTRIES(T, S)                                                                        \
    extern "C" __global__ void sum_squares_all_##S(const SqTable<T> t, idx_t count,          \
                                                   double* __restrict__ parts) {             \
        sum_squares_all<T>(t, count, parts);                                                 \
    }
ENTRIES(float, f32)
ENTRIES(double, f64)
#undef ENTRIES
