/* f32-groupnorm-silu-neon.c - GroupNorm sums and the normalise + SiLU pass
 * (f32-groupnorm-silu.h) built for aarch64 Advanced SIMD (the baseline: no
 * flags); bit-identical to the other ISAs' twins. On any other target it
 * compiles to nothing, as f32-gemm-6x16-neon.c does. */
#include "kernels/kernels.h"

#if defined(__aarch64__)
#define GN_SUM_NAME vae_f32_sum_ukernel__neon
#define GN_SQDEV_NAME vae_f32_sqdev_ukernel__neon
#define GN_APPLY_NAME vae_f32_norm_silu_ukernel__neon
#include "kernels/f32-groupnorm-silu.h"
#endif
