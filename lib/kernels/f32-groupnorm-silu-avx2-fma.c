/* f32-groupnorm-silu-avx2-fma.c - GroupNorm sums and the normalise + SiLU pass
 * (f32-groupnorm-silu.h) built for this file's ISA; bit-identical to the
 * other ISAs' twins. */
#include "kernels/kernels.h"

#define GN_SUM_NAME vae_f32_sum_ukernel__avx2_fma
#define GN_SQDEV_NAME vae_f32_sqdev_ukernel__avx2_fma
#define GN_APPLY_NAME vae_f32_norm_silu_ukernel__avx2_fma
#include "kernels/f32-groupnorm-silu.h"
