/* Batch norm (forward and backward, optionally ending in a ReLU) and the elementwise ReLU passes
 * (relu, its backward, a residual sum then relu), included once by native.c after its argument
 * helpers.  Kernels per (element type, instruction set) in batchnorm.h and eltwise.h
 * (instantiated through batchnorm_isa.h), the channel loops in batchnorm_run.h; the Python entry points below check every buffer (shapes,
 * dtypes, ranges) and take a channel range [c0, c1) or an element range [i0, i1), so
 * gpucnn.cpu splits the work over its threads.  gpucnn/native.py documents the semantics. */
#include <math.h>

#define DEFINE_BNK(T, name)                                                                      \
    typedef struct {                                                                             \
        void (*sums)(const T *, ptrdiff_t, ptrdiff_t, int, int, int, T, double *);               \
        void (*apply)(const T *, ptrdiff_t, ptrdiff_t, T *, ptrdiff_t, ptrdiff_t, int, int, int, \
                      T, T, T, int);                                                             \
        void (*dsums)(const T *, ptrdiff_t, ptrdiff_t, const T *, ptrdiff_t, ptrdiff_t, T *,     \
                      ptrdiff_t, ptrdiff_t, int, int, int, T, T, T, int, T, double *);           \
        void (*dx)(const T *, ptrdiff_t, ptrdiff_t, const T *, ptrdiff_t, ptrdiff_t, T *,        \
                   ptrdiff_t, ptrdiff_t, int, int, int, T, T, T, int, T, T, T);                  \
        void (*relu_forward)(const T *, T *, ptrdiff_t);                                         \
        void (*relu_backward)(const T *, const T *, T *, ptrdiff_t);                             \
        void (*add_relu)(const T *, const T *, T *, ptrdiff_t);                                  \
    } name;
DEFINE_BNK(float, bnk_f)
DEFINE_BNK(double, bnk_d)

/* batchnorm_isa.h instantiates batchnorm.h for float and double with ISA's TGT and lanes */
#define ISA base
#define TGT
#define VL_F BASE_VL_F
#define VL_D BASE_VL_D
#include "batchnorm_isa.h"
#ifdef X86_DISPATCH
#define ISA avx2
#define TGT TGT_AVX2
#define VL_F 8
#define VL_D 4
#include "batchnorm_isa.h"
#define ISA avx512
#define TGT TGT_AVX512
#define VL_F 16
#define VL_D 8
#include "batchnorm_isa.h"
#endif

/* One channel's (N, H, W) values as runs (see batchnorm.h), the same for every array of a call:
 * no x ni runs of len elements, array k's run (o, i) at o*so[k] + i*si[k].  Rows merge into
 * planes where every array's rows are contiguous, planes into one run where every array's
 * images are (a (C, N, H, W) layout). */
typedef struct {
    int no, ni, len;
    ptrdiff_t so[3], si[3];
} bn_runs;

static bn_runs make_runs(const view4 *const *v, int nv)
{
    const int N = v[0]->d[0], H = v[0]->d[2], W = v[0]->d[3];
    int rows = 1, planes = 1;
    for (int k = 0; k < nv; k++) {
        rows &= H == 1 || v[k]->s[2] == W;
        planes &= N == 1 || v[k]->s[0] == (ptrdiff_t)H * W;
    }
    bn_runs r = {N, H, W, {0, 0, 0}, {0, 0, 0}};
    if (rows && planes) {
        r.no = r.ni = 1;
        r.len = N * H * W;
        return r;
    }
    if (rows) {
        r.ni = 1;
        r.len = H * W;
    }
    for (int k = 0; k < nv; k++) {
        r.so[k] = v[k]->s[0];
        r.si[k] = rows ? 0 : v[k]->s[2];
    }
    return r;
}

#define T float
#define TS f
#define BNK_T bnk_f
#include "batchnorm_run.h"
#undef T
#undef TS
#undef BNK_T
#define T double
#define TS d
#define BNK_T bnk_d
#include "batchnorm_run.h"
#undef T
#undef TS
#undef BNK_T

/* Uses the kernels of instruction set k (0 AVX-512, 1 AVX2, 2 baseline; see use_kernels). */
static void fused_ops_use(int k)
{
#ifdef X86_DISPATCH
    const bnk_f *const kf[] = {&bn_kern_f_avx512, &bn_kern_f_avx2, &bn_kern_f_base};
    const bnk_d *const kd[] = {&bn_kern_d_avx512, &bn_kern_d_avx2, &bn_kern_d_base};
    BNK_f = kf[k];
    BNK_d = kd[k];
#else
    (void)k;
    BNK_f = &bn_kern_f_base;
    BNK_d = &bn_kern_d_base;
#endif
}

/* --- argument handling ------------------------------------------------------------------- */

/* A 1-D buffer of n elements of the given kind ('f' or 'd'), any stride; None allowed (NULL)
 * when optional.  -1 with an exception set, else 0. */
static int hold_channels(held *h, PyObject *o, const char *name, int writable, int optional,
                         char kind, int n, void **p, ptrdiff_t *s)
{
    *p = NULL;
    *s = 0;
    if (o == Py_None) {
        if (!optional)
            PyErr_Format(PyExc_ValueError, "%s=None: expected %d elements of x's dtype", name, n);
        return optional ? 0 : -1;
    }
    Py_buffer *b = &h->b[h->n];
    if (PyObject_GetBuffer(o, b, PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    h->n++;
    const char *fmt = b->format ? b->format : "B";
    if (*fmt == '@' || *fmt == '=')
        fmt++;
    if (fmt[0] != kind || fmt[1] != 0 || b->ndim != 1 || b->shape[0] != n || b->strides[0] % b->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %s%d elements of x's dtype", name,
                     optional ? "None or " : "", n);
        return -1;
    }
    *p = b->buf;
    *s = b->strides[0] / b->itemsize;
    return 0;
}

/* v has x's shape and unit stride along W (or W == 1). */
static int check_like_x(const view4 *v, const view4 *x, const char *what)
{
    return check(same_dims(v, x, 0, 4) && (v->s[3] == 1 || v->d[3] == 1), what);
}

static int check_channels(int c0, int c1, int C)
{
    return check(0 <= c0 && c0 <= c1 && c1 <= C, "c0, c1: expected 0 <= c0 <= c1 <= C");
}

/* --- module functions -------------------------------------------------------------------- */

typedef struct {
    const view4 *x, *out, *dout, *dx;
    void *g, *b, *rm, *rv, *st;
    const void *cst;
    ptrdiff_t gs, bs, rms, rvs;
    int train, relu;
    double momentum, eps;
    char kind;
} bn_args;

static int bn_forward_part(void *p, int c0, int c1, int part)
{
    const bn_args *a = p;
    (void)part;
    if (a->kind == 'f')
        bn_forward_run_f(a->x, a->out, a->g, a->gs, a->b, a->bs, a->rm, a->rms, a->rv, a->rvs,
                         a->st, a->train, a->momentum, a->eps, a->relu, c0, c1);
    else
        bn_forward_run_d(a->x, a->out, a->g, a->gs, a->b, a->bs, a->rm, a->rms, a->rv, a->rvs,
                         a->st, a->train, a->momentum, a->eps, a->relu, c0, c1);
    return 0;
}

static int bn_backward_part(void *p, int c0, int c1, int part)
{
    const bn_args *a = p; /* g, b: dgamma, dbeta */
    (void)part;
    if (a->kind == 'f')
        bn_backward_run_f(a->dout, a->x, a->dx, a->cst, a->g, a->gs, a->b, a->bs, a->train,
                          a->relu, c0, c1);
    else
        bn_backward_run_d(a->dout, a->x, a->dx, a->cst, a->g, a->gs, a->b, a->bs, a->train,
                          a->relu, c0, c1);
    return 0;
}

static PyObject *py_batchnorm_forward(PyObject *self, PyObject *args)
{
    PyObject *xo, *oo, *go, *bo, *mo, *vo, *so;
    int train, relu, c0, c1, parts;
    double momentum, eps;
    held h = {.n = 0};
    view4 x, out;
    char kx, ko;
    void *g, *b, *rm, *rv;
    ptrdiff_t gs, bs, rms, rvs;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOOOpddpiii", &xo, &oo, &go, &bo, &mo, &vo, &so, &train,
                          &momentum, &eps, &relu, &c0, &c1, &parts))
        return NULL;
    if (hold(&h, xo, "x", 0, "fd", &x, &kx) || hold(&h, oo, "out", 1, "fd", &out, &ko) ||
        check(kx == ko, "out: expected x's dtype") ||
        check(x.s[3] == 1 || x.d[3] == 1, "x.strides: expected unit stride along W") ||
        check_like_x(&out, &x, "out: expected x's shape, unit stride along W"))
        return release(&h, NULL);
    const int C = x.d[1];
    char ks = kx;
    if (hold_channels(&h, go, "gamma", 0, 0, kx, C, &g, &gs) ||
        hold_channels(&h, bo, "beta", 0, 0, kx, C, &b, &bs) ||
        hold_channels(&h, mo, "running_mean", 1, train, kx, C, &rm, &rms) ||
        hold_channels(&h, vo, "running_var", 1, train, kx, C, &rv, &rvs) ||
        check((rm == NULL) == (rv == NULL), "running_mean, running_var: expected both or neither") ||
        hold_flat(&h, so, "stats", 1, &ks, 4 * (Py_ssize_t)C) ||
        check(!train || (double)x.d[0] * x.d[2] * x.d[3] > 1, "x: expected more than 1 value per channel when training") ||
        check(eps > 0 && momentum >= 0 && momentum <= 1, "eps, momentum: expected eps > 0, 0 <= momentum <= 1") ||
        check_channels(c0, c1, C))
        return release(&h, NULL);
    void *st = h.b[h.n - 1].buf;
    bn_args a = {.x = &x, .out = &out, .g = g, .b = b, .rm = rm, .rv = rv, .st = st, .gs = gs,
                 .bs = bs, .rms = rms, .rvs = rvs, .train = train, .relu = relu,
                 .momentum = momentum, .eps = eps, .kind = kx};
    Py_BEGIN_ALLOW_THREADS
    run_parts(bn_forward_part, &a, c0, c1, parts);
    Py_END_ALLOW_THREADS
    return release(&h, done(0));
}

static PyObject *py_batchnorm_backward(PyObject *self, PyObject *args)
{
    PyObject *go, *xo, *so, *dxo, *dgo, *dbo;
    int train, relu, c0, c1, parts;
    held h = {.n = 0};
    view4 dout, x, dx;
    char kg, kx, kd;
    void *dg, *db;
    ptrdiff_t dgs, dbs;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOOppiii", &go, &xo, &so, &dxo, &dgo, &dbo, &train, &relu,
                          &c0, &c1, &parts))
        return NULL;
    if (hold(&h, xo, "x", 0, "fd", &x, &kx) || hold(&h, go, "dout", 0, "fd", &dout, &kg) ||
        check(kg == kx, "dout: expected x's dtype") ||
        check(x.s[3] == 1 || x.d[3] == 1, "x.strides: expected unit stride along W") ||
        check_like_x(&dout, &x, "dout: expected x's shape, unit stride along W") ||
        (dxo != Py_None && (hold(&h, dxo, "dx", 1, "fd", &dx, &kd) ||
                            check(kd == kx, "dx: expected x's dtype") ||
                            check_like_x(&dx, &x, "dx: expected x's shape, unit stride along W"))))
        return release(&h, NULL);
    const int C = x.d[1];
    char ks = kx;
    if (hold_flat(&h, so, "stats", 0, &ks, 4 * (Py_ssize_t)C))
        return release(&h, NULL);
    const void *st = h.b[h.n - 1].buf;
    if (hold_channels(&h, dgo, "dgamma", 1, 0, kx, C, &dg, &dgs) ||
        hold_channels(&h, dbo, "dbeta", 1, 0, kx, C, &db, &dbs) || check_channels(c0, c1, C))
        return release(&h, NULL);
    const view4 *dxp = dxo == Py_None ? NULL : &dx;
    bn_args a = {.x = &x, .dout = &dout, .dx = dxp, .cst = st, .g = dg, .b = db, .gs = dgs,
                 .bs = dbs, .train = train, .relu = relu, .kind = kx};
    Py_BEGIN_ALLOW_THREADS
    run_parts(bn_backward_part, &a, c0, c1, parts);
    Py_END_ALLOW_THREADS
    return release(&h, done(0));
}

/* The elementwise ops: relu_forward(x, out, i0, i1, parts), relu_backward(dout, out, dx, i0,
 * i1, parts) and add_relu(a, b, out, i0, i1, parts) over elements i0..i1-1 of C-contiguous
 * arrays of one size and dtype, the last one written; the span cut into `parts` pieces on the
 * pool's threads, in blocks of ELTWISE_BLOCK elements (an int range however large the arrays;
 * no two threads write one cache line). */
enum { RELU_FORWARD, RELU_BACKWARD, ADD_RELU };
#define ELTWISE_BLOCK 4096

typedef struct {
    const char *a, *b;
    char *w;
    ptrdiff_t cnt;
    size_t sz;
    int op;
    char kind;
} eltwise_args;

static int eltwise_part(void *p, int k0, int k1, int part)
{
    const eltwise_args *e = p;
    const ptrdiff_t i0 = (ptrdiff_t)k0 * ELTWISE_BLOCK, end = (ptrdiff_t)k1 * ELTWISE_BLOCK;
    const ptrdiff_t i1 = end < e->cnt ? end : e->cnt;
    const void *a = e->a + e->sz * (size_t)i0, *b = e->b + e->sz * (size_t)i0;
    void *w = e->w + e->sz * (size_t)i0;
    (void)part;
    if (i1 <= i0)
        return 0;
    if (e->op == RELU_FORWARD && e->kind == 'f')
        BNK_f->relu_forward(a, w, i1 - i0);
    else if (e->op == RELU_FORWARD)
        BNK_d->relu_forward(a, w, i1 - i0);
    else if (e->op == RELU_BACKWARD && e->kind == 'f')
        BNK_f->relu_backward(a, b, w, i1 - i0);
    else if (e->op == RELU_BACKWARD)
        BNK_d->relu_backward(a, b, w, i1 - i0);
    else if (e->kind == 'f')
        BNK_f->add_relu(a, b, w, i1 - i0);
    else
        BNK_d->add_relu(a, b, w, i1 - i0);
    return 0;
}

static PyObject *eltwise(PyObject *args, int op)
{
    static const char *const names[][3] = {{"x", "out"}, {"dout", "out", "dx"}, {"a", "b", "out"}};
    const int nin = op == RELU_FORWARD ? 1 : 2;
    PyObject *o[3];
    Py_ssize_t i0, i1;
    int parts;
    held h = {.n = 0};
    char kind = 0;
    const int ok = nin == 1
                       ? PyArg_ParseTuple(args, "OOnni", &o[0], &o[1], &i0, &i1, &parts)
                       : PyArg_ParseTuple(args, "OOOnni", &o[0], &o[1], &o[2], &i0, &i1, &parts);
    if (!ok || hold_flat(&h, o[0], names[op][0], 0, &kind, -1))
        return release(&h, NULL);
    const Py_ssize_t n = h.b[0].len / h.b[0].itemsize;
    for (int k = 1; k <= nin; k++)
        if (hold_flat(&h, o[k], names[op][k], k == nin, &kind, n))
            return release(&h, NULL);
    if (check_span(i0, i1, n))
        return release(&h, NULL);
    const size_t sz = kind == 'f' ? sizeof(float) : sizeof(double);
    const eltwise_args e = {(const char *)h.b[0].buf + sz * (size_t)i0,
                            (const char *)h.b[1].buf + sz * (size_t)i0,
                            (char *)h.b[nin].buf + sz * (size_t)i0, i1 - i0, sz, op, kind};
    const int blocks = (int)((e.cnt + ELTWISE_BLOCK - 1) / ELTWISE_BLOCK);
    Py_BEGIN_ALLOW_THREADS
    run_parts(eltwise_part, (void *)&e, 0, blocks, parts < blocks ? parts : blocks);
    Py_END_ALLOW_THREADS
    return release(&h, done(0));
}

static PyObject *py_relu_forward(PyObject *self, PyObject *args)
{
    (void)self;
    return eltwise(args, RELU_FORWARD);
}

static PyObject *py_relu_backward(PyObject *self, PyObject *args)
{
    (void)self;
    return eltwise(args, RELU_BACKWARD);
}

static PyObject *py_add_relu(PyObject *self, PyObject *args)
{
    (void)self;
    return eltwise(args, ADD_RELU);
}

#define FUSED_OPS_METHODS                                                                        \
    {"batchnorm_forward", py_batchnorm_forward, METH_VARARGS,                                    \
     "batchnorm_forward(x, out, gamma, beta, running_mean, running_var, stats, train, momentum, " \
     "eps, relu, c0, c1, parts)"},                                                               \
    {"batchnorm_backward", py_batchnorm_backward, METH_VARARGS,                                  \
     "batchnorm_backward(dout, x, stats, dx_or_None, dgamma, dbeta, train, relu, c0, c1, parts)"}, \
    {"relu_forward", py_relu_forward, METH_VARARGS, "relu_forward(x, out, i0, i1, parts)"},      \
    {"relu_backward", py_relu_backward, METH_VARARGS,                                            \
     "relu_backward(dout, out, dx, i0, i1, parts)"},                                             \
    {"add_relu", py_add_relu, METH_VARARGS, "add_relu(a, b, out, i0, i1, parts)"},
