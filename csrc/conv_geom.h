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
    int R, Q;      /* phase rows and row pitch of one phase plane, in positions */
    int flat;      /* 1: output rows run flat (see conv_shape) */
    int L;         /* flat: outputs per image computed (OH*Q rounded up to the block) */
    int block;     /* columns of the kernel's blocks: the narrow or the wide one */
    int lanes;     /* elements per position: 1, or VL in batch-in-lanes mode (see conv_shape) */
    int fv;        /* filters in lanes: vectors of filters per block (0: another mode) */
    ptrdiff_t pplane, plane; /* positions in a phase plane, in a channel (pr*pc phase planes) */
} geom;

static int round_up(int v, int m) { return (v + m - 1) / m * m; }

/* The modes of conv_shape, and the one forced on every convolution (-1: chosen per shape);
 * set through gpucnn.native.use_conv_mode, for tests and measurements. */
enum { MODE_FLAT, MODE_ROWS, MODE_LANES, MODE_FILTERS, MODE_GEMM, MODE_WINOGRAD, N_MODES };
static const char *const mode_names[N_MODES] = {"flat", "rows", "lanes", "filters", "gemm",
                                                "winograd"};
static int forced_mode = -1;
/* The forward block forced on every direct convolution: 0 narrow, 1 wide, or in
 * filters-in-lanes mode 1 + V, V filter vectors (-1: by cost; see conv_shape), set through
 * gpucnn.native.use_conv_block. */
enum { BLOCK_FILTERS = 2, N_BLOCKS = 6 };
static int forced_block = -1;

/* Costs of the modes, in cycles of one core per element, fitted to the tuning nets' shapes
 * (scripts/bench_cpu_suite.py --modes, thread CPU time, 2-vCPU AVX-512 VM): copying an input
 * element into the scratch (vector copies) or into a lane (block transposes), and an output
 * element out of the kernels' rows or lanes.  One vector FMA: one cycle.  And the most a group
 * of vl images' scratch may take in batch-in-lanes mode: half the 1 MB L2 of a core.  Past it
 * the kernels stream the scratch from L3 (16 channels of 34x34: lanes 79 GFLOP/s, row blocks
 * 103; 32 channels of 18x18, 663 KB: 93 and 90). */
#define COST_FILL 0.2
#define COST_FILL_LANES 0.5
#define COST_OUT 0.3
#define COST_OUT_LANES 0.5
/* A vector FMA of the narrow block where a wide one exists (AVX2: 8 accumulators against 12):
 * with FMA latency 4 and two pipes, 8 chains leave no slack for a late load (5x5 32 -> 32 on
 * 12x12, batch in lanes: 81 GFLOP/s narrow, 86 wide; thread CPU time, Zen 3). */
#define COST_FMA_NARROW 1.03
#define LANES_SCRATCH_BYTES (512 * 1024)
/* Filters in lanes: a vector load, where the loads of a block outnumber its FMAs (the
 * 1 x 12 block: 12 broadcasts and a load per 12 FMAs, 78 GFLOP/s against the 2 x 6 block's
 * 93 at 5x5 32 -> 32 on 12x12), and an output element transposed out of the lanes; and the
 * most weights of one filter block a kernel call reads, a quarter of L2: chunks that kept
 * them in L1 (16 KB) were slower than none (5x5 s2 48 -> 64 on 16x16: 78 against 81 GFLOP/s;
 * 5x5 32 -> 32 on 12x12: 93 against 96), the weights streaming from L2 well enough. */
#define COST_LOAD_FILTERS 1.1
/* The fewest accumulators a block is costed as: two FMA pipes of latency 4 want 8 chains, but
 * out-of-order execution overlaps a row's short last block with the next row's first (16 ->
 * 16 on 8x8: blocks of 6 + 2 positions x 2 filter vectors ran 53 GFLOP/s, one block of 8 x 1
 * vector 44; costed at 8 chains the first seemed the slower). */
#define FMA_CHAINS 6
/* Bytes of weights L2 feeds a block per vector FMA (about 20 a cycle), and the most of them
 * taken as staying in L1 (32 KB, with the inputs): 4 filter vectors stream 128 bytes a tap
 * for 12 FMAs, 3 vectors 96, and at 5x5 s2 48 -> 64 on 8x8 outputs (115-154 KB of weights a
 * block) blocks of 4 positions x 3 vectors ran 81 GFLOP/s, 3 x 4 76. */
#define L2_BYTES_PER_FMA 10.0
#define L1_WEIGHTS (24 * 1024)
#define COST_OUT_FILTERS 0.5
#define FILTERS_CHUNK_BYTES (128 * 1024)

/* Cycles of one tap of a filters-in-lanes block of P positions x V filter vectors, in vector
 * FMAs: its P*V FMAs, unless its P + V loads (broadcasts count) take longer, or the
 * `streamed` bytes of weights it reads from L2, or too few accumulators leave the FMA pipes
 * waiting on their latency (0 for an empty block). */
static double filters_block_cost(int P, int V, double streamed)
{
    if (P == 0)
        return 0;
    const double loads = (P + V) * COST_LOAD_FILTERS, l2 = streamed / L2_BYTES_PER_FMA;
    double busy = P * V;
    if (loads > busy)
        busy = loads;
    if (l2 > busy)
        busy = l2;
    return busy > FMA_CHAINS ? busy : FMA_CHAINS;
}

/* Geometry of a KH x KW stride-s correlation of C channels into F filters with OH x OW
 * outputs, for n images of elem bytes, computed by kernels of `block` columns (vectors of vl
 * lanes) and fb-filter blocks, or by the filters-in-lanes kernel of nacc accumulators (0: none
 * offered, as for the weight gradient).  Four ways to lay the outputs along the kernels'
 * vectors:
 *
 * - Flat: output (oh, ow) is element oh*Q + ow of one long row of OH*Q outputs, Q = OW +
 *   (KW-1)/s, of which the (KW-1)/s per row past OW are computed and dropped.
 * - Row blocks: each output row rounded up to the block; Q leaves room for the last block's
 *   reads.  No junk columns, and the kernel writes the output in place.
 * - Batch in lanes: vl images side by side in the lanes of each vector (scratch element
 *   (position, image) at position*vl + image), each output position one vector, so nothing
 *   is computed and dropped whatever the size and stride (row blocks of block/vl positions);
 *   but the images are interleaved into the scratch and out of the output, and a last group
 *   of fewer than vl images computes the missing lanes all the same.
 * - Filters in lanes: vl filters side by side in the lanes, blocks of P positions of a row x
 *   V vectors of filters (P*V = nacc; V from 1 to 4 by cost; a row's last block takes the
 *   positions left), each input broadcast: any batch, no image interleaved, no position
 *   computed and dropped; the outputs are transposed out.  Filters are padded to V*vl (10
 *   filters in 16 lanes: 37% computed and dropped).
 *
 * The mode with the least modelled cost (vector FMAs plus the copies) is taken.  At 32x32
 * outputs flat computes 6% junk with a 3x3 kernel: flat or rows win; at 4x4 outputs flat
 * computes 16 of 32 columns, lanes 16 of 16 (87 against 47 GFLOP/s). */
static geom conv_shape(int s, int KH, int KW, int OH, int OW, int block, int wide, int vl, int C,
                       int F, int fb, int n, int elem, int nacc)
{
    geom g;
    g.s = s;
    g.pr = KH < s ? KH : s;
    g.pc = KW < s ? KW : s;
    g.R = OH + (KH - 1) / s;
    const double ktaps = (double)C * KH * KW;
    const double taps = ktaps * round_up(F, fb) / vl;  /* FMAs per vl outputs */
    const double in = (double)C * g.pr * g.pc * g.R * (OW + (KW - 1) / s), out = (double)F * OH * OW;
    const double group = n > 0 ? (double)round_up(n, vl) / n : 1;  /* lanes left empty */
    const int lanes_fit = in * vl * elem <= LANES_SCRATCH_BYTES;
    const int has_filters = nacc > 0 && vl > 1;
    /* a forced mode (lanes and filters only where vectors have lanes; gemm and winograd are
     * not this function's) */
    const int forced = forced_mode >= 0 && forced_mode != MODE_GEMM &&
                       forced_mode != MODE_WINOGRAD &&
                       (forced_mode != MODE_LANES || vl > 1) &&
                       (forced_mode != MODE_FILTERS || has_filters);
    int mode = -1;
    double best = 0;
    g.fv = 0;
    for (int w = 0; w < 2; w++) {  /* the narrow block, then the wide one (if another) */
        const int bw = w ? wide : block;
        if (w && wide == block)
            break;
        if (forced_block >= 0 && forced_block < BLOCK_FILTERS && wide != block && w != forced_block)
            continue;
        const int nv = bw / vl > 0 ? bw / vl : 1;  /* lanes mode: positions per block */
        const double fma = w || wide == block ? 1 : COST_FMA_NARROW;
        const double flat = round_up(OH * (OW + (KW - 1) / s), bw);
        const double cost[MODE_FILTERS] = {
            [MODE_FLAT] = flat * taps * fma + in * COST_FILL + out * COST_OUT,
            [MODE_ROWS] = (double)OH * round_up(OW, bw) * taps * fma + in * COST_FILL,
            [MODE_LANES] = group * ((double)OH * round_up(OW, nv) * taps * fma +
                                    (in * COST_FILL_LANES + out * COST_OUT_LANES)),
        };
        for (int m = MODE_FLAT; m < MODE_FILTERS; m++) {
            const int allowed = forced ? m == forced_mode
                                       : m != MODE_LANES || (vl > 1 && lanes_fit);
            if (allowed && (mode < 0 || cost[m] < best)) {
                mode = m;
                best = cost[m];
                g.block = bw;
                g.L = (int)flat;
            }
        }
    }
    for (int V = 1; V <= 4 && has_filters && (!forced || forced_mode == MODE_FILTERS); V++) {
        const int P = nacc / V;
        if (forced_block >= BLOCK_FILTERS && V != forced_block - 1)
            continue;
        /* a row: OW / P blocks of P positions and one of the rest, their weights streamed from
         * L2 unless a filter block's fit in L1 */
        const double wtap = (double)V * vl * elem, streamed = ktaps * wtap > L1_WEIGHTS ? wtap : 0;
        const double row = (double)(OW / P) * filters_block_cost(P, V, streamed) +
                           filters_block_cost(OW % P, V, streamed);
        const double cost = (double)OH * row * ktaps * round_up(F, V * vl) / (V * vl) +
                            in * COST_FILL + out * COST_OUT_FILTERS;
        if (P >= 1 && (cost < best || mode < 0)) {  /* mode < 0: forced to this one */
            mode = MODE_FILTERS;
            best = cost;
            g.block = P;
            g.fv = V;
        }
    }
    g.lanes = mode == MODE_LANES ? vl : 1;
    g.flat = mode == MODE_FLAT;
    if (!g.flat)
        g.L = 0;
    /* columns of a block: a lanes block's positions, or the block's columns (flat rows, and
     * filters in lanes with its short last block, need no more than the row) */
    const int positions = g.lanes > 1 ? (g.block / vl > 0 ? g.block / vl : 1) : g.block;
    g.Q = (g.flat || g.fv ? OW : round_up(OW, positions)) + (KW - 1) / s;
    g.pplane = (ptrdiff_t)g.R * g.Q;
    g.plane = g.pplane * g.pr * g.pc;
    return g;
}

/* The V (1 to 4, or as use_conv_block forces; 0 if none fits nacc) whose blocks of P = nacc/V
 * along n items (positions or taps) x V filter vectors cost least for F filters: padded, as
 * ceil(n / P) whole blocks; else n / P whole blocks and one of the n % P left. */
static int cheapest_filter_vectors(int n, int padded, int F, int vl, int nacc)
{
    int pick = 0;
    double best = 0;
    for (int V = 1; V <= 4; V++) {
        const int P = nacc / V;
        if (P < 1 || (forced_block >= BLOCK_FILTERS && V != forced_block - 1))
            continue;
        const double blocks = padded ? (double)((n + P - 1) / P) * filters_block_cost(P, V, 0)
                                     : (double)(n / P) * filters_block_cost(P, V, 0) +
                                       filters_block_cost(n % P, V, 0);
        const double cost = blocks * round_up(F, V * vl) / (V * vl);
        if (pick == 0 || cost < best) {
            pick = V;
            best = cost;
        }
    }
    return pick;
}

/* The weight gradient's filters-in-lanes mode: V vectors of filters per block (blocks of
 * nacc / V taps x V filter vectors, the sums in registers over every position of every
 * image), where the forward correlation of the shape takes filters in lanes (fwd) over at
 * least WGRAD_FILTERS_MIN_TAPS taps a filter and at most WGRAD_FILTERS_MAX_POSITIONS outputs
 * an image, or where the mode is forced; else 0.  Taken with the forward, not by comparing
 * costs: the model prices the other weight-gradient modes as it prices forwards, and misses
 * what short rows cost them (5x5 s2 48 -> 64 on 8x8 outputs: row blocks 64 GFLOP/s, lanes
 * 71, this 85).  With the
 * forward it won on the suite's small maps (32 -> 32 on 4x4: 40 against 32; 4 images of
 * 16 -> 16 on 8x8: 34 against 21; 24 -> 24 on 11x11 at batch 8: 50 against 42, at 32 equal)
 * but on 144 taps a filter (3x3 s2 16 -> 32: on 14x14, 54 against lanes' 59, a training step
 * of the strided net 10% slower; on 8x8, 25 against 25), hence the least taps; and from 16x16
 * outputs row blocks are ahead (32 -> 32: 84 against 78, 32 -> 64: 82 against 77), hence the
 * most positions (12x12 won: 88 against 79). */
#define WGRAD_FILTERS_MIN_TAPS 200
#define WGRAD_FILTERS_MAX_POSITIONS 144
static int wgrad_filters_v(const geom *fwd, int positions, int ktaps, int F, int vl, int nacc)
{
    if (nacc <= 0 || vl <= 1 || (forced_mode >= 0 && forced_mode != MODE_FILTERS) ||
        (forced_mode < 0 && (!fwd->fv || ktaps < WGRAD_FILTERS_MIN_TAPS ||
                             positions > WGRAD_FILTERS_MAX_POSITIONS)))
        return 0;
    return cheapest_filter_vectors(ktaps, 1, F, vl, nacc);
}

/* Winograd's F(2x2, 3x3) and F(2x2, 5x5) (winograd.h; conv_drivers.h's wino_run): whether an
 * r x r correlation of C -> F channels with OH x OW outputs (vectors of vl lanes)
 * runs as one.  It does (r+1)^2 multiplies per 2x2 outputs, channel and filter where direct
 * modes do 4 r^2, but pays per tile and channel (input transform, its parity fill), per tile
 * and filter (output transform, the transpose out of the lanes) and per filter and channel
 * (the weights' transform, every call), and its input transform runs in whole vectors, of
 * tiles along a row or of channels (wino_lanes_pay).  Against the best direct mode (one core,
 * Zen 3, thread CPU time, forward and input gradient alike, 4 to 256 images a call):
 *     3x3, tiles a vector: 32 -> 32 or 64 on 16x16 and 32x32 1.38-1.53x; 16 -> 16 on 32x32
 *          1.16-1.19x, on 16x16 1.00-1.08x; 12 -> 12 on 16x16 0.79x; 8 -> 8 on 32x32 0.74x;
 *     3x3, channels a vector: 64 -> 64 on 4x4 1.79x; 32 -> 32 on 2x2 1.19x, on 4x4 1.58x,
 *          on 6x6 1.31x; 16 -> 16 on 4x4 1.33x, on 6x6 1.20x, on 8x8 1.31x; 24 -> 24 on
 *          11x11 1.01x; 8 -> 16 on 8x8 1.12x, 8 -> 8 0.94x; 12 -> 12 on 4x4 0.88x, on 12x12
 *          0.89x (64 -> 64 on 8x8 ran 1.51x by tiles, 8 images; by channels 1.13x that);
 *     5x5: 32 -> 32 on 16x16 1.78x, on 8x8 1.58x, on 6x6 1.24x; 16 -> 16 on 16x16 1.30x, on
 *          24x24 1.21x, on 8x8 1.13x; 8 -> 8 on 32x32 0.90x.
 * (The 3x3 shapes are the tuning nets' layers and a few more; the 5x5 ones no suite net's, the
 * suite's one 5x5 stride-1 layer of many channels being held out.)  Hence, 3x3 with channels a
 * vector: 16 or more channels and filters, the channels whole vectors, any map; tiles a
 * vector: min(C, F) * min(OW, 16) >= WINO_MIN_WORK with OH, OW >= 8 (the fewer the channels,
 * the more the per-tile passes weigh, and rows under 16 outputs leave lanes idle);
 * 5x5, which saves more: 16 or more channels and filters, OH, OW >= 6.
 * At stride 2 (49 multiplies against 100 for 5x5, 25 against 36 for 3x3, and patches of 7 or 5
 * inputs a side for 4 outputs), forward only (the input gradient's phases are stride-1
 * correlations, above), measured the same way, outputs on 4x4 to 32x32:
 *     5x5: 48 -> 64 on 8x8 outputs 1.22-1.30x (8 and 64 images), 32 -> 48 on 24x24 1.29x,
 *          16 -> 32 on 16x16 1.12x, 16 -> 32 on 14x14 1.19x; 32 -> 32 on 6x6 0.81x, on 4x4 0.70x;
 *     3x3: 64 -> 64 on 32x32 1.39x, on 16x16 1.04x, 64 or 128 -> 128 on 8x8 1.14-1.15x;
 *          48 -> 48 on 8x8 0.83x, 32 -> 48 on 16x16 0.87-0.95x, 16 -> 32 on 7x7 0.50-0.62x.
 * (No tuning net has such a layer; all-conv's 3x3 and 5x5 are held out.)  Hence 5x5 from 16
 * channels and filters, 3x3 from 64, both on OH, OW >= 8.  Forced by use_conv_mode("winograd")
 * on every 3x3 or 5x5 correlation of stride 1 or 2 (and never with another mode forced). */
#define WINO_MIN_WORK 256
/* The most bytes of transformed inputs and products (n^2 of each per tile and channel or
 * filter) one chunk of tiles takes: they are written and read back once, from L2. */
#define WINO_CHUNK_BYTES (192 * 1024)

/* The bytes of a chunk of wino_run for n^2 products of C -> F channels: WINO_CHUNK_BYTES, or
 * as many as the transformed weights where these leave no room for such a chunk beside them in
 * a 512 KB L2, since the products stream all of them once a chunk (5x5 stride 2 48 -> 64 on
 * 16x16, 600 KB of weights: 8 tiles a chunk at 192 KB ran 94-100 GFLOP/s, an image's 16 at
 * 600 KB 108-113; 3x3 64 -> 64 on 8x8, 262 KB: 123 at 192 KB, 115 at 262; one core, Zen 3). */
static ptrdiff_t wino_chunk_bytes(int nk, int C, int F, int vl, size_t elem)
{
    const ptrdiff_t weights = (ptrdiff_t)nk * C * round_up(F, vl) * (ptrdiff_t)elem;
    return weights > 2 * WINO_CHUNK_BYTES ? weights : WINO_CHUNK_BYTES;
}

/* The rows (or columns) of the padded copy Winograd reads with channels in the lanes: room
 * for the patches of `tiles` tiles (n a side, 2*s apart) and for the input's `size` after
 * `pad` of padding (wino_run, wino_wgrad_run). */
static int wino_lanes_side(int s, int tiles, int n, int size, int pad)
{
    return 2 * s * tiles + n > size + pad ? 2 * s * tiles + n : size + pad;
}

/* Whether wino_run transforms its inputs with channels in the lanes (a tile a vector, after
 * interleaving each image) rather than tiles (VL tiles of a row a vector, from phases): where
 * more of the lanes work, VL-channel vectors against rows of TW tiles, and at stride 2 where as
 * many do (its 4 x 4 phases cost more than the interleave).  Against tiles (one core, Zen 3,
 * forward GFLOP/s): 3x3 32 -> 32 on 4x4 1.77x, 16 -> 16 and 32 -> 32 on 8x8 1.23-1.46x, 64 ->
 * 64 on 8x8 1.13x, 32 -> 32 on 12x12 1.10x, on 14x14 1.04x, 64 -> 64 on 40x40 1.13x; 5x5 32 ->
 * 32 on 12x12 1.10x; at stride 2 64 -> 64 to 8x8 1.46x, to 32x32 1.28x.  Where as many work at
 * stride 1 (16 and 32 on 16x16, 16 and 64 on 32x32) 0.94-1.06x; 12 channels on 16x16, 0.90x. */
static int wino_lanes_pay(int s, int TW, int C, int vl)
{
    const ptrdiff_t lanes = (ptrdiff_t)C * round_up(TW, vl);
    const ptrdiff_t tiles = (ptrdiff_t)TW * round_up(C, vl);
    return lanes > tiles || (s == 2 && lanes == tiles);
}

/* Whether winograd.h has transforms for an r x r kernel at stride s, and vectors to run them. */
static int wino_fits(int s, int KH, int KW, int vl)
{
    return s <= 2 && KH == KW && (KH == 3 || KH == 5) && vl > 1;
}

static int wino_pays(int s, int KH, int KW, int C, int F, int OH, int OW, int vl)
{
    if (!wino_fits(s, KH, KW, vl))
        return 0;
    if (forced_mode >= 0)
        return forced_mode == MODE_WINOGRAD;
    const int channels = C < F ? C : F, row = OW < 16 ? OW : 16;
    if (s == 2)
        return OH >= 8 && OW >= 8 && channels >= (KH == 5 ? 16 : 64);
    if (KH == 5)
        return channels >= 16 && OH >= 6 && OW >= 6;
    if (wino_lanes_pay(s, (OW + 1) / 2, C, vl))
        return channels >= 16 && C % vl == 0;
    return OH >= 8 && OW >= 8 && channels * row >= WINO_MIN_WORK;
}

/* The Winograd products' filter vectors per block (conv_filters along a row of nt tiles, C
 * taps): priced as a forward's row. */
static int wino_filter_vectors(int nt, int F, int vl, int nacc)
{
    const int V = cheapest_filter_vectors(nt, 0, F, vl, nacc);
    return V ? V : 1;
}

/* Winograd's weight matrices G (n x r; winograd.h), rows r apart: F(2x2, 3x3) and F(2x2, 5x5)
 * at stride 1 and 2. */
static const double WINO_G3[4 * 3] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};
static const double WINO_G5[6 * 5] = {
    1.0 / 4, 0, 0, 0, 0,
    -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6,
    -1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
    1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3,
    1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3,
    0, 0, 0, 0, 1};
static const double WINO_G3S2[5 * 3] = {1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0};
static const double WINO_G5S2[7 * 5] = {
    1, 0, 0, 0, 0,
    0.5, 0, 0.5, 0, 0.5,
    0.5, 0, -0.5, 0, 0.5,
    0, 0, 0, 0, 1,
    0, 1, 0, 0, 0,
    0, 1, 0, 1, 0,
    0, 0, 0, 1, 0};

/* Whether the weight gradient of an r x r correlation at stride s of C -> F channels runs by
 * Winograd (conv_drivers.h's wino_wgrad_run: the forward's multiplies, per 2x2 outputs,
 * channel and filter, with one transform per tile and channel, one per tile and filter, and
 * one per filter and channel a call).  Against the best direct mode (one core, Zen 3, thread
 * CPU time, 8 to 64 images a call; ranges over repeated runs of a noisy VM):
 *     5x5: 48 -> 64 stride 2 on 8x8 outputs 1.35-1.55x, 32 -> 32 on 12x12 1.5-1.65x (32
 *          images and 8), 6 -> 16 on 8x8 1.05-1.1x; 1 -> 16 0.28x, stride 2 0.22-0.35x;
 *     3x3: 32 -> 32 on 32x32 1.2-1.4x, on 16x16 1.2-1.45x, on 4x4 1.35-2.2x, 64 -> 64 on 8x8
 *          (8 images) 2.5x, 32 -> 64 on 16x16 1.6x, 32 -> 48 stride 2 on 16x16 1.0-1.15x,
 *          24 -> 24 on 11x11 (8 images) 1.3-1.8x; 16 -> 16 on 32x32 0.85x, on 8x8 1.2-2.2x,
 *          16 -> 32 stride 2 on 8x8 1.2x, on 7x7 0.85x; 3 -> 32 0.5x, 1 -> 16 0.7x.
 * (The tuning nets' layers and a few more: stem7's 24 -> 24, all-conv's and stride3's layers
 * are held out.)  Hence 5x5 from 8 channels and filters and 3x3 from 24, on maps of any size;
 * and 3x3 from 16 at stride 1 on outputs of 12x12 or fewer, where the direct weight gradient
 * runs short rows: 16 -> 16 on 4x4 1.35x, on 8x8 1.3x, on 12x12 1.25x, on 16x16 1.05x, on
 * 32x32 0.95x; 16 -> 24 on 8x8 1.6x (one core, Zen 3, 32-64 images; 8 -> 8 on 16x16 0.8x).
 * Forced with the forward by use_conv_mode("winograd") on every 3x3 or 5x5 correlation of
 * stride 1 or 2. */
static int wino_wgrad_pays(int s, int KH, int KW, int C, int F, int OH, int OW, int vl)
{
    if (!wino_fits(s, KH, KW, vl))
        return 0;
    if (forced_mode >= 0)
        return forced_mode == MODE_WINOGRAD;
    const int small = s == 1 && (long)OH * OW <= 144;
    return (C < F ? C : F) >= (KH == 5 ? 8 : small ? 16 : 24);
}

/* The bytes of transformed inputs and douts one chunk of wino_wgrad_run takes for its n^2 sums
 * of C x F: WINO_WGRAD_CHUNK_BYTES, or twice the sums where that is more, since every chunk
 * reads and writes all of them (5x5 stride 2 48 -> 64, 600 KB of sums: 256 KB chunks ran
 * 114-117 GFLOP/s, 1.2 MB 124-127; 3x3 32 -> 32 on 32x32: 64 KB of sums, 256 KB chunks 102-122,
 * 1 MB 96-97). */
#define WINO_WGRAD_CHUNK_BYTES (256 * 1024)
static ptrdiff_t wino_wgrad_chunk_bytes(int nk, int C, int F, int vl, size_t elem)
{
    const ptrdiff_t sums = (ptrdiff_t)nk * C * round_up(F, vl) * (ptrdiff_t)elem;
    return 2 * sums > WINO_WGRAD_CHUNK_BYTES ? 2 * sums : WINO_WGRAD_CHUNK_BYTES;
}

/* Winograd's G and kernel size r for the transform of patch side n = 4 to 7 (winograd.h). */
static const double *wino_g(int n)
{
    return n == 4 ? WINO_G3 : n == 5 ? WINO_G3S2 : n == 6 ? WINO_G5 : WINO_G5S2;
}
static int wino_r(int n) { return n < 6 ? 3 : 5; }

/* The patch side of Winograd's F(2x2, r x r) at stride s (winograd.h): 2 outputs a side read
 * (2 - 1)*s + r inputs. */
static int wino_side(int r, int s) { return r + s; }

/* The scratch of wino_run: the padded input split by row and column into the S phases of
 * winograd.h (S = 2 for patches of even side n, at stride 1; 4 for odd, at stride 2) for
 * TH x TW tiles of 2x2 outputs, rows long enough for winograd.h's whole-vector reads. */
static geom wino_geom(int TH, int TW, int n, int vl)
{
    geom g = {0};
    g.s = g.pr = g.pc = n & 1 ? 4 : 2;
    g.R = TH + (n - 1) / g.s;
    g.Q = round_up(TW, vl) + (n - 1) / g.s;
    g.pplane = (ptrdiff_t)g.R * g.Q;
    g.plane = g.pr * g.pc * g.pplane;
    return g;
}

/* g with the scratch rows of the filters-in-lanes mode: OW + (KW-1)/s positions, no lanes. */
static geom filters_geom(geom g, int OW, int KW, int V)
{
    g.flat = 0;
    g.L = 0;
    g.lanes = 1;
    g.fv = V;
    g.Q = OW + (KW - 1) / g.s;
    g.pplane = (ptrdiff_t)g.R * g.Q;
    g.plane = g.pplane * g.pr * g.pc;
    return g;
}

/* off[(c*KH + i)*KW + j]: where tap (c, i, j) sits relative to its output's first input, in
 * elements. */
static void tap_offsets(ptrdiff_t *off, const geom *g, int C, int KH, int KW)
{
    const int s = g->s;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++)
            for (int j = 0; j < KW; j++)
                off[(c * KH + i) * KW + j] = g->lanes * (c * g->plane + ((i % s) * g->pc + j % s) * g->pplane +
                                                         (ptrdiff_t)(i / s) * g->Q + j / s);
}

/* Batch-in-lanes positions of the rows and columns of an H x W source padded by ph rows and
 * pw columns (see fill_lanes): rowpos[h] = a*pc*pplane + r*Q for padded row h + ph = r*s + a,
 * colpos[w] = b*pplane + q for padded column w + pw = q*s + b; -1 where the scratch keeps no
 * such row or column. */
static void lane_positions(const geom *g, int H, int W, int ph, int pw, ptrdiff_t *rowpos,
                           ptrdiff_t *colpos)
{
    const int s = g->s;
    for (int h = 0; h < H; h++) {
        const int row = h + ph;
        const int keep = row >= 0 && row % s < g->pr && row / s < g->R;
        rowpos[h] = keep ? (ptrdiff_t)(row % s) * g->pc * g->pplane + (ptrdiff_t)(row / s) * g->Q : -1;
    }
    for (int w = 0; w < W; w++) {
        const int col = w + pw;
        const int keep = col >= 0 && col % s < g->pc && col / s < g->Q;
        colpos[w] = keep ? (ptrdiff_t)(col % s) * g->pplane + col / s : -1;
    }
}

/* calloc of `bytes` aligned to 64 (*raw: what to free): a vector of 16 floats stored at a
 * multiple of 64 bytes from an unaligned base straddles two cache lines, and in batch-in-lanes
 * mode every load is one: the forward at 4x4 took 2.5x as long from calloc's 16-byte
 * alignment (rdtsc around the kernel). */
static void *calloc64(size_t bytes, void **raw)
{
    *raw = calloc(bytes + 64, 1);
    return *raw ? (void *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63) : NULL;
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

/* The mode conv_shape takes for these arguments (what gpucnn.native.conv_mode reports). */
static int shape_mode(const geom *g)
{
    return g->fv ? MODE_FILTERS : g->lanes > 1 ? MODE_LANES : g->flat ? MODE_FLAT : MODE_ROWS;
}

/* Phase (a, b) of the input gradient of a stride-s, pad-p convolution with a KH x KW kernel
 * on H x W inputs (see dgrad_run): its taps i = a + s*u (u < U), j = b + s*v (v < V), and
 * its dx rows h = m*s + a - p for m in [m0, m1), columns x = k*s + b - p for k in [k0, k1).
 * 0 when the phase has no tap or no position. */
typedef struct {
    int U, V, m0, m1, k0, k1;
} dx_phase;

static int get_dx_phase(int a, int b, int s, int p, int KH, int KW, int H, int W, dx_phase *d)
{
    d->U = a < KH ? (KH - a + s - 1) / s : 0;
    d->V = b < KW ? (KW - b + s - 1) / s : 0;
    phase_span(a - p, s, H, INT_MAX, &d->m0, &d->m1);
    phase_span(b - p, s, W, INT_MAX, &d->k0, &d->k1);
    return d->U > 0 && d->V > 0 && d->m1 > d->m0 && d->k1 > d->k0;
}

/* Whether a convolution's forward correlation (C -> F channels, KH x KW taps, stride s; the
 * forward itself or an input-gradient phase, a correlation of dout) runs as im2col + BLAS
 * products (conv_gemm.h) instead of the direct kernels; dense: its outputs land in contiguous
 * rows.  Forced by use_conv_mode("gemm") (and never with another mode forced); never without
 * a BLAS (blas.h).
 *
 * 1x1 convolutions of 16 or more channels into 16 or more, dense: a tap per channel leaves
 * the direct kernels' blocks little to sum between their stores (32 -> 32 on 32x32, forward 34
 * -> 42 GFLOP/s, input gradient 34 -> 44; thread CPU time, one core, batch 32, Zen 3:
 * scripts/bench_cpu_suite.py --modes).  Strided or scattered (a stride-2 projection's input
 * gradient), or into 10 filters (64 -> 10 on 8x8: 34 -> 25), the products lost; so did every
 * larger kernel, and every weight gradient against the 12-accumulator kernels. */
static int gemm_pays(int s, int KH, int KW, int C, int F, int dense)
{
    if (!blas_ready())
        return 0;
    if (forced_mode >= 0)
        return forced_mode == MODE_GEMM;
    return KH == 1 && KW == 1 && s == 1 && C >= 16 && F >= 16 && dense;
}
