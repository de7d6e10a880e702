/* Batch-in-lanes transposes of the direct convolution (conv_geom.h, "batch in lanes"): VL
 * images' rows interleaved into one row of VL-lane vectors and back.  Included by kernels.h
 * once per (element type, instruction set), with its FN, VEC, TGT and VL.
 *
 * Blocks of VL x VL elements are transposed in registers: VL vector loads, log2(VL) rounds of
 * VL two-vector shuffles, VL vector stores, where a scalar copy moved one element per load
 * and store.  A partial last block goes element by element. */

#ifdef HAVE_SHUFFLE
/* r[k] <- column k of the VL x VL block whose rows are r[0..VL-1].  Round d (1, 2, 4, ...)
 * swaps the off-diagonal d x d sub-blocks of each pair of rows (i, i + d).  8 x 8 floats (AVX2)
 * go by the shuffles AVX2 has (below): GCC made each of this network's 24 two-vector shuffles
 * two vpermps and a blend, and the transposes took as long as a small layer's FMAs. */
TGT static INLINE void FN(transpose_block)(VEC *r)
{
    typedef FN(ivec) IV;
#if VL == 8
    if (sizeof(T) == 4) {
        /* 128-bit halves' pairs interleaved (vunpcklps/hps), then pairs of pairs (vshufps),
         * then the halves (vperm2f128): 24 one-uop shuffles */
        const IV lo1 = {0, 8, 1, 9, 4, 12, 5, 13}, hi1 = {2, 10, 3, 11, 6, 14, 7, 15};
        const IV lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
        const IV lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
        VEC a[8], b[8];
        for (int i = 0; i < 8; i += 2) {
            a[i] = __builtin_shuffle(r[i], r[i + 1], lo1);
            a[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi1);
        }
        for (int i = 0; i < 8; i += 4)
            for (int k = 0; k < 2; k++) {
                b[i + k] = __builtin_shuffle(a[i + k], a[i + k + 2], lo2);
                b[i + k + 2] = __builtin_shuffle(a[i + k], a[i + k + 2], hi2);
            }
        /* b[0..3] hold columns (0, 4), (2, 6), (1, 5), (3, 7) of rows 0-3, b[4..7] of rows 4-7 */
        static const int col[4] = {0, 2, 1, 3};
        for (int k = 0; k < 4; k++) {
            r[col[k]] = __builtin_shuffle(b[k], b[k + 4], lo4);
            r[col[k] + 4] = __builtin_shuffle(b[k], b[k + 4], hi4);
        }
        return;
    }
#endif
    UNROLL for (int d = 1; d < VL; d *= 2) {
        IV lo, hi;
        UNROLL for (int k = 0; k < VL; k++) {  /* constants once unrolled */
            lo[k] = (k & d) ? VL + k - d : k;
            hi[k] = (k & d) ? VL + k : k + d;
        }
        UNROLL for (int i = 0; i < VL; i++)
            if (!(i & d)) {
                const VEC a = r[i], b = r[i + d];
                r[i] = __builtin_shuffle(a, b, lo);
                r[i + d] = __builtin_shuffle(a, b, hi);
            }
    }
}
#endif

/* The scratch of conv_geom.h in batch-in-lanes mode: X (xlen elements) zeroed, then element
 * (c, h, w) of images 0..cnt-1 of src (N, C, H, W) (element strides ss) in lanes 0..cnt-1 of
 * position c*plane + rowpos[h] + colpos[w] (where neither is negative: rows and columns the
 * phases keep), so X[(that position)*VL + i].  Each image is read as runs of consecutive
 * elements (the whole image, a channel or a row: what its strides make contiguous); VL
 * images' next VL elements are loaded (whole vectors where `readable`, the elements of the
 * array from src on, allows; else through a zeroed copy), transposed, and each element's
 * vector of VL images stored at its position.  One transpose per VL elements however short
 * the rows: the 4-wide rows of an 8x8 net's last stage took one per row, 4 columns used. */
TGT static void FN(fill_lanes)(T *X, ptrdiff_t xlen, const T *src, const ptrdiff_t *ss,
                               ptrdiff_t readable, int cnt, int C, int H, int W,
                               const ptrdiff_t *rowpos, const ptrdiff_t *colpos, ptrdiff_t plane)
{
    memset(X, 0, sizeof(T) * (size_t)xlen);
    const int rows_dense = ss[3] == 1 && ss[2] == W, image_dense = rows_dense && ss[1] == (ptrdiff_t)H * W;
    /* runs: (C*H*W elements) x 1, (H*W) x C, or W x C*H */
    const int len = image_dense ? C * H * W : rows_dense ? H * W : W;
    const int runs = C * H * W / len;
    for (int run = 0; run < runs; run++) {
        int c = image_dense ? 0 : rows_dense ? run : run / H, h = rows_dense ? 0 : run % H, w = 0;
        const ptrdiff_t at = c * ss[1] + h * ss[2];
        for (int e0 = 0; e0 < len; e0 += VL) {
            const int n = len - e0 < VL ? len - e0 : VL;
            VEC v[VL];
            for (int i = 0; i < VL; i++) {
                const ptrdiff_t e = i * ss[0] + at + (ptrdiff_t)e0 * ss[3];
                if (i >= cnt) {
                    v[i] = FN(splat)(0);
                } else if (ss[3] == 1 && readable >= 0 && e + VL <= readable) {
                    v[i] = FN(load)(src + e);
                } else {  /* a run of W elements at ss[3] apart, or the array's last elements */
                    T part[VL] = {0};
                    for (int k = 0; k < n; k++)
                        part[k] = src[e + k * ss[3]];
                    v[i] = FN(load)(part);
                }
            }
#ifdef HAVE_SHUFFLE
            FN(transpose_block)(v);
#else
            T m[VL][VL];
            memcpy(m, v, sizeof m);
            for (int k = 0; k < VL; k++)
                for (int i = 0; i < VL; i++)
                    ((T *)&v[k])[i] = m[i][k];
#endif
            for (int k = 0; k < n; k++) {
                if (rowpos[h] >= 0 && colpos[w] >= 0)
                    memcpy(X + (c * plane + rowpos[h] + colpos[w]) * VL, &v[k], sizeof v[k]);
                if (++w == W) {
                    w = 0;
                    if (++h == H) {
                        h = 0;
                        c++;
                    }
                }
            }
        }
    }
}

/* dst[p*VL + i] = src[i*spitch + p] for p < n, i < cnt; lanes i >= cnt get zeros. */
TGT static void FN(interleave)(T *dst, const T *src, ptrdiff_t spitch, ptrdiff_t n, int cnt)
{
    ptrdiff_t p = 0;
#ifdef HAVE_SHUFFLE
    for (; p + VL <= n; p += VL) {
        VEC r[VL];
        for (int i = 0; i < VL; i++)
            r[i] = i < cnt ? FN(load)(src + i * spitch + p) : FN(splat)(0);
        FN(transpose_block)(r);
        memcpy(dst + p * VL, r, sizeof r);
    }
#endif
    for (; p < n; p++)
        for (int i = 0; i < VL; i++)
            dst[p * VL + i] = i < cnt ? src[i * spitch + p] : 0;
}

/* dst[i*dpitch + p] = src[p*VL + i] for p < n, i < cnt. */
TGT static void FN(deinterleave)(T *dst, ptrdiff_t dpitch, const T *src, ptrdiff_t n, int cnt)
{
    ptrdiff_t p = 0;
#ifdef HAVE_SHUFFLE
    for (; p + VL <= n; p += VL) {
        VEC r[VL];
        memcpy(r, src + p * VL, sizeof r);
        FN(transpose_block)(r);
        for (int i = 0; i < cnt; i++)
            memcpy(dst + i * dpitch + p, &r[i], sizeof r[i]);
    }
#endif
    for (; p < n; p++)
        for (int i = 0; i < cnt; i++)
            dst[i * dpitch + p] = src[p * VL + i];
}

/* out[k] = sum over v < VL of lanes[k*VL + v], for k < n (out may be lanes): the weight
 * gradient's VL-lane partial sums (wgrad_block), VL of them at a time by a transpose and VL - 1
 * pairwise vector adds, where a scalar loop added one lane at a time. */
TGT static void FN(sum_lanes)(const T *lanes, ptrdiff_t n, T *out)
{
    for (ptrdiff_t k = 0; k < n; k += VL) {
        const int m = n - k < VL ? (int)(n - k) : VL;
        VEC r[VL];  /* r[v] = lane v of sums k .. k+m-1 */
        memset(r, 0, sizeof r);
        FN(deinterleave)((T *)r, VL, lanes + k * VL, m, VL);
        for (int step = 1; step < VL; step *= 2)
            for (int i = 0; i + step < VL; i += 2 * step)
                r[i] += r[i + step];
        memcpy(out + k, &r[0], sizeof(T) * (size_t)m);
    }
}
