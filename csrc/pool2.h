/* 2x2 max-pool at stride 2 (with relu fused), the common case, one plane at a time: included
 * by kernels.h once per (element type, instruction set), with its FN, VEC, TGT and VL.
 *
 * Input columns, output and argmax rows contiguous.  VL outputs per step: per input row two
 * vector loads and an even/odd shuffle give each window column.  A row's last, partial vector
 * loads past the row end while the array has elements there (the extra lanes are dropped),
 * else from a zero-padded copy; so (b)'s 14-wide rows take one 16-lane vector each instead of
 * the scalar loop the general path falls back to (1.2 ms forward, 1.0 backward at (b) on one
 * core before).  Results equal the general path's bit for bit. */
#ifdef HAVE_SHUFFLE
typedef uint8_t FN(bytes) __attribute__((vector_size(VL)));
typedef int32_t FN(i32s) __attribute__((vector_size(VL * 4)));

/* v[0..3]: the 4 window offsets (i*2 + j) of outputs ow .. ow+VL-1; cnt of them are real */
TGT static INLINE void FN(windows2)(const T *x, ptrdiff_t sh, int ow, int cnt, ptrdiff_t readable,
                                    VEC v[4])
{
    typedef FN(ivec) IV;
    IV even, odd;
    for (int k = 0; k < VL; k++) {
        even[k] = 2 * k;
        odd[k] = 2 * k + 1;
    }
    const T *r0 = x + 2 * ow;
    VEC lo[2], hi[2];
    if (sh + 2 * ow + 2 * VL <= readable) {
        for (int i = 0; i < 2; i++) {
            lo[i] = FN(load)(r0 + i * sh);
            hi[i] = FN(load)(r0 + i * sh + VL);
        }
    } else {
        T pad[2][2 * VL];
        memset(pad, 0, sizeof pad);
        for (int i = 0; i < 2; i++) {
            memcpy(pad[i], r0 + i * sh, sizeof(T) * 2 * (size_t)cnt);
            lo[i] = FN(load)(pad[i]);
            hi[i] = FN(load)(pad[i] + VL);
        }
    }
    for (int i = 0; i < 2; i++) {
        v[2 * i] = __builtin_shuffle(lo[i], hi[i], even);
        v[2 * i + 1] = __builtin_shuffle(lo[i], hi[i], odd);
    }
}

/* Stores the first cnt lanes of a vector (one memcpy call only for a partial vector). */
#define STORE_LANES(dst, vec, cnt, lane_bytes)                                                   \
    do {                                                                                         \
        if ((cnt) == VL)                                                                         \
            memcpy((dst), &(vec), sizeof(vec));                                                  \
        else                                                                                     \
            memcpy((dst), &(vec), (size_t)(cnt) * (lane_bytes));                                 \
    } while (0)

/* One plane: out[oh][ow] = max of relu(x) over window (oh, ow), am[oh][ow] its first-maximum
 * offset (uint8 when abytes is 1, else int32), for oh < OH, ow < OW.  x rows sh apart (window
 * row oh starts at row 2*oh), out rows osh apart, am rows ash; readable: elements of the
 * array from x on.  The relu and NaN rules of pool_scan. */
TGT static void FN(pool2_plane)(const T *x, ptrdiff_t sh, int OH, int OW, ptrdiff_t readable,
                                T *out, ptrdiff_t osh, void *am, ptrdiff_t ash, int abytes)
{
    typedef FN(ivec) IV;
    for (int oh = 0; oh < OH; oh++, x += 2 * sh, readable -= 2 * sh, out += osh)
        for (int ow = 0; ow < OW; ow += VL) {
            const int cnt = OW - ow < VL ? OW - ow : VL;
            VEC v[4];
            FN(windows2)(x, sh, ow, cnt, readable, v);
            IV take = (v[0] > 0) | (v[0] != v[0]);
            VEC m = (VEC)((IV)v[0] & take);
            IV a = take - take;
            for (int t = 1; t < 4; t++) {
                take = (v[t] > m) | ((v[t] != v[t]) & (m == m));
                a = (take & t) | (~take & a);
                m = (VEC)(((IV)v[t] & take) | ((IV)m & ~take));
            }
            STORE_LANES(out + ow, m, cnt, sizeof(T));
            if (abytes == 1) {
                const FN(bytes) b = __builtin_convertvector(a, FN(bytes));
                STORE_LANES((uint8_t *)am + (ptrdiff_t)oh * ash + ow, b, cnt, 1);
            } else {
                const FN(i32s) b = __builtin_convertvector(a, FN(i32s));
                STORE_LANES((int32_t *)am + (ptrdiff_t)oh * ash + ow, b, cnt, 4);
            }
        }
}

/* Loads cnt lanes (the rest zero) from p: whole vectors where they fit in readable. */
#define LOAD_LANES(p, cnt, readable, out)                                                 \
    do {                                                                                         \
        if ((ptrdiff_t)sizeof(out) <= (readable)) {                                              \
            memcpy(&(out), (p), sizeof(out));                                                    \
        } else {                                                                                 \
            memset(&(out), 0, sizeof(out));                                                      \
            memcpy(&(out), (p), (size_t)(cnt) * sizeof(*(p)));                                   \
        }                                                                                        \
    } while (0)

/* The backward of pool2_plane: dx window (oh, ow) gets g = dout * (out > 0) (a multiply, as
 * NumPy's) at its argmax offset and 0 elsewhere (assigned: 2x2 windows at stride 2 are
 * disjoint).  dx rows dsh apart; dout, out, am rows gsh, osh, ash apart, each readable for
 * *_left bytes from the plane's first element. */
TGT static void FN(unpool2_plane)(T *dx, ptrdiff_t dsh, int OH, int OW, const T *dout,
                                  ptrdiff_t gsh, ptrdiff_t g_left, const T *out, ptrdiff_t osh,
                                  ptrdiff_t o_left, const void *am, ptrdiff_t ash, ptrdiff_t a_left,
                                  int abytes)
{
    typedef FN(ivec) IV;
    IV lo, hi;
    for (int k = 0; k < VL; k++) {
        lo[k] = (k & 1) * VL + k / 2;
        hi[k] = (k & 1) * VL + (k + VL) / 2;
    }
    const VEC one = FN(splat)(1);
    for (int oh = 0; oh < OH; oh++, dx += 2 * dsh)
        for (int ow = 0; ow < OW; ow += VL) {
            const int cnt = OW - ow < VL ? OW - ow : VL;
            const ptrdiff_t gi = (ptrdiff_t)oh * gsh + ow, oi = (ptrdiff_t)oh * osh + ow;
            const ptrdiff_t ai = (ptrdiff_t)oh * ash + ow;
            VEC d, o;
            IV a;
            LOAD_LANES(dout + gi, cnt, g_left - gi * (ptrdiff_t)sizeof(T), d);
            LOAD_LANES(out + oi, cnt, o_left - oi * (ptrdiff_t)sizeof(T), o);
            if (abytes == 1) {
                FN(bytes) b;
                LOAD_LANES((const uint8_t *)am + ai, cnt, a_left - ai, b);
                a = __builtin_convertvector(b, IV);
            } else {
                FN(i32s) b;
                LOAD_LANES((const int32_t *)am + ai, cnt, a_left - ai * 4, b);
                a = __builtin_convertvector(b, IV);
            }
            const VEC g = d * (VEC)((IV)one & (o > 0));
            for (int i = 0; i < 2; i++) {
                const VEC v0 = (VEC)((IV)g & (a == 2 * i)), v1 = (VEC)((IV)g & (a == 2 * i + 1));
                const VEC w0 = __builtin_shuffle(v0, v1, lo), w1 = __builtin_shuffle(v0, v1, hi);
                T *r = dx + i * dsh + 2 * ow;
                if (cnt == VL) {
                    memcpy(r, &w0, sizeof w0);
                    memcpy(r + VL, &w1, sizeof w1);
                } else {
                    T both[2 * VL];
                    memcpy(both, &w0, sizeof w0);
                    memcpy(both + VL, &w1, sizeof w1);
                    memcpy(r, both, sizeof(T) * 2 * (size_t)cnt);
                }
            }
        }
}
#undef STORE_LANES
#undef LOAD_LANES
#define POOL2_PLANE FN(pool2_plane)
#define UNPOOL2_PLANE FN(unpool2_plane)
#else
#define POOL2_PLANE NULL
#define UNPOOL2_PLANE NULL
#endif
