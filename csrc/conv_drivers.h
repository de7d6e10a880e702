/* Per-image drivers of the direct convolution, instantiated by native.c once per element type
 * after drivers.h (whose FN and K they use): forward, input gradient, weight gradient over the
 * polyphase scratch of conv_geom.h.
 *
 * The includer defines T, TS (name suffix: f or d) and KERN_T (the kernel table type).
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, TS)

/* Zero X, then copy src (C, H, W) (element strides ss) into its phases: padded element
 * (row, col) is src[row - ph][col - pw] where that lies inside src (ph, pw may be negative:
 * the input gradient's phases start inside dout). */
static void FN(fill)(T *X, const geom *g, const T *src, const ptrdiff_t *ss, int C, int H, int W,
                     int ph, int pw)
{
    const int s = g->s;
    memset(X, 0, sizeof(T) * (size_t)g->plane * (size_t)C);
    for (int a = 0; a < g->pr; a++) {
        int r0, r1;
        phase_span(a - ph, s, H, g->R, &r0, &r1);
        for (int b = 0; b < g->pc && r1 > r0; b++) {
            int q0, q1;
            phase_span(b - pw, s, W, g->Q, &q0, &q1);
            if (q1 == q0)
                continue;
            const ptrdiff_t dst = (a * g->pc + b) * g->pplane + (ptrdiff_t)r0 * g->Q + q0;
            const ptrdiff_t from = (ptrdiff_t)(r0 * s + a - ph) * ss[1] + (ptrdiff_t)(q0 * s + b - pw) * ss[2];
            for (int c = 0; c < C; c++)
                FN(K)->copy_rows(X + c * g->plane + dst, g->Q, src + c * ss[0] + from, s * ss[1],
                                 s * ss[2], r1 - r0, q1 - q0);
        }
    }
}

/* dst[r*dpitch + k*dstep] = src[r*spitch + k] for r < rows, k < n. */
static void FN(put_rows)(T *dst, ptrdiff_t dpitch, ptrdiff_t dstep, const T *src, ptrdiff_t spitch,
                         int rows, int n)
{
    if (dstep == 1) {
        FN(K)->copy_rows(dst, dpitch, src, spitch, 1, rows, n);
        return;
    }
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < n; k++)
            dst[r * dpitch + k * dstep] = src[r * spitch + k];
}

/* Images 0..cnt-1 of out (N, F, OH, OW) (any strides; on: image 0) from batch-in-lanes Y
 * (element (f, oh, ow) of image i at Y[((f*OH + oh)*OW + ow)*vl + i]): straight into
 * contiguous images, else through tmp (cnt * F*OH*OW elements). */
static void FN(put_lanes)(const view4 *out, T *on, const T *Y, T *tmp, int cnt)
{
    const int F = out->d[1], OH = out->d[2], OW = out->d[3];
    const ptrdiff_t n = (ptrdiff_t)F * OH * OW;
    if (out->s[3] == 1 && out->s[2] == OW && out->s[1] == (ptrdiff_t)OH * OW) {
        FN(K)->deinterleave(on, out->s[0], Y, n, cnt);
        return;
    }
    FN(K)->deinterleave(tmp, n, Y, n, cnt);
    for (int i = 0; i < cnt; i++)
        for (int f = 0; f < F; f++)
            FN(put_rows)(on + i * out->s[0] + f * out->s[1], out->s[2], out->s[3],
                         tmp + i * n + (ptrdiff_t)f * OH * OW, OW, OH, OW);
}

/* Weights (F, C, KH, KW) through element strides ws -> packed (ceil(F/fb), C*KH*KW, fb), zero
 * past F, so a kernel reads the fb weights of one tap as one contiguous run; aligned to 64
 * bytes (*raw: what to free), so the filters-in-lanes kernel's weight vectors never straddle
 * a cache line. */
static T *FN(pack_weights)(const T *w, const ptrdiff_t *ws, int F, int C, int KH, int KW, int fb,
                           void **raw)
{
    const ptrdiff_t ntaps = (ptrdiff_t)C * KH * KW;
    T *wp = calloc64(sizeof(T) * (size_t)round_up(F, fb) * (size_t)ntaps, raw);
    if (!wp)
        return NULL;
    /* written in order, a tap's fb filters at a time: filter by filter, every write went to
     * another cache line, and the input gradient's weights (filters and channels swapped, every
     * read another line too) took a third of its time for one image, 5x5 s2 48 -> 64 */
    T *dst = wp;
    for (int f0 = 0; f0 < F; f0 += fb) {
        const int cnt = F - f0 < fb ? F - f0 : fb;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++, dst += fb) {
                    const T *src = w + f0 * ws[0] + c * ws[1] + i * ws[2] + j * ws[3];
                    for (int f = 0; f < cnt; f++)
                        dst[f] = src[f * ws[0]];
                }
    }
    return wp;
}

/* One image's outputs on (its first element in out (N, F, OH, OW), any strides) from Y, vl
 * filters in the lanes (element (f, oh, ow) at Y[((f/vl*OH + oh)*OW + ow)*vl + f%vl]):
 * transposed straight into dense planes, else through tmp (vl*OH*OW elements). */
static void FN(put_filter_lanes)(const view4 *out, T *on, const T *Y, T *tmp)
{
    const int Fo = out->d[1], OH = out->d[2], OW = out->d[3], vl = FN(K)->wvw;
    const ptrdiff_t npos = (ptrdiff_t)OH * OW;
    const int dense = out->s[3] == 1 && out->s[2] == OW && out->s[1] == npos;
    for (int f0 = 0; f0 < Fo; f0 += vl) {
        const int cnt = Fo - f0 < vl ? Fo - f0 : vl;
        if (dense) {
            FN(K)->deinterleave(on + f0 * out->s[1], npos, Y + f0 * npos, npos, cnt);
            continue;
        }
        FN(K)->deinterleave(tmp, npos, Y + f0 * npos, npos, cnt);
        for (int i = 0; i < cnt; i++)
            FN(put_rows)(on + (f0 + i) * out->s[1], out->s[2], out->s[3], tmp + i * npos, OW, OH,
                         OW);
    }
}

/* The reverse: one image of src (N, F, OH, OW) (its first element at sn, any strides) into D,
 * vl filters in the lanes as put_filter_lanes reads Y (lanes past F zero): dense rows
 * transposed straight, others gathered through tmp (vl*OH*OW elements) first. */
static void FN(get_filter_lanes)(T *D, const view4 *src, const T *sn, T *tmp)
{
    const int F = src->d[1], OH = src->d[2], OW = src->d[3], vl = FN(K)->wvw;
    const ptrdiff_t npos = (ptrdiff_t)OH * OW;
    const int dense = src->s[3] == 1 && src->s[2] == OW;
    for (int f0 = 0; f0 < F; f0 += vl) {
        const int cnt = F - f0 < vl ? F - f0 : vl;
        if (dense) {
            FN(K)->interleave(D + f0 * npos, sn + f0 * src->s[1], src->s[1], npos, cnt);
            continue;
        }
        for (int k = 0; k < cnt; k++)
            FN(K)->copy_rows(tmp + k * npos, OW, sn + (f0 + k) * src->s[1], src->s[2], src->s[3],
                             OH, OW);
        FN(K)->interleave(D + f0 * npos, tmp, npos, npos, cnt);
    }
}

/* conv_run (below) in filters-in-lanes mode, geometry g (conv_geom.h): each image filled as
 * for row blocks, correlated by chunks of taps whose weights fit FILTERS_CHUNK_BYTES, and its
 * outputs transposed out of the lanes (straight into a dense output, else through tmp).
 * The kernel broadcasts one input at a time, so it needs no phases: at stride s it reads the
 * padded input as it lies, positions s apart.  The phases' gather (two loads and a shuffle per
 * row and phase) took 12% of the strided net's 3x3 s2 16 -> 32 forward on 14x14, where a
 * padded copy takes one vector copy a row. */
static int FN(filters_run)(const view4 *src, int ph, int pw, const T *w, const ptrdiff_t *ws,
                           int KH, int KW, const T *b, ptrdiff_t bs, const view4 *out, int n0,
                           int n1, int relu, const geom *gs)
{
    const int Ci = src->d[1], H = src->d[2], W = src->d[3];
    const int Fo = out->d[1], OH = out->d[2], OW = out->d[3], s = gs->s;
    /* the padded rows and columns some output reads, at stride 1 */
    geom padded = *gs;
    padded.s = padded.pr = padded.pc = 1;
    padded.R = (OH - 1) * s + KH;
    padded.Q = (OW - 1) * s + KW;
    padded.pplane = padded.plane = (ptrdiff_t)padded.R * padded.Q;
    const geom *g = &padded;
    const int vl = FN(K)->wvw, fbw = g->fv * vl, Fp = round_up(Fo, fbw);
    const int ntaps = Ci * KH * KW;
    /* chunks of equal taps: 144 taps as 128 + 16 spent a second pass of loads and stores on 16 */
    const int most = FILTERS_CHUNK_BYTES / (fbw * (int)sizeof(T)), fit = most > 0 ? most : 1;
    const int nchunks = (ntaps + fit - 1) / fit, chunk = (ntaps + nchunks - 1) / nchunks;
    const ptrdiff_t npos = (ptrdiff_t)OH * OW;
    const int dense = out->s[3] == 1 && out->s[2] == OW && out->s[1] == npos;
    void *xraw, *yraw;
    T *X = calloc64(sizeof(T) * (size_t)g->plane * (size_t)Ci, &xraw);
    T *Y = calloc64(sizeof(T) * (size_t)Fp * (size_t)npos, &yraw);
    T *tmp = dense ? NULL : malloc(sizeof(T) * (size_t)vl * (size_t)npos);
    T *bias = calloc((size_t)Fp, sizeof(T));
    ptrdiff_t *off = malloc(sizeof(ptrdiff_t) * (size_t)ntaps);
    void *wraw;
    T *wp = FN(pack_weights)(w, ws, Fo, Ci, KH, KW, fbw, &wraw);
    const int ok = X && Y && (tmp || dense) && bias && off && wp;
    if (ok) {
        for (int f = 0; f < Fo && b; f++)
            bias[f] = b[f * bs];
        tap_offsets(off, g, Ci, KH, KW);
        for (int n = n0; n < n1; n++) {
            T *on = (T *)out->p + n * out->s[0];
            FN(fill)(X, g, (const T *)src->p + n * src->s[0], src->s + 1, Ci, H, W, ph, pw);
            for (int t0 = 0; t0 < ntaps; t0 += chunk) {
                const int t1 = ntaps - t0 < chunk ? ntaps : t0 + chunk;
                FN(K)->conv_filters(X, off, t0, t1, ntaps, s * g->Q, s, wp, bias, Fp, OH, OW, Y,
                                    t0 == 0, relu && t1 == ntaps, g->fv);
            }
            FN(put_filter_lanes)(out, on, Y, tmp);
        }
    }
    free(xraw);
    free(yraw);
    free(tmp);
    free(bias);
    free(off);
    free(wraw);
    return ok ? 0 : -1;
}

/* U[k] = (G g G^T)[k], k < (r+1)^2, for the r x r weights g of every filter and channel of w
 * (F, C, r, r) (element strides ws), packed as conv_filters reads its weights: U[k] is
 * (Fp/fbw blocks, C, fbw), zero past F.  Block by block of fbw filters: the block's weights
 * packed by tap into planes, then the kernels' wino_weights along them, VL filters and
 * channels a step.  A transform per filter and channel (n^2 scattered stores each) took a
 * third of an 8-image 64 -> 64 3x3 forward.  0, or -1 out of memory. */
static int FN(wino_weights)(T *U, const T *w, const ptrdiff_t *ws, int F, int C, int r, int n,
                            int fbw, int Fp)
{
    const ptrdiff_t ku = (ptrdiff_t)Fp * C, kb = (ptrdiff_t)fbw * C;
    const int vl = FN(K)->wvw, rr = r * r;
    /* a filter's taps one dense run (the forward's weights): VL filters interleaved whole,
     * then moved a vector at a time; gathered one element at a time, every read another
     * filter's line, they took a quarter of a one-image 5x5 s2 48 -> 64 forward */
    const int dense = ws[3] == 1 && ws[2] == r && ws[1] == rr;
    T *P = malloc(sizeof(T) * (size_t)rr * (size_t)kb);
    T *tmp = dense ? malloc(sizeof(T) * (size_t)vl * (size_t)(C * rr)) : NULL;
    if (!P || (dense && !tmp)) {
        free(P);
        free(tmp);
        return -1;
    }
    for (int f0 = 0; f0 < Fp; f0 += fbw) {
        const int nf = F - f0 < fbw ? F - f0 : fbw;
        for (int v = 0; dense && v < fbw; v += vl) {
            FN(K)->interleave(tmp, w + (f0 + (v < nf ? v : 0)) * ws[0], ws[0], (ptrdiff_t)C * rr,
                              nf - v < 0 ? 0 : nf - v < vl ? nf - v : vl);
            for (int c = 0; c < C; c++)
                for (int t = 0; t < rr; t++)
                    memcpy(P + t * kb + (ptrdiff_t)c * fbw + v, tmp + ((ptrdiff_t)c * rr + t) * vl,
                           sizeof(T) * (size_t)vl);
        }
        for (int a = 0; !dense && a < r; a++)  /* stores in order: planes 4K apart alias the loads */
            for (int b = 0; b < r; b++)
                for (int c = 0; c < C; c++) {
                    T *pc = P + (a * r + b) * kb + (ptrdiff_t)c * fbw;
                    const T *wc = w + f0 * ws[0] + c * ws[1] + a * ws[2] + b * ws[3];
                    for (int fi = 0; fi < fbw; fi++)
                        pc[fi] = fi < nf ? wc[fi * ws[0]] : 0;
                }
        FN(K)->wino_weights(U + (ptrdiff_t)f0 * C, ku, P, kb, n);
    }
    free(P);
    free(tmp);
    return 0;
}

/* Image xs of x (C, H, W at x's strides) into XI with VL channels in the lanes of every element:
 * channel c at XI[c/VL*xlanes + ((ph + h)*pitch + pw + w)*VL + c%VL], h < H, w < W, ph, pw >= 0;
 * the rest of XI (its padding, and lanes past C) left as it is.  tmp holds VL*H*W elements.
 * Dense planes whose rows are not whole blocks of VL go whole through tmp, then row by row
 * into place: interleaved a row at a time, 4x4 planes (32 -> 32, 3x3) went element by element
 * and took 15% of a Winograd forward. */
static void FN(fill_channel_lanes)(T *XI, ptrdiff_t xlanes, int pitch, int ph, int pw,
                                   const view4 *x, const T *xs, T *tmp)
{
    const int C = x->d[1], H = x->d[2], W = x->d[3], vl = FN(K)->wvw;
    const int planes = x->s[3] == 1 && x->s[2] == W && W % vl != 0;
    for (int c0 = 0; c0 < C; c0 += vl) {
        const int nc = C - c0 < vl ? C - c0 : vl;
        T *xi = XI + c0 / vl * xlanes + ((ptrdiff_t)ph * pitch + pw) * vl;
        if (planes) {
            FN(K)->interleave(tmp, xs + c0 * x->s[1], x->s[1], (ptrdiff_t)H * W, nc);
            for (int h = 0; h < H; h++)
                memcpy(xi + (ptrdiff_t)h * pitch * vl, tmp + (ptrdiff_t)h * W * vl,
                       sizeof(T) * (size_t)W * (size_t)vl);
            continue;
        }
        for (int h = 0; h < H; h++) {
            const T *row = xs + c0 * x->s[1] + h * x->s[2];
            if (x->s[3] == 1) {
                FN(K)->interleave(xi + (ptrdiff_t)h * pitch * vl, row, x->s[1], W, nc);
                continue;
            }
            for (int k = 0; k < nc; k++)
                FN(K)->copy_rows(tmp + k * W, W, row + k * x->s[1], 0, x->s[3], 1, W);
            FN(K)->interleave(xi + (ptrdiff_t)h * pitch * vl, tmp, W, W, nc);
        }
    }
}

/* conv_run (below) by Winograd's F(2x2, r x r) (winograd.h) for a 3x3 or 5x5 kernel at stride
 * s = 1 or 2 (patches of side wino_side), in chunks of tiles whose transformed inputs and
 * products fit wino_chunk_bytes: a group of whole images where one fits, else rows of one
 * image's tiles.  Each image's chunk of tiles is input-transformed one of two ways
 * (wino_lanes_pay): from the phases of wino_geom, VL tiles of a row and one channel a vector
 * (tile t of the chunk at V[k][c][t]), or from a padded copy with VL channels in the lanes of
 * every element, a tile a vector (V[k][c/VL][t][c%VL]: the products' positions VL apart).
 * The n^2 products over channels run as filters-in-lanes correlations of C taps along the
 * chunk's tiles (the transformed weights U packed as conv_filters reads them, one set per k);
 * each image's tiles are output-transformed into Y and Y transposed out. */
static int FN(wino_run)(const view4 *src, int ph, int pw, const T *w, const ptrdiff_t *ws, int r,
                        int s, const T *b, ptrdiff_t bs, const view4 *out, int n0, int n1, int relu)
{
    const int Ci = src->d[1], H = src->d[2], W = src->d[3];
    const int Fo = out->d[1], OH = out->d[2], OW = out->d[3];
    const int vl = FN(K)->wvw, TH = (OH + 1) / 2, TW = (OW + 1) / 2;
    const int side = wino_side(r, s), nk = side * side;
    const int lanes = ph >= 0 && pw >= 0 && wino_lanes_pay(s, TW, Ci, vl);
    const int Cv = round_up(Ci, vl);
    const geom g = wino_geom(TH, TW, side, vl);
    /* lanes: the padded copy, rows pitch apart */
    const int pitch = wino_lanes_side(s, TW, side, W, pw);
    const ptrdiff_t xlanes = (ptrdiff_t)wino_lanes_side(s, TH, side, H, ph) * pitch * vl;
    /* a tile row's V and M, and the tile rows and images a chunk takes */
    const ptrdiff_t per_row = (ptrdiff_t)nk * TW * ((lanes ? Cv : Ci) + round_up(Fo, vl)) *
                              (ptrdiff_t)sizeof(T);
    const ptrdiff_t fit = wino_chunk_bytes(nk, Ci, Fo, vl, sizeof(T)) / per_row;
    const int rows = fit < 1 ? 1 : fit < TH ? (int)fit : TH;
    const int group = fit / TH < 1 ? 1 : fit / TH < n1 - n0 ? (int)(fit / TH) : n1 - n0;
    const int ntile = TH * TW, ntmax = rows < TH ? rows * TW : group * ntile;
    const int V = wino_filter_vectors(ntmax, Fo, vl, FN(K)->nacc), fbw = V * vl;
    const int Fp = round_up(Fo, fbw);
    /* the planes of V and M one vector longer than they need: k-strides of 2-6 KB made their
     * stores alias in L1 (5x5 32 -> 32 on 12x12: 71 us an image, 48 with the vector) */
    const ptrdiff_t cstride = round_up(ntmax, vl) + vl;
    const ptrdiff_t kin = (lanes ? (ptrdiff_t)ntmax * Cv : (ptrdiff_t)Ci * cstride) + vl;
    const ptrdiff_t npos = (ptrdiff_t)OH * OW, ku = (ptrdiff_t)Fp * Ci;
    const int dense = out->s[3] == 1 && out->s[2] == OW && out->s[1] == npos;
    /* scratch.h's slots, every element read written first: X by fill (lanes: its padding
     * zeroed here), V and M for the chunk's tiles, Y for every output, U for every filter
     * (zero past F) */
    const size_t xlen = lanes ? (size_t)xlanes * (size_t)(Cv / vl) : (size_t)g.plane * (size_t)Ci;
    void *xraw, *vraw, *mraw, *yraw, *uraw;
    T *X = scratch_get(0, sizeof(T) * xlen, &xraw);
    T *Vb = scratch_get(1, sizeof(T) * (size_t)nk * (size_t)kin, &vraw);
    T *M = scratch_get(2, sizeof(T) * (size_t)nk * ((size_t)Fp * (size_t)ntmax + (size_t)vl),
                       &mraw);
    T *Y = scratch_get(3, sizeof(T) * (size_t)Fp * (size_t)npos, &yraw);
    T *U = scratch_get(4, sizeof(T) * (size_t)nk * (size_t)ku, &uraw);
    /* rows of VL filters (or channels) between Y and out (or src and X) where not dense */
    const ptrdiff_t wide = npos > (ptrdiff_t)H * W ? npos : (ptrdiff_t)H * W;
    T *tmp = dense && !lanes ? NULL : malloc(sizeof(T) * (size_t)vl * (size_t)wide);
    T *bias = calloc((size_t)Fp * 2, sizeof(T)), *zero = bias + Fp;
    ptrdiff_t *off = malloc(sizeof(ptrdiff_t) * (size_t)Ci);
    const int ok = X && Vb && M && Y && U && (tmp || (dense && !lanes)) && bias && off &&
                   FN(wino_weights)(U, w, ws, Fo, Ci, r, side, fbw, Fp) == 0;
    if (ok) {
        for (int f = 0; f < Fo && b; f++)
            bias[f] = b[f * bs];
        for (int c = 0; c < Ci; c++)
            off[c] = lanes ? c / vl * vl * ntmax + c % vl : c * cstride;
        if (lanes)
            memset(X, 0, sizeof(T) * xlen);
        const T *sp = src->p;
        for (int n = n0; n < n1; n += group) {
            const int cnt = n1 - n < group ? n1 - n : group;
            for (int th0 = 0; th0 < TH; th0 += rows) {
                const int th1 = TH - th0 < rows ? TH : th0 + rows;
                const int nt = cnt > 1 ? cnt * ntile : (th1 - th0) * TW;
                for (int i = 0; i < cnt; i++) {
                    const T *si = sp + (n + i) * src->s[0];
                    if (lanes) {
                        if (th0 == 0)
                            FN(fill_channel_lanes)(X, xlanes, pitch, ph, pw, src, si, tmp);
                        for (int c0 = 0; c0 < Ci; c0 += vl)
                            FN(K)->wino_in_lanes(Vb + (ptrdiff_t)c0 * ntmax + i * ntile * vl,
                                                 kin, vl, X + c0 / vl * xlanes, pitch, th0, th1,
                                                 TW, side);
                        continue;
                    }
                    if (th0 == 0)
                        FN(fill)(X, &g, si, src->s + 1, Ci, H, W, ph, pw);
                    for (int c = 0; c < Ci; c++)
                        FN(K)->wino_in(Vb + c * cstride + i * ntile, kin, X + c * g.plane, g.pplane,
                                       g.Q, th0, th1, TW, side);
                }
                for (int k = 0; k < nk; k++)  /* the chunk's tiles as one row */
                    FN(K)->conv_filters(Vb + k * kin, off, 0, Ci, Ci, 0, lanes ? vl : 1,
                                        U + k * ku, zero, Fp, 1, nt,
                                        M + k * ((ptrdiff_t)Fp * nt + vl), 1, 0, V);
                for (int i = 0; i < cnt; i++) {
                    FN(K)->wino_out(M + (ptrdiff_t)i * ntile * vl, (ptrdiff_t)Fp * nt + vl,
                                    (ptrdiff_t)nt * vl, Fp, bias, th0, th1, TW, OH, OW, Y, relu,
                                    side);
                    if (th1 == TH)
                        FN(put_filter_lanes)(out, (T *)out->p + (n + i) * out->s[0], Y, tmp);
                }
            }
        }
    }
    scratch_put(0, xraw);
    scratch_put(1, vraw);
    scratch_put(2, mraw);
    scratch_put(3, yraw);
    scratch_put(4, uraw);
    free(tmp);
    free(bias);
    free(off);
    return ok ? 0 : -1;
}

/* Direct convolution of images n0..n1-1 of src (N, Ci, H, W), padded by ph rows above and pw
 * columns left (any sign) and zeros wherever else a tap falls outside it, correlated with
 * stride s by w (Fo, Ci, KH, KW) (element strides ws, any sign) plus b (element stride bs;
 * NULL for none), written to out (N, Fo, OH, OW) (any strides), relu of it when relu is set.
 * 0, or -1 out of memory. */
static int FN(conv_run)(const view4 *src, int ph, int pw, const T *w, const ptrdiff_t *ws, int KH,
                        int KW, const T *b, ptrdiff_t bs, const view4 *out, int s, int n0, int n1,
                        int relu)
{
    const int Ci = src->d[1], Fo = out->d[1], OH = out->d[2], OW = out->d[3];
    if (gemm_pays(s, KH, KW, Ci, Fo, out->s[3] == 1 && out->s[2] == OW))
        return FN(gemm_conv_run)(src, ph, pw, w, ws, KH, KW, b, bs, out, s, n0, n1, relu);
    if (wino_pays(s, KH, KW, Ci, Fo, OH, OW, FN(K)->wvw))
        return FN(wino_run)(src, ph, pw, w, ws, KH, s, b, bs, out, n0, n1, relu);
    const int fb = FN(K)->fb, vw = FN(K)->vw;
    const geom g = conv_shape(s, KH, KW, OH, OW, vw, FN(K)->vww, FN(K)->wvw, Ci, Fo, fb, n1 - n0,
                              sizeof(T), FN(K)->nacc);
    if (g.fv)
        return FN(filters_run)(src, ph, pw, w, ws, KH, KW, b, bs, out, n0, n1, relu, &g);
    void (*const image)(const T *, const ptrdiff_t *, int, ptrdiff_t, const T *, const T *, int,
                        int, int, T *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int) =
        g.block == vw ? FN(K)->conv_image : FN(K)->conv_image_wide;
    const int ntaps = Ci * KH * KW, vl = g.lanes, H = src->d[2], W = src->d[3];
    /* slack past the last plane: flat blocks read up to L past a tap's first element */
    const ptrdiff_t xlen = g.plane * Ci * vl + g.L;
    const size_t ylen = g.flat ? (size_t)g.L : vl > 1 ? (size_t)OH * (size_t)OW * (size_t)vl : 0;
    void *xraw, *yraw = NULL;
    T *X = calloc64(sizeof(T) * (size_t)xlen, &xraw);
    T *Y = ylen ? calloc64(sizeof(T) * (size_t)Fo * ylen, &yraw) : NULL;
    /* lanes: the outputs of a group's images, deinterleaved (see put_lanes); the positions of
     * the input's rows and columns */
    T *tmp = vl > 1 ? malloc(sizeof(T) * (size_t)Fo * (size_t)OH * (size_t)OW * (size_t)vl) : NULL;
    ptrdiff_t *pos = vl > 1 ? malloc(sizeof(ptrdiff_t) * (size_t)(H + W)) : NULL;
    T *bias = calloc((size_t)round_up(Fo, fb), sizeof(T));
    ptrdiff_t *off = malloc(sizeof(ptrdiff_t) * (size_t)ntaps);
    void *wraw;
    T *wp = FN(pack_weights)(w, ws, Fo, Ci, KH, KW, fb, &wraw);
    const int ok = X && (Y || !ylen) && ((tmp && pos) || vl == 1) && bias && off && wp;
    if (ok) {
        for (int f = 0; f < Fo && b; f++)
            bias[f] = b[f * bs];
        tap_offsets(off, &g, Ci, KH, KW);
        if (vl > 1)
            lane_positions(&g, H, W, ph, pw, pos, pos + H);
        const T *sp = src->p;
        const ptrdiff_t readable = extent(src);
        for (int n = n0; n < n1; n += vl) {
            T *on = (T *)out->p + n * out->s[0];
            if (vl > 1) {
                const int cnt = n1 - n < vl ? n1 - n : vl;
                FN(K)->fill_lanes(X, xlen, sp + n * src->s[0], src->s,
                                  readable < 0 ? -1 : readable - n * src->s[0], cnt, Ci, H, W, pos,
                                  pos + H, g.plane);
                image(X, off, ntaps, (ptrdiff_t)g.Q * vl, wp, bias, Fo, OH, OW * vl, Y,
                                  (ptrdiff_t)ylen, (ptrdiff_t)OW * vl, 1, relu);
                FN(put_lanes)(out, on, Y, tmp, cnt);
                continue;
            }
            FN(fill)(X, &g, sp + n * src->s[0], src->s + 1, Ci, H, W, ph, pw);
            if (!g.flat) {
                image(X, off, ntaps, g.Q, wp, bias, Fo, OH, OW, on, out->s[1],
                                  out->s[2], out->s[3], relu);
                continue;
            }
            image(X, off, ntaps, 0, wp, bias, Fo, 1, g.L, Y, g.L, 0, 1, relu);
            for (int f = 0; f < Fo; f++)
                FN(put_rows)(on + f * out->s[1], out->s[2], out->s[3], Y + (ptrdiff_t)f * g.L, g.Q,
                             OH, OW);
        }
    }
    free(xraw);
    free(yraw);
    free(tmp);
    free(pos);
    free(bias);
    free(off);
    free(wraw);
    return ok ? 0 : -1;
}

/* dx (N, C, H, W) of images n0..n1-1 from dout (N, F, OH, OW) and w (F, C, KH, KW) (element
 * strides ws) of a stride-s, pad-p convolution, written (not accumulated), without the
 * stride^2 zeros of the dilated-dout formulation: dx splits into s x s phase grids by
 * ((h + p) % s, (w + p) % s) = (a, b), and phase (a, b) gets only the taps i = a + s*u,
 * j = b + s*v: it is the stride-1 correlation of dout with those taps, flipped, F and C
 * swapped, placed every s-th row and column of dx.  A phase with no taps (s > KH or s > KW)
 * is zero.  Total work equals the forward's.  0, or -1 out of memory. */
static int FN(dgrad_run)(const view4 *dout, const T *w, const ptrdiff_t *ws, int KH, int KW,
                         const view4 *dx, int s, int p, int n0, int n1)
{
    const int C = dx->d[1], H = dx->d[2], W = dx->d[3];
    if (s > KH || s > KW)  /* some positions get no tap */
        for (int n = n0; n < n1; n++)
            for (int c = 0; c < C; c++)
                for (int h = 0; h < H; h++) {
                    T *row = (T *)dx->p + n * dx->s[0] + c * dx->s[1] + h * dx->s[2];
                    for (int x = 0; x < W; x++)
                        row[x * dx->s[3]] = 0;
                }
    for (int a = 0; a < s; a++)
        for (int b = 0; b < s; b++) {
            dx_phase d;
            if (!get_dx_phase(a, b, s, p, KH, KW, H, W, &d))
                continue;
            /* dx[m] = sum_u dout[m - u] * w[a + s*u] = sum_v dout[m - (U-1) + v] * w'[v], with
             * w'[v] = w[a + s*(U-1-v)]: dout placed U-1-m0 rows down for output row m - m0 */
            view4 o = *dx;
            o.p = (T *)dx->p + (ptrdiff_t)(d.m0 * s + a - p) * dx->s[2] + (ptrdiff_t)(d.k0 * s + b - p) * dx->s[3];
            o.d[2] = d.m1 - d.m0;
            o.d[3] = d.k1 - d.k0;
            o.s[2] *= s;
            o.s[3] *= s;
            const ptrdiff_t sub[4] = {ws[1], ws[0], -s * ws[2], -s * ws[3]};
            const T *corner = w + (a + s * (d.U - 1)) * ws[2] + (b + s * (d.V - 1)) * ws[3];
            if (FN(conv_run)(dout, d.U - 1 - d.m0, d.V - 1 - d.k0, corner, sub, d.U, d.V, NULL, 0, &o,
                             1, n0, n1, 0))
                return -1;
        }
    return 0;
}

/* wgrad_run (below) in filters-in-lanes mode, geometry g: images in groups that fit
 * WGRAD_FILTERS_GROUP_BYTES, each filled as for row blocks and its dout transposed to (filter vectors,
 * positions, VL); the sums in G (taps padded to P, filters to V*VL), then dw and db. */
static int FN(wgrad_filters_run)(const view4 *x, const view4 *dout, int pad, const view4 *dw,
                                 T *db, ptrdiff_t dbs, int n0, int n1, const geom *g)
{
    const int C = x->d[1], H = x->d[2], W = x->d[3];
    const int F = dout->d[1], OH = dout->d[2], OW = dout->d[3], KH = dw->d[2], KW = dw->d[3];
    const int vl = FN(K)->wvw, V = g->fv, P = FN(K)->nacc / V;
    const int ntaps = C * KH * KW, tp = round_up(ntaps, P), Fp = round_up(F, V * vl);
    const ptrdiff_t npos = (ptrdiff_t)OH * OW, ximg = g->plane * C, dimg = (ptrdiff_t)Fp * npos;
    const ptrdiff_t most = WGRAD_FILTERS_GROUP_BYTES / ((ximg + dimg) * (ptrdiff_t)sizeof(T));
    const int G = most < 1 ? 1 : most < n1 - n0 ? (int)most : n1 - n0;
    const int dense = dout->s[3] == 1 && dout->s[2] == OW;
    void *xraw, *draw;
    T *X = calloc64(sizeof(T) * (size_t)ximg * (size_t)G, &xraw);
    T *D = calloc64(sizeof(T) * (size_t)dimg * (size_t)G, &draw);  /* padding filters: zero */
    T *sums = calloc((size_t)tp * (size_t)Fp, sizeof(T));
    double *dbsum = calloc((size_t)F + 1, sizeof(double));
    ptrdiff_t *off = calloc((size_t)tp, sizeof(ptrdiff_t));  /* padding taps read offset 0 */
    T *tmp = dense ? NULL : malloc(sizeof(T) * (size_t)vl * (size_t)npos);
    const int ok = X && D && sums && dbsum && off && (tmp || dense);
    if (ok) {
        tap_offsets(off, g, C, KH, KW);
        const T *xp = x->p, *dp = dout->p;
        for (int n = n0; n < n1; n += G) {
            const int nimg = n1 - n < G ? n1 - n : G;
            for (int i = 0; i < nimg; i++) {
                FN(fill)(X + i * ximg, g, xp + (n + i) * x->s[0], x->s + 1, C, H, W, pad, pad);
                const T *di = dp + (n + i) * dout->s[0];
                FN(get_filter_lanes)(D + i * dimg, dout, di, tmp);
                for (int f = 0; f < F && db; f++)
                    for (int oh = 0; oh < OH; oh++)
                        for (int ow = 0; ow < OW; ow++)
                            dbsum[f] += di[f * dout->s[1] + oh * dout->s[2] + ow * dout->s[3]];
            }
            FN(K)->wgrad_filters(X, ximg, off, tp, g->Q, D, dimg, Fp, OH, OW, nimg, sums, V);
        }
        T *wo = dw->p;
        for (int c = 0, t = 0; c < C; c++)
            for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++, t++)
                    for (int f = 0; f < F; f++)
                        wo[f * dw->s[0] + c * dw->s[1] + i * dw->s[2] + j * dw->s[3]] =
                            sums[(ptrdiff_t)t * Fp + f];
        for (int f = 0; f < F && db; f++)
            db[f * dbs] = (T)dbsum[f];
    }
    free(xraw);
    free(draw);
    free(sums);
    free(dbsum);
    free(off);
    free(tmp);
    return ok ? 0 : -1;
}

/* wgrad_run (below) by Winograd's F(2x2, r x r) at stride s = 1 or 2 (winograd.h), the
 * forward transposed: per filter f and channel c, dw = G^T M G with M the sum over images and
 * 2x2 blocks of dout of (A dy A^T) . (B^T d B).  Images go in chunks whose transforms fit
 * wino_wgrad_chunk_bytes (counted for planF filters, so parts by filters chunk alike): a group
 * of whole images where one fits, else rows of one image's tiles.  Each image is copied padded
 * with VL channels in the lanes of every element and its tiles input-transformed to V[k][t][c],
 * its dout interleaved VL filters a vector and transformed to D[k] packed as conv_filters reads
 * weights (the tiles as taps); then, per k, the filters-in-lanes correlation of the chunk's
 * tiles sums M[k][f][c] = sum over t of D[k][t][f] V[k][t][c] and adds it to the chunks'
 * before: summed in one accumulator over all tiles of 32 images (3x3 32 -> 32 on 32x32), the
 * weight gradient erred by 4e-6 of its scale, chunk by chunk by 4-5e-7 (direct sums: 2e-7).
 * Last, dw = G^T M G, 8 filters a vector. */
static int FN(wino_wgrad_run)(const view4 *x, const view4 *dout, int s, int pad, const view4 *dw,
                              T *db, ptrdiff_t dbs, int n0, int n1, int planF)
{
    const int C = x->d[1], H = x->d[2], W = x->d[3], r = dw->d[2];
    const int F = dout->d[1], OH = dout->d[2], OW = dout->d[3];
    const int vl = FN(K)->wvw, TH = (OH + 1) / 2, TW = (OW + 1) / 2, ntile = TH * TW;
    const int n = wino_side(r, s), nk = n * n, Cp = round_up(C, vl), Fv = round_up(F, vl);
    const int V = wino_filter_vectors(C, F, vl, FN(K)->nacc), fbw = V * vl, Fp = round_up(F, fbw);
    /* the padded input, rows pitch apart: every patch inside, and the whole input */
    const int pitch = wino_lanes_side(s, TW, n, W, pad);
    const ptrdiff_t xlanes = (ptrdiff_t)wino_lanes_side(s, TH, n, H, pad) * pitch * vl;
    const ptrdiff_t ximg = xlanes * (Cp / vl);
    /* a tile row's transforms, and the tile rows and images a chunk takes */
    const ptrdiff_t per_row = (ptrdiff_t)nk * TW * (Cp + round_up(planF, vl)) *
                              (ptrdiff_t)sizeof(T);
    const ptrdiff_t fit = wino_wgrad_chunk_bytes(nk, C, planF, vl, sizeof(T)) / per_row;
    const int rows = fit < 1 ? 1 : fit < TH ? (int)fit : TH;
    const int group = fit / TH < 1 ? 1 : fit / TH < n1 - n0 ? (int)(fit / TH) : n1 - n0;
    const int ntmax = rows < TH ? rows * TW : group * ntile;
    /* k-planes one vector longer than they need, as in wino_run: 16 stores a tile to planes
     * 32 KB apart (3x3 32 -> 32 on 32x32) took a fifth of the time in L1 conflicts */
    const ptrdiff_t npos = (ptrdiff_t)OH * OW, kv = (ptrdiff_t)ntmax * Cp + vl;
    const ptrdiff_t kd = (ptrdiff_t)ntmax * Fp + vl, km = (ptrdiff_t)Fp * C, dimg = Fv * npos;
    /* scratch.h's slots: XI zeroed (its padding); every other element read is written first,
     * but D's padding filters past Fv, whose sums (in their own lanes of M) are dropped */
    void *xraw, *draw, *vraw, *iraw, *mraw, *craw;
    T *XI = scratch_get(0, sizeof(T) * (size_t)ximg * (size_t)group, &xraw);
    T *Db = scratch_get(1, sizeof(T) * (size_t)nk * (size_t)kd, &draw);
    T *Vb = scratch_get(2, sizeof(T) * (size_t)nk * (size_t)kv, &vraw);
    T *DI = scratch_get(3, sizeof(T) * (size_t)dimg * (size_t)group, &iraw);
    T *M = scratch_get(4, sizeof(T) * (size_t)nk * (size_t)km, &mraw);
    T *Mc = scratch_get(5, sizeof(T) * (size_t)km, &craw);
    T *zero = calloc((size_t)Fp, sizeof(T));
    /* planes of VL channels or rows of VL filters before interleaving (fill_channel_lanes, and
     * where dout is not dense) */
    const ptrdiff_t wide = H * W > OH * OW ? (ptrdiff_t)H * W : (ptrdiff_t)OH * OW;
    T *tmp = malloc(sizeof(T) * (size_t)vl * (size_t)wide);
    T *dblanes = calloc((size_t)Fv + 1, sizeof(T)), *O = malloc(sizeof(T) * (size_t)(r * r * vl));
    ptrdiff_t *off = malloc(sizeof(ptrdiff_t) * (size_t)ntmax);
    const int ok = XI && Db && Vb && DI && M && Mc && zero && tmp && dblanes && O && off;
    if (ok) {
        memset(XI, 0, sizeof(T) * (size_t)ximg * (size_t)group);
        for (int t = 0; t < ntmax; t++)
            off[t] = (ptrdiff_t)t * Cp;
        const T *xp = x->p, *dp = dout->p;
        for (int nb = n0; nb < n1; nb += group) {
            const int cnt = n1 - nb < group ? n1 - nb : group;
            for (int i = 0; i < cnt; i++) {  /* the images interleaved: VL channels, VL filters */
                FN(fill_channel_lanes)(XI + i * ximg, xlanes, pitch, pad, pad, x,
                                       xp + (nb + i) * x->s[0], tmp);
                T *di = DI + i * dimg;
                FN(get_filter_lanes)(di, dout, dp + (nb + i) * dout->s[0], tmp);
                FN(K)->sum_rows(di, Fv / vl, npos * vl, dblanes);  /* filters in lanes */
            }
            for (int th0 = 0; th0 < TH; th0 += rows) {
                const int th1 = TH - th0 < rows ? TH : th0 + rows;
                const int nt = cnt > 1 ? cnt * ntile : (th1 - th0) * TW;
                for (int i = 0; i < cnt; i++) {
                    const ptrdiff_t t0 = (ptrdiff_t)i * ntile;  /* the image's first tile */
                    for (int c0 = 0; c0 < C; c0 += vl)
                        FN(K)->wino_in_lanes(Vb + t0 * Cp + c0, kv, Cp,
                                             XI + i * ximg + c0 / vl * xlanes, pitch, th0, th1,
                                             TW, n);
                    /* filter vector f0/vl: block f0/fbw, vector f0 % fbw / vl of it */
                    for (int f0 = 0; f0 < F; f0 += vl)
                        FN(K)->wino_dy(Db + ((ptrdiff_t)(f0 / fbw) * nt + t0) * fbw + f0 % fbw, kd,
                                       fbw, DI + i * dimg + f0 * npos, OH, OW, th0, th1, TW, n);
                }
                const int first = nb == n0 && th0 == 0;
                for (int k = 0; k < nk; k++) {
                    T *Mk = M + k * km;
                    FN(K)->conv_filters(Vb + k * kv, off, 0, nt, nt, 0, 1, Db + k * kd, zero, Fp,
                                        1, C, first ? Mk : Mc, 1, 0, V);
                    for (ptrdiff_t e = 0; e < km && !first; e++)
                        Mk[e] += Mc[e];
                }
            }
        }
        T *wo = dw->p;
        for (int f0 = 0; f0 < F; f0 += vl)
            for (int c = 0; c < C; c++) {
                FN(K)->wino_wout(O, M + ((ptrdiff_t)f0 * C + c * vl), km, n);
                for (int f = f0; f < F && f < f0 + vl; f++)
                    for (int a = 0, k = 0; a < r; a++)
                        for (int b = 0; b < r; b++, k++)
                            wo[f * dw->s[0] + c * dw->s[1] + a * dw->s[2] + b * dw->s[3]] =
                                O[k * vl + f - f0];
            }
        for (int f = 0; f < F && db; f++)
            db[f * dbs] = dblanes[f];
    }
    scratch_put(0, xraw);
    scratch_put(1, draw);
    scratch_put(2, vraw);
    scratch_put(3, iraw);
    scratch_put(4, mraw);
    scratch_put(5, craw);
    free(zero);
    free(tmp);
    free(dblanes);
    free(O);
    free(off);
    return ok ? 0 : -1;
}

/* Weight and bias gradients summed over images n0..n1-1 of x (N, C, H, W) and dout
 * (N, F, OH, OW), written (not accumulated) to dw (F, C, KH, KW) and db (element stride dbs;
 * NULL for none), planned as for planF filters (F, or all filters when these are a part).
 * Blocks of WFB filters x WTB taps run over all C*KH*KW taps in a row, so only the last block
 * is padding (per channel, 3x3 kernels would pad 9 taps to 12 with WTB 4).  0, or -1 out of
 * memory. */
static int FN(wgrad_run)(const view4 *x, const view4 *dout, int s, int pad, const view4 *dw,
                         T *db, ptrdiff_t dbs, int n0, int n1, int planF)
{
    const int C = x->d[1], F = dout->d[1], OH = dout->d[2], OW = dout->d[3];
    const int KH = dw->d[2], KW = dw->d[3];
    const int wfb = FN(K)->wfb, wtb = FN(K)->wtb, vl = FN(K)->wvw;
    if (wino_wgrad_pays(s, KH, KW, C, planF, OH, OW, vl))
        return FN(wino_wgrad_run)(x, dout, s, pad, dw, db, dbs, n0, n1, planF);
    /* mode and image groups as for planF filters: the filters of a part computed alone sum in
     * the order all of them would */
    const geom g = conv_shape(s, KH, KW, OH, OW, vl, vl, vl, C, planF, wfb, n1 - n0, sizeof(T), 0);
    const geom fwd = conv_shape(s, KH, KW, OH, OW, FN(K)->vw, FN(K)->vww, vl, C, planF, FN(K)->fb,
                                n1 - n0, sizeof(T), FN(K)->nacc);
    const int fv = wgrad_filters_v(&fwd, OH * OW, C * KH * KW, planF, vl, FN(K)->nacc);
    if (fv) {
        const geom gf = filters_geom(g, OW, KW, fv);
        return FN(wgrad_filters_run)(x, dout, pad, dw, db, dbs, n0, n1, &gf);
    }
    /* An "image" below is vl images in batch-in-lanes mode.  D: dout of one, rows dpitch
     * apart, zero past OW (and in lanes without an image); kernels run over drows x dlen. */
    const int il = g.lanes;
    const int dpitch = g.flat ? g.Q : il > 1 ? OW * il : round_up(OW, vl), drows = g.flat ? 1 : OH;
    const int dlen = g.flat ? g.L : dpitch;
    const ptrdiff_t dplane = g.flat ? g.L : (ptrdiff_t)OH * dpitch;
    const int ntaps = C * KH * KW, tp = round_up(ntaps, wtb);
    /* Images go in groups (see WGRAD_L1_BYTES), each image's X with zero slack for the flat
     * reads past its last plane (0 * inf would make NaN), D with zero padding filters. */
    const ptrdiff_t ximg = g.plane * C * il + g.L, dimg = round_up(F, wfb) * dplane;
    const ptrdiff_t hot = ((ptrdiff_t)wfb * dplane + 2 * g.plane * il) * (ptrdiff_t)sizeof(T);
    const ptrdiff_t fit = (ximg + round_up(planF, wfb) * dplane) * (ptrdiff_t)sizeof(T);
    const int units = (n1 - n0 + il - 1) / il;
    ptrdiff_t G = WGRAD_L1_BYTES / hot < WGRAD_L2_BYTES / fit ? WGRAD_L1_BYTES / hot : WGRAD_L2_BYTES / fit;
    G = G < units ? G : units;
    G = G > 1 ? G : 1;
    void *xraw, *draw;
    T *X = calloc64(sizeof(T) * (size_t)ximg * (size_t)G, &xraw);
    T *D = calloc64(sizeof(T) * (size_t)dimg * (size_t)G, &draw);
    T *acc = calloc((size_t)round_up(F, wfb) * (size_t)tp * (size_t)vl, sizeof(T));
    T *dblanes = calloc((size_t)F * (size_t)vl + 1, sizeof(T));
    ptrdiff_t *off = calloc((size_t)tp, sizeof(ptrdiff_t));  /* padding taps read offset 0 */
    /* lanes: the images' dout before interleaving, unless already contiguous */
    const ptrdiff_t dn = (ptrdiff_t)F * OH * OW;
    const int dense = dout->s[3] == 1 && dout->s[2] == OW && dout->s[1] == (ptrdiff_t)OH * OW;
    T *tmp = il > 1 && !dense ? malloc(sizeof(T) * (size_t)dn * (size_t)il) : NULL;
    ptrdiff_t *pos = il > 1 ? malloc(sizeof(ptrdiff_t) * (size_t)(x->d[2] + x->d[3])) : NULL;
    const int ok = X && D && acc && dblanes && off && (tmp || il == 1 || dense) && (pos || il == 1);
    if (ok) {
        tap_offsets(off, &g, C, KH, KW);
        if (il > 1)
            lane_positions(&g, x->d[2], x->d[3], pad, pad, pos, pos + x->d[2]);
        const T *xp = x->p, *dp = dout->p;
        const ptrdiff_t readable = extent(x);
        for (int n = n0; n < n1; n += (int)G * il) {
            const int nimg = (n1 - n + il - 1) / il < G ? (n1 - n + il - 1) / il : (int)G;
            for (int i = 0; i < nimg; i++) {
                const int first = n + i * il;
                T *Xi = X + i * ximg, *Di = D + i * dimg;
                if (il > 1) {
                    const int cnt = n1 - first < il ? n1 - first : il;
                    FN(K)->fill_lanes(Xi, g.plane * C * il, xp + first * x->s[0], x->s,
                                      readable < 0 ? -1 : readable - first * x->s[0], cnt, C, x->d[2],
                                      x->d[3], pos, pos + x->d[2], g.plane);
                    const T *dfirst = dp + first * dout->s[0];
                    if (dense) {
                        FN(K)->interleave(Di, dfirst, dout->s[0], dn, cnt);
                    } else {
                        for (int k = 0; k < cnt; k++)
                            for (int f = 0; f < F; f++)
                                FN(K)->copy_rows(tmp + k * dn + (ptrdiff_t)f * OH * OW, OW,
                                                 dfirst + k * dout->s[0] + f * dout->s[1], dout->s[2],
                                                 dout->s[3], OH, OW);
                        FN(K)->interleave(Di, tmp, dn, dn, cnt);
                    }
                } else {
                    FN(fill)(Xi, &g, xp + first * x->s[0], x->s + 1, C, x->d[2], x->d[3], pad, pad);
                    for (int f = 0; f < F; f++)
                        FN(K)->copy_rows(Di + f * dplane, dpitch, dp + first * dout->s[0] + f * dout->s[1],
                                         dout->s[2], dout->s[3], OH, OW);
                }
                FN(K)->sum_rows(Di, F, dplane, dblanes);
            }
            for (int f0 = 0; f0 < F; f0 += wfb)
                for (int t0 = 0; t0 < ntaps; t0 += wtb)
                    FN(K)->wgrad_block(X, ximg, off + t0, (ptrdiff_t)g.Q * il, D + f0 * dplane, dimg,
                                       dplane, nimg, drows, dlen, acc + ((ptrdiff_t)f0 * tp + t0) * vl, tp);
        }
        T *wo = dw->p;
        for (int f = 0; f < F; f++) {
            T *sums = acc + (ptrdiff_t)f * tp * vl;  /* the lanes, summed in place */
            FN(K)->sum_lanes(sums, ntaps, sums);
            /* nested loops: t / (KH*KW), t / KW % KH and t % KW per weight (divisions) took as
             * long as the FMAs at 4x4 outputs, 32 -> 32 channels */
            for (int c = 0, t = 0; c < C; c++)
                for (int i = 0; i < KH; i++)
                    for (int j = 0; j < KW; j++, t++)
                        wo[f * dw->s[0] + c * dw->s[1] + i * dw->s[2] + j * dw->s[3]] = sums[t];
        }
        for (int f = 0; f < F && db; f++) {
            double sum = 0;
            for (int v = 0; v < vl; v++)
                sum += dblanes[f * vl + v];
            db[f * dbs] = (T)sum;
        }
    }
    free(xraw);
    free(draw);
    free(acc);
    free(dblanes);
    free(off);
    free(tmp);
    free(pos);
    return ok ? 0 : -1;
}

#undef FN
#undef CAT
#undef CAT_
