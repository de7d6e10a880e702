/* A convolution's forward correlation as im2col + one BLAS product per image (blas.h),
 * instantiated by native.c once per element type, before conv_drivers.h, whose conv_run hands
 * a shape here when conv_geom.h's gemm_pays says so (or use_conv_mode("gemm") forces it).
 * The input gradient's phases are correlations of dout that conv_run hands over like any
 * other; the weight gradient stays direct (its 12-accumulator kernels beat the products on
 * every layer of the bench suite).
 *
 * An image's columns are cols (C*KH*KW, OH*OW): row (c, i, j), column (oh, ow) holds the padded
 * input at (oh*s + i, ow*s + j), zero outside the input; then out (F, OH*OW) = W (F, C*KH*KW)
 * @ cols, plus bias, relu.  A 1x1 stride-1 convolution of dense rows needs no columns: the
 * image is its own.
 *
 * Why: the direct kernels keep a block's accumulators in registers over all its taps, then
 * store them; with one tap per channel (1x1) there is little to sum between the stores, and
 * OpenBLAS's packed products ran faster (gemm_pays has the numbers).
 *
 * The includer defines T and TS (name suffix: f or d); the kernel table K comes from drivers.h.
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, TS)

/* C (M x N) = op(A) (M x K) @ op(B) (K x N) + beta * C, row-major (leading dimensions are
 * row pitches in elements), by the BLAS of blas.h; op(X) is X, or X^T where ta (tb) is set
 * (A then stored K x M, B N x K). */
typedef void (*FN(gemm64))(int, int, int, int64_t, int64_t, int64_t, T, const T *, int64_t,
                           const T *, int64_t, T, T *, int64_t);
typedef void (*FN(gemm32))(int, int, int, int32_t, int32_t, int32_t, T, const T *, int32_t,
                           const T *, int32_t, T, T *, int32_t);

static void FN(gemm)(int ta, int tb, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const T *A,
                     ptrdiff_t lda, const T *B, ptrdiff_t ldb, T beta, T *C, ptrdiff_t ldc)
{
    void *const fn = sizeof(T) == sizeof(float) ? blas_sgemm : blas_dgemm;
    const int opa = ta ? BLAS_TRANS : BLAS_NO_TRANS, opb = tb ? BLAS_TRANS : BLAS_NO_TRANS;
    if (blas_ilp64)
        ((FN(gemm64))fn)(BLAS_ROW_MAJOR, opa, opb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc);
    else
        ((FN(gemm32))fn)(BLAS_ROW_MAJOR, opa, opb, (int32_t)M, (int32_t)N, (int32_t)K, 1, A,
                         (int32_t)lda, B, (int32_t)ldb, beta, C, (int32_t)ldc);
}

/* The columns of one image src (C, H, W) (element strides ss, of an (N, C, H, W) view): cols row
 * (c, i, j), column (oh, ow) holds the element at row oh*s + i - ph, column ow*s + j - pw (any
 * sign), or 0 outside the image. */
static void FN(im2col)(T *cols, const T *src, const ptrdiff_t *ss, int C, int H, int W, int KH,
                       int KW, int s, int ph, int pw, int OH, int OW)
{
    const ptrdiff_t P = (ptrdiff_t)OH * OW;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++) {
            int r0, r1;
            phase_span(i - ph, s, H, OH, &r0, &r1);
            for (int j = 0; j < KW; j++) {
                int q0, q1;
                phase_span(j - pw, s, W, OW, &q0, &q1);
                T *dst = cols + ((ptrdiff_t)(c * KH + i) * KW + j) * P;
                if (r0 > 0 || r1 < OH || q0 > 0 || q1 < OW)  /* a margin of padding */
                    memset(dst, 0, sizeof(T) * (size_t)P);
                if (r1 > r0 && q1 > q0)
                    FN(K)->copy_rows(dst + (ptrdiff_t)r0 * OW + q0, OW,
                                     src + c * ss[1] + (ptrdiff_t)(r0 * s + i - ph) * ss[2] +
                                         (ptrdiff_t)(q0 * s + j - pw) * ss[3],
                                     s * ss[2], s * ss[3], r1 - r0, q1 - q0);
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
    /* a 1x1 stride-1 unpadded correlation of dense rows reads the image in place */
    const int own = KH == 1 && KW == 1 && s == 1 && ph == 0 && pw == 0 && OH == src->d[2] &&
                    OW == src->d[3] && src->s[3] == 1 && src->s[2] == OW && src->s[1] >= P;
    T *cols = own ? NULL : malloc(sizeof(T) * (size_t)(rows * P));
    T *Y = direct ? NULL : malloc(sizeof(T) * (size_t)(F * P));
    T *wm = malloc(sizeof(T) * (size_t)(F * rows));
    const int ok = (cols || own) && (Y || direct) && wm;
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
            const T *image = (const T *)src->p + n * src->s[0];
            if (!own)
                FN(im2col)(cols, image, src->s, C, src->d[2], src->d[3], KH, KW, s, ph, pw, OH, OW);
            FN(gemm)(0, 0, F, P, rows, wm, rows, own ? image : cols, own ? src->s[1] : P,
                     b ? 1 : 0, y, ldy);
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

#undef FN
#undef CAT
#undef CAT_
