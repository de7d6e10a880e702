/* Instantiates batchnorm.h (and eltwise.h) for float and double on one instruction set: the
 * includer defines ISA (base, avx2, avx512: the kernels.h suffix), TGT and the lanes VL_F, VL_D;
 * all are undefined again at the end. */
#define BI_CAT_(a, b) a##_##b
#define BI_CAT(a, b) BI_CAT_(a, b)

#define T float
#define SFX BI_CAT(f, ISA)
#define VL VL_F
#define BNK_T bnk_f
#include "batchnorm.h"
#undef T
#undef SFX
#undef VL
#undef BNK_T

#define T double
#define SFX BI_CAT(d, ISA)
#define VL VL_D
#define BNK_T bnk_d
#include "batchnorm.h"
#undef T
#undef SFX
#undef VL
#undef BNK_T

#undef BI_CAT
#undef BI_CAT_
#undef ISA
#undef TGT
#undef VL_F
#undef VL_D
