/*
 * f32-f16-cvt-scalar.c - IEEE binary32 to binary16, rounded to nearest even
 * (IEEE 754's default, and what F16C's vcvtps2ph does with imm8 = 0).
 *
 * Only the loader calls it, once per weight, for VAE_LOAD_HALF_WEIGHTS: no
 * SIMD twin is worth its test surface. Values from 65520 up (the midpoint
 * between the largest half, 65504, and 65536) round to infinity; values up
 * to 2^-25 round to zero; a NaN keeps its sign and the top 10 bits of its
 * payload and is made quiet, as vcvtps2ph does.
 */
#include "kernels/kernels.h"

#include <string.h>

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf stays inf; NaN: quiet, payload's top bits */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x0200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 */
    if (ax < 0x38800000u) {
        /* Below 2^-14, the smallest normal half: a subnormal half holds
         * round(|f| * 2^24). 2^-25 (0x33000000) is the tie between 0 and
         * the smallest subnormal and goes to 0, the even one. */
        if (ax <= 0x33000000u) return sign;
        const uint32_t e = ax >> 23;                      /* 102 .. 112 */
        const uint32_t m = (ax & 0x7fffffu) | 0x800000u;  /* |f| = m * 2^(e - 150) */
        const uint32_t shift = 126 - e;                   /* 14 .. 24 */
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), tie = 1u << (shift - 1);
        if (rem > tie || (rem == tie && (r & 1u))) r++; /* may carry into 0x400: fine */
        return (uint16_t)(sign | r);
    }
    /* Normal: rebias the exponent (127 - 15 = 112), drop 13 mantissa bits.
     * A carry out of the mantissa bumps the exponent, which is the correct
     * rounding; it cannot reach infinity (that case is above). */
    const uint32_t r = ax - 0x38000000u;
    uint32_t h = r >> 13;
    const uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

void vae_f32_f16_cvt_ukernel__scalar(size_t n, const float *src, uint16_t *dst)
{
    for (size_t i = 0; i < n; i++) dst[i] = float_to_half(src[i]);
}
