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
/* The general pool kernels of the next narrower instruction set, for output rows shorter than
 * K's vectors: with 14 outputs a row the AVX-512 pool fell back to its scalar loop and took
 * 2.2 ms forward, 1.75 backward on (64, 16, 28, 28); AVX2's 8 lanes: 1.2, 1.0.  (2x2 windows at
 * stride 2, that net's, now take pool2_plane instead: 0.25 and 0.44.) */
static const KERN_T *FN(K_narrow);

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
    const int Ci = src->d[1], Fo = out->d[1], OH = out->d[2], OW = out->d[3];
    const int fb = FN(K)->fb, vw = FN(K)->vw;
    const int L = out->s[3] == 1 ? flat_length(s, OH, OW, cols, vw) : 0;
    const geom g = make_geom(rows, cols, s, L ? cols : round_up(OW, vw) + (KW - 1) / s);
    const int ntaps = Ci * KH * KW;
    /* slack past the last plane: flat blocks read up to L + KW - 1 past a plane's last row */
    T *X = calloc((size_t)g.plane * (size_t)Ci + (size_t)L + (size_t)KW, sizeof(T));
    T *Y = L ? malloc(sizeof(T) * (size_t)Fo * (size_t)L) : NULL;
    T *bias = calloc((size_t)round_up(Fo, fb), sizeof(T));
    ptrdiff_t *off = malloc(sizeof(ptrdiff_t) * (size_t)ntaps);
    T *wp = FN(pack_weights)(w, ws, Fo, Ci, KH, KW, fb);
    const int ok = X && (Y || !L) && bias && off && wp;
    if (ok) {
        for (int f = 0; f < Fo && b; f++)
            bias[f] = b[f * bs];
        tap_offsets(off, &g, Ci, KH, KW);
        const T *sp = src->p;
        for (int n = n0; n < n1; n++) {
            FN(fill)(X, &g, sp + n * src->s[0], src->s + 1, Ci, src->d[2], src->d[3], ph, pw, d);
            T *on = (T *)out->p + n * out->s[0];
            if (!L) {
                FN(K)->conv_image(X, off, ntaps, s * g.row, wp, bias, Fo, OH, OW, on, out->s[1],
                                  out->s[2], out->s[3]);
                continue;
            }
            FN(K)->conv_image(X, off, ntaps, 0, wp, bias, Fo, 1, L, Y, L, 0, 1);
            for (int f = 0; f < Fo; f++)
                FN(K)->copy_rows(on + f * out->s[1], out->s[2], Y + (ptrdiff_t)f * L, g.row, 1, OH, OW);
        }
    }
    free(X);
    free(Y);
    free(bias);
    free(off);
    free(wp);
    return ok ? 0 : -1;
}

/* Weight and bias gradients summed over images n0..n1-1 of x (N, C, H, W) and dout
 * (N, F, OH, OW), written (not accumulated) to dw (F, C, KH, KW) and db (element stride dbs;
 * NULL for none).  Blocks of WFB filters x WTB taps run over all C*KH*KW taps in a row, so
 * only the last block is padding (per channel, 3x3 kernels padded 9 taps to 12).  0, or -1
 * out of memory. */
static int FN(wgrad_run)(const view4 *x, const view4 *dout, int s, int pad, const view4 *dw,
                         T *db, ptrdiff_t dbs, int n0, int n1)
{
    const int C = x->d[1], F = dout->d[1], OH = dout->d[2], OW = dout->d[3];
    const int KH = dw->d[2], KW = dw->d[3], cols = x->d[3] + 2 * pad;
    const int wfb = FN(K)->wfb, wtb = FN(K)->wtb, vl = FN(K)->wvw;
    const int L = flat_length(s, OH, OW, cols, vl);
    const geom g = make_geom(x->d[2] + 2 * pad, cols, s, L ? cols : round_up(OW, vl) + (KW - 1) / s);
    /* D: dout of one image, rows dpitch apart, zero past OW; kernels run over drows x dlen */
    const int dpitch = L ? (int)g.row : round_up(OW, vl), drows = L ? 1 : OH, dlen = L ? L : dpitch;
    const ptrdiff_t dplane = L ? L : (ptrdiff_t)OH * dpitch;
    const int ntaps = C * KH * KW, tp = round_up(ntaps, wtb);
    /* Images go in groups (see WGRAD_L1_BYTES), each image's X with zero slack for the flat
     * reads past its last plane (0 * inf would make NaN), D with zero padding filters. */
    const ptrdiff_t ximg = g.plane * C + L + KW, dimg = round_up(F, wfb) * dplane;
    const ptrdiff_t hot = ((ptrdiff_t)wfb * dplane + 2 * g.plane) * (ptrdiff_t)sizeof(T);
    const ptrdiff_t fit = (ximg + dimg) * (ptrdiff_t)sizeof(T);
    ptrdiff_t G = WGRAD_L1_BYTES / hot < WGRAD_L2_BYTES / fit ? WGRAD_L1_BYTES / hot : WGRAD_L2_BYTES / fit;
    G = G < n1 - n0 ? G : n1 - n0;
    G = G > 1 ? G : 1;
    T *X = calloc((size_t)ximg * (size_t)G, sizeof(T));
    T *D = calloc((size_t)dimg * (size_t)G, sizeof(T));
    T *acc = calloc((size_t)round_up(F, wfb) * (size_t)tp * (size_t)vl, sizeof(T));
    T *dblanes = calloc((size_t)F * (size_t)vl + 1, sizeof(T));
    ptrdiff_t *off = calloc((size_t)tp, sizeof(ptrdiff_t));  /* padding taps read offset 0 */
    const int ok = X && D && acc && dblanes && off;
    if (ok) {
        tap_offsets(off, &g, C, KH, KW);
        const T *xp = x->p, *dp = dout->p;
        for (int n = n0; n < n1; n += G) {
            const int nimg = n1 - n < G ? n1 - n : (int)G;
            for (int i = 0; i < nimg; i++) {
                FN(fill)(X + i * ximg, &g, xp + (n + i) * x->s[0], x->s + 1, C, x->d[2], x->d[3],
                         pad, pad, 1);
                for (int f = 0; f < F; f++)
                    FN(K)->copy_rows(D + i * dimg + f * dplane, dpitch,
                                     dp + (n + i) * dout->s[0] + f * dout->s[1], dout->s[2],
                                     dout->s[3], OH, OW);
                FN(K)->sum_rows(D + i * dimg, F, dplane, dblanes);
            }
            for (int f0 = 0; f0 < F; f0 += wfb)
                for (int t0 = 0; t0 < ntaps; t0 += wtb)
                    FN(K)->wgrad_block(X, ximg, off + t0, s * g.row, D + f0 * dplane, dimg, dplane,
                                       nimg, drows, dlen, acc + ((ptrdiff_t)f0 * tp + t0) * vl, tp);
        }
        T *wo = dw->p;
        for (int f = 0; f < F; f++)
            for (int t = 0; t < ntaps; t++) {
                const T *lane = acc + ((ptrdiff_t)f * tp + t) * vl;
                T sum = 0;
                for (int v = 0; v < vl; v++)
                    sum += lane[v];
                const int c = t / (KH * KW), i = t / KW % KH, j = t % KW;
                wo[f * dw->s[0] + c * dw->s[1] + i * dw->s[2] + j * dw->s[3]] = sum;
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
    const KERN_T *k = OW < FN(K)->wvw ? FN(K_narrow) : FN(K);
    const size_t asz = (size_t)abytes;
    const ptrdiff_t xe = extent(x);
    const int plane2 = FN(K)->pool2_plane && size == 2 && stride == 2 && xe > 0 && x->s[2] > 0 &&
                       x->s[3] == 1 && out->s[3] == 1 && am->s[3] == 1;
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < C; c++) {
            if (plane2) {
                const ptrdiff_t xo = n * x->s[0] + c * x->s[1];
                FN(K)->pool2_plane((const T *)x->p + xo, x->s[2], OH, OW, xe - xo,
                                   (T *)out->p + n * out->s[0] + c * out->s[1], out->s[2],
                                   (char *)am->p + asz * (size_t)(n * am->s[0] + c * am->s[1]),
                                   am->s[2], abytes);
                continue;
            }
            for (int oh = 0; oh < OH; oh++) {
                const T *xr = (const T *)x->p + n * x->s[0] + c * x->s[1] + oh * stride * x->s[2];
                T *orow = (T *)out->p + n * out->s[0] + c * out->s[1] + oh * out->s[2];
                char *arow = (char *)am->p + asz * (size_t)(n * am->s[0] + c * am->s[1] + oh * am->s[2]);
                for (int ow0 = 0; ow0 < OW; ow0 += POOL_CHUNK) {
                    const pool_io io = {orow + ow0 * out->s[3], out->s[3],
                                        arow + asz * (size_t)(ow0 * am->s[3]), am->s[3], abytes, NULL, 0};
                    const int cnt = OW - ow0 < POOL_CHUNK ? OW - ow0 : POOL_CHUNK;
                    k->pool_row(xr + ow0 * stride * x->s[3], x->s[2], x->s[3], stride, size, cnt,
                                x->d[3] - ow0 * stride, &io);
                }
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
    const KERN_T *k = OW < FN(K)->wvw ? FN(K_narrow) : FN(K);
    const int assign = stride >= size;  /* disjoint windows: each dx element gets at most one */
    const size_t asz = (size_t)abytes;
    const ptrdiff_t ge = extent(dout), oe = extent(out), ae = extent(am);
    const int plane2 = FN(K)->unpool2_plane && size == 2 && stride == 2 && ge > 0 && oe > 0 &&
                       ae > 0 && dx->s[3] == 1 && dout->s[3] == 1 && out->s[3] == 1 && am->s[3] == 1;
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < C; c++) {
            T *dxp = (T *)dx->p + n * dx->s[0] + c * dx->s[1];
            if (!tiles)
                for (int h = 0; h < H; h++)
                    for (int w = 0; w < W; w++)
                        dxp[h * dx->s[2] + w * dx->s[3]] = 0;
            if (plane2) {  /* extents in bytes from each plane's first element */
                const ptrdiff_t go = n * dout->s[0] + c * dout->s[1];
                const ptrdiff_t oo = n * out->s[0] + c * out->s[1], ao = n * am->s[0] + c * am->s[1];
                FN(K)->unpool2_plane(dxp, dx->s[2], OH, OW, (const T *)dout->p + go, dout->s[2],
                                     (ge - go) * (ptrdiff_t)sizeof(T), (const T *)out->p + oo,
                                     out->s[2], (oe - oo) * (ptrdiff_t)sizeof(T),
                                     (const char *)am->p + asz * (size_t)ao, am->s[2],
                                     (ae - ao) * (ptrdiff_t)asz, abytes);
                continue;
            }
            for (int oh = 0; oh < OH; oh++) {
                const T *dr = (const T *)dout->p + n * dout->s[0] + c * dout->s[1] + oh * dout->s[2];
                const T *orow = (const T *)out->p + n * out->s[0] + c * out->s[1] + oh * out->s[2];
                char *arow = (char *)am->p + asz * (size_t)(n * am->s[0] + c * am->s[1] + oh * am->s[2]);
                for (int ow0 = 0; ow0 < OW; ow0 += POOL_CHUNK) {
                    const pool_io io = {(T *)orow + ow0 * out->s[3], out->s[3],
                                        arow + asz * (size_t)(ow0 * am->s[3]), am->s[3], abytes,
                                        dr + ow0 * dout->s[3], dout->s[3]};
                    const int cnt = OW - ow0 < POOL_CHUNK ? OW - ow0 : POOL_CHUNK;
                    k->unpool_row(dxp + oh * stride * dx->s[2] + ow0 * stride * dx->s[3],
                                  dx->s[2], dx->s[3], stride, size, cnt, &io, assign);
                }
            }
        }
}

#undef FN
#undef CAT
#undef CAT_
