/* f32-softmax-scalar.c - a row softmax (f32-softmax.h) built for this file's
 * ISA; bit-identical to the other ISAs' twins. */
#include "kernels/kernels.h"

#define SOFTMAX_NAME vae_f32_softmax_ukernel__scalar
#include "kernels/f32-softmax.h"
