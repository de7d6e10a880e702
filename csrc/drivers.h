/* Per-image drivers of gpucnn._native, instantiated by native.c once per element type: the
 * kernel tables in use and the relu + max-pool drivers (the convolution's are in
 * conv_drivers.h).
 *
 * The includer defines T, TS (name suffix: f or d) and KERN_T (the kernel table type).
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
            for (int h = 0; h < H && !tiles; h++) {
                if (dx->s[3] == 1) {
                    memset(dxp + h * dx->s[2], 0, sizeof(T) * (size_t)W);
                    continue;
                }
                for (int w = 0; w < W; w++)
                    dxp[h * dx->s[2] + w * dx->s[3]] = 0;
            }
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
