/* The BLAS matrix product the convolution's im2col + GEMM path (conv_gemm.h) calls, included
 * once by native.c.
 *
 * The extension links no BLAS: gpucnn/native.py hands it the address of cblas_sgemm and
 * cblas_dgemm of the OpenBLAS NumPy already loaded (use_blas), with their integer width
 * (NumPy's wheels ship ILP64 OpenBLAS: 64-bit M, N, K and leading dimensions).  Until then, or
 * where NumPy has another BLAS, blas_ready() is 0 and every convolution runs direct.
 *
 * The caller keeps OpenBLAS at one thread around the calls (gpucnn.cpu_runtime.one_blas_thread):
 * each of the extension's worker threads runs its own product on its own images, as NumPy's
 * matmul does when called from several Python threads.
 */
enum { BLAS_ROW_MAJOR = 101, BLAS_NO_TRANS = 111, BLAS_TRANS = 112 };  /* cblas.h's values */

typedef void (*gemm64_f)(int, int, int, int64_t, int64_t, int64_t, float, const float *, int64_t,
                         const float *, int64_t, float, float *, int64_t);
typedef void (*gemm64_d)(int, int, int, int64_t, int64_t, int64_t, double, const double *,
                         int64_t, const double *, int64_t, double, double *, int64_t);
typedef void (*gemm32_f)(int, int, int, int32_t, int32_t, int32_t, float, const float *, int32_t,
                         const float *, int32_t, float, float *, int32_t);
typedef void (*gemm32_d)(int, int, int, int32_t, int32_t, int32_t, double, const double *,
                         int32_t, const double *, int32_t, double, double *, int32_t);

static void *blas_sgemm, *blas_dgemm;
static int blas_ilp64;

static int blas_ready(void) { return blas_sgemm && blas_dgemm; }

/* C (M x N) = alpha * op(A) (M x K) @ op(B) (K x N) + beta * C, row-major; ta, tb: transpose A,
 * B.  The leading dimensions are row pitches in elements. */
static void gemm_f(int ta, int tb, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A,
                   ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc)
{
    const int a = ta ? BLAS_TRANS : BLAS_NO_TRANS, b = tb ? BLAS_TRANS : BLAS_NO_TRANS;
    if (blas_ilp64)
        ((gemm64_f)blas_sgemm)(BLAS_ROW_MAJOR, a, b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    else
        ((gemm32_f)blas_sgemm)(BLAS_ROW_MAJOR, a, b, (int32_t)M, (int32_t)N, (int32_t)K, 1.0f, A,
                               (int32_t)lda, B, (int32_t)ldb, beta, C, (int32_t)ldc);
}

static void gemm_d(int ta, int tb, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A,
                   ptrdiff_t lda, const double *B, ptrdiff_t ldb, double beta, double *C,
                   ptrdiff_t ldc)
{
    const int a = ta ? BLAS_TRANS : BLAS_NO_TRANS, b = tb ? BLAS_TRANS : BLAS_NO_TRANS;
    if (blas_ilp64)
        ((gemm64_d)blas_dgemm)(BLAS_ROW_MAJOR, a, b, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
    else
        ((gemm32_d)blas_dgemm)(BLAS_ROW_MAJOR, a, b, (int32_t)M, (int32_t)N, (int32_t)K, 1.0, A,
                               (int32_t)lda, B, (int32_t)ldb, beta, C, (int32_t)ldc);
}
