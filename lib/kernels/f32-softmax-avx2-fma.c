/* f32-softmax-avx2-fma.c - a row softmax (f32-softmax.h) built for this file's
 * ISA; bit-identical to the other ISAs' twins. */
#include "kernels/kernels.h"

#define SOFTMAX_NAME vae_f32_softmax_ukernel__avx2_fma
#include "kernels/f32-softmax.h"
