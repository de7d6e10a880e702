/* Per-image drivers of gpucnn._native, instantiated by native.c once per element type.
 *
 * The includer defines T, TS (name suffix: f or d) and KERN_T (the kernel table type).
 *
 * Scratch layout.  A direct convolution with stride s reads x[oh*s + ki][ow*s + kj]; we copy each
 * image once into a zero-padded scratch X[c][row][phase][q] holding column col at phase col % s,
 * index col / s.  Then the inputs of consecutive ow for one tap (c, ki, kj) are contiguous:
 * X[c][oh*s + ki][kj % s][ow + kj / s], so the kernels only ever load unit-stride vectors, and
 * one table off[t] of tap offsets turns the (c, ki, kj) loops into one loop.  The copy also
 * absorbs the input's strides (NCHW or (C, N, H, W) memory) and the padding, so no kernel has a
 * boundary test.  It costs O(C*H*W) per image against O(F*C*H*W*KH*KW) for the convolution.
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, TS)

static const KERN_T *FN(K);

/* Zero X, then place src (C, H, W) (element strides ss) at row ph + h*d, column pw + w*d,
 * dropping what falls outside the g->rows x g->cols padded image. */
static void FN(fill)(T *X, const geom *g, const T *src, const ptrdiff_t *ss, int C, int H, int W,
                     int ph, int pw, int d)
{
    memset(X, 0, sizeof(T) * (size_t)g->plane * (size_t)C);
    if (g->s == 1 && d == 1) {  /* a block of whole rows: columns [w0, w1) of rows [h0, h1) */
        const int h0 = ph < 0 ? -ph : 0, h1 = g->rows - ph < H ? g->rows - ph : H;
        const int w0 = pw < 0 ? -pw : 0, w1 = g->cols - pw < W ? g->cols - pw : W;
        for (int c = 0; c < C && h1 > h0 && w1 > w0; c++)
            FN(K)->copy_rows(X + c * g->plane + (ph + h0) * g->row + pw + w0, g->row,
                             src + c * ss[0] + h0 * ss[1] + w0 * ss[2], ss[1], ss[2], h1 - h0, w1 - w0);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++) {
            const ptrdiff_t r = ph + (ptrdiff_t)h * d;
            if (r < 0 || r >= g->rows)
                continue;
            const T *sr = src + c * ss[0] + h * ss[1];
            T *xr = X + c * g->plane + r * g->row;
            for (int w = 0; w < W; w++) {
                const ptrdiff_t col = pw + (ptrdiff_t)w * d;
                if (col >= 0 && col < g->cols)
                    xr[(col % g->s) * g->phase + col / g->s] = sr[w * ss[2]];
            }
        }
}

/* Weights (F, C, KH, KW) through element strides ws -> packed (ceil(F/fb), C*KH*KW, fb), zero
 * past F, so a kernel reads the fb weights of one tap as one contiguous run. */
static T *FN(pack_weights)(const T *w, const ptrdiff_t *ws, int F, int C, int KH, int KW, int fb)
{
    const ptrdiff_t ntaps = (ptrdiff_t)C * KH * KW;
    T *wp = calloc((size_t)round_up(F, fb) * (size_t)ntaps, sizeof(T));
    if (!wp)
        return NULL;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++) {
                    const ptrdiff_t t = ((ptrdiff_t)c * KH + i) * KW + j;
                    wp[(f / fb) * ntaps * fb + t * fb + f % fb] =
                        w[f * ws[0] + c * ws[1] + i * ws[2] + j * ws[3]];
                }
    return wp;
}

/* Direct convolution of images n0..n1-1: src placed as in fill (ph, pw, d) into a rows x cols
 * image, correlated with stride s by w (Fo, Ci, KH, KW) (element strides ws, any sign) plus b
 * (element stride bs; NULL for none), written to out (N, Fo, OH, OW).  0, or -1 out of memory. */
static int FN(conv_run)(const view4 *src, int ph, int pw, int d, int rows, int cols, const T *w,
                        const ptrdiff_t *ws, int KH, int KW, const T *b, ptrdiff_t bs,
                        const view4 *out, int s, int n0, int n1)
{
    const int Ci = src->d[1], Fo = out->d[1], OW = out->d[3];
    const int fb = FN(K)->fb;
    const geom g = make_geom(rows, cols, s, round_up(OW, FN(K)->vw) + (KW - 1) / s);
    const int ntaps = Ci * KH * KW;
    T *X = malloc(sizeof(T) * (size_t)g.plane * (size_t)Ci);
    T *bias = calloc((size_t)round_up(Fo, fb), sizeof(T));
    ptrdiff_t *off = malloc(sizeof(ptrdiff_t) * (size_t)ntaps);
    T *wp = FN(pack_weights)(w, ws, Fo, Ci, KH, KW, fb);
    const int ok = X && bias && off && wp;
    if (ok) {
        for (int f = 0; f < Fo && b; f++)
            bias[f] = b[f * bs];
        tap_offsets(off, &g, Ci, KH, KW);
        const T *sp = src->p, *op = out->p;
        for (int n = n0; n < n1; n++) {
            FN(fill)(X, &g, sp + n * src->s[0], src->s + 1, Ci, src->d[2], src->d[3], ph, pw, d);
            FN(K)->conv_image(X, off, ntaps, s * g.row, wp, bias, Fo, out->d[2], OW,
                              (T *)op + n * out->s[0], out->s[1], out->s[2], out->s[3]);
        }
    }
    free(X);
    free(bias);
    free(off);
    free(wp);
    return ok ? 0 : -1;
}

/* Weight and bias gradients summed over images n0..n1-1 of x (N, C, H, W) and dout
 * (N, F, OH, OW), written (not accumulated) to dw (F, C, KH, KW) and db (element stride dbs;
 * NULL for none).  0, or -1 out of memory. */
static int FN(wgrad_run)(const view4 *x, const view4 *dout, int s, int pad, const view4 *dw,
                         T *db, ptrdiff_t dbs, int n0, int n1)
{
    const int C = x->d[1], F = dout->d[1], OH = dout->d[2], OW = dout->d[3];
    const int KH = dw->d[2], KW = dw->d[3];
    const int wfb = FN(K)->wfb, wtb = FN(K)->wtb;
    const int vl = FN(K)->wvw;
    const int Fp = round_up(F, wfb), KKp = round_up(KH * KW, wtb), OWV = round_up(OW, vl);
    const geom g = make_geom(x->d[2] + 2 * pad, x->d[3] + 2 * pad, s, OWV + (KW - 1) / s);
    const ptrdiff_t dplane = (ptrdiff_t)OH * OWV, accf = (ptrdiff_t)C * KKp;
    T *X = malloc(sizeof(T) * (size_t)g.plane * (size_t)C);
    T *D = calloc((size_t)Fp * (size_t)dplane, sizeof(T));  /* padding rows/columns stay 0 */
    T *acc = calloc((size_t)Fp * (size_t)accf * (size_t)vl, sizeof(T));  /* vl lanes each */
    T *dblanes = calloc((size_t)F * (size_t)vl + 1, sizeof(T));
    ptrdiff_t *off = calloc((size_t)KKp, sizeof(ptrdiff_t));  /* padding taps read offset 0 */
    const int ok = X && D && acc && dblanes && off;
    if (ok) {
        tap_offsets(off, &g, 1, KH, KW);
        const T *xp = x->p, *dp = dout->p;
        for (int n = n0; n < n1; n++) {
            FN(fill)(X, &g, xp + n * x->s[0], x->s + 1, C, x->d[2], x->d[3], pad, pad, 1);
            for (int f = 0; f < F; f++)
                FN(K)->copy_rows(D + f * dplane, OWV, dp + n * dout->s[0] + f * dout->s[1],
                                 dout->s[2], dout->s[3], OH, OW);
            FN(K)->sum_rows(D, F, dplane, dblanes);
            for (int f0 = 0; f0 < F; f0 += wfb)
                for (int c = 0; c < C; c++)
                    for (int t0 = 0; t0 < KH * KW; t0 += wtb)
                        FN(K)->wgrad_block(X + c * g.plane, off + t0, s * g.row, D + f0 * dplane,
                                           dplane, OH, OWV, acc + (f0 * accf + c * KKp + t0) * vl, accf);
        }
        T *wo = dw->p;
        for (int f = 0; f < F; f++)
            for (int c = 0; c < C; c++)
                for (int t = 0; t < KH * KW; t++) {
                    const T *lane = acc + (f * accf + c * KKp + t) * vl;
                    T sum = 0;
                    for (int v = 0; v < vl; v++)
                        sum += lane[v];
                    wo[f * dw->s[0] + c * dw->s[1] + (t / KW) * dw->s[2] + (t % KW) * dw->s[3]] = sum;
                }
        for (int f = 0; f < F && db; f++) {
            double sum = 0;
            for (int v = 0; v < vl; v++)
                sum += dblanes[f * vl + v];
            db[f * dbs] = (T)sum;
        }
    }
    free(X);
    free(D);
    free(acc);
    free(dblanes);
    free(off);
    return ok ? 0 : -1;
}

/* Fused relu + max-pool forward of images n0..n1-1, one output row at a time in chunks of
 * POOL_CHUNK columns; argmax elements are abytes (1 or 4) wide. */
static void FN(pool_forward_run)(const view4 *x, const view4 *out, const view4 *am, int abytes,
                                 int size, int stride, int n0, int n1)
{
    const int C = x->d[1], OH = out->d[2], OW = out->d[3];
    const size_t asz = (size_t)abytes;
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < C; c++)
            for (int oh = 0; oh < OH; oh++) {
                const T *xr = (const T *)x->p + n * x->s[0] + c * x->s[1] + oh * stride * x->s[2];
                T *orow = (T *)out->p + n * out->s[0] + c * out->s[1] + oh * out->s[2];
                char *arow = (char *)am->p + asz * (size_t)(n * am->s[0] + c * am->s[1] + oh * am->s[2]);
                for (int ow0 = 0; ow0 < OW; ow0 += POOL_CHUNK) {
                    const pool_io io = {orow + ow0 * out->s[3], out->s[3],
                                        arow + asz * (size_t)(ow0 * am->s[3]), am->s[3], abytes, NULL, 0};
                    const int cnt = OW - ow0 < POOL_CHUNK ? OW - ow0 : POOL_CHUNK;
                    FN(K)->pool_row(xr + ow0 * stride * x->s[3], x->s[2], x->s[3], stride, size,
                                    cnt, x->d[3] - ow0 * stride, &io);
                }
            }
}

/* dx of relu(maxpool) for images n0..n1-1: each window's dout*(out > 0) goes to its argmax;
 * dx is zeroed first unless the windows tile it exactly. */
static void FN(pool_backward_run)(const view4 *dout, const view4 *am, int abytes, const view4 *out,
                                  const view4 *dx, int size, int stride, int n0, int n1)
{
    const int C = dx->d[1], H = dx->d[2], W = dx->d[3], OH = dout->d[2], OW = dout->d[3];
    const int tiles = stride == size && OH * size == H && OW * size == W;
    const int assign = stride >= size;  /* disjoint windows: each dx element gets at most one */
    const size_t asz = (size_t)abytes;
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < C; c++) {
            T *dxp = (T *)dx->p + n * dx->s[0] + c * dx->s[1];
            if (!tiles)
                for (int h = 0; h < H; h++)
                    for (int w = 0; w < W; w++)
                        dxp[h * dx->s[2] + w * dx->s[3]] = 0;
            for (int oh = 0; oh < OH; oh++) {
                const T *dr = (const T *)dout->p + n * dout->s[0] + c * dout->s[1] + oh * dout->s[2];
                const T *orow = (const T *)out->p + n * out->s[0] + c * out->s[1] + oh * out->s[2];
                char *arow = (char *)am->p + asz * (size_t)(n * am->s[0] + c * am->s[1] + oh * am->s[2]);
                for (int ow0 = 0; ow0 < OW; ow0 += POOL_CHUNK) {
                    const pool_io io = {(T *)orow + ow0 * out->s[3], out->s[3],
                                        arow + asz * (size_t)(ow0 * am->s[3]), am->s[3], abytes,
                                        dr + ow0 * dout->s[3], dout->s[3]};
                    const int cnt = OW - ow0 < POOL_CHUNK ? OW - ow0 : POOL_CHUNK;
                    FN(K)->unpool_row(dxp + oh * stride * dx->s[2] + ow0 * stride * dx->s[3],
                                      dx->s[2], dx->s[3], stride, size, cnt, &io, assign);
                }
            }
        }
}

#undef FN
#undef CAT
#undef CAT_
