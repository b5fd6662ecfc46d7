/* f32-groupnorm-silu-avx512.c - GroupNorm sums and the normalise + SiLU pass
 * (f32-groupnorm-silu.h) built for this file's ISA; bit-identical to the
 * other ISAs' twins. */
#include "kernels/kernels.h"

#define GN_SUM_NAME vae_f32_sum_ukernel__avx512
#define GN_SQDEV_NAME vae_f32_sqdev_ukernel__avx512
#define GN_APPLY_NAME vae_f32_norm_silu_ukernel__avx512
#include "kernels/f32-groupnorm-silu.h"
