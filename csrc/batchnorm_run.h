/* Batch norm over a channel range, included by fused_ops.h once per element type: T, TS (name
 * suffix f or d) and BNK_T (its kernel table type).  Per channel, the training forward reads x
 * twice (the sums, then out = (x - mean) * a + b) and the backward reads dout and x twice (the
 * sums, then dx); one channel of a (64, 16, 32, 32) batch is 256 KB, so the second read comes
 * from L2.  Per-channel arithmetic in double, stored in T. */
#define BR_CAT_(a, b) a##_##b
#define BR_CAT(a, b) BR_CAT_(a, b)
#define BR(name) BR_CAT(name, TS)

static const BNK_T *BR(BNK);

/* Channels c0..c1-1 of x (N, C, H, W) -> out, with gamma, beta (element strides gs, bs).
 * Training: batch statistics, and running_mean/var (NULL: untracked) updated in place as
 * PyTorch does (the variance unbiased); evaluation: the running statistics normalise.
 * st (4, C) receives per channel the mean, 1/sqrt(var + eps), a = gamma/sqrt(var + eps) and b =
 * beta as used: the backward's inputs. */
static void BR(bn_forward_run)(const view4 *x, const view4 *out, const T *gamma, ptrdiff_t gs,
                               const T *beta, ptrdiff_t bs, T *rm, ptrdiff_t rms, T *rv,
                               ptrdiff_t rvs, T *st, int train, double momentum, double eps,
                               int relu, int c0, int c1)
{
    const view4 *vs[2] = {x, out};
    const bn_runs r = make_runs(vs, 2);
    const int C = x->d[1];
    const double m = (double)x->d[0] * x->d[2] * x->d[3];
    for (int c = c0; c < c1; c++) {
        const T *xc = (const T *)x->p + c * x->s[1];
        double mean, var;
        if (train) {
            double s[2] = {0, 0};
            BR(BNK)->sums(xc, r.so[0], r.si[0], r.no, r.ni, r.len, xc[0], s);
            mean = xc[0] + s[0] / m;
            var = (s[1] - s[0] * s[0] / m) / m;
            if (var < 0)  /* rounding; NaN stays */
                var = 0;
            if (rm) {
                rm[c * rms] = (T)((1 - momentum) * rm[c * rms] + momentum * mean);
                rv[c * rvs] = (T)((1 - momentum) * rv[c * rvs] + momentum * var * m / (m - 1));
            }
        } else {
            mean = rm[c * rms];
            var = rv[c * rvs];
        }
        const double inv = 1 / sqrt(var + eps);
        const T mt = (T)mean, at = (T)(gamma[c * gs] * inv), bt = beta[c * bs];
        st[c] = mt;
        st[C + c] = (T)inv;
        st[2 * C + c] = at;
        st[3 * C + c] = bt;
        BR(BNK)->apply(xc, r.so[0], r.si[0], (T *)out->p + c * out->s[1], r.so[1], r.si[1], r.no,
                       r.ni, r.len, mt, at, bt, relu);
    }
}

/* The backward of channels c0..c1-1: dgamma, dbeta (element strides dgs, dbs) and, when dx is
 * not NULL, dx; st as the forward left it; relu: the forward ended in a ReLU, whose mask is
 * recomputed from x (the same arithmetic, so the same bits). */
static void BR(bn_backward_run)(const view4 *dout, const view4 *x, const view4 *dx, const T *st,
                                T *dgamma, ptrdiff_t dgs, T *dbeta, ptrdiff_t dbs, int train,
                                int relu, int c0, int c1)
{
    const view4 *vs[3] = {dout, x, dx};
    const bn_runs r = make_runs(vs, dx ? 3 : 2);
    const int C = x->d[1];
    const double m = (double)x->d[0] * x->d[2] * x->d[3];
    for (int c = c0; c < c1; c++) {
        const T mt = st[c], it = st[C + c], at = st[2 * C + c], bt = st[3 * C + c];
        const T *d = (const T *)dout->p + c * dout->s[1], *xc = (const T *)x->p + c * x->s[1];
        T *w = dx ? (T *)dx->p + c * dx->s[1] : NULL;
        double s[2] = {0, 0};
        /* evaluation: dx = g * a in the same pass (the statistics are constants) */
        BR(BNK)->dsums(d, r.so[0], r.si[0], xc, r.so[1], r.si[1], train ? NULL : w, r.so[2],
                       r.si[2], r.no, r.ni, r.len, mt, at, bt, relu, at, s);
        const double db = s[0], dg = s[1] * it;
        dbeta[c * dbs] = (T)db;
        dgamma[c * dgs] = (T)dg;
        if (train && w)
            BR(BNK)->dx(d, r.so[0], r.si[0], xc, r.so[1], r.si[1], w, r.so[2], r.si[2], r.no, r.ni,
                        r.len, mt, at, bt, relu, at, (T)(at * db / m), (T)(at * (double)it * dg / m));
    }
}

#undef BR
#undef BR_CAT
#undef BR_CAT_
