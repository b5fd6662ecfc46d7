/*
 * f32-gemm-6x16-scalar.c - the reference GEMM microkernel for the 6x16 tile
 * (see kernels.h): the scalar table's kernel, and the twin of the AVX2 and
 * NEON kernels in the tests. The arithmetic is in f32-gemm-scalar.h.
 */
#include "kernels/f32-gemm-scalar.h"

void vae_f32_gemm_ukernel_6x16__scalar(size_t mr, size_t nr, size_t kc,
                                       const float *a, const float *b,
                                       float *c, size_t ldc, int acc)
{
    vae_f32_gemm_scalar_tile(6, 16, mr, nr, kc, a, b, c, ldc, acc);
}
