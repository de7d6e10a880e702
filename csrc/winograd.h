/* The transforms of Winograd's F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016), included by kernels.h once per (element type, instruction set); the
 * driver is conv_drivers.h's wino_run.
 *
 * A 2x2 block of outputs of a 3x3 stride-1 correlation is A^T [(G g G^T) . (B^T d B)] A, with
 * d the 4x4 input patch, g the 3x3 weights and . the elementwise product:
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *     A^T = [1 1 1 0; 0 1 -1 -1].
 * Summed over channels, the 16 elementwise products are 16 independent (tiles x C) by (C x F)
 * matrix products: 16 multiply-adds per channel, filter and 2x2 outputs instead of 36.  B and A
 * hold only 0 and +-1, so the transforms are adds, and G's halves are exact: float32 results
 * stay within a few roundings of the direct sum (tests/test_native_conv.py bounds them).
 */

/* Input transform of one channel over tile rows th0..th1-1 of TW tiles each: the (B^T d B)[k]
 * of tile (th, tw) to V[k*kstride + (th - th0)*TW + tw], k < 16, from the channel's padded
 * input split by row and column parity (conv_geom.h's polyphase layout at stride 2: phase
 * (a, b) at P + (2a + b)*pplane, rows Q apart), where padded element (2th + i, 2tw + j) of the
 * patch is phase (i % 2, j % 2)'s row th + i/2, column tw + j/2: every operand of VL tiles is
 * one contiguous load.  Whole vectors are stored, up to VL-1 tiles past a row's end, which the
 * next row's overwrite (V has VL slack past its last); rows are read up to column
 * round_up(TW, VL), so Q must exceed it. */
TGT static void FN(wino_in)(T *V, ptrdiff_t kstride, const T *P, ptrdiff_t pplane, ptrdiff_t Q,
                            int th0, int th1, int TW)
{
    for (int th = th0; th < th1; th++)
        for (int tw = 0; tw < TW; tw += VL) {
            VEC d[4][4], e[4][4];
            UNROLL for (int i = 0; i < 4; i++)
                UNROLL for (int j = 0; j < 4; j++)
                    d[i][j] = FN(load)(P + ((i & 1) * 2 + (j & 1)) * pplane + (th + i / 2) * Q +
                                       tw + j / 2);
            UNROLL for (int j = 0; j < 4; j++) {  /* B^T d: along columns */
                e[0][j] = d[0][j] - d[2][j];
                e[1][j] = d[1][j] + d[2][j];
                e[2][j] = d[2][j] - d[1][j];
                e[3][j] = d[1][j] - d[3][j];
            }
            T *v = V + (ptrdiff_t)(th - th0) * TW + tw;
            UNROLL for (int i = 0; i < 4; i++) {  /* (B^T d) B: along rows */
                const VEC r[4] = {e[i][0] - e[i][2], e[i][1] + e[i][2], e[i][2] - e[i][1],
                                  e[i][1] - e[i][3]};
                UNROLL for (int j = 0; j < 4; j++)
                    memcpy(v + (4 * i + j) * kstride, &r[j], sizeof r[j]);
            }
        }
}

/* Output transform of the tiles of rows th0..th1-1 (TW a row), VL filters in the lanes: the
 * products' sums M[k*kstride + f*fstride + t*VL] (filter vector f < Fp/VL, tile t = (th - th0)*TW
 * + tw, k < 16; conv_filters' layout) to the 2x2 outputs A^T M A + bias, relu of them where
 * relu is set, at Y[(f*OH*OW + oh*OW + ow)*VL] for those of oh < OH, ow < OW. */
TGT static void FN(wino_out)(const T *M, ptrdiff_t kstride, ptrdiff_t fstride, int Fp,
                             const T *bias, int th0, int th1, int TW, int OH, int OW, T *Y,
                             int relu)
{
    const ptrdiff_t npos = (ptrdiff_t)OH * OW;
    for (int f = 0; f < Fp / VL; f++) {
        const VEC b = FN(load)(bias + f * VL);
        for (int th = th0; th < th1; th++)
            for (int tw = 0; tw < TW; tw++) {
                const T *m = M + f * fstride + ((ptrdiff_t)(th - th0) * TW + tw) * VL;
                VEC s[4], u[4];
                UNROLL for (int j = 0; j < 4; j++) {  /* A^T M: along columns */
                    const VEC m0 = FN(load)(m + (0 * 4 + j) * kstride),
                              m1 = FN(load)(m + (1 * 4 + j) * kstride),
                              m2 = FN(load)(m + (2 * 4 + j) * kstride),
                              m3 = FN(load)(m + (3 * 4 + j) * kstride);
                    s[j] = m0 + m1 + m2;
                    u[j] = m1 - m2 - m3;
                }
                VEC o[2][2] = {{s[0] + s[1] + s[2] + b, s[1] - s[2] - s[3] + b},
                               {u[0] + u[1] + u[2] + b, u[1] - u[2] - u[3] + b}};
                UNROLL for (int i = 0; i < 2; i++)
                    UNROLL for (int j = 0; j < 2; j++) {
                        const int oh = 2 * th + i, ow = 2 * tw + j;
                        if (oh >= OH || ow >= OW)
                            continue;
                        const VEC r = relu ? FN(vrelu)(o[i][j]) : o[i][j];
                        memcpy(Y + (f * npos + (ptrdiff_t)oh * OW + ow) * VL, &r, sizeof r);
                    }
            }
    }
}
