/* f32-softmax-neon.c - a row softmax (f32-softmax.h) built for aarch64
 * Advanced SIMD (the baseline: no flags); bit-identical to the other ISAs'
 * twins. On any other target it compiles to nothing. */
#include "kernels/kernels.h"

#if defined(__aarch64__)
#define SOFTMAX_NAME vae_f32_softmax_ukernel__neon
#include "kernels/f32-softmax.h"
#endif
