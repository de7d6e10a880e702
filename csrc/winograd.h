/* The transforms of Winograd's F(2x2, 3x3) and F(2x2, 5x5) (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016), stride 1 and 2, included by kernels.h once per (element
 * type, instruction set); the driver is conv_drivers.h's wino_run.
 *
 * A 2x2 block of outputs of an r x r stride-1 correlation is A^T [(G g G^T) . (B^T d B)] A, with
 * d the n x n input patch (n = r + 1), g the r x r weights and . the elementwise product.
 * Summed over channels, the n^2 elementwise products are n^2 independent (tiles x C) by
 * (C x F) matrix products: n^2 multiply-adds per channel, filter and 2x2 outputs instead of
 * 4 r^2 (16 against 36 for 3x3, 36 against 100 for 5x5).  The matrices interpolate at 0, 1,
 * -1 (and 2, -2 for 5x5) and infinity:
 *     r = 3: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1],
 *            G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1];
 *     r = 5: B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
 *                   0 4 0 -5 0 1],  A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1],
 *            G = [1/4 0 0 0 0; -1/6 (x5); -1/6 1/6 -1/6 1/6 -1/6; 1/24 1/12 1/6 1/3 2/3;
 *                 1/24 -1/12 1/6 -1/3 2/3; 0 0 0 0 1].
 * At stride 2 a 2x2 block reads an n x n patch with n = r + 2, and along each axis its even
 * elements meet the even taps and its odd elements the odd taps: two stride-1 correlations of 2
 * outputs, by F(2, 3) and F(2, 2) for r = 5 (7 multiplies against 10), F(2, 2) and the plain
 * product for r = 3 (5 against 6); in two dimensions 49 against 100 and 25 against 36.  F(2, 2)
 * has B^T = [1 -1 0; 0 1 0; 0 -1 1], A^T = [1 1 0; 0 1 1], G = [1 0; 1 1; 0 1], so
 *     r = 5: B^T d = (B3^T (d0, d2, d4, d6), B2^T (d1, d3, d5)), A^T = [1 1 1 0 1 1 0;
 *            0 1 -1 -1 0 1 1], G (7 x 5) = G3 on taps 0, 2, 4 above G2 on taps 1, 3;
 *     r = 3: B^T d = (B2^T (d0, d2, d4), d1, d3), A^T = [1 1 0 1 0; 0 1 1 0 1],
 *            G = [1 0 0; 1 0 1; 0 0 1; 0 1 0; 0 1 0].
 * The patch side n (4 to 7) names the transform everywhere below.  B and A hold small
 * integers, so the data transforms are adds and a few multiplies by 2, 4 and 5; G's fractions
 * go into the weights, transformed in double and rounded once (conv_drivers.h).  float32
 * results stay within float rounding of the direct sum (tests/test_native_conv.py bounds them
 * against float64 references).
 */

/* CALL(k) for the patch side k = n, 4 to 7 (7 for any other): one instance of a transform per
 * side, its loops unrolled. */
#ifndef SWITCH_N
#define SWITCH_N(n, CALL)                                                                         \
    switch (n) {                                                                                  \
    case 4: CALL(4); break;                                                                       \
    case 5: CALL(5); break;                                                                       \
    case 6: CALL(6); break;                                                                       \
    default: CALL(7); break;                                                                      \
    }
#endif

/* t = B^T d for one column or row of n patch elements. */
TGT static INLINE void FN(wino_bt)(const VEC *d, VEC *t, const int n)
{
    if (n == 4 || n == 7) {  /* F(2, 3), at stride 2 on the even elements */
        const int e = n == 4 ? 1 : 2;
        t[0] = d[0] - d[2 * e];
        t[1] = d[e] + d[2 * e];
        t[2] = d[2 * e] - d[e];
        t[3] = d[e] - d[3 * e];
    }
    if (n == 7) {  /* F(2, 2) on the odd ones */
        t[4] = d[1] - d[3];
        t[5] = d[3];
        t[6] = d[5] - d[3];
    }
    if (n == 5) {  /* F(2, 2) on the even elements, the odd ones as they are */
        t[0] = d[0] - d[2];
        t[1] = d[2];
        t[2] = d[4] - d[2];
        t[3] = d[1];
        t[4] = d[3];
    }
    if (n != 6)
        return;
    const VEC two = FN(splat)(2), four = FN(splat)(4), five = FN(splat)(5);
    const VEC d42 = d[4] - d[2], d31 = d[3] - d[1];
    t[0] = four * d[0] - five * d[2] + d[4];
    t[1] = (d[3] + d[4]) - four * (d[1] + d[2]);
    t[2] = (d[4] - d[3]) + four * (d[1] - d[2]);
    t[3] = d42 + two * d31;
    t[4] = d42 - two * d31;
    t[5] = four * d[1] - five * d[3] + d[5];
}

/* The two sums of A^T m for one column or row of n products. */
TGT static INLINE void FN(wino_at)(const VEC *m, VEC *o, const int n)
{
    if (n == 4) {
        o[0] = m[0] + m[1] + m[2];
        o[1] = m[1] - m[2] - m[3];
        return;
    }
    if (n == 5) {
        o[0] = (m[0] + m[1]) + m[3];
        o[1] = (m[1] + m[2]) + m[4];
        return;
    }
    if (n == 7) {
        o[0] = (m[0] + m[1] + m[2]) + (m[4] + m[5]);
        o[1] = (m[1] - m[2] - m[3]) + (m[5] + m[6]);
        return;
    }
    o[0] = m[0] + (m[1] + m[2]) + (m[3] + m[4]);
    o[1] = (m[1] - m[2]) + FN(splat)(2) * (m[3] - m[4]) + m[5];
}

/* (B^T d B)[k] of one n x n patch d to v[k*kstride], k < n^2. */
TGT static INLINE void FN(wino_patch)(VEC (*d)[7], T *v, ptrdiff_t kstride, const int n)
{
    VEC e[7][7];
    UNROLL for (int j = 0; j < n; j++) {  /* B^T d: down each column */
        VEC c[7], t[7];
        UNROLL for (int i = 0; i < n; i++)
            c[i] = d[i][j];
        FN(wino_bt)(c, t, n);
        UNROLL for (int i = 0; i < n; i++)
            e[i][j] = t[i];
    }
    UNROLL for (int i = 0; i < n; i++) {  /* (B^T d) B: along each row */
        VEC t[7];
        FN(wino_bt)(e[i], t, n);
        UNROLL for (int j = 0; j < n; j++)
            memcpy(v + (n * i + j) * kstride, &t[j], sizeof t[j]);
    }
}

/* Input transform of one channel over tile rows th0..th1-1 of TW tiles each, n x n patches:
 * the (B^T d B)[k] of tile (th, tw) to V[k*kstride + (th - th0)*TW + tw], k < n^2, from the
 * channel's padded input split into S = 2 phases by row and column parity at stride 1 and
 * S = 4 at stride 2 (n odd) (conv_geom.h's polyphase layout at stride S: phase (a, b) at
 * P + (S*a + b)*pplane, rows Q apart), where padded element (S*th + i, S*tw + j) of the patch is
 * phase (i % S, j % S)'s row th + i/S, column tw + j/S: every operand of VL tiles is one
 * contiguous load.  Whole vectors are stored, up to VL-1 tiles past a row's end, which the next
 * row's overwrite (V has VL slack past its last; rows padded to whole vectors instead, the
 * products running row by row, were no faster at 6 or 12 tiles a row and slower at 6 with 24
 * channels); rows are read up to column round_up(TW, VL) + (n-1)/S - 1, so Q must exceed it. */
TGT static INLINE void FN(wino_in_n)(T *V, ptrdiff_t kstride, const T *P, ptrdiff_t pplane,
                                     ptrdiff_t Q, int th0, int th1, int TW, const int n)
{
    const int S = n & 1 ? 4 : 2;
    for (int th = th0; th < th1; th++)
        for (int tw = 0; tw < TW; tw += VL) {
            VEC d[7][7];
            UNROLL for (int i = 0; i < n; i++)
                UNROLL for (int j = 0; j < n; j++)
                    d[i][j] = FN(load)(P + ((i % S) * S + j % S) * pplane + (th + i / S) * Q + tw +
                                       j / S);
            FN(wino_patch)(d, V + (ptrdiff_t)(th - th0) * TW + tw, kstride, n);
        }
}

TGT static void FN(wino_in)(T *V, ptrdiff_t kstride, const T *P, ptrdiff_t pplane, ptrdiff_t Q,
                            int th0, int th1, int TW, int n)
{
#define CALL(k) FN(wino_in_n)(V, kstride, P, pplane, Q, th0, th1, TW, k)
    SWITCH_N(n, CALL)
#undef CALL
}

/* Output transform of the tiles of rows th0..th1-1 (TW a row), VL filters in the lanes: the
 * products' sums M[k*kstride + f*fstride + t*VL] (filter vector f < Fp/VL, tile t = (th - th0)*TW
 * + tw, k < n^2; conv_filters' layout) to the 2x2 outputs A^T M A + bias, relu of them where
 * relu is set, at Y[(f*OH*OW + oh*OW + ow)*VL] for those of oh < OH, ow < OW. */
TGT static INLINE void FN(wino_out_n)(const T *M, ptrdiff_t kstride, ptrdiff_t fstride, int Fp,
                                      const T *bias, int th0, int th1, int TW, int OH, int OW,
                                      T *Y, int relu, const int n)
{
    const ptrdiff_t npos = (ptrdiff_t)OH * OW;
    for (int f = 0; f < Fp / VL; f++) {
        const VEC b = FN(load)(bias + f * VL);
        for (int th = th0; th < th1; th++)
            for (int tw = 0; tw < TW; tw++) {
                const T *m = M + f * fstride + ((ptrdiff_t)(th - th0) * TW + tw) * VL;
                VEC s[2][7];
                UNROLL for (int j = 0; j < n; j++) {  /* A^T M: down each column */
                    VEC col[7], o[2];
                    UNROLL for (int i = 0; i < n; i++)
                        col[i] = FN(load)(m + (n * i + j) * kstride);
                    FN(wino_at)(col, o, n);
                    s[0][j] = o[0];
                    s[1][j] = o[1];
                }
                UNROLL for (int i = 0; i < 2; i++) {  /* (A^T M) A: along each row */
                    VEC o[2];
                    FN(wino_at)(s[i], o, n);
                    UNROLL for (int j = 0; j < 2; j++) {
                        const int oh = 2 * th + i, ow = 2 * tw + j;
                        if (oh >= OH || ow >= OW)
                            continue;
                        const VEC r = relu ? FN(vrelu)(o[j] + b) : o[j] + b;
                        memcpy(Y + (f * npos + (ptrdiff_t)oh * OW + ow) * VL, &r, sizeof r);
                    }
                }
            }
    }
}

TGT static void FN(wino_out)(const T *M, ptrdiff_t kstride, ptrdiff_t fstride, int Fp,
                             const T *bias, int th0, int th1, int TW, int OH, int OW, T *Y,
                             int relu, int n)
{
#define CALL(k) FN(wino_out_n)(M, kstride, fstride, Fp, bias, th0, th1, TW, OH, OW, Y, relu, k)
    SWITCH_N(n, CALL)
#undef CALL
}

/* U[k*ku + e] = (G g G^T)[k] for k < n^2, e < kb (a multiple of VL), where g (r x r) is
 * element e of the weight planes P (tap (a, b) at P[(a*r + b)*kb]) and G is Winograd's (n x r,
 * conv_geom.h): VL elements a step, n and r constants where inlined. */
TGT static INLINE void FN(wino_weights_n)(T *U, ptrdiff_t ku, const T *P, ptrdiff_t kb,
                                          const int n)
{
    const int r = wino_r(n);
    const double *const G = wino_g(n);
    for (ptrdiff_t e = 0; e < kb; e += VL) {
        VEC g[5][5], t[7][5];
        UNROLL for (int a = 0; a < r; a++)
            UNROLL for (int b = 0; b < r; b++)
                g[a][b] = FN(load)(P + (a * r + b) * kb + e);
        UNROLL for (int i = 0; i < n; i++)  /* G g */
            UNROLL for (int b = 0; b < r; b++) {
                VEC sum = FN(splat)(0);
                UNROLL for (int a = 0; a < r; a++)
                    if (G[i * r + a] != 0)
                        sum += FN(splat)((T)G[i * r + a]) * g[a][b];
                t[i][b] = sum;
            }
        UNROLL for (int i = 0; i < n; i++)  /* (G g) G^T */
            UNROLL for (int j = 0; j < n; j++) {
                VEC sum = FN(splat)(0);
                UNROLL for (int b = 0; b < r; b++)
                    if (G[j * r + b] != 0)
                        sum += t[i][b] * FN(splat)((T)G[j * r + b]);
                memcpy(U + (i * n + j) * ku + e, &sum, sizeof sum);
            }
    }
}

TGT static void FN(wino_weights)(T *U, ptrdiff_t ku, const T *P, ptrdiff_t kb, int n)
{
#define CALL(k) FN(wino_weights_n)(U, ku, P, kb, k)
    SWITCH_N(n, CALL)
#undef CALL
}

/* The weight gradient (conv_drivers.h's wino_wgrad_run), the forward transposed: per filter f
 * and channel c, dw = G^T [sum over 2x2 blocks dy of dout and their patches d of
 * (A dy A^T) . (B^T d B)] G.  Its sums run over tiles, so the transforms below take one tile at
 * a time with VL channels or filters in the lanes of every element. */

/* t = A y for one row or column of a 2x2 block y of dout: the n rows of A = (A^T)^T. */
TGT static INLINE void FN(wino_a)(const VEC *y, VEC *t, const int n)
{
    switch (n) {
    case 4:
        t[0] = y[0], t[1] = y[0] + y[1], t[2] = y[0] - y[1], t[3] = -y[1];
        break;
    case 5:
        t[0] = y[0], t[1] = y[0] + y[1], t[2] = y[1], t[3] = y[0], t[4] = y[1];
        break;
    case 6: {
        const VEC two = FN(splat)(2);
        t[0] = y[0], t[1] = y[0] + y[1], t[2] = y[0] - y[1];
        t[3] = y[0] + two * y[1], t[4] = y[0] - two * y[1], t[5] = y[1];
        break;
    }
    default:
        t[0] = y[0], t[1] = y[0] + y[1], t[2] = y[0] - y[1], t[3] = -y[1];
        t[4] = y[0], t[5] = y[0] + y[1], t[6] = y[1];
    }
}

/* Input transform of tiles th0..th1-1 (TW a row) of VL channels: the (B^T d B)[k] of tile
 * (th, tw) to V[k*kstride + ((th - th0)*TW + tw)*tstride], from the padded input with VL
 * channels in the lanes of every element (P[(row*pitch + col)*VL]), tile (th, tw)'s patch at
 * row and column (S*th, S*tw), S = 2 at stride 1 (n even) and 4 at stride 2. */
TGT static INLINE void FN(wino_in_lanes_n)(T *V, ptrdiff_t kstride, ptrdiff_t tstride,
                                           const T *P, ptrdiff_t pitch, int th0, int th1, int TW,
                                           const int n)
{
    const int S = n & 1 ? 4 : 2;
    for (int th = th0; th < th1; th++)
        for (int tw = 0; tw < TW; tw++) {
            const T *p = P + ((ptrdiff_t)S * th * pitch + S * tw) * VL;
            VEC d[7][7];
            UNROLL for (int i = 0; i < n; i++)
                UNROLL for (int j = 0; j < n; j++)
                    d[i][j] = FN(load)(p + (i * pitch + j) * VL);
            FN(wino_patch)(d, V + ((ptrdiff_t)(th - th0) * TW + tw) * tstride, kstride, n);
        }
}

TGT static void FN(wino_in_lanes)(T *V, ptrdiff_t kstride, ptrdiff_t tstride, const T *P,
                                  ptrdiff_t pitch, int th0, int th1, int TW, int n)
{
#define CALL(k) FN(wino_in_lanes_n)(V, kstride, tstride, P, pitch, th0, th1, TW, k)
    SWITCH_N(n, CALL)
#undef CALL
}

/* dout transform of tile rows th0..th1-1 (TW a row) of VL filters: the (A dy A^T)[k] of the
 * 2x2 block of tile (th, tw) to Y[k*kstride + ((th - th0)*TW + tw)*tstride], from
 * D[(oh*OW + ow)*VL] (OH x OW positions; the blocks' elements past OH or OW taken as zero). */
TGT static INLINE void FN(wino_dy_n)(T *Y, ptrdiff_t kstride, ptrdiff_t tstride, const T *D,
                                     int OH, int OW, int th0, int th1, int TW, const int n)
{
    for (int th = th0; th < th1; th++)
        for (int tw = 0; tw < TW; tw++) {
            VEC rows[2][7];
            UNROLL for (int i = 0; i < 2; i++) {  /* dy A^T: along each row */
                VEC y[2];
                UNROLL for (int j = 0; j < 2; j++) {
                    const int oh = 2 * th + i, ow = 2 * tw + j;
                    y[j] = oh < OH && ow < OW ? FN(load)(D + ((ptrdiff_t)oh * OW + ow) * VL)
                                              : FN(splat)(0);
                }
                FN(wino_a)(y, rows[i], n);
            }
            T *out = Y + ((ptrdiff_t)(th - th0) * TW + tw) * tstride;
            UNROLL for (int l = 0; l < n; l++) {  /* A (dy A^T): down each column */
                const VEC col[2] = {rows[0][l], rows[1][l]};
                VEC t[7];
                FN(wino_a)(col, t, n);
                UNROLL for (int k = 0; k < n; k++)
                    memcpy(out + (n * k + l) * kstride, &t[k], sizeof t[k]);
            }
        }
}

TGT static void FN(wino_dy)(T *Y, ptrdiff_t kstride, ptrdiff_t tstride, const T *D, int OH,
                            int OW, int th0, int th1, int TW, int n)
{
#define CALL(k) FN(wino_dy_n)(Y, kstride, tstride, D, OH, OW, th0, th1, TW, k)
    SWITCH_N(n, CALL)
#undef CALL
}

/* The weight gradient's last step: O[(a*r + b)*VL] = (G^T m G)[a][b] for the n x n sums m of
 * VL filters (m[k] at M[k*kstride]), G Winograd's (n x r, conv_geom.h): the transposed
 * wino_weights.  (Scalar, in double, for every filter and channel: a third of an 8-image
 * 64 -> 64 3x3 weight gradient on 8x8.) */
TGT static INLINE void FN(wino_wout_n)(T *O, const T *M, ptrdiff_t kstride, const int n)
{
    const int r = wino_r(n);
    const double *const G = wino_g(n);
    VEC t[7][5];
    UNROLL for (int k = 0; k < n; k++)  /* m G, along each row */
        UNROLL for (int b = 0; b < r; b++) {
            VEC sum = FN(splat)(0);
            UNROLL for (int l = 0; l < n; l++)
                if (G[l * r + b] != 0)
                    sum += FN(load)(M + (k * n + l) * kstride) * FN(splat)((T)G[l * r + b]);
            t[k][b] = sum;
        }
    UNROLL for (int a = 0; a < r; a++)  /* G^T (m G), down each column */
        UNROLL for (int b = 0; b < r; b++) {
            VEC sum = FN(splat)(0);
            UNROLL for (int k = 0; k < n; k++)
                if (G[k * r + a] != 0)
                    sum += FN(splat)((T)G[k * r + a]) * t[k][b];
            memcpy(O + (a * r + b) * VL, &sum, sizeof sum);
        }
}

TGT static void FN(wino_wout)(T *O, const T *M, ptrdiff_t kstride, int n)
{
#define CALL(k) FN(wino_wout_n)(O, M, kstride, k)
    SWITCH_N(n, CALL)
#undef CALL
}
