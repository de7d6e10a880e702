/* The convolution as im2col + one BLAS product per group of images (blas.h), instantiated by
 * native.c once per element type, before conv_drivers.h, whose conv_run and wgrad_run hand a
 * shape here when conv_geom.h's gemm_pays says so (or use_conv_mode("gemm") forces it).
 *
 * For a group of g images the columns are cols (C*KH*KW, g*OH*OW): row (c, i, j), column
 * (image, oh, ow) holds the padded input at (oh*s + i, ow*s + j), zero outside the input.  Then
 *     forward:         out (F, OH*OW) = W (F, C*KH*KW) @ cols, plus bias, relu (g = 1)
 *     weight gradient: dW (F, C*KH*KW) += D (F, g*OH*OW) @ cols^T, D the group's dout
 * The input gradient needs nothing here: dgrad_run's phases are forward correlations of dout,
 * which conv_run hands over like any other.
 *
 * Why: the direct kernels keep their accumulators in registers over every tap of a block of
 * outputs, which wins on wide maps and few channels, but on small maps with many channels (a
 * 5x5 48 -> 64 layer on 8x8) they ran 13-50 GFLOP/s a core where OpenBLAS's packed product ran
 * 70-85 (AVX2 EPYC, one core): the products stream their operands through the caches in
 * blocks, and the copy into columns costs C*KH*KW*OH*OW element moves against F times as many
 * FMAs.
 *
 * The includer defines T and TS (name suffix: f or d); the kernel table K comes from drivers.h.
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, TS)
#define GEMM CAT(gemm, TS)

/* Columns of images 0..g-1 of src (g, C, H, W) (element strides ss): cols row (c, i, j) holds,
 * for each image and output (oh, ow), the element at row oh*s + i - ph, column ow*s + j - pw
 * (any sign), or 0 outside the image.  cols rows are g*OH*OW long. */
static void FN(im2col)(T *cols, const T *src, const ptrdiff_t *ss, int g, int C, int H, int W,
                       int KH, int KW, int s, int ph, int pw, int OH, int OW)
{
    const ptrdiff_t P = (ptrdiff_t)OH * OW;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++) {
            int r0, r1;
            phase_span(i - ph, s, H, OH, &r0, &r1);
            for (int j = 0; j < KW; j++) {
                int q0, q1;
                phase_span(j - pw, s, W, OW, &q0, &q1);
                T *row = cols + ((ptrdiff_t)(c * KH + i) * KW + j) * g * P;
                const int margin = r0 > 0 || r1 < OH || q0 > 0 || q1 < OW;
                for (int n = 0; n < g; n++) {
                    T *dst = row + n * P;
                    if (margin)
                        memset(dst, 0, sizeof(T) * (size_t)P);
                    if (r1 > r0 && q1 > q0)
                        FN(K)->copy_rows(dst + (ptrdiff_t)r0 * OW + q0, OW,
                                         src + n * ss[0] + c * ss[1] + (ptrdiff_t)(r0 * s + i - ph) * ss[2] +
                                             (ptrdiff_t)(q0 * s + j - pw) * ss[3],
                                         s * ss[2], s * ss[3], r1 - r0, q1 - q0);
                }
            }
        }
}

/* Weights (F, C, KH, KW) through element strides ws (any sign) -> wm (F, C*KH*KW) contiguous. */
static void FN(weight_rows)(T *wm, const T *w, const ptrdiff_t *ws, int F, int C, int KH, int KW)
{
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++)
                    *wm++ = w[f * ws[0] + c * ws[1] + i * ws[2] + j * ws[3]];
}

/* Images per weight-gradient product: the group's columns should stay in the core's L2
 * between the copy that writes them and the product that reads them, and the product should
 * get more than one small image's columns (OpenBLAS, one core, 32 x 144 by 144 x P: 35
 * GFLOP/s at P = 16, 71 at 144). */
#define GEMM_COLS_BYTES (512 * 1024)

static int FN(gemm_group)(ptrdiff_t rows, ptrdiff_t P, int n)
{
    const ptrdiff_t per = rows * P * (ptrdiff_t)sizeof(T);
    const ptrdiff_t g = per > 0 ? GEMM_COLS_BYTES / per : n;
    return g < 1 ? 1 : g > n ? n : (int)g;
}

/* conv_run's contract (conv_drivers.h) by im2col + one product per image: an image's outputs
 * then do not depend on which images share its call (OpenBLAS's sums differ in the last bit
 * with a column's place in the product), so splitting a batch over threads changes nothing.
 * The product writes into out itself where its rows are contiguous.  0, or -1 out of memory. */
static int FN(gemm_conv_run)(const view4 *src, int ph, int pw, const T *w, const ptrdiff_t *ws,
                             int KH, int KW, const T *b, ptrdiff_t bs, const view4 *out, int s,
                             int n0, int n1, int relu)
{
    const int C = src->d[1], F = out->d[1], OH = out->d[2], OW = out->d[3];
    const ptrdiff_t rows = (ptrdiff_t)C * KH * KW, P = (ptrdiff_t)OH * OW;
    /* an image is (F, P), rows s[1] apart */
    const int direct = out->s[3] == 1 && out->s[2] == OW && out->s[1] >= P;
    T *cols = malloc(sizeof(T) * (size_t)(rows * P));
    T *Y = direct ? NULL : malloc(sizeof(T) * (size_t)(F * P));
    T *wm = malloc(sizeof(T) * (size_t)(F * rows));
    const int ok = cols && (Y || direct) && wm;
    if (ok) {
        FN(weight_rows)(wm, w, ws, F, C, KH, KW);
        for (int n = n0; n < n1; n++) {
            T *on = (T *)out->p + n * out->s[0];
            T *y = direct ? on : Y;
            const ptrdiff_t ldy = direct ? out->s[1] : P;
            /* the bias first, the product added to it: no pass over the outputs after it */
            for (int f = 0; f < F && b; f++)
                for (ptrdiff_t k = 0; k < P; k++)
                    y[f * ldy + k] = b[f * bs];
            FN(im2col)(cols, (const T *)src->p + n * src->s[0], src->s, 1, C, src->d[2], src->d[3],
                       KH, KW, s, ph, pw, OH, OW);
            GEMM(0, 0, F, P, rows, wm, rows, cols, P, b ? 1 : 0, y, ldy);
            if (direct && !relu)
                continue;
            for (int f = 0; f < F; f++) {
                T *o = on + f * out->s[1];
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        const T v = y[f * ldy + oh * OW + ow];  /* relu as relu_forward: NaN kept */
                        o[oh * out->s[2] + ow * out->s[3]] = relu && !(v > 0) && v == v ? 0 : v;
                    }
            }
        }
    }
    free(cols);
    free(Y);
    free(wm);
    return ok ? 0 : -1;
}

/* wgrad_run's contract (conv_drivers.h) by im2col + products.  0, or -1 out of memory. */
static int FN(gemm_wgrad_run)(const view4 *x, const view4 *dout, int s, int pad, const view4 *dw,
                              T *db, ptrdiff_t dbs, int n0, int n1)
{
    const int C = x->d[1], F = dout->d[1], OH = dout->d[2], OW = dout->d[3];
    const int KH = dw->d[2], KW = dw->d[3];
    const ptrdiff_t rows = (ptrdiff_t)C * KH * KW, P = (ptrdiff_t)OH * OW;
    const int G = FN(gemm_group)(rows + F, P, n1 - n0);
    T *cols = malloc(sizeof(T) * (size_t)(rows * P * G));
    T *D = malloc(sizeof(T) * (size_t)(F * P * G));
    T *acc = calloc((size_t)(F * rows), sizeof(T));
    double *bsum = calloc((size_t)F, sizeof(double));
    const int ok = cols && D && acc && bsum;
    if (ok) {
        for (int n = n0; n < n1; n += G) {
            const int g = n1 - n < G ? n1 - n : G;
            FN(im2col)(cols, (const T *)x->p + n * x->s[0], x->s, g, C, x->d[2], x->d[3], KH, KW, s,
                       pad, pad, OH, OW);
            for (int f = 0; f < F; f++)
                for (int i = 0; i < g; i++) {
                    T *d = D + f * g * P + i * P;
                    FN(K)->copy_rows(d, OW, (const T *)dout->p + (n + i) * dout->s[0] + f * dout->s[1],
                                     dout->s[2], dout->s[3], OH, OW);
                    T sum = 0;
                    for (ptrdiff_t k = 0; k < P; k++)
                        sum += d[k];
                    bsum[f] += sum;
                }
            GEMM(0, 1, F, rows, g * P, D, g * P, cols, g * P, 1, acc, rows);
        }
        for (int f = 0, t = 0; f < F; f++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < KH; i++)
                    for (int j = 0; j < KW; j++, t++)
                        ((T *)dw->p)[f * dw->s[0] + c * dw->s[1] + i * dw->s[2] + j * dw->s[3]] = acc[t];
        for (int f = 0; f < F && db; f++)
            db[f * dbs] = (T)bsum[f];
    }
    free(cols);
    free(D);
    free(acc);
    free(bsum);
    return ok ? 0 : -1;
}

#undef GEMM
#undef FN
#undef CAT
#undef CAT_
