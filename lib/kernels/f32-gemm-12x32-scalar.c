/*
 * f32-gemm-12x32-scalar.c - the reference GEMM microkernel for the 12x32
 * tile (see kernels.h): the twin of the AVX-512 kernel in the tests. The
 * arithmetic is in f32-gemm-scalar.h, shared with the 6x16 tile.
 */
#include "kernels/f32-gemm-scalar.h"

void vae_f32_gemm_ukernel_12x32__scalar(size_t mr, size_t nr, size_t kc,
                                        const float *a, const float *b,
                                        float *c, size_t ldc, int acc)
{
    vae_f32_gemm_scalar_tile(12, 32, mr, nr, kc, a, b, c, ldc, acc);
}
