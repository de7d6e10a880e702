/* Where the BLAS matrix product is that the convolution's im2col + GEMM path and matmul call
 * (conv_gemm.h's gemm, once per element type), included once by native.c.
 *
 * The extension links no BLAS: gpucnn/native.py hands it the address of cblas_sgemm and
 * cblas_dgemm of the OpenBLAS NumPy already loaded (use_blas), with their integer width
 * (NumPy's wheels ship ILP64 OpenBLAS: 64-bit M, N, K and leading dimensions).  Until then, or
 * where NumPy has another BLAS, blas_ready() is 0, every convolution runs direct and matmul
 * declines (gpucnn then calls NumPy's).
 *
 * The caller keeps OpenBLAS at one thread around the calls (gpucnn.cpu_runtime.one_blas_thread):
 * each of the extension's worker threads runs its own product on its own images (or rows), as
 * NumPy's matmul does when called from several Python threads.
 */
enum { BLAS_ROW_MAJOR = 101, BLAS_NO_TRANS = 111, BLAS_TRANS = 112 };  /* cblas.h's values */

static void *blas_sgemm, *blas_dgemm;
static int blas_ilp64;

static int blas_ready(void) { return blas_sgemm && blas_dgemm; }
