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

extern "C" __global__ void dropout_keep_mask(u64 key, u64 counter, u64 threshold, bool* keep,
                                             idx_t n) {
    GRID_STRIDE_LOOP(i, n) {
        const u64 bits = splitmix64((counter + key + (u64)i) * 0x9E3779B97F4A7C15ULL) >> 40;
        keep[i] = bits >= threshold;
    }
}
