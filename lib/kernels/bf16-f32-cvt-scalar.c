/* bf16-f32-cvt-scalar.c - bfloat16 to fp32: bf16 is the top half of an fp32,
 * so the conversion is exact for every value, NaN payloads included. */
#include "kernels/kernels.h"

#include <string.h>

void vae_bf16_f32_cvt_ukernel__scalar(size_t n, const uint16_t *src, float *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)src[i] << 16;
        float f;
        memcpy(&f, &bits, sizeof f); /* no pointer punning: strict aliasing */
        dst[i] = f;
    }
}
