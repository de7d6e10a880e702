/* Hot loops of gpucnn._native, instantiated by native.c once per (element type, instruction set).
 *
 * The includer defines (all undefined again at the end):
 *   T, KERN_T      element type (float or double) and its kernel table type
 *   SFX            name suffix, e.g. f_avx512
 *   TGT            function attribute selecting the instruction set (empty for the baseline)
 *   VL             elements per vector (1 without GCC/Clang vector extensions)
 *   FB, VW         forward block: FB output channels x VW output columns of accumulators
 *   VWIDE          a second, wider forward block (or VW again) for flat rows and lanes
 *   WFB, WTB       weight-gradient block: WFB filters x WTB kernel taps of VL-lane partial sums
 *
 * The block sizes are chosen so the accumulators fill half the vector registers (16 of 32 with
 * AVX-512), leaving the rest for the inputs and broadcast weights of one step.
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define MAX_NV ((VWIDE > VW ? VWIDE : VW) / VL)

#if defined(__GNUC__) || defined(__clang__)
/* GCC/Clang vector extensions: arrays of these with loop indices fixed by full unrolling stay
 * in registers.  Plain-C arrays of T did not: GCC kept the weight-gradient accumulators in
 * memory (load, FMA, store per step): 25 GFLOP/s at (a), against 93 now. */
typedef T FN(vec) __attribute__((vector_size(VL * sizeof(T))));
#define VEC FN(vec)
#else
typedef T FN(vec);
#define VEC FN(vec)
#endif

#ifdef HAVE_SHUFFLE
/* integer lanes of T's width: vector comparisons give -1/0 in these */
typedef __typeof__(_Generic((T)0, float: (int32_t)0, default: (int64_t)0)) FN(ilane);
typedef FN(ilane) FN(ivec) __attribute__((vector_size(VL * sizeof(T))));
#endif

TGT static INLINE VEC FN(load)(const T *p)
{
    VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* A vector of s in every lane: -0.0 + s broadcasts s and folds away (+0.0 would not: it
 * changes -0.0).  Filling lanes one by one made GCC emit a 256-bit broadcast plus an insert,
 * a shuffle per FMA pair. */
TGT static INLINE VEC FN(splat)(T s)
{
    const VEC zero = {0};
    return -zero + s;
}

/* relu of every lane, as relu_forward: NaN kept, -0.0 -> +0.0 (a lane survives where
 * !(v <= 0)).  On the accumulators before their store: clamping a copy element by element
 * made the 5x5 stride-2 1 -> 16 conv 1.5x slower than the unfused conv, not faster. */
TGT static INLINE VEC FN(vrelu)(VEC v)
{
#if defined(__GNUC__) || defined(__clang__)
    typedef __typeof__(_Generic((T)0, float: (int32_t)0, default: (int64_t)0)) lane_t;
    typedef lane_t bits_t __attribute__((vector_size(VL * sizeof(T))));
    const VEC zero = {0};
    bits_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= ~(v <= zero);
    memcpy(&v, &bits, sizeof v);
    return v;
#else
    return v <= 0 ? 0 : v;
#endif
}

#include "lanes.h"

/* One image of a direct convolution over a prepared input (see drivers.h, "scratch layout"):
 * out[f][oh][ow] = bias[f] + sum_t wp[t][f] * X[oh*rowstep + off[t] + ow], for f < F, oh < OH,
 * ow < OW, or relu of that when relu is set (a ReLU after the conv, clamped as it is stored:
 * one pass over the output less).  wp is packed (F/FB blocks, ntaps, FB), zero-padded past
 * F; bias is padded likewise.
 * Blocks of FB filters x VW columns: per tap, VW/VL vector loads and FB broadcasts feed
 * FB*VW/VL FMAs.  Columns past OW are computed and dropped (X has slack for them). */
TGT static INLINE void FN(conv_image_nv)(const T *X, const ptrdiff_t *off, int ntaps,
                                         ptrdiff_t rowstep, const T *wp, const T *bias, int F,
                                         int OH, int OW, T *out, ptrdiff_t osf, ptrdiff_t osh,
                                         ptrdiff_t osw, int relu, const int NV)
{
    const int bw = NV * VL;  /* this instance's block: the includer's VW or VWIDE */
    for (int f0 = 0; f0 < F; f0 += FB) {
        const T *wb = wp + (ptrdiff_t)f0 * ntaps;
        const int nf = F - f0 < FB ? F - f0 : FB;
        for (int oh = 0; oh < OH; oh++)
            for (int ow0 = 0; ow0 < OW; ow0 += bw) {
                const T *xb = X + oh * rowstep + ow0;
                VEC acc[FB][MAX_NV];
                UNROLL for (int f = 0; f < FB; f++)
                    UNROLL for (int k = 0; k < NV; k++)
                        acc[f][k] = FN(splat)(bias[f0 + f]);
                for (int t = 0; t < ntaps; t++) {
                    const T *xv = xb + off[t];
                    const T *wt = wb + (ptrdiff_t)t * FB;
                    VEC xs[MAX_NV];
                    UNROLL for (int k = 0; k < NV; k++)
                        xs[k] = FN(load)(xv + k * VL);
                    UNROLL for (int f = 0; f < FB; f++) {
                        const VEC wv = FN(splat)(wt[f]);
                        UNROLL for (int k = 0; k < NV; k++)
                            acc[f][k] += wv * xs[k];
                    }
                }
                const int nv = OW - ow0 < bw ? OW - ow0 : bw;
                T *ob = out + f0 * osf + oh * osh + ow0 * osw;
                /* Rows of a contiguous output plane: a full-width store past the row end only
                 * writes rows this loop overwrites later.  Storing (b)'s 28-wide rows element
                 * by element (224 scalar stores per 400 FMAs) made its forward 1.0 ms, not 0.7. */
                const int full = osw == 1 && (nv == bw || (osh == OW && (ptrdiff_t)oh * OW + ow0 + bw <= (ptrdiff_t)OH * OW));
                /* each accumulator stored from its register, by constant indices: a loop to nf
                 * and copies of whole rows of acc had spilled all of them first (C = 1 5x5 on
                 * 32x32: 60 GFLOP/s, the block's ends 28% of the time at 25 taps a block) */
                UNROLL for (int f = 0; f < FB; f++)
                    UNROLL for (int k = 0; k < NV; k++) {
                        const VEC a = relu ? FN(vrelu)(acc[f][k]) : acc[f][k];
                        if (f >= nf)
                            continue;
                        if (full) {
                            memcpy(ob + f * osf + k * VL, &a, sizeof a);
                            continue;
                        }
                        T row[VL];
                        memcpy(row, &a, sizeof a);
                        for (int v = 0; v < VL && k * VL + v < nv; v++)
                            ob[f * osf + (k * VL + v) * osw] = row[v];
                    }
            }
    }
}

/* The kernel at two block widths, VW and VWIDE columns (vectors of VL), the loops unrolled for
 * each: more accumulators hide more of the FMA latency, fewer waste less of a short row. */
TGT static void FN(conv_image)(const T *X, const ptrdiff_t *off, int ntaps, ptrdiff_t rowstep,
                               const T *wp, const T *bias, int F, int OH, int OW, T *out,
                               ptrdiff_t osf, ptrdiff_t osh, ptrdiff_t osw, int relu)
{
    FN(conv_image_nv)(X, off, ntaps, rowstep, wp, bias, F, OH, OW, out, osf, osh, osw, relu,
                      VW / VL);
}

TGT static void FN(conv_image_wide)(const T *X, const ptrdiff_t *off, int ntaps, ptrdiff_t rowstep,
                                    const T *wp, const T *bias, int F, int OH, int OW, T *out,
                                    ptrdiff_t osf, ptrdiff_t osh, ptrdiff_t osw, int relu)
{
    FN(conv_image_nv)(X, off, ntaps, rowstep, wp, bias, F, OH, OW, out, osf, osh, osw, relu,
                      VWIDE / VL);
}

/* Filters in lanes (conv_geom.h): the accumulators of the wide block, as P positions x V
 * vectors of VL filters. */
#define NACC (FB * (VWIDE / VL))

/* One block of the filters-in-lanes correlation (below): P positions from xb (inputs at
 * xb[off[t] + p*ps], or xb[off[t] + at[p]] where at is given) x V filter vectors, over taps
 * t0..t1-1, from bias or yb (partial sums) to yb: element (p, v) at yb[(v*npos + p)*VL].  Per
 * tap, V weight vectors and P broadcast inputs feed P*V FMAs; the fewer of the two stay in
 * registers while the others stream (16 registers hold 12 accumulators, 3 of one, 1 of the
 * other). */
TGT static INLINE void FN(filters_block)(const T *xb, const ptrdiff_t *off, int t0, int t1,
                                         const T *wb, int fbw, const T *bias, T *yb,
                                         ptrdiff_t npos, int first, int relu, const int P0,
                                         const int V0, const ptrdiff_t ps, const ptrdiff_t *at)
{
    /* P0, V0 as the arrays hold them: constants once inlined, where these fold away (GCC also
     * reads the body alone, and warned of iterations past the arrays without them) */
    const int P = P0 < NACC ? P0 : NACC, V = V0 < 4 ? V0 : 4, PS = P < 4 ? P : 4;
    ptrdiff_t q[NACC];  /* at's offsets, in registers for the taps */
    UNROLL for (int p = 0; p < P; p++)
        q[p] = at ? at[p] : 0;
    VEC acc[NACC][4];
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int v = 0; v < V; v++)
            acc[p][v] = first ? FN(load)(bias + v * VL) : FN(load)(yb + (v * npos + p) * VL);
    for (int t = t0; t < t1; t++) {
        const T *xv = xb + off[t];
        const T *wt = wb + (ptrdiff_t)t * fbw;
        if (P <= V) {
            VEC xs[4];
            UNROLL for (int p = 0; p < PS; p++)
                xs[p] = FN(splat)(xv[at ? q[p] : p * ps]);
            UNROLL for (int v = 0; v < V; v++) {
                const VEC wv = FN(load)(wt + v * VL);
                UNROLL for (int p = 0; p < PS; p++)
                    acc[p][v] += xs[p] * wv;
            }
        } else {
            VEC ws[4];
            UNROLL for (int v = 0; v < V; v++)
                ws[v] = FN(load)(wt + v * VL);
            UNROLL for (int p = 0; p < P; p++) {
                const VEC xs = FN(splat)(xv[at ? q[p] : p * ps]);
                UNROLL for (int v = 0; v < V; v++)
                    acc[p][v] += xs * ws[v];
            }
        }
    }
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int v = 0; v < V; v++) {
            const VEC a = relu ? FN(vrelu)(acc[p][v]) : acc[p][v];
            memcpy(yb + (v * npos + p) * VL, &a, sizeof a);
        }
}

/* filters_block over P = NACC / V <= 6 positions at given offsets, as a call of its own:
 * inlined, its instances had made conv_filters' others slower (Winograd's products, 3x3
 * 32 -> 64 on 16x16: 137 -> 117 GFLOP/s). */
TGT static NOINLINE void FN(filters_block_at)(const T *xb, const ptrdiff_t *off, int t0, int t1,
                                              const T *wb, int fbw, const T *bias, T *yb,
                                              ptrdiff_t npos, int first, int relu, int V,
                                              const ptrdiff_t *at)
{
#define BLOCK_AT(v)                                                                               \
    FN(filters_block)(xb, off, t0, t1, wb, fbw, bias, yb, npos, first, relu,                      \
                      NACC / (v) < 6 ? NACC / (v) : 6, v, 0, at)
    if (V >= 4)
        BLOCK_AT(4);
    else if (V == 3)
        BLOCK_AT(3);
    else
        BLOCK_AT(2);
#undef BLOCK_AT
}

/* One image's correlation over taps t0..t1-1 with VL filters in the lanes of each vector:
 * Y[(f*npos + oh*OW + ow)*VL + l] = (first ? bias[f*VL + l] : itself) + sum over those taps
 * t of wp[t][f*VL + l] * X[oh*rowstep + off[t] + ow*ps], relu of it where relu is set, for
 * filter vectors f < Fp/VL, oh < OH, ow < OW, npos = OH*OW.  wp is packed (Fp/(V*VL) blocks,
 * ntaps, V*VL), bias padded to Fp.  Blocks of P positions x V filter vectors (filters_block),
 * no position computed and dropped: a row's last positions and the next row's first share a
 * block (rows of P or more, P <= 6: the offsets of such a block stay in registers), else the
 * row's last block takes the positions left.  At 7x7 outputs and P = 3, the block of one a
 * row left 4 FMAs a tap to 4 accumulators, latency-bound: a quarter of the kernel's time.
 * Taps come in chunks (the driver's t0, t1) whose weights stay in L2, the partial sums going
 * through Y in between: the same FMAs in the same order as unchunked. */
TGT static INLINE void FN(conv_filters_pv)(const T *X, const ptrdiff_t *off, int t0, int t1,
                                           int ntaps, ptrdiff_t rowstep, const T *wp,
                                           const T *bias, int Fp, int OH, int OW, T *Y,
                                           int first, int relu, const int P, const int V,
                                           const ptrdiff_t ps)
{
    const int fbw = V * VL, across = P <= 6 && OW >= P;
    const ptrdiff_t npos = (ptrdiff_t)OH * OW;
    for (int f0 = 0; f0 < Fp; f0 += fbw) {
        const T *wb = wp + (ptrdiff_t)f0 * ntaps;
        int ow0 = 0;  /* the row's first position not yet computed */
        for (int oh = 0; oh < OH; oh++) {
            T *yr = Y + f0 * npos + (ptrdiff_t)oh * OW * VL;
            const T *xr = X + oh * rowstep;
            for (; ow0 + P <= OW; ow0 += P)
                FN(filters_block)(xr + ow0 * ps, off, t0, t1, wb, fbw, bias + f0, yr + ow0 * VL,
                                  npos, first, relu, P, V, ps, NULL);
            const int rest = OW - ow0;
            if (across && rest > 0 && oh + 1 < OH) {
                /* rest positions here, P - rest from the next row's start */
                ptrdiff_t at[6];
                for (int p = 0; p < P && p < 6; p++)
                    at[p] = p < rest ? p * ps : rowstep + (p - rest - ow0) * ps;
                FN(filters_block_at)(xr + ow0 * ps, off, t0, t1, wb, fbw, bias + f0,
                                     yr + ow0 * VL, npos, first, relu, V, at);
                ow0 = P - rest;
                continue;
            }
            /* the row's last positions: blocks of fewer (the cases P rules out fold away) */
            switch (rest) {
#define TAIL(r)                                                                                   \
    case r:                                                                                       \
        if (r < P)                                                                                \
            FN(filters_block)(xr + ow0 * ps, off, t0, t1, wb, fbw, bias + f0, yr + ow0 * VL,      \
                              npos, first, relu, r, V, ps, NULL);                                 \
        break;
                TAIL(1) TAIL(2) TAIL(3) TAIL(4) TAIL(5) TAIL(6) TAIL(7) TAIL(8) TAIL(9) TAIL(10)
                TAIL(11) TAIL(12) TAIL(13) TAIL(14) TAIL(15)
#undef TAIL
            default:
                break;
            }
            ow0 = 0;
        }
    }
}

/* CALL(v) for V = v, 1 to 4 (4 for any other): one instance of a filters-in-lanes kernel per
 * V, with P = NACC / V, the loops unrolled for each. */
#ifndef SWITCH_V
#define SWITCH_V(V, CALL)                                                                         \
    switch (V) {                                                                                  \
    case 1: CALL(1); break;                                                                       \
    case 2: CALL(2); break;                                                                       \
    case 3: CALL(3); break;                                                                       \
    default: CALL(4); break;                                                                      \
    }
#endif

/* conv_filters_pv at positions ps apart: ps = 1 (stride 1, Winograd's tiles) has instances of
 * its own, the stride folded into the loads. */
TGT static void FN(conv_filters)(const T *X, const ptrdiff_t *off, int t0, int t1, int ntaps,
                                 ptrdiff_t rowstep, ptrdiff_t ps, const T *wp, const T *bias,
                                 int Fp, int OH, int OW, T *Y, int first, int relu, int V)
{
#define CONV_FILTERS(v, step)                                                                     \
    FN(conv_filters_pv)(X, off, t0, t1, ntaps, rowstep, wp, bias, Fp, OH, OW, Y, first, relu,     \
                        NACC / (v), (v), (step))
#define CONV_FILTERS_1(v) CONV_FILTERS(v, 1)
#define CONV_FILTERS_S(v) CONV_FILTERS(v, ps)
    if (ps == 1)
        SWITCH_V(V, CONV_FILTERS_1)
    else
        SWITCH_V(V, CONV_FILTERS_S)
#undef CONV_FILTERS_S
#undef CONV_FILTERS_1
#undef CONV_FILTERS
}

/* nimg images' contribution to the weight gradient with VL filters in the lanes of each vector
 * (conv_geom.h, filters in lanes): G[t*Fp + f*VL + l] += sum over images i, positions (oh, ow)
 * of D[i*dimg + (f*npos + oh*OW + ow)*VL + l] * X[i*ximg + oh*rowstep + off[t] + ow], for
 * taps t < ntaps (a multiple of P: padding taps read offset 0 and are dropped) and filter
 * vectors f < Fp/VL, npos = OH*OW.  Blocks of P taps x V filter vectors: per position, P
 * broadcast inputs and V dout vectors feed P*V FMAs, the sums staying in registers over every
 * position of every image; each sum adds images, then rows, then columns in order, whatever
 * the block or the filters a part takes. */
TGT static INLINE void FN(wgrad_filters_pv)(const T *X, ptrdiff_t ximg, const ptrdiff_t *off,
                                            int ntaps, ptrdiff_t rowstep, const T *D,
                                            ptrdiff_t dimg, int Fp, int OH, int OW, int nimg,
                                            T *G, const int P0, const int V0)
{
    const int P = P0 < NACC ? P0 : NACC, V = V0 < 4 ? V0 : 4, fbw = V * VL;
    const ptrdiff_t npos = (ptrdiff_t)OH * OW;
    for (int f0 = 0; f0 < Fp; f0 += fbw)
        for (int t0 = 0; t0 < ntaps; t0 += P) {
            VEC acc[NACC][4];
            T *g = G + (ptrdiff_t)t0 * Fp + f0;
            UNROLL for (int p = 0; p < P; p++)
                UNROLL for (int v = 0; v < V; v++)
                    acc[p][v] = FN(load)(g + p * Fp + v * VL);
            for (int i = 0; i < nimg; i++) {
                const T *di = D + i * dimg + f0 * npos;
                const T *xr[NACC];
                UNROLL for (int p = 0; p < P; p++)
                    xr[p] = X + i * ximg + off[t0 + p];
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        const T *dv = di + ((ptrdiff_t)oh * OW + ow) * VL;
                        const ptrdiff_t at = oh * rowstep + ow;
                        VEC ds[4];
                        UNROLL for (int v = 0; v < V; v++)
                            ds[v] = FN(load)(dv + v * npos * VL);
                        UNROLL for (int p = 0; p < P; p++) {
                            const VEC xs = FN(splat)(xr[p][at]);
                            UNROLL for (int v = 0; v < V; v++)
                                acc[p][v] += xs * ds[v];
                        }
                    }
            }
            UNROLL for (int p = 0; p < P; p++)
                UNROLL for (int v = 0; v < V; v++)
                    memcpy(g + p * Fp + v * VL, &acc[p][v], sizeof(VEC));
        }
}

TGT static void FN(wgrad_filters)(const T *X, ptrdiff_t ximg, const ptrdiff_t *off, int ntaps,
                                  ptrdiff_t rowstep, const T *D, ptrdiff_t dimg, int Fp, int OH,
                                  int OW, int nimg, T *G, int V)
{
#define WGRAD_FILTERS(v)                                                                          \
    FN(wgrad_filters_pv)(X, ximg, off, ntaps, rowstep, D, dimg, Fp, OH, OW, nimg, G, NACC / (v),  \
                         (v))
    SWITCH_V(V, WGRAD_FILTERS)
#undef WGRAD_FILTERS
}

/* nimg images' contribution to the weight gradient of WFB filters x WTB taps, as VL-lane
 * partial sums: lanes[(f*dstf + t)*VL + v] += sum over images i, rows oh and ow = v (mod VL) of
 * D[i*dimg + f*dplane + oh*OWV + ow] * X[i*ximg + oh*rowstep + off[t] + ow].
 * D rows are zero past OW (OWV = OW rounded up to VL), so there is no column tail.  Per VL
 * columns: WFB + WTB vector loads feed WFB*WTB FMAs.  The lanes are summed once, after the
 * last image (sum_lanes): summing them per image took 256 scalar adds per 1024 FMAs at (a);
 * with 8x8 images even the per-call vector update of the lanes outweighed the FMAs, hence
 * nimg.  (Reducing them at the end of each call, by a transpose and adds, made the weight
 * gradient 15% slower at 32x32 and did not help at 4x4.) */
TGT static void FN(wgrad_block)(const T *X, ptrdiff_t ximg, const ptrdiff_t *off, ptrdiff_t rowstep,
                                const T *D, ptrdiff_t dimg, ptrdiff_t dplane, int nimg, int OH,
                                int OWV, T *lanes, ptrdiff_t dstf)
{
    VEC acc[WFB][WTB];
    UNROLL for (int f = 0; f < WFB; f++)
        UNROLL for (int t = 0; t < WTB; t++)
            acc[f][t] = FN(splat)(0);
    /* rows innermost: rows are only 2 vectors wide at (a), and a 2-trip inner loop spent as
     * many instructions on loop control as on loads and FMAs (82 -> 89 GFLOP/s at (a)) */
    for (int i = 0; i < nimg; i++, X += ximg, D += dimg)
        for (int ow = 0; ow < OWV; ow += VL) {
            const T *xr[WTB];
            UNROLL for (int t = 0; t < WTB; t++)
                xr[t] = X + off[t] + ow;
            const T *dr = D + ow;
            for (int oh = 0; oh < OH; oh++, dr += OWV) {
                VEC xs[WTB];
                UNROLL for (int t = 0; t < WTB; t++)
                    xs[t] = FN(load)(xr[t] + oh * rowstep);
                UNROLL for (int f = 0; f < WFB; f++) {
                    const VEC d = FN(load)(dr + f * dplane);
                    UNROLL for (int t = 0; t < WTB; t++)
                        acc[f][t] += d * xs[t];
                }
            }
        }
    UNROLL for (int f = 0; f < WFB; f++)
        UNROLL for (int t = 0; t < WTB; t++) {
            T *dst = lanes + (f * dstf + t) * VL;
            VEC sum = FN(load)(dst) + acc[f][t];
            memcpy(dst, &sum, sizeof sum);
        }
}

/* dst[r*dpitch + k] = src[r*spitch + k*step] for r < rows, k < n.  Contiguous rows go by
 * vectors, the tail as one overlapping vector, with no call per row.  At (b) this copy of dout
 * takes ~18% of the weight gradient either way (memcpy per row the same): it is the one read
 * of dout from L3. */
TGT static void FN(copy_rows)(T *dst, ptrdiff_t dpitch, const T *src, ptrdiff_t spitch,
                              ptrdiff_t step, int rows, int n)
{
#ifdef HAVE_SHUFFLE
    if (step == 2 && n >= VL) {
        /* The polyphase fill of a stride-2 convolution: even elements by two loads and a
         * shuffle, the second load one element early, so nothing past src[2*(n-1)] is read.
         * The scalar gather took a third of the 3x3 stride-2 forward at 16 -> 32 channels. */
        FN(ivec) even;
        for (int k = 0; k < VL; k++)
            even[k] = 2 * k < VL ? 2 * k : 2 * k + 1;
        for (int r = 0; r < rows; r++, dst += dpitch, src += spitch)
            for (int k = 0; k < n; k += VL) {
                const int at = k + VL <= n ? k : n - VL;  /* the tail: one overlapping vector */
                const VEC v = __builtin_shuffle(FN(load)(src + 2 * at), FN(load)(src + 2 * at + VL - 1), even);
                memcpy(dst + at, &v, sizeof v);
            }
        return;
    }
    if (step == 2 && VL >= 4 && 2 * n - 1 >= VL && n > VL / 2 + 1) {
        /* Rows narrower than a vector whose span 2n-1 is not (the 7 columns of a 14x14 input's
         * phases): the same shuffle of two loads, the second starting 2n-1-VL in, so its odd
         * lanes are the last VL/2 even elements; the first and the last VL/2 of the row are
         * stored, overlapping.  The scalar gather was 16% of the strided net's 3x3 s2 16 -> 32
         * forward (this: 6% faster); at 5 columns of 8 lanes, halves overlapping by 3, the
         * scalar gather stayed ahead (the digits ResNet's 3x3 s2 16 -> 32: 12%). */
        FN(ivec) even;
        for (int k = 0; k < VL; k++)
            even[k] = 2 * k < VL ? 2 * k : 2 * k + 1;
        for (int r = 0; r < rows; r++, dst += dpitch, src += spitch) {
            const VEC v = __builtin_shuffle(FN(load)(src), FN(load)(src + 2 * n - 1 - VL), even);
            memcpy(dst, &v, sizeof(T) * (VL / 2));
            memcpy(dst + n - VL / 2, (const T *)&v + VL / 2, sizeof(T) * (VL / 2));
        }
        return;
    }
#endif
    for (int r = 0; r < rows; r++, dst += dpitch, src += spitch) {
        if (step == 1 && n < VL && n > 1) {
            /* a row narrower than a vector (14, 7 or 4 outputs): two overlapping moves of the
             * widest power of two <= n, constant sizes, so each is one load and one store */
#define MOVE_TWO(W)                                                                              \
    do {                                                                                         \
        T a_[W], b_[W];                                                                          \
        memcpy(a_, src, sizeof a_);                                                              \
        memcpy(b_, src + n - (W), sizeof b_);                                                    \
        memcpy(dst, a_, sizeof a_);                                                              \
        memcpy(dst + n - (W), b_, sizeof b_);                                                    \
    } while (0)
            if (n >= 8)
                MOVE_TWO(8);
            else if (n >= 4)
                MOVE_TWO(4);
            else
                MOVE_TWO(2);
#undef MOVE_TWO
            continue;
        }
        if (step != 1 || n < VL) {
            for (int k = 0; k < n; k++)
                dst[k] = src[k * step];
            continue;
        }
        for (int k = 0; k + VL <= n; k += VL) {
            const VEC v = FN(load)(src + k);
            memcpy(dst + k, &v, sizeof v);
        }
        const VEC tail = FN(load)(src + n - VL);
        memcpy(dst + n - VL, &tail, sizeof tail);
    }
}

/* lanes[f*VL + v] += sum over k = v (mod VL) of D[f*dplane + k], f < F (dplane a multiple of
 * VL): the bias gradient.  A scalar running sum (one dependent add per element) made (b)'s
 * weight gradient 1.35 ms instead of 1.0. */
TGT static void FN(sum_rows)(const T *D, int F, ptrdiff_t dplane, T *lanes)
{
    for (int f = 0; f < F; f++) {
        VEC s[4] = {FN(splat)(0), FN(splat)(0), FN(splat)(0), FN(splat)(0)};
        const T *d = D + f * dplane;
        ptrdiff_t k = 0;
        for (; k + 4 * VL <= dplane; k += 4 * VL)
            UNROLL for (int u = 0; u < 4; u++)
                s[u] += FN(load)(d + k + u * VL);
        for (; k < dplane; k += VL)
            s[0] += FN(load)(d + k);
        const VEC sum = FN(load)(lanes + f * VL) + (s[0] + s[1]) + (s[2] + s[3]);
        memcpy(lanes + f * VL, &sum, sizeof sum);
    }
}

/* Running first maximum of relu over one output row's windows, ow in [0, n):
 * m[ow], a[ow] = max and first argmax of relu(x[i*sh + j*sw + ow*step]) over (i, j), step the
 * window stride in elements.
 * Since m >= 0 (or NaN) from the start, "v > m" on raw x equals it on relu(x).  NaN wins at its
 * first position (the contract of gpucnn.primitives, as on the GPU): a NaN v is taken when m is
 * not NaN yet, and then nothing replaces it, since "v > NaN" is false. */
TGT static INLINE void FN(pool_scan)(const T *restrict x, ptrdiff_t sh, ptrdiff_t sw,
                                     ptrdiff_t step, int size, int n, T *restrict m,
                                     int32_t *restrict a)
{
    for (int ow = 0; ow < n; ow++) {
        const T v = x[ow * step];
        m[ow] = ((v > 0) | (v != v)) ? v : 0;
        a[ow] = 0;
    }
    for (int i = 0; i < size; i++)
        for (int j = (i == 0); j < size; j++) {
            const T *r = x + i * sh + j * sw;
            const int32_t t = i * size + j;
            for (int ow = 0; ow < n; ow++) {
                const T v = r[ow * step], mo = m[ow];
                const int32_t ao = a[ow];
                /* unconditional stores: blends, not masked stores */
                const int take = (v > mo) | ((v != v) & (mo == mo));
                a[ow] = take ? t : ao;
                m[ow] = take ? v : mo;
            }
        }
}

#ifdef HAVE_SHUFFLE
/* pool_scan for stride 2 on contiguous columns, VL outputs at a time: for each window offset
 * (i, j), two vector loads and one even/odd shuffle give x[i*sh + 2*ow + j].  (GCC's own
 * vectorisation of the strided loop needs more than VL outputs, and rows have only 16 at
 * (a); the scalar loop it fell back to mispredicted on random data: 2x slower than NumPy.)
 * avail: columns readable from x; returns how many outputs it did.  A row's last VL outputs
 * are one vector ending at n where the row is that long and x that wide (recomputing a few
 * the same way): at 3x3 windows the 3 outputs left of 11 took as long as the 8 before them. */
TGT static int FN(pool_scan2)(const T *x, ptrdiff_t sh, int size, int n, int avail, T *m,
                              int32_t *a)
{
    typedef FN(ivec) IV;
    /* the last vector of offset j reads x[2*ow + (j & ~1) + 2*VL - 1] */
    const int reach = 2 * VL + ((size - 1) & ~1);
    IV even, odd;
    for (int k = 0; k < VL; k++) {
        even[k] = 2 * k;
        odd[k] = 2 * k + 1;
    }
    int ow = 0;
    for (; ow < n; ow += VL) {
        if (ow + VL > n) {
            if (n < VL || 2 * (n - VL) + reach > avail)
                break;
            ow = n - VL;
        }
        if (2 * ow + reach > avail)
            break;
        const T *r0 = x + 2 * ow;
        VEC lo = FN(load)(r0), hi = FN(load)(r0 + VL);
        VEC v = __builtin_shuffle(lo, hi, even);
        IV take = (v > 0) | (v != v);
        VEC mv = (VEC)((IV)v & take);
        IV av = even - even;
        for (int i = 0; i < size; i++)
            for (int j = (i == 0); j < size; j++) {
                const T *r = r0 + i * sh + (j & ~1);
                lo = FN(load)(r);
                hi = FN(load)(r + VL);
                v = __builtin_shuffle(lo, hi, (j & 1) ? odd : even);
                take = (v > mv) | ((v != v) & (mv == mv));
                av = (take & (i * size + j)) | (~take & av);
                mv = (VEC)(((IV)v & take) | ((IV)mv & ~take));
            }
        memcpy(m + ow, &mv, sizeof mv);
        for (int k = 0; k < VL; k++)
            a[ow + k] = (int32_t)av[k];
    }
    return ow < n ? ow : n;
}
#endif

/* pool_scan; contiguous columns with stride 2 or 1 get constant steps (and stride 2 vector
 * shuffles where available) so the compiler vectorises them instead of using gathers. */
/* Widens argmax offsets (uint8 or int32, element stride step) to int32; contiguous uint8 gets
 * its own loop so it vectorises. */
TGT static INLINE void FN(get_argmax)(int32_t *a, const pool_io *io, int n)
{
    if (io->abytes == 1 && io->asw == 1)
        for (int k = 0; k < n; k++)
            a[k] = ((const uint8_t *)io->am)[k];
    else if (io->abytes == 1)
        for (int k = 0; k < n; k++)
            a[k] = ((const uint8_t *)io->am)[k * io->asw];
    else
        for (int k = 0; k < n; k++)
            a[k] = ((const int32_t *)io->am)[k * io->asw];
}

/* One chunk (n <= POOL_CHUNK) of an output row of relu + max-pool: scan, then store the values
 * and offsets (the stores, compiled for the baseline and strided, took as long as the scan). */
TGT static void FN(pool_row)(const T *x, ptrdiff_t sh, ptrdiff_t sw, int stride, int size, int n,
                             int avail, const pool_io *io)
{
    T m[POOL_CHUNK];
    int32_t a[POOL_CHUNK];
    if (sw == 1 && stride == 2) {
        int done = 0;
#ifdef HAVE_SHUFFLE
        done = FN(pool_scan2)(x, sh, size, n, avail, m, a);
#else
        (void)avail;
#endif
        FN(pool_scan)(x + 2 * done, sh, 1, 2, size, n - done, m + done, a + done);
    } else if (sw == 1 && stride == 1) {
        FN(pool_scan)(x, sh, 1, 1, size, n, m, a);
    } else {
        FN(pool_scan)(x, sh, sw, stride * sw, size, n, m, a);
    }
    T *out = io->out;
    if (io->osw == 1)
        memcpy(out, m, sizeof(T) * (size_t)n);
    else
        for (int k = 0; k < n; k++)
            out[k * io->osw] = m[k];
    if (io->abytes == 1 && io->asw == 1)
        for (int k = 0; k < n; k++)
            ((uint8_t *)io->am)[k] = (uint8_t)a[k];
    else if (io->abytes == 1)
        for (int k = 0; k < n; k++)
            ((uint8_t *)io->am)[k * io->asw] = (uint8_t)a[k];
    else
        for (int k = 0; k < n; k++)
            ((int32_t *)io->am)[k * io->asw] = a[k];
}

/* Scatter one output row's gradients g[ow] to dx at their window offsets a[ow]:
 * dx[i*sh + j*sw + ow*step] (+)= g[ow] where a[ow] == i*size + j.  assign: windows are disjoint
 * and dx was zeroed, so "=" is exact and skips the read. */
TGT static INLINE void FN(unpool_scan)(T *restrict dx, ptrdiff_t sh, ptrdiff_t sw,
                                       ptrdiff_t step, int size, int n, const T *restrict g,
                                       const int32_t *restrict a, int assign)
{
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            T *r = dx + i * sh + j * sw;
            const int32_t t = i * size + j;
            if (assign)
                for (int ow = 0; ow < n; ow++)
                    r[ow * step] = a[ow] == t ? g[ow] : 0;
            else
                for (int ow = 0; ow < n; ow++)
                    r[ow * step] += a[ow] == t ? g[ow] : 0;
        }
}

#ifdef HAVE_SHUFFLE
/* unpool_scan for 2x2 windows at stride 2 on contiguous columns (assign), VL outputs at a time:
 * the two selected columns of each window row are interleaved by shuffles into two stores. */
TGT static int FN(unpool_scan2)(T *dx, ptrdiff_t sh, int n, const T *g, const int32_t *a)
{
    typedef FN(ivec) IV;
    IV lo, hi, av = {0};
    for (int k = 0; k < VL; k++) {
        lo[k] = (k & 1) * VL + k / 2;
        hi[k] = (k & 1) * VL + (k + VL) / 2;
    }
    int ow = 0;
    for (; ow + VL <= n; ow += VL) {
        const IV gv = (IV)FN(load)(g + ow);
        for (int k = 0; k < VL; k++)
            av[k] = a[ow + k];
        for (int i = 0; i < 2; i++) {
            const VEC v0 = (VEC)(gv & (av == 2 * i)), v1 = (VEC)(gv & (av == 2 * i + 1));
            const VEC w0 = __builtin_shuffle(v0, v1, lo), w1 = __builtin_shuffle(v0, v1, hi);
            memcpy(dx + i * sh + 2 * ow, &w0, sizeof w0);
            memcpy(dx + i * sh + 2 * ow + VL, &w1, sizeof w1);
        }
    }
    return ow;
}

/* unpool_scan for 3x3 windows at stride 2 on contiguous columns (accumulate: windows overlap
 * by a column and a row), VL outputs at a time, n >= VL.  Per window row, column 0 of window ow
 * and column 2 of window ow - 1 share input 2*ow: their gradients are summed into one vector of
 * even inputs (column 2's moved up a lane, its last lane carried to the next vector), column
 * 1's are the odd inputs, and the two interleaved are added to dx.  The row's last vector ends
 * at n, its lanes done before masked to zero.  The scalar loop had taken 0.45 ms of a 5.8 ms
 * training step (stem7 b16: (16, 24, 24, 24), 11 outputs a row). */
TGT static int FN(unpool_scan3)(T *dx, ptrdiff_t sh, int n, const T *g, const int32_t *a)
{
    typedef FN(ivec) IV;
    IV lo, hi, up, av = {0};
    for (int k = 0; k < VL; k++) {
        lo[k] = (k & 1) * VL + k / 2;
        hi[k] = (k & 1) * VL + (k + VL) / 2;
        up[k] = k == 0 ? VL : k - 1;  /* lane k - 1, lane 0 from the carry vector */
    }
    const int full = n / VL * VL;
    VEC carry[3] = {FN(splat)(0), FN(splat)(0), FN(splat)(0)};
    for (int ow = 0; ow < n; ow += VL) {
        const int at = ow < full ? ow : n - VL;
        IV gv = (IV)FN(load)(g + at);
        for (int k = 0; k < VL; k++)
            av[k] = a[at + k];
        if (at != ow)  /* the last vector: lanes before full done already */
            for (int k = 0; k < VL; k++)
                gv[k] = at + k < full ? 0 : gv[k];
        for (int i = 0; i < 3; i++) {
            T *r = dx + i * sh + 2 * at;
            if (at != ow) {  /* the carry in place */
                r[2 * (full - at)] += carry[i][0];
                carry[i] = FN(splat)(0);
            }
            const VEC g0 = (VEC)(gv & (av == 3 * i)), g1 = (VEC)(gv & (av == 3 * i + 1));
            const VEC g2 = (VEC)(gv & (av == 3 * i + 2));
            const VEC even = g0 + __builtin_shuffle(g2, carry[i], up);
            const VEC w0 = __builtin_shuffle(even, g1, lo), w1 = __builtin_shuffle(even, g1, hi);
            const VEC s0 = FN(load)(r) + w0, s1 = FN(load)(r + VL) + w1;
            memcpy(r, &s0, sizeof s0);
            memcpy(r + VL, &s1, sizeof s1);
            carry[i] = FN(splat)(g2[VL - 1]);
        }
    }
    for (int i = 0; i < 3; i++)  /* column 2 of the last window */
        dx[i * sh + 2 * n] += carry[i][0];
    return n;
}
#endif

/* One chunk (n <= POOL_CHUNK) of an output row of the relu + max-pool backward: gradients
 * dout * (out > 0) (a multiply, as NumPy's) scattered to each window's argmax. */
TGT static void FN(unpool_row)(T *dx, ptrdiff_t sh, ptrdiff_t sw, int stride, int size, int n,
                               const pool_io *io, int assign)
{
    T g[POOL_CHUNK];
    int32_t a[POOL_CHUNK];
    const T *dout = io->dout, *out = io->out;
    if (io->dsw == 1 && io->osw == 1)
        for (int k = 0; k < n; k++)
            g[k] = dout[k] * (T)(out[k] > 0);
    else
        for (int k = 0; k < n; k++)
            g[k] = dout[k * io->dsw] * (T)(out[k * io->osw] > 0);
    FN(get_argmax)(a, io, n);
    if (sw == 1 && stride == 2) {
        int done = 0;
#ifdef HAVE_SHUFFLE
        if (size == 2 && assign)
            done = FN(unpool_scan2)(dx, sh, n, g, a);
        else if (size == 3 && !assign && n >= VL)
            done = FN(unpool_scan3)(dx, sh, n, g, a);
#endif
        FN(unpool_scan)(dx + 2 * done, sh, 1, 2, size, n - done, g + done, a + done, assign);
    } else {
        FN(unpool_scan)(dx, sh, sw, stride * sw, size, n, g, a, assign);
    }
}

#include "pool2.h"
#include "updates.h"
#include "winograd.h"

static const KERN_T FN(kern) = {FB, VW, VWIDE, WFB, WTB, VL, NACC, FN(conv_image),
                                FN(conv_image_wide), FN(conv_filters), FN(wgrad_block),
                                FN(wgrad_filters),
                                FN(sum_rows), FN(copy_rows), FN(pool_row), FN(unpool_row),
                                POOL2_PLANE, UNPOOL2_PLANE, FN(sum_squares), FN(sgd),
                                FN(interleave), FN(deinterleave), FN(fill_lanes),
                                FN(sum_lanes), FN(wino_in), FN(wino_out),
                                FN(wino_weights), FN(wino_in_lanes), FN(wino_wout),
                                FN(wino_dy)};
#undef POOL2_PLANE
#undef UNPOOL2_PLANE

#undef FN
#undef CAT
#undef CAT_
#undef T
#undef KERN_T
#undef SFX
#undef TGT
#undef FB
#undef VW
#undef VWIDE
#undef MAX_NV
#undef NACC
#undef WFB
#undef WTB
#undef VL
#undef VEC
