/* Scratch geometry of the direct convolution (conv_drivers.h), included once by native.c.
 *
 * Polyphase layout.  A convolution with stride s reads padded input row oh*s + i and column
 * ow*s + j for output (oh, ow) and tap (i, j).  The drivers copy each image once into a scratch
 * split by (row % s, column % s): channel c, phase (a, b), phase row r, phase column q holds
 * padded element (r*s + a, q*s + b) at
 *     c*plane + (a*pc + b)*pplane + r*Q + q.
 * Tap (c, i, j) of output (oh, ow) is then at off[t] + oh*Q + ow with
 *     off[t] = c*plane + ((i % s)*pc + j % s)*pplane + (i / s)*Q + j / s,
 * so every stride becomes a stride-1 correlation over unit-stride rows of Q: the kernels only
 * load contiguous vectors, and output rows can run "flat" (below) at any stride.  Only the
 * phases some tap reads are stored (pr = min(s, KH) row phases, pc = min(s, KW) column
 * phases: a 1x1 stride-2 projection copies a quarter of its input), and only the R = OH +
 * (KH-1)/s phase rows some output reads.  The copy also absorbs the input's strides (NCHW or
 * (C, N, H, W) memory) and the padding, so no kernel has a boundary test; it costs O(C*H*W)
 * per image against O(F*C*H*W*KH*KW / s^2) for the convolution.
 *
 * Before this layout only columns were split by phase, so a stride-2 row step was 4 phase rows
 * and strided convolutions could not run flat: at the ResNet's 3x3 stride-2 16->32 layer on
 * 32x32 the forward ran 15 GFLOP/s and a 1x1 stride-2 projection 2 (one core, AVX-512).
 */

typedef struct {
    int s, pr, pc; /* stride, stored row phases, stored column phases */
    int R, Q;      /* phase rows and row pitch of one phase plane */
    int flat;      /* 1: output rows run flat (see conv_shape) */
    int L;         /* flat: outputs per image computed (OH*Q rounded up to the block) */
    ptrdiff_t pplane, plane; /* elements of a phase plane, of a channel (pr*pc phase planes) */
} geom;

static int round_up(int v, int m) { return (v + m - 1) / m * m; }

/* Geometry of a KH x KW stride-s correlation with OH x OW outputs computed in column blocks of
 * `block` lanes.  Flat: output (oh, ow) is element oh*Q + ow of one long row of OH*Q outputs
 * with Q = OW + (KW-1)/s, of which the (KW-1)/s per row past OW are computed and dropped.  Row
 * blocks instead round each output row up to the block, Q then leaving room for the last
 * block's reads.  Flat is taken where it computes less: at 16 columns and a 3x3 kernel it
 * computes 18 per row instead of 32; at 32 columns and 7x7, 38 instead of 32. */
static geom conv_shape(int s, int KH, int KW, int OH, int OW, int block)
{
    geom g;
    const ptrdiff_t flat = round_up(OH * (OW + (KW - 1) / s), block);
    const ptrdiff_t rows = (ptrdiff_t)OH * round_up(OW, block);
    g.s = s;
    g.pr = KH < s ? KH : s;
    g.pc = KW < s ? KW : s;
    g.R = OH + (KH - 1) / s;
    g.flat = flat < rows;
    g.L = g.flat ? (int)flat : 0;
    g.Q = (g.flat ? OW : round_up(OW, block)) + (KW - 1) / s;
    g.pplane = (ptrdiff_t)g.R * g.Q;
    g.plane = g.pplane * g.pr * g.pc;
    return g;
}

/* off[(c*KH + i)*KW + j]: where tap (c, i, j) sits relative to its output's first input. */
static void tap_offsets(ptrdiff_t *off, const geom *g, int C, int KH, int KW)
{
    const int s = g->s;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++)
            for (int j = 0; j < KW; j++)
                off[(c * KH + i) * KW + j] = c * g->plane + ((i % s) * g->pc + j % s) * g->pplane +
                                             (ptrdiff_t)(i / s) * g->Q + j / s;
}

/* [*i0, *i1): the indices i < lim with 0 <= i*s + o < n (a phase's rows or columns that hold
 * source elements); empty as *i0 == *i1. */
static void phase_span(int o, int s, int n, int lim, int *i0, int *i1)
{
    const int lo = o >= 0 ? 0 : (s - 1 - o) / s;
    const int hi = n - o <= 0 ? 0 : (n - o + s - 1) / s;
    *i0 = lo < lim ? lo : lim;
    *i1 = hi < lim ? hi : lim;
    if (*i1 < *i0)
        *i1 = *i0;
}
