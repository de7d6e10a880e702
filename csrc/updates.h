/* Elementwise kernels of the training step's last stage (the L2 penalty and the optimizer
 * update), included by kernels.h once per (element type, instruction set): the same FN, VEC,
 * TGT and VL.  NumPy spent three weight-sized passes and a temporary on each of
 * "g += reg * W" and "p -= lr * g"; at (a) batch 50 (4.1M weights) they took 5.4 and 3.6 ms
 * of a 27 ms step.  These read each array once. */

/* sum of a[i]**2 for i < n, in double: VL-lane partial sums in T over blocks of SQ_BLOCK
 * elements (each lane sums SQ_BLOCK / (4*VL) squares, error ~1e-7 relative in float), the
 * block sums in double, as gpucnn.cpu.sum_of_squares does. */
#define SQ_BLOCK 2048
TGT static double FN(sum_squares)(const T *a, ptrdiff_t n)
{
    double total = 0;
    ptrdiff_t i = 0;
    while (i + 4 * VL <= n) {
        VEC s[4] = {FN(splat)(0), FN(splat)(0), FN(splat)(0), FN(splat)(0)};
        const ptrdiff_t end = n - i < SQ_BLOCK ? n : i + SQ_BLOCK;
        for (; i + 4 * VL <= end; i += 4 * VL)
            UNROLL for (int u = 0; u < 4; u++) {
                const VEC v = FN(load)(a + i + u * VL);
                s[u] += v * v;
            }
        const VEC sum = (s[0] + s[1]) + (s[2] + s[3]);
        T lanes[VL];
        memcpy(lanes, &sum, sizeof lanes);
        for (int k = 0; k < VL; k++)
            total += lanes[k];
    }
    for (; i < n; i++)
        total += (double)a[i] * a[i];
    return total;
}
#undef SQ_BLOCK

/* The SGD update of gpucnn.optim in one pass, for i < n, with the L2 gradient folded in:
 * d = g + decay * p (just g when decay is 0), then p -= lr * d; with momentum mu,
 * v = mu * v - lr * d and p += v; nesterov: p -= mu * v_old, then p += mu1 * v (mu1 = 1 + mu).
 * NumPy's order of operations and roundings (no fused multiply-add: memory-bound anyway), so
 * the result equals gpucnn.cpu's bit for bit.  y += a * x is the case p = y, g = x, lr = -a,
 * no decay, no momentum. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
TGT static void FN(sgd)(T *restrict p, const T *restrict g, T *restrict v, T lr, T decay, T mu,
                        T mu1, int nesterov, ptrdiff_t n)
{
#ifdef __clang__
#pragma clang fp contract(off)
#endif
    if (!v && decay == 0) {
        for (ptrdiff_t i = 0; i < n; i++)
            p[i] = p[i] - lr * g[i];
    } else if (!v) {
        for (ptrdiff_t i = 0; i < n; i++)
            p[i] = p[i] - lr * (g[i] + decay * p[i]);
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            const T d = decay == 0 ? g[i] : g[i] + decay * p[i];
            T pi = p[i], vi = v[i];
            if (nesterov)
                pi = pi - mu * vi;
            vi = vi * mu - lr * d;
            p[i] = nesterov ? pi + mu1 * vi : pi + vi;
            v[i] = vi;
        }
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
