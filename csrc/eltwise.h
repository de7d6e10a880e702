/* Elementwise ReLU passes over n contiguous elements, included by batchnorm.h once per (element
 * type, instruction set) with its macros.  NumPy's relu_backward, dout * (out > 0), is three
 * passes (a bool temporary, a cast, the multiply) on one core; a residual block's add then
 * relu two; each of these is one pass, split over the worker threads by the caller.  Results
 * equal gpucnn.cpu's NumPy expressions bit for bit (NaN kept, -0.0 -> +0.0 as np.maximum). */

/* out = relu(x) */
TGT static void BN(relu_forward)(const T *restrict x, T *restrict out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = BN(relu)(x[i]);
}

/* dx = dout * (out > 0): a multiply, so inf and NaN in dout propagate as in NumPy */
TGT static void BN(relu_backward)(const T *restrict dout, const T *restrict out, T *restrict dx,
                                  ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        dx[i] = dout[i] * (out[i] > 0 ? (T)1 : (T)0);
}

/* out = relu(a + b): a residual block's sum and the ReLU after it */
TGT static void BN(add_relu)(const T *restrict a, const T *restrict b, T *restrict out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = BN(relu)(a[i] + b[i]);
}
