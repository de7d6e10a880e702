// The SGD update in one pass, in place: p, g and the velocity v are read once and p, v written
// once, where the array code launched 2 kernels per parameter (lr * g, p -= it; momentum 4,
// nesterov 6) and allocated a temporary per parameter per step.  The arithmetic is
// gpucnn/optim.py's, in the same order (nvcc may contract a multiply-add into an FMA, a last-bit
// difference); lr and mu arrive in the parameter's dtype, as NumPy casts the Python floats.
// mu 0: plain SGD (v is not touched); nesterov: the look-ahead form.  decay > 0 first adds
// decay * p to the gradient: L2's gradient folded into the update, where adding it to the
// gradient took a launch and a pass per weight.
// sgd_update updates one parameter; sgd_update_all every parameter of a step in one launch.
// Device templates; ENTRIES below defines their extern "C" entry points (see common.cuh).
#include "common.cuh"

// Element i of one parameter.  mu1 = 1 + mu, rounded once from the Python float as NumPy does
// with (1 + momentum) * v.
template <typename T>
__device__ __forceinline__ void sgd_step(T* __restrict__ p, const T* __restrict__ g,
                                         T* __restrict__ v, idx_t i, T lr, T decay, T mu, T mu1,
                                         idx_t nesterov) {
    const T step = lr * (decay == T(0) ? g[i] : g[i] + decay * p[i]);
    if (mu == T(0)) {
        p[i] = p[i] - step;
        return;
    }
    T pi = p[i], vi = v[i];
    if (nesterov) pi = pi - mu * vi;
    vi = vi * mu;
    vi = vi - step;
    pi = pi + (nesterov ? mu1 * vi : vi);
    p[i] = pi;
    v[i] = vi;
}

template <typename T>
__device__ __forceinline__ void sgd_update(T* __restrict__ p, const T* __restrict__ g,
                                           T* __restrict__ v, T lr, T decay, T mu, T mu1,
                                           idx_t nesterov, idx_t n) {
    GRID_STRIDE_LOOP(i, n) { sgd_step(p, g, v, i, lr, decay, mu, mu1, nesterov); }
}

// The parameters of one launch, passed by value as a kernel argument (PyTorch's
// multi_tensor_apply does the same): nothing to upload or allocate per step.  Entries
// [0, count) are used; v is unused (may be null) without momentum.  gpucnn/cuda/kernels.py
// mirrors this layout (sgd_table_dtype); tests/test_kernels_launch.py holds the two equal.
#define SGD_TABLE 32
template <typename T>
struct SgdTable {
    T* p[SGD_TABLE];
    const T* g[SGD_TABLE];
    T* v[SGD_TABLE];
    idx_t n[SGD_TABLE];
    T decay[SGD_TABLE];
};

// Every block walks every parameter with the grid-stride loop, so one launch sized for the
// largest covers all; small ones (biases) leave most blocks idle for a few instructions.  lr is
// read from device memory, so a replayed CUDA graph picks up a decayed learning rate.
template <typename T>
__device__ __forceinline__ void sgd_update_all(const SgdTable<T>& t, idx_t count,
                                               const T* __restrict__ lr, T mu, T mu1,
                                               idx_t nesterov) {
    const T rate = *lr;
    for (idx_t k = 0; k < count; ++k) {
        T* __restrict__ p = t.p[k];
        const T* __restrict__ g = t.g[k];
        T* __restrict__ v = t.v[k];
        const T decay = t.decay[k];
        GRID_STRIDE_LOOP(i, t.n[k]) { sgd_step(p, g, v, i, rate, decay, mu, mu1, nesterov); }
    }
}

// y += a * x in place: L2's reg * W added into the weight gradient in one pass, where the
// array code launched 2 kernels and allocated a weight-sized temporary per weight per step.
template <typename T>
__device__ __forceinline__ void add_scaled(T* __restrict__ y, T a, const T* __restrict__ x,
                                           idx_t n) {
    GRID_STRIDE_LOOP(i, n) { y[i] = y[i] + a * x[i]; }
}

#define ENTRIES(T, S)                                                                        \
    extern "C" __global__ void add_scaled_##S(T* __restrict__ y, T a, const T* __restrict__ x, \
                                              idx_t n) {                                     \
        add_scaled<T>(y, a, x, n);                                                           \
    }                                                                                        \
    extern "C" __global__ void sgd_update_##S(T* __restrict__ p, const T* __restrict__ g,    \
                                              T* __restrict__ v, T lr, T decay, T mu, T mu1, \
                                              idx_t nesterov, idx_t n) {                     \
        sgd_update<T>(p, g, v, lr, decay, mu, mu1, nesterov, n);                             \
    }                                                                                        \
    extern "C" __global__ void sgd_update_all_##S(const SgdTable<T> t, idx_t count,          \
                                                  const T* __restrict__ lr, T mu, T mu1,     \
                                                  idx_t nesterov) {                          \
        sgd_update_all<T>(t, count, lr, mu, mu1, nesterov);                                  \
    }
ENTRIES(float, f32)
ENTRIES(double, f64)
#undef ENTRIES
