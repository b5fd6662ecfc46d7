/*
 * f16-f32-cvt-scalar.c - IEEE binary16 to binary32, exact for every input.
 *
 * Every half is representable as a float, so no rounding happens: normals
 * rebias the exponent, subnormals become normals, inf stays inf. A NaN keeps
 * its payload and sign and is made quiet, as IEEE 754 conversion (and F16C's
 * vcvtph2ps) does, so this kernel and the F16C one agree bit for bit.
 */
#include "kernels/kernels.h"

#include <string.h>

static float half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    uint32_t bits;

    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
        if (mant) bits |= 0x00400000u; /* quiet the NaN */
    } else if (exp != 0) {
        bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign; /* signed zero */
    } else {
        /* Subnormal: mant * 2^-24, exact in float (mant < 2^10, and the
         * result is a normal float). */
        float f = (float)mant * 0x1p-24f;
        memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void vae_f16_f32_cvt_ukernel__scalar(size_t n, const uint16_t *src, float *dst)
{
    for (size_t i = 0; i < n; i++) dst[i] = half_to_float(src[i]);
}
