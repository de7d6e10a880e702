/* Hot loops of batch norm, instantiated by fused_ops.h once per (element type, instruction set).
 *
 * The includer defines T, SFX, TGT and VL as for kernels.h (whose vec/load/splat of the same
 * SFX this file uses); all are left defined.  One channel's values are "runs": no x ni runs of
 * len contiguous elements, run (o, i) at p + o*so + i*si (fused_ops.h merges the (N, H, W)
 * axes into as few runs as the strides allow: one per channel for (C, N, H, W) memory, one per
 * image for NCHW).
 *
 * Sums are taken in VL-lane partial sums of T over blocks of BN_BLOCK elements, the block sums
 * in double (as sum_squares does): float32 error ~1e-7 relative, like NumPy's pairwise sums.
 * No fused multiply-add (fp-contract off): the backward recomputes the forward's
 * y = (x - mean) * a + b to find where its ReLU passed, which must be the same bits.  And
 * no-trapping-math: else GCC keeps the ReLU masks' comparisons as branches on AVX2 and SSE
 * (the masked dx pass ran 16 instructions an element, scalar). */
#define BN_CAT_(a, b) a##_##b
#define BN_CAT(a, b) BN_CAT_(a, b)
#define BN(name) BN_CAT(bn_##name, SFX)
#define BN_VEC BN_CAT(vec, SFX)
#define BN_LOAD BN_CAT(load, SFX)
#define BN_SPLAT BN_CAT(splat, SFX)
#define BN_BLOCK 1024

#if defined(__GNUC__) || defined(__clang__)
/* integer lanes of T's width, what vector comparisons give (-1 or 0) */
typedef __typeof__(_Generic((T)0, float: (int32_t)0, default: (int64_t)0)) BN(ilane);
typedef BN(ilane) BN(ivec) __attribute__((vector_size(VL * sizeof(T))));
/* 1 where the comparison c holds, else 0, as T lanes (one: a vector of 1s) */
#define BN_ONE_IF(c, one) ((BN_VEC)((BN(ivec))(one) & (c)))
#else
#define BN_ONE_IF(c, one) ((T)(c))
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif
#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* y = (x - m) * a + b, and relu(y) as np.maximum(y, 0) gives it: NaN kept, -0.0 -> +0.0 */
TGT static INLINE T BN(affine)(T x, T m, T a, T b) { return (x - m) * a + b; }
TGT static INLINE T BN(relu)(T y) { return y <= 0 ? 0 : y; }

/* Adds the lanes of v[0..n-1] into *s and zeroes them. */
TGT static INLINE void BN(drain)(BN_VEC *v, int n, double *s)
{
    T lanes[VL];
    for (int u = 1; u < n; u++)
        v[0] += v[u];
    memcpy(lanes, v, sizeof lanes);
    for (int k = 0; k < VL; k++)
        *s += lanes[k];
    for (int u = 0; u < n; u++)
        v[u] = BN_SPLAT(0);
}

/* s[0] += sum of (x - k), s[1] += sum of (x - k)**2 over the runs: the batch statistics,
 * shifted by one of the channel's values k so the variance does not cancel. */
TGT static void BN(sums)(const T *x, ptrdiff_t so, ptrdiff_t si, int no, int ni, int len, T k,
                         double *s)
{
    const BN_VEC kv = BN_SPLAT(k), zero = BN_SPLAT(0);
    BN_VEC a[4] = {zero, zero, zero, zero}, q[4] = {zero, zero, zero, zero};
    double s1 = 0, s2 = 0;
    int pending = 0;  /* elements in a and q since their last flush */
    for (int o = 0; o < no; o++)
        for (int i = 0; i < ni; i++) {
            const T *r = x + o * so + i * si;
            int j = 0;
            for (; j + 4 * VL <= len; j += 4 * VL) {
                UNROLL for (int u = 0; u < 4; u++) {
                    const BN_VEC v = BN_LOAD(r + j + u * VL) - kv;
                    a[u] += v;
                    q[u] += v * v;
                }
                if ((pending += 4 * VL) >= BN_BLOCK) {
                    BN(drain)(a, 4, &s1);
                    BN(drain)(q, 4, &s2);
                    pending = 0;
                }
            }
            for (; j + VL <= len; j += VL) {
                const BN_VEC v = BN_LOAD(r + j) - kv;
                a[0] += v;
                q[0] += v * v;
                pending += VL;
            }
            for (; j < len; j++) {
                const T v = r[j] - k;
                s1 += v;
                s2 += v * v;
            }
            if (pending >= BN_BLOCK) {  /* short runs: counted across them */
                BN(drain)(a, 4, &s1);
                BN(drain)(q, 4, &s2);
                pending = 0;
            }
        }
    BN(drain)(a, 4, &s1);
    BN(drain)(q, 4, &s2);
    s[0] += s1;
    s[1] += s2;
}

/* out = (x - m) * a + b over the runs (relu: relu of it); out's runs at oo, oi. */
TGT static void BN(apply)(const T *x, ptrdiff_t xo, ptrdiff_t xi, T *out, ptrdiff_t oo,
                          ptrdiff_t oi, int no, int ni, int len, T m, T a, T b, int relu)
{
    for (int o = 0; o < no; o++)
        for (int i = 0; i < ni; i++) {
            const T *restrict r = x + o * xo + i * xi;
            T *restrict w = out + o * oo + i * oi;
            if (relu)
                for (int j = 0; j < len; j++)
                    w[j] = BN(relu)(BN(affine)(r[j], m, a, b));
            else
                for (int j = 0; j < len; j++)
                    w[j] = BN(affine)(r[j], m, a, b);
        }
}

/* The gradient reaching the batch norm: dout, or with relu dout * (y > 0) (a multiply, as
 * relu_backward's, so inf and NaN propagate) for the forward's y = (x - m) * a + b. */
TGT static INLINE BN_VEC BN(grad)(BN_VEC d, BN_VEC xm, BN_VEC av, BN_VEC bv, BN_VEC one, int relu)
{
    return relu ? d * BN_ONE_IF(xm * av + bv > 0, one) : d;
}

/* s[0] += sum of g, s[1] += sum of g * (x - m), g = BN(grad); with dx (not NULL, runs at
 * xo2, xi2) also dx = g * k: the evaluation-mode backward in the same pass. */
TGT static void BN(dsums)(const T *d, ptrdiff_t do_, ptrdiff_t di, const T *x, ptrdiff_t xo,
                          ptrdiff_t xi, T *dx, ptrdiff_t dxo, ptrdiff_t dxi, int no, int ni,
                          int len, T m, T a, T b, int relu, T k, double *s)
{
    const BN_VEC mv = BN_SPLAT(m), av = BN_SPLAT(a), bv = BN_SPLAT(b), one = BN_SPLAT(1);
    const BN_VEC kv = BN_SPLAT(k), zero = BN_SPLAT(0);
    BN_VEC g1[2] = {zero, zero}, g2[2] = {zero, zero};
    double s1 = 0, s2 = 0;
    int pending = 0;
    for (int o = 0; o < no; o++)
        for (int i = 0; i < ni; i++) {
            const T *rd = d + o * do_ + i * di, *rx = x + o * xo + i * xi;
            T *rw = dx ? dx + o * dxo + i * dxi : NULL;
            int j = 0;
            for (; j + 2 * VL <= len; j += 2 * VL) {
                UNROLL for (int u = 0; u < 2; u++) {
                    const BN_VEC xm = BN_LOAD(rx + j + u * VL) - mv;
                    const BN_VEC g = BN(grad)(BN_LOAD(rd + j + u * VL), xm, av, bv, one, relu);
                    g1[u] += g;
                    g2[u] += g * xm;
                    if (rw) {
                        const BN_VEC w = g * kv;
                        memcpy(rw + j + u * VL, &w, sizeof w);
                    }
                }
                if ((pending += 2 * VL) >= BN_BLOCK) {
                    BN(drain)(g1, 2, &s1);
                    BN(drain)(g2, 2, &s2);
                    pending = 0;
                }
            }
            for (; j < len; j++) {
                const T xm = rx[j] - m;
                const T g = relu ? rd[j] * (xm * a + b > 0 ? (T)1 : (T)0) : rd[j];
                s1 += g;
                s2 += g * xm;
                if (rw)
                    rw[j] = g * k;
            }
            if (pending >= BN_BLOCK) {
                BN(drain)(g1, 2, &s1);
                BN(drain)(g2, 2, &s2);
                pending = 0;
            }
        }
    BN(drain)(g1, 2, &s1);
    BN(drain)(g2, 2, &s2);
    s[0] += s1;
    s[1] += s2;
}

/* The training-mode input gradient: dx = g * k1 - k2 - (x - m) * k3, g = BN(grad). */
TGT static void BN(dx)(const T *d, ptrdiff_t do_, ptrdiff_t di, const T *x, ptrdiff_t xo,
                       ptrdiff_t xi, T *dx, ptrdiff_t dxo, ptrdiff_t dxi, int no, int ni, int len,
                       T m, T a, T b, int relu, T k1, T k2, T k3)
{
    for (int o = 0; o < no; o++)
        for (int i = 0; i < ni; i++) {
            const T *restrict rd = d + o * do_ + i * di, *restrict rx = x + o * xo + i * xi;
            T *restrict rw = dx + o * dxo + i * dxi;
            if (relu)
                for (int j = 0; j < len; j++) {
                    const T xm = rx[j] - m;
                    rw[j] = rd[j] * (xm * a + b > 0 ? (T)1 : (T)0) * k1 - k2 - xm * k3;
                }
            else
                for (int j = 0; j < len; j++)
                    rw[j] = rd[j] * k1 - k2 - (rx[j] - m) * k3;
        }
}

#include "eltwise.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

static const BNK_T BN(kern) = {
    BN(sums), BN(apply), BN(dsums), BN(dx), BN(relu_forward), BN(relu_backward), BN(add_relu)};

#undef BN_ONE_IF
#undef BN_CAT_
#undef BN_CAT
#undef BN
#undef BN_VEC
#undef BN_LOAD
#undef BN_SPLAT
#undef BN_BLOCK
