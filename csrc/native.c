/* gpucnn._native: CPU kernels NumPy cannot do fast (direct convolution, fused relu + max-pool).
 *
 * Portable C11 over the buffer protocol (no NumPy headers).  Every array is a 4-D buffer of any
 * strides, passed to the kernels as element strides, so (N, C, H, W) views of (C, N, H, W)
 * memory need no copy.  Outputs are caller-allocated buffers (gpucnn/native.py allocates them),
 * every kernel releases the GIL and works on a batch range [n0, n1), so a caller may split a
 * batch across threads.  On x86 with GCC or Clang the hot loops are compiled three times
 * (baseline, AVX2+FMA, AVX-512), each with its own register-block sizes (AVX-512 has twice the
 * registers, which target_clones could not express), and picked at import from the CPU's
 * features (__builtin_cpu_supports); use_isa() caps the pick.  Other compilers build the
 * baseline only, as scalar C.
 * gpucnn/native.py documents the Python-level semantics; this file checks shapes and types.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#define HAVE_SHUFFLE 1 /* __builtin_shuffle: GCC's vector permute */
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#define restrict __restrict /* MSVC's C mode before /std:c11 */
#endif

#if defined(__GNUC__) || defined(__clang__)
#define INLINE inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
#ifdef __clang__
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif
#else
#define INLINE inline
#define NOINLINE
#define UNROLL
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define X86_DISPATCH 1
#define TGT_AVX2 __attribute__((target("avx2,fma")))
#ifdef __clang__
#define TGT_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else /* GCC's generic tuning would split the loops into 256-bit halves */
#define TGT_AVX512 __attribute__((target("avx512f,avx2,fma,prefer-vector-width=512")))
#endif
#endif

#define POOL_CHUNK 256 /* output columns per pooling pass: the row state stays in L1 */
/* Weight-gradient image groups: what one block pass reads (4 filters' dout, ~2 input planes)
 * should stay in L1 for all images of a group, and the group's scratch in L2.  Measured, one
 * core: (b) ran 57 GFLOP/s with 1 image per group and 43 with 4 (L1 -> L2); 8x8 images with
 * 16 channels ran 39 with 1 and 54 with 8. */
#define WGRAD_L1_BYTES (32 * 1024)
#define WGRAD_L2_BYTES (1024 * 1024)
/* The filters-in-lanes weight gradient's image groups: every tap block reads a group's
 * inputs, so they had better stay in L2 (half of this Zen 3's 512 KB; at 1 MB the strided
 * net's 3x3 s2 16 -> 32 on 14x14 ran 49 GFLOP/s, at 256 KB 54). */
#define WGRAD_FILTERS_GROUP_BYTES (256 * 1024)

/* An (N, C, H, W) array: first element, dims, element strides. */
typedef struct {
    void *p;
    int d[4];
    ptrdiff_t s[4];
} view4;

#include "blas.h"
#include "conv_geom.h"
#include "scratch.h"

/* Elements from v's first element to one past its last; -1 for a negative stride or no
 * elements. */
static ptrdiff_t extent(const view4 *v)
{
    ptrdiff_t e = 1;
    for (int k = 0; k < 4; k++) {
        if (v->s[k] < 0 || v->d[k] == 0)
            return -1;
        e += (ptrdiff_t)(v->d[k] - 1) * v->s[k];
    }
    return e;
}

/* One chunk of a pooled output row: values (T), argmax offsets (uint8 or int32) and, for the
 * backward pass, the incoming gradient (T), each with its element stride. */
typedef struct {
    void *out;
    ptrdiff_t osw;
    void *am;
    ptrdiff_t asw;
    int abytes;
    const void *dout;
    ptrdiff_t dsw;
} pool_io;

/* Kernel tables: one per (element type, instruction set), filled by kernels.h. */
#define DEFINE_KERN(T, name)                                                                     \
    typedef struct {                                                                             \
        int fb, vw, vww, wfb, wtb, wvw; /* vww: the wide block; wvw: weight-gradient lanes */  \
        int nacc; /* the filters-in-lanes kernel's accumulators */                              \
        void (*conv_image)(const T *, const ptrdiff_t *, int, ptrdiff_t, const T *, const T *,  \
                           int, int, int, T *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int);            \
        void (*conv_image_wide)(const T *, const ptrdiff_t *, int, ptrdiff_t, const T *,         \
                                const T *, int, int, int, T *, ptrdiff_t, ptrdiff_t, ptrdiff_t,  \
                                int);                                                            \
        void (*conv_filters)(const T *, const ptrdiff_t *, int, int, int, ptrdiff_t, ptrdiff_t,  \
                             const T *, const T *, int, int, int, T *, int, int, int);           \
        void (*wgrad_block)(const T *, ptrdiff_t, const ptrdiff_t *, ptrdiff_t, const T *,       \
                            ptrdiff_t, ptrdiff_t, int, int, int, T *, ptrdiff_t);                \
        void (*wgrad_filters)(const T *, ptrdiff_t, const ptrdiff_t *, int, ptrdiff_t, const T *, \
                              ptrdiff_t, int, int, int, int, T *, int);                          \
        void (*sum_rows)(const T *, int, ptrdiff_t, T *);                                        \
        void (*copy_rows)(T *, ptrdiff_t, const T *, ptrdiff_t, ptrdiff_t, int, int);            \
        void (*pool_row)(const T *, ptrdiff_t, ptrdiff_t, int, int, int, int, const pool_io *);  \
        void (*unpool_row)(T *, ptrdiff_t, ptrdiff_t, int, int, int, const pool_io *, int);      \
        void (*pool2_plane)(const T *, ptrdiff_t, int, int, ptrdiff_t, T *, ptrdiff_t, void *,    \
                            ptrdiff_t, int);                                                     \
        void (*unpool2_plane)(T *, ptrdiff_t, int, int, const T *, ptrdiff_t, ptrdiff_t,          \
                              const T *, ptrdiff_t, ptrdiff_t, const void *, ptrdiff_t,           \
                              ptrdiff_t, int);                                                   \
        double (*sum_squares)(const T *, ptrdiff_t);                                             \
        void (*sgd)(T *, const T *, T *, T, T, T, T, int, ptrdiff_t);                            \
        void (*interleave)(T *, const T *, ptrdiff_t, ptrdiff_t, int);                           \
        void (*deinterleave)(T *, ptrdiff_t, const T *, ptrdiff_t, int);                         \
        void (*fill_lanes)(T *, ptrdiff_t, const T *, const ptrdiff_t *, ptrdiff_t, int, int, int, \
                           int, const ptrdiff_t *, const ptrdiff_t *, ptrdiff_t);                \
        void (*sum_lanes)(const T *, ptrdiff_t, T *);                                            \
        void (*wino_in)(T *, ptrdiff_t, const T *, ptrdiff_t, ptrdiff_t, int, int, int, int);    \
        void (*wino_out)(const T *, ptrdiff_t, ptrdiff_t, int, const T *, int, int, int, int,    \
                         int, T *, int, int);                                                    \
        void (*wino_weights)(T *, ptrdiff_t, const T *, ptrdiff_t, int);                         \
        void (*wino_in_lanes)(T *, ptrdiff_t, ptrdiff_t, const T *, ptrdiff_t, int, int, int,     \
                              int);                                                              \
        void (*wino_wout)(T *, const T *, ptrdiff_t, int);                                       \
        void (*wino_dy)(T *, ptrdiff_t, ptrdiff_t, const T *, int, int, int, int, int, int);      \
    } name;
DEFINE_KERN(float, kern_f)
DEFINE_KERN(double, kern_d)

#if defined(__GNUC__) || defined(__clang__) /* 16-byte vectors: SSE2, NEON, ... */
#define BASE_VL_F 4
#define BASE_VL_D 2
#else /* scalar C */
#define BASE_VL_F 1
#define BASE_VL_D 1
#endif

/* Block sizes per instruction set (see kernels.h): accumulators fill 16 of the 32 AVX-512
 * registers, 8 of the 16 AVX2/SSE ones, leaving room for the loaded inputs and weights.  AVX2
 * has a second, wide forward block of 12 (VWIDE), taken per shape (conv_shape): with FMA
 * latency 4 on two pipes, 8 chains leave no slack, and 24-column rows fit outputs 24 or 12 wide
 * (the 7x7 stride-2 stem on 48x48, forward: 67 -> 89 GFLOP/s; LeNet's 5x5 on 28x28: 28 -> 54;
 * thread CPU time, Zen 3).  For the same reason AVX2's weight-gradient block is 4 filters x 3
 * taps, 12 accumulators (3x3 kernels: 9 taps a channel, no padding): 16 -> 16 3x3 on 32x32
 * 60 -> 83, the 7x7 3 -> 32 on 32x32 62 -> 88. */
#define T float
#define KERN_T kern_f
#define SFX f_base
#define TGT
#define FB 4
#define VW (2 * BASE_VL_F)
#define VWIDE VW
#define WFB 4
#define WTB 2
#define VL BASE_VL_F
#include "kernels.h"

#define T double
#define KERN_T kern_d
#define SFX d_base
#define TGT
#define FB 4
#define VW (2 * BASE_VL_D)
#define VWIDE VW
#define WFB 4
#define WTB 2
#define VL BASE_VL_D
#include "kernels.h"

#ifdef X86_DISPATCH
#define T float
#define KERN_T kern_f
#define SFX f_avx2
#define TGT TGT_AVX2
#define FB 4
#define VW 16
#define VWIDE 24 /* 12 accumulators: 8 left the FMAs waiting on their latency (see conv_shape) */
#define WFB 4
#define WTB 3
#define VL 8
#include "kernels.h"

#define T double
#define KERN_T kern_d
#define SFX d_avx2
#define TGT TGT_AVX2
#define FB 4
#define VW 8
#define VWIDE 12
#define WFB 4
#define WTB 3
#define VL 4
#include "kernels.h"

#define T float
#define KERN_T kern_f
#define SFX f_avx512
#define TGT TGT_AVX512
#define FB 8
#define VW 32
#define VWIDE VW
#define WFB 4
#define WTB 4
#define VL 16
#include "kernels.h"

#define T double
#define KERN_T kern_d
#define SFX d_avx512
#define TGT TGT_AVX512
#define FB 8
#define VW 16
#define VWIDE VW
#define WFB 4
#define WTB 4
#define VL 8
#include "kernels.h"
#endif

#define T float
#define TS f
#define KERN_T kern_f
#include "drivers.h"
#include "conv_gemm.h"
#include "conv_drivers.h"
#undef T
#undef TS
#undef KERN_T

#define T double
#define TS d
#define KERN_T kern_d
#include "drivers.h"
#include "conv_gemm.h"
#include "conv_drivers.h"
#undef T
#undef TS
#undef KERN_T

/* --- argument handling ------------------------------------------------------------------- */

/* A 4-D buffer of kind 'f' (float32), 'd' (float64), 'B' (uint8) or 'i' (int32) as a view4;
 * kinds: the accepted kinds.  -1 with an exception set, else 0 (release b afterwards). */
static int get_view(PyObject *o, const char *name, int writable, const char *kinds, Py_buffer *b,
                    view4 *v, char *kind)
{
    if (PyObject_GetBuffer(o, b, PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    const char *fmt = b->format ? b->format : "B";
    if (*fmt == '@' || *fmt == '=')
        fmt++;
    const int sizes[4] = {4, 8, 1, 4};
    const char *at = strchr("fdBi", fmt[0]);
    if (fmt[0] == 0 || fmt[1] != 0 || !at || !strchr(kinds, fmt[0]) || b->itemsize != sizes[at - "fdBi"]) {
        PyErr_Format(PyExc_TypeError, "%s.format=%s: expected one of '%s'", name, b->format, kinds);
    } else if (b->ndim != 4) {
        PyErr_Format(PyExc_ValueError, "%s.ndim=%d: expected 4", name, b->ndim);
    } else {
        v->p = b->buf;
        for (int k = 0; k < 4; k++) {
            if (b->shape[k] > INT_MAX || b->strides[k] % b->itemsize) {
                PyErr_Format(PyExc_ValueError, "%s.strides: expected multiples of the item size "
                             "and dims below 2**31", name);
                PyBuffer_Release(b);
                return -1;
            }
            v->d[k] = (int)b->shape[k];
            v->s[k] = b->strides[k] / b->itemsize;
        }
        *kind = fmt[0];
        return 0;
    }
    PyBuffer_Release(b);
    return -1;
}

/* Holds the buffers a call acquired, so one exit path releases them all. */
typedef struct {
    Py_buffer b[8];
    int n;
} held;

static int hold(held *h, PyObject *o, const char *name, int writable, const char *kinds, view4 *v,
                char *kind)
{
    if (get_view(o, name, writable, kinds, &h->b[h->n], v, kind) < 0)
        return -1;
    h->n++;
    return 0;
}

static PyObject *release(held *h, PyObject *result)
{
    while (h->n > 0)
        PyBuffer_Release(&h->b[--h->n]);
    return result;
}

static int check(int ok, const char *what)
{
    if (!ok)
        PyErr_SetString(PyExc_ValueError, what);
    return ok ? 0 : -1;
}

static int same_dims(const view4 *a, const view4 *b, int k0, int k1)
{
    for (int k = k0; k < k1; k++)
        if (a->d[k] != b->d[k])
            return 0;
    return 1;
}

static int check_range(int n0, int n1, int N)
{
    return check(0 <= n0 && n0 <= n1 && n1 <= N, "n0, n1: expected 0 <= n0 <= n1 <= N");
}

static PyObject *done(int rc)
{
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

#include "pool.h" /* run_parts: a call's ranges on worker threads */

/* --- module functions -------------------------------------------------------------------- */

/* Each function below that takes a range [n0, n1) (of images, or channels) also takes `parts`:
 * the range is cut into that many contiguous pieces, run at once by run_parts. */

typedef struct {
    const view4 *x, *out, *am;
    int abytes, size, stride;
    char kind;
} pool_args;

static int pool_forward_part(void *p, int n0, int n1, int part)
{
    const pool_args *a = p;
    (void)part;
    if (a->kind == 'f')
        pool_forward_run_f(a->x, a->out, a->am, a->abytes, a->size, a->stride, n0, n1);
    else
        pool_forward_run_d(a->x, a->out, a->am, a->abytes, a->size, a->stride, n0, n1);
    return 0;
}

static PyObject *py_relu_maxpool_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *oo, *ao;
    int size, stride, n0, n1, parts;
    held h = {.n = 0};
    view4 x, out, am;
    char kx, ko, ka;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOiiiii", &xo, &oo, &ao, &size, &stride, &n0, &n1, &parts))
        return NULL;
    if (hold(&h, xo, "x", 0, "fd", &x, &kx) || hold(&h, oo, "out", 1, "fd", &out, &ko) ||
        hold(&h, ao, "argmax", 1, "Bi", &am, &ka) ||
        check(kx == ko, "out: expected x's dtype") ||
        check(size >= 1 && stride >= 1 && size <= x.d[2] && size <= x.d[3], "size, stride: expected 1 <= size <= H, W and stride >= 1") ||
        check(ka == 'i' || size <= 16, "argmax: uint8 holds offsets of windows up to 16x16") ||
        check(same_dims(&x, &out, 0, 2) && out.d[2] == (x.d[2] - size) / stride + 1 &&
              out.d[3] == (x.d[3] - size) / stride + 1, "out.shape: expected (N, C, OH, OW)") ||
        check(same_dims(&out, &am, 0, 4), "argmax.shape: expected out's") ||
        check_range(n0, n1, x.d[0]))
        return release(&h, NULL);
    pool_args a = {&x, &out, &am, ka == 'B' ? 1 : 4, size, stride, kx};
    Py_BEGIN_ALLOW_THREADS
    run_parts(pool_forward_part, &a, n0, n1, parts);
    Py_END_ALLOW_THREADS
    return release(&h, done(0));
}

typedef struct {
    const view4 *dout, *am, *out, *dx;
    int abytes, size, stride;
    char kind;
} unpool_args;

static int pool_backward_part(void *p, int n0, int n1, int part)
{
    const unpool_args *a = p;
    (void)part;
    if (a->kind == 'f')
        pool_backward_run_f(a->dout, a->am, a->abytes, a->out, a->dx, a->size, a->stride, n0, n1);
    else
        pool_backward_run_d(a->dout, a->am, a->abytes, a->out, a->dx, a->size, a->stride, n0, n1);
    return 0;
}

static PyObject *py_relu_maxpool_backward(PyObject *self, PyObject *args)
{
    PyObject *go, *ao, *oo, *xo;
    int size, stride, n0, n1, parts;
    held h = {.n = 0};
    view4 dout, am, out, dx;
    char kg, ka, ko, kx;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOiiiii", &go, &ao, &oo, &xo, &size, &stride, &n0, &n1, &parts))
        return NULL;
    if (hold(&h, go, "dout", 0, "fd", &dout, &kg) || hold(&h, ao, "argmax", 0, "Bi", &am, &ka) ||
        hold(&h, oo, "out", 0, "fd", &out, &ko) || hold(&h, xo, "dx", 1, "fd", &dx, &kx) ||
        check(kg == ko && kg == kx, "out, dx: expected dout's dtype") ||
        check(size >= 1 && stride >= 1 && size <= dx.d[2] && size <= dx.d[3], "size, stride: expected 1 <= size <= H, W and stride >= 1") ||
        check(same_dims(&dout, &am, 0, 4) && same_dims(&dout, &out, 0, 4), "argmax.shape, out.shape: expected dout's") ||
        check(same_dims(&dx, &dout, 0, 2) && dout.d[2] == (dx.d[2] - size) / stride + 1 &&
              dout.d[3] == (dx.d[3] - size) / stride + 1, "dx.shape: expected the forward input's") ||
        check_range(n0, n1, dx.d[0]))
        return release(&h, NULL);
    unpool_args a = {&dout, &am, &out, &dx, ka == 'B' ? 1 : 4, size, stride, kg};
    Py_BEGIN_ALLOW_THREADS
    run_parts(pool_backward_part, &a, n0, n1, parts);
    Py_END_ALLOW_THREADS
    return release(&h, done(0));
}

/* A bias (or bias gradient) buffer: None, or F elements of the given kind with any stride. */
static int get_bias(held *h, PyObject *o, char kind, int F, const void **p, ptrdiff_t *s)
{
    *p = NULL;
    *s = 0;
    if (o == Py_None)
        return 0;
    Py_buffer *b = &h->b[h->n];
    if (PyObject_GetBuffer(o, b, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return -1;
    h->n++;
    const char *fmt = b->format ? b->format : "B";
    if (*fmt == '@' || *fmt == '=')
        fmt++;
    if (fmt[0] != kind || fmt[1] != 0 || b->ndim != 1 || b->shape[0] != F || b->strides[0] % b->itemsize)
        return check(0, "b: expected None or F elements of x's dtype");
    *p = b->buf;
    *s = b->strides[0] / b->itemsize;
    return 0;
}

typedef struct {
    const view4 *x, *w, *out;
    const void *b;
    ptrdiff_t bs;
    int stride, pad, relu;
    char kind;
} conv_args;

static int conv_forward_part(void *p, int n0, int n1, int part)
{
    const conv_args *a = p;
    const view4 *w = a->w;
    (void)part;
    if (a->kind == 'f')
        return conv_run_f(a->x, a->pad, a->pad, w->p, w->s, w->d[2], w->d[3], a->b, a->bs, a->out,
                          a->stride, n0, n1, a->relu);
    return conv_run_d(a->x, a->pad, a->pad, w->p, w->s, w->d[2], w->d[3], a->b, a->bs, a->out,
                      a->stride, n0, n1, a->relu);
}

static PyObject *py_conv2d_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *wo, *bo, *oo;
    int stride, pad, n0, n1, relu, parts, rc = 0;
    held h = {.n = 0};
    view4 x, w, out;
    char kx, kw, ko;
    const void *b;
    ptrdiff_t bs;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOiiiipi", &xo, &wo, &bo, &oo, &stride, &pad, &n0, &n1, &relu,
                          &parts))
        return NULL;
    if (hold(&h, xo, "x", 0, "fd", &x, &kx) || hold(&h, wo, "w", 0, "fd", &w, &kw) ||
        hold(&h, oo, "out", 1, "fd", &out, &ko) || check(kx == kw && kx == ko, "w, out: expected x's dtype") ||
        get_bias(&h, bo, kx, w.d[0], &b, &bs) ||
        check(stride >= 1 && pad >= 0, "stride, pad: expected stride >= 1, pad >= 0") ||
        check(w.d[1] == x.d[1] && w.d[2] >= 1 && w.d[3] >= 1 && w.d[2] <= x.d[2] + 2 * pad &&
              w.d[3] <= x.d[3] + 2 * pad, "w.shape: expected (F, C, KH, KW) fitting the padded input") ||
        check(out.d[0] == x.d[0] && out.d[1] == w.d[0] &&
              out.d[2] == (x.d[2] + 2 * pad - w.d[2]) / stride + 1 &&
              out.d[3] == (x.d[3] + 2 * pad - w.d[3]) / stride + 1, "out.shape: expected (N, F, OH, OW)") ||
        check_range(n0, n1, x.d[0]))
        return release(&h, NULL);
    conv_args a = {&x, &w, &out, b, bs, stride, pad, relu, kx};
    Py_BEGIN_ALLOW_THREADS
    rc = run_parts(conv_forward_part, &a, n0, n1, parts);
    Py_END_ALLOW_THREADS
    return release(&h, done(rc));
}

static int conv_backward_input_part(void *p, int n0, int n1, int part)
{
    const conv_args *a = p; /* x: dout, out: dx */
    const view4 *w = a->w;
    (void)part;
    if (a->kind == 'f')
        return dgrad_run_f(a->x, w->p, w->s, w->d[2], w->d[3], a->out, a->stride, a->pad, n0, n1);
    return dgrad_run_d(a->x, w->p, w->s, w->d[2], w->d[3], a->out, a->stride, a->pad, n0, n1);
}

/* w and dx held into h and checked, against dout (of dtype kind), as the input gradient of a
 * stride-s, pad-p convolution takes them; 0, or -1 with the exception set. */
static int hold_dgrad(held *h, const view4 *dout, char kind, PyObject *wo, PyObject *xo,
                      int stride, int pad, view4 *w, view4 *dx)
{
    char kw = 0, kx = 0;
    return hold(h, wo, "w", 0, "fd", w, &kw) || hold(h, xo, "dx", 1, "fd", dx, &kx) ||
           check(kw == kind && kx == kind, "w, dx: expected dout's dtype") ||
           check(stride >= 1 && pad >= 0, "stride, pad: expected stride >= 1, pad >= 0") ||
           check(w->d[1] == dx->d[1] && w->d[0] == dout->d[1] && w->d[2] >= 1 && w->d[3] >= 1 &&
                 w->d[2] <= dx->d[2] + 2 * pad && w->d[3] <= dx->d[3] + 2 * pad, "w.shape: expected (F, C, KH, KW) fitting the padded input") ||
           check(dout->d[0] == dx->d[0] && dout->d[2] == (dx->d[2] + 2 * pad - w->d[2]) / stride + 1 &&
                 dout->d[3] == (dx->d[3] + 2 * pad - w->d[3]) / stride + 1, "dout.shape: expected (N, F, OH, OW)");
}

static PyObject *py_conv2d_backward_input(PyObject *self, PyObject *args)
{
    PyObject *go, *wo, *xo;
    int stride, pad, n0, n1, parts, rc = 0;
    held h = {.n = 0};
    view4 dout, w, dx;
    char kg;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOiiiii", &go, &wo, &xo, &stride, &pad, &n0, &n1, &parts))
        return NULL;
    if (hold(&h, go, "dout", 0, "fd", &dout, &kg) ||
        hold_dgrad(&h, &dout, kg, wo, xo, stride, pad, &w, &dx) || check_range(n0, n1, dx.d[0]))
        return release(&h, NULL);
    conv_args a = {&dout, &w, &dx, NULL, 0, stride, pad, 0, kg};
    Py_BEGIN_ALLOW_THREADS
    rc = run_parts(conv_backward_input_part, &a, n0, n1, parts);
    Py_END_ALLOW_THREADS
    return release(&h, done(rc));
}

/* Part k of the weight gradient sums its images into dw[k], db[k]: part 0 into the caller's
 * buffers, the others into temporaries added to them after, in part order (so the result is
 * what the parts' sums added one after another give, whatever ran them). */
typedef struct {
    const view4 *x, *dout;
    view4 dw[POOL_MAX];
    void *db[POOL_MAX];
    ptrdiff_t dbs;
    int stride, pad;
    char kind;
    int n0, n1; /* by filters: the images every part sums */
} wgrad_args;

static int conv_backward_weight_part(void *p, int n0, int n1, int part)
{
    const wgrad_args *a = p;
    if (a->kind == 'f')
        return wgrad_run_f(a->x, a->dout, a->stride, a->pad, &a->dw[part], a->db[part],
                           part ? 1 : a->dbs, n0, n1, a->dout->d[1]);
    return wgrad_run_d(a->x, a->dout, a->stride, a->pad, &a->dw[part], a->db[part],
                       part ? 1 : a->dbs, n0, n1, a->dout->d[1]);
}

/* Filters f0..f1-1 of a's weight gradient over all its images (by filters: dout, dw and db cut
 * to those filters; the parts write disjoint filters, so nothing is added after). */
static int conv_backward_weight_filters(void *p, int f0, int f1, int part)
{
    const wgrad_args *a = p;
    const size_t sz = a->kind == 'f' ? sizeof(float) : sizeof(double);
    view4 dout = *a->dout, dw = a->dw[0];
    (void)part;
    dout.p = (char *)dout.p + (ptrdiff_t)f0 * dout.s[1] * (ptrdiff_t)sz;
    dout.d[1] = f1 - f0;
    dw.p = (char *)dw.p + (ptrdiff_t)f0 * dw.s[0] * (ptrdiff_t)sz;
    dw.d[0] = f1 - f0;
    void *db = a->db[0] ? (char *)a->db[0] + (ptrdiff_t)f0 * a->dbs * (ptrdiff_t)sz : NULL;
    if (f1 <= f0)  /* more parts than filters */
        return 0;
    if (a->kind == 'f')
        return wgrad_run_f(a->x, &dout, a->stride, a->pad, &dw, db, a->dbs, a->n0, a->n1,
                           a->dout->d[1]);
    return wgrad_run_d(a->x, &dout, a->stride, a->pad, &dw, db, a->dbs, a->n0, a->n1,
                       a->dout->d[1]);
}

#define ADD_PARTS(T)                                                                             \
    for (int k = 1; k < parts; k++) {                                                            \
        const view4 *d = &a->dw[0], *t = &a->dw[k];                                              \
        for (int f = 0; f < d->d[0]; f++)                                                        \
            for (int c = 0; c < d->d[1]; c++)                                                    \
                for (int i = 0; i < d->d[2]; i++)                                                \
                    for (int j = 0; j < d->d[3]; j++)                                            \
                        ((T *)d->p)[f * d->s[0] + c * d->s[1] + i * d->s[2] + j * d->s[3]] +=    \
                            ((const T *)t->p)[f * t->s[0] + c * t->s[1] + i * t->s[2] + j];      \
        for (int f = 0; a->db[0] && f < d->d[0]; f++)                                            \
            ((T *)a->db[0])[f * a->dbs] += ((const T *)a->db[k])[f];                             \
    }

/* The parts of a's weight gradient (part 0 in the caller's buffers): temporaries for the
 * others, run_parts, the sums.  0, or -1 out of memory. */
static int wgrad_parts(wgrad_args *a, int n0, int n1, int parts)
{
    const view4 *dw = &a->dw[0];
    const ptrdiff_t nw = (ptrdiff_t)dw->d[0] * dw->d[1] * dw->d[2] * dw->d[3], nb = dw->d[0];
    const size_t sz = a->kind == 'f' ? sizeof(float) : sizeof(double);
    parts = parts < 1 ? 1 : parts > POOL_MAX ? POOL_MAX : parts;
    char *tmp = parts > 1 ? calloc((size_t)(parts - 1) * (size_t)(nw + nb), sz) : NULL;
    if (parts > 1 && !tmp)
        return -1;
    for (int k = 1; k < parts; k++) {
        view4 *t = &a->dw[k];
        *t = *dw;
        t->p = tmp + (size_t)(k - 1) * (size_t)(nw + nb) * sz;
        t->s[3] = 1;
        t->s[2] = dw->d[3];
        t->s[1] = (ptrdiff_t)dw->d[2] * dw->d[3];
        t->s[0] = (ptrdiff_t)dw->d[1] * t->s[1];
        a->db[k] = (char *)t->p + (size_t)nw * sz;
    }
    int rc = run_parts(conv_backward_weight_part, a, n0, n1, parts);
    if (!rc && a->kind == 'f') {
        ADD_PARTS(float)
    } else if (!rc) {
        ADD_PARTS(double)
    }
    free(tmp);
    return rc;
}
#undef ADD_PARTS

/* The weight gradient and the input gradient side by side: part 0 the first's (by filters,
 * in one part), parts 1.. the second's by images, all of them at once.  At a small batch each
 * part of either pays the weight transforms and copies again; there, one core on each
 * gradient beat both cores on one then the other (see gpucnn/cpu_conv.py). */
typedef struct {
    wgrad_args *w;
    conv_args *dx;
    int px; /* the input gradient's parts */
} both_args;

static int conv_backward_both_part(void *p, int k0, int k1, int part)
{
    const both_args *a = p;
    const int n0 = a->w->n0, n = a->w->n1 - n0, q = part - 1;
    (void)k0;
    (void)k1;
    if (q < 0)
        return conv_backward_weight_filters(a->w, 0, a->w->dout->d[1], part);
    return conv_backward_input_part(a->dx, n0 + (int)((long long)n * q / a->px),
                                    n0 + (int)((long long)n * (q + 1) / a->px), q);
}

static PyObject *py_conv2d_backward_weight(PyObject *self, PyObject *args)
{
    PyObject *xo, *go, *wo, *bo, *fo = NULL, *dxo = NULL;
    int stride, pad, n0, n1, parts, by_filters = 0, rc = 0;
    held h = {.n = 0};
    view4 x, dout, dw, w, dx;
    char kx, kg, kw;
    const void *db;
    ptrdiff_t dbs;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOiiiii|pOO", &xo, &go, &wo, &bo, &stride, &pad, &n0, &n1,
                          &parts, &by_filters, &fo, &dxo))
        return NULL;
    if (hold(&h, xo, "x", 0, "fd", &x, &kx) || hold(&h, go, "dout", 0, "fd", &dout, &kg) ||
        hold(&h, wo, "dw", 1, "fd", &dw, &kw) || check(kx == kg && kx == kw, "dout, dw: expected x's dtype") ||
        get_bias(&h, bo, kx, dw.d[0], &db, &dbs) ||
        check(bo == Py_None || !h.b[h.n - 1].readonly, "db: expected a writable buffer") ||
        check(stride >= 1 && pad >= 0, "stride, pad: expected stride >= 1, pad >= 0") ||
        check(dw.d[0] == dout.d[1] && dw.d[1] == x.d[1] && dw.d[2] >= 1 && dw.d[3] >= 1 &&
              dw.d[2] <= x.d[2] + 2 * pad && dw.d[3] <= x.d[3] + 2 * pad, "dw.shape: expected (F, C, KH, KW) fitting the padded input") ||
        check(dout.d[0] == x.d[0] && dout.d[2] == (x.d[2] + 2 * pad - dw.d[2]) / stride + 1 &&
              dout.d[3] == (x.d[3] + 2 * pad - dw.d[3]) / stride + 1, "dout.shape: expected (N, F, OH, OW)") ||
        check_range(n0, n1, x.d[0]) ||
        (dxo && (check(parts >= 2, "parts: expected 2 or more with w and dx, one for dw") ||
                 hold_dgrad(&h, &dout, kx, fo, dxo, stride, pad, &w, &dx) ||
                 check(same_dims(&dx, &x, 0, 4) && same_dims(&w, &dw, 0, 4),
                       "w, dx: expected x's dtype, dw's and x's shapes"))))
        return release(&h, NULL);
    wgrad_args a = {.x = &x, .dout = &dout, .dbs = dbs, .stride = stride, .pad = pad, .kind = kx,
                    .n0 = n0, .n1 = n1};
    a.dw[0] = dw;
    a.db[0] = (void *)db;
    conv_args d = {&dout, &w, &dx, NULL, 0, stride, pad, 0, kx};
    both_args both = {&a, &d, parts - 1};
    Py_BEGIN_ALLOW_THREADS
    rc = dxo ? run_parts(conv_backward_both_part, &both, 0, parts, parts)
         : by_filters ? run_parts(conv_backward_weight_filters, &a, 0, dw.d[0], parts)
                      : wgrad_parts(&a, n0, n1, parts);
    Py_END_ALLOW_THREADS
    return release(&h, done(rc));
}

/* Whether b holds float32 ('f') or float64 ('d') elements, of *kind where that is set (0:
 * either); sets *kind when so. */
static int float_kind(const Py_buffer *b, char *kind)
{
    const char *fmt = b->format ? b->format : "B";
    fmt += *fmt == '@' || *fmt == '=';
    const int ok = ((fmt[0] == 'f' && b->itemsize == 4) || (fmt[0] == 'd' && b->itemsize == 8)) &&
                   fmt[1] == 0 && (!*kind || fmt[0] == *kind);
    if (ok)
        *kind = fmt[0];
    return ok;
}

/* A C-contiguous buffer of any shape, of kind 'f' or 'd' (kind 0: either, set on return) and,
 * when n >= 0, of n elements.  -1 with an exception set, else 0. */
static int hold_flat(held *h, PyObject *o, const char *name, int writable, char *kind, Py_ssize_t n)
{
    Py_buffer *b = &h->b[h->n];
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    h->n++;
    const char had = *kind;
    if (!float_kind(b, kind)) {
        PyErr_Format(PyExc_TypeError, "%s.format=%s: expected float32 or float64%s", name, b->format,
                     had ? ", the first array's" : "");
        return -1;
    }
    return check(n < 0 || b->len / b->itemsize == n, "expected arrays of one size");
}

static int check_span(Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t n)
{
    return check(0 <= i0 && i0 <= i1 && i1 <= n, "i0, i1: expected 0 <= i0 <= i1 <= size");
}

static PyObject *py_sum_of_squares(PyObject *self, PyObject *args)
{
    PyObject *ao;
    Py_ssize_t i0, i1;
    held h = {.n = 0};
    char ka = 0;
    double total;
    (void)self;
    if (!PyArg_ParseTuple(args, "Onn", &ao, &i0, &i1))
        return NULL;
    if (hold_flat(&h, ao, "a", 0, &ka, -1) || check_span(i0, i1, h.b[0].len / h.b[0].itemsize))
        return release(&h, NULL);
    Py_BEGIN_ALLOW_THREADS
    if (ka == 'f')
        total = K_f->sum_squares((const float *)h.b[0].buf + i0, i1 - i0);
    else
        total = K_d->sum_squares((const double *)h.b[0].buf + i0, i1 - i0);
    Py_END_ALLOW_THREADS
    return release(&h, PyFloat_FromDouble(total));
}

static PyObject *py_sgd_update(PyObject *self, PyObject *args)
{
    PyObject *po, *go, *vo;
    double lr, decay, mu;
    int nesterov;
    Py_ssize_t i0, i1;
    held h = {.n = 0};
    char kp = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOdddpnn", &po, &go, &vo, &lr, &decay, &mu, &nesterov, &i0, &i1))
        return NULL;
    if (hold_flat(&h, po, "p", 1, &kp, -1))
        return release(&h, NULL);
    const Py_ssize_t n = h.b[0].len / h.b[0].itemsize;
    if (hold_flat(&h, go, "g", 0, &kp, n) || (vo != Py_None && hold_flat(&h, vo, "v", 1, &kp, n)) ||
        check_span(i0, i1, n))
        return release(&h, NULL);
    void *p = h.b[0].buf, *v = vo == Py_None ? NULL : h.b[2].buf;
    const void *g = h.b[1].buf;
    Py_BEGIN_ALLOW_THREADS
    /* the scalars in the arrays' type, as NumPy casts Python floats (mu1 rounded once) */
    if (kp == 'f')
        K_f->sgd((float *)p + i0, (const float *)g + i0, v ? (float *)v + i0 : NULL, (float)lr,
                 (float)decay, (float)mu, (float)(1 + mu), nesterov, i1 - i0);
    else
        K_d->sgd((double *)p + i0, (const double *)g + i0, v ? (double *)v + i0 : NULL, lr, decay,
                 mu, 1 + mu, nesterov, i1 - i0);
    Py_END_ALLOW_THREADS
    return release(&h, done(0));
}

/* --- matmul: out (M, N) = a (M, K) @ b (K, N) by BLAS, rows or columns split over the pool --- */

/* A 2-D buffer as a BLAS operand: its first element, whether it is stored transposed (unit
 * stride along rows) and its leading dimension.  0, or 1 (no exception) where BLAS cannot read
 * it as is (no unit stride, negative or overlapping strides): the caller declines. */
typedef struct {
    const char *p;
    ptrdiff_t s[2]; /* element strides */
    ptrdiff_t ld;
    int trans;
} operand;

static int blas_operand(const Py_buffer *b, operand *o)
{
    const ptrdiff_t R = b->shape[0], C = b->shape[1];
    o->p = b->buf;
    for (int k = 0; k < 2; k++) {
        if (b->strides[k] % b->itemsize)
            return 1;
        o->s[k] = b->strides[k] / b->itemsize;
    }
    /* BLAS wants ld >= max(1, the stored row's length); a single row or column may have any */
    if (o->s[1] == 1 || C == 1) {
        o->trans = 0;
        o->ld = R > 1 ? o->s[0] : C;
        return o->ld < C || o->ld < 1;
    }
    if (o->s[0] == 1 || R == 1) {
        o->trans = 1;
        o->ld = C > 1 ? o->s[1] : R;
        return o->ld < R || o->ld < 1;
    }
    return 1;
}

typedef struct {
    operand a, b;
    char *out;
    ptrdiff_t M, N, K, size; /* size: bytes per element */
    int by_rows;
    char kind;
} matmul_args;

/* Rows i0..i1-1 of a and out (by_rows), or columns i0..i1-1 of b and out. */
static int matmul_part(void *p, int i0, int i1, int part)
{
    const matmul_args *m = p;
    const int r = m->by_rows;
    const char *A = m->a.p + (r ? i0 * m->a.s[0] * m->size : 0);
    const char *B = m->b.p + (r ? 0 : i0 * m->b.s[1] * m->size);
    char *C = m->out + (ptrdiff_t)i0 * (r ? m->N : 1) * m->size;
    const ptrdiff_t M = r ? i1 - i0 : m->M, N = r ? m->N : i1 - i0;
    (void)part;
    if (m->kind == 'f')
        gemm_f(m->a.trans, m->b.trans, M, N, m->K, (const float *)A, m->a.ld, (const float *)B,
               m->b.ld, 0, (float *)C, m->N);
    else
        gemm_d(m->a.trans, m->b.trans, M, N, m->K, (const double *)A, m->a.ld,
               (const double *)B, m->b.ld, 0, (double *)C, m->N);
    return 0;
}

/* matmul(a, b, out, by_rows, parts) -> whether it ran: out (M, N) C-contiguous = a (M, K) @
 * b (K, N), one dtype, M, N, K >= 1, split into `parts` by rows of a or columns of b.  False
 * (nothing written) without a BLAS or where an operand's strides are none BLAS reads. */
static PyObject *py_matmul(PyObject *self, PyObject *args)
{
    PyObject *o[3];
    int by_rows, parts;
    held h = {.n = 0};
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOpi", &o[0], &o[1], &o[2], &by_rows, &parts))
        return NULL;
    static const char *const names[] = {"a", "b", "out"};
    char kind = 0;
    for (int k = 0; k < 3; k++) {
        Py_buffer *b = &h.b[h.n];
        const int flags = k == 2 ? PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE
                                 : PyBUF_STRIDES | PyBUF_FORMAT;
        if (PyObject_GetBuffer(o[k], b, flags) < 0)
            return release(&h, NULL);
        h.n++;
        const char had = kind;
        if (!float_kind(b, &kind) || b->ndim != 2) {
            PyErr_Format(PyExc_TypeError, "%s: expected a 2-D float32 or float64 array%s",
                         names[k], had ? " of a's dtype" : "");
            return release(&h, NULL);
        }
    }
    const Py_ssize_t *as = h.b[0].shape, *bs = h.b[1].shape, *os = h.b[2].shape;
    if (check(as[1] == bs[0] && os[0] == as[0] && os[1] == bs[1] && as[0] >= 1 && as[1] >= 1 &&
              bs[1] >= 1 && as[0] <= INT_MAX && bs[1] <= INT_MAX,
              "a, b, out: expected shapes (M, K), (K, N), (M, N), each at least 1"))
        return release(&h, NULL);
    matmul_args m = {.out = h.b[2].buf, .M = as[0], .N = bs[1], .K = as[1],
                     .size = h.b[0].itemsize, .by_rows = by_rows, .kind = kind};
    if (!blas_ready() || blas_operand(&h.b[0], &m.a) || blas_operand(&h.b[1], &m.b))
        return release(&h, Py_NewRef(Py_False));
    Py_BEGIN_ALLOW_THREADS
    run_parts(matmul_part, &m, 0, (int)(by_rows ? m.M : m.N), parts);
    Py_END_ALLOW_THREADS
    return release(&h, Py_NewRef(Py_True));
}

/* use_conv_mode(name): force a mode of mode_names on every convolution ("auto":
 * the cost model's choice per shape), so tests reach every mode; returns the name now in use.
 * "gemm" without a BLAS (use_blas) leaves the direct modes to the cost model. */
static PyObject *py_use_conv_mode(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    int m = 0;
    while (m < N_MODES && strcmp(name, mode_names[m]) != 0)
        m++;
    if (m == N_MODES && strcmp(name, "auto") != 0)
        return PyErr_Format(PyExc_ValueError, "mode=%R: expected 'auto' or a mode of gpucnn.native.CONV_MODES", arg);
    forced_mode = m == N_MODES ? -1 : m;
    return PyUnicode_FromString(forced_mode < 0 ? "auto" : mode_names[forced_mode]);
}

/* use_conv_block(name): force the "narrow" or the "wide" forward block of the direct kernels
 * (where the instruction set has two), or the filters-in-lanes block of 1 to 4 filter vectors
 * ("v1" .. "v4"), so tests reach each ("auto": by cost); returns the name now in use. */
static PyObject *py_use_conv_block(PyObject *module, PyObject *arg)
{
    static const char *const names[N_BLOCKS] = {"narrow", "wide", "v1", "v2", "v3", "v4"};
    (void)module;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    int b = 0;
    while (b < N_BLOCKS && strcmp(name, names[b]) != 0)
        b++;
    if (b == N_BLOCKS && strcmp(name, "auto") != 0)
        return PyErr_Format(PyExc_ValueError,
                            "block=%R: expected 'auto', 'narrow', 'wide' or 'v1' .. 'v4'", arg);
    forced_block = b == N_BLOCKS ? -1 : b;
    return PyUnicode_FromString(forced_block < 0 ? "auto" : names[forced_block]);
}

/* conv_plan(N, C, H, W, F, KH, KW, stride, pad, double) -> (forward mode, weight-gradient
 * mode, (input-gradient mode per phase, ...)) for a batch of N images on one thread. */
static PyObject *py_conv_plan(PyObject *self, PyObject *args)
{
    int N, C, H, W, F, KH, KW, s, p, dbl;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiiiiiiiip", &N, &C, &H, &W, &F, &KH, &KW, &s, &p, &dbl))
        return NULL;
    if (check(N >= 1 && C >= 1 && F >= 1 && s >= 1 && p >= 0 && KH >= 1 && KW >= 1 &&
              KH <= H + 2 * p && KW <= W + 2 * p, "expected positive sizes and a kernel that fits"))
        return NULL;
    const int OH = (H + 2 * p - KH) / s + 1, OW = (W + 2 * p - KW) / s + 1;
    const int vw = dbl ? K_d->vw : K_f->vw, vl = dbl ? K_d->wvw : K_f->wvw;
    const int vww = dbl ? K_d->vww : K_f->vww;
    const int fb = dbl ? K_d->fb : K_f->fb, wfb = dbl ? K_d->wfb : K_f->wfb;
    const int elem = dbl ? 8 : 4, nacc = dbl ? K_d->nacc : K_f->nacc;
    const geom fg = conv_shape(s, KH, KW, OH, OW, vw, vww, vl, C, F, fb, N, elem, nacc);
    const geom wg = conv_shape(s, KH, KW, OH, OW, vl, vl, vl, C, F, wfb, N, elem, 0);
    const char *fwd = gemm_pays(s, KH, KW, C, F, 1) ? "gemm"
                      : wino_pays(s, KH, KW, C, F, OH, OW, vl) ? "winograd"
                      : mode_names[shape_mode(&fg)];
    PyObject *phases = PyList_New(0);
    for (int a = 0; phases && a < s; a++)
        for (int b = 0; b < s; b++) {
            dx_phase d;
            if (!get_dx_phase(a, b, s, p, KH, KW, H, W, &d))
                continue;
            const geom g = conv_shape(1, d.U, d.V, d.m1 - d.m0, d.k1 - d.k0, vw, vww, vl, F, C, fb,
                                      N, elem, nacc);
            const int gemm = gemm_pays(1, d.U, d.V, F, C, s == 1);
            const int wino = !gemm && wino_pays(1, d.U, d.V, F, C, d.m1 - d.m0, d.k1 - d.k0, vl);
            PyObject *name = PyUnicode_FromString(gemm ? "gemm" : wino ? "winograd"
                                                                     : mode_names[shape_mode(&g)]);
            if (!name || PyList_Append(phases, name) < 0)
                Py_CLEAR(phases);
            Py_XDECREF(name);
        }
    if (!phases)
        return NULL;
    PyObject *t = PyList_AsTuple(phases);
    Py_DECREF(phases);
    const int wfv = wgrad_filters_v(&fg, OH * OW, C * KH * KW, F, vl, nacc);
    const char *wgrad = wino_wgrad_pays(s, KH, KW, C, F, OH, OW, vl) ? "winograd"
                        : wfv ? mode_names[MODE_FILTERS] : mode_names[shape_mode(&wg)];
    return t ? Py_BuildValue("ssN", fwd, wgrad, t) : NULL;
}

/* use_blas(sgemm, dgemm, ilp64): the addresses of cblas_sgemm and cblas_dgemm (0, 0: none) and
 * whether their integers are 64-bit (blas.h).  The caller vouches for the addresses. */
static PyObject *py_use_blas(PyObject *self, PyObject *args)
{
    unsigned long long sg, dg;
    int ilp64;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKp", &sg, &dg, &ilp64))
        return NULL;
    blas_sgemm = (void *)(uintptr_t)sg;
    blas_dgemm = (void *)(uintptr_t)dg;
    blas_ilp64 = ilp64;
    return PyBool_FromLong(blas_ready());
}

#include "fused_ops.h" /* batch norm, the elementwise relu passes */

/* Instruction sets, best first, and whether this CPU has them. */
static const char *const isa_names[] = {"avx512f", "avx2", "baseline"};

static int isa_supported(int k)
{
#ifdef X86_DISPATCH
    __builtin_cpu_init();
    if (k == 0)
        return __builtin_cpu_supports("avx512f");
    if (k == 1)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return k == 2;
}

static void use_kernels(int k)
{
#ifdef X86_DISPATCH
    const kern_f *const kf[] = {&kern_f_avx512, &kern_f_avx2, &kern_f_base};
    const kern_d *const kd[] = {&kern_d_avx512, &kern_d_avx2, &kern_d_base};
    K_f = kf[k];
    K_d = kd[k];
    const int narrow = k == 0 && isa_supported(1) ? 1 : k;
    K_narrow_f = kf[narrow];
    K_narrow_d = kd[narrow];
#else
    (void)k;
    K_f = K_narrow_f = &kern_f_base;
    K_d = K_narrow_d = &kern_d_base;
#endif
    fused_ops_use(k);
}

/* Uses the best kernels this CPU supports at or below isa_names[cap]; sets module.isa. */
static int set_isa(PyObject *module, int cap)
{
    while (!isa_supported(cap))
        cap++;
    use_kernels(cap);
    return PyModule_AddStringConstant(module, "isa", isa_names[cap]);
}

/* use_isa(name): cap the instruction set (so tests reach the AVX2 and baseline kernels on
 * AVX-512 machines); returns the one now in use. */
static PyObject *py_use_isa(PyObject *module, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    int cap = 0;
    while (cap < 3 && strcmp(name, isa_names[cap]) != 0)
        cap++;
    if (cap == 3)
        return PyErr_Format(PyExc_ValueError, "isa=%R: expected 'avx512f', 'avx2' or 'baseline'", arg);
    if (set_isa(module, cap) < 0)
        return NULL;
    return PyObject_GetAttrString(module, "isa");
}

static PyMethodDef methods[] = {
    {"relu_maxpool_forward", py_relu_maxpool_forward, METH_VARARGS,
     "relu_maxpool_forward(x, out, argmax, size, stride, n0, n1, parts)"},
    {"relu_maxpool_backward", py_relu_maxpool_backward, METH_VARARGS,
     "relu_maxpool_backward(dout, argmax, out, dx, size, stride, n0, n1, parts)"},
    {"conv2d_forward", py_conv2d_forward, METH_VARARGS,
     "conv2d_forward(x, w, b_or_None, out, stride, pad, n0, n1, relu, parts)"},
    {"conv2d_backward_input", py_conv2d_backward_input, METH_VARARGS,
     "conv2d_backward_input(dout, w, dx, stride, pad, n0, n1, parts)"},
    {"conv2d_backward_weight", py_conv2d_backward_weight, METH_VARARGS,
     "conv2d_backward_weight(x, dout, dw, db_or_None, stride, pad, n0, n1, parts[, by_filters[, w, dx]])"},
    {"sum_of_squares", py_sum_of_squares, METH_VARARGS,
     "sum_of_squares(a, i0, i1) -> sum of a.flat[i0:i1]**2 as a float"},
    {"matmul", py_matmul, METH_VARARGS,
     "matmul(a, b, out, by_rows, parts) -> whether BLAS ran it (out = a @ b)"},
    {"sgd_update", py_sgd_update, METH_VARARGS,
     "sgd_update(p, g, v_or_None, lr, decay, momentum, nesterov, i0, i1)"},
    FUSED_OPS_METHODS
    {"use_isa", py_use_isa, METH_O, "use_isa(name) -> the instruction set now in use"},
    {"use_conv_mode", py_use_conv_mode, METH_O, "use_conv_mode(name) -> the convolution mode now forced"},
    {"use_conv_block", py_use_conv_block, METH_O,
     "use_conv_block(name) -> the forward block now forced"},
    {"use_blas", py_use_blas, METH_VARARGS,
     "use_blas(sgemm_address, dgemm_address, ilp64) -> whether the GEMM path is available"},
    {"conv_plan", py_conv_plan, METH_VARARGS,
     "conv_plan(N, C, H, W, F, KH, KW, stride, pad, double) -> (forward, weight, input phases) modes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gpucnn._native",
    "Native CPU kernels for gpucnn; use them through gpucnn.native.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && set_isa(m, 0) < 0)
        Py_CLEAR(m);
    return m;
}
