/*
 * f32-exp.h - e^x as plain float arithmetic, so that it vectorises inside the
 * loops that include it and gives the same bits on every ISA (no libm call,
 * no FMA contraction). Relative error below 2 ulp on [-87, 88].
 */
#ifndef SDXLVAE_KERNELS_F32_EXP_H
#define SDXLVAE_KERNELS_F32_EXP_H

#include <stdint.h>
#include <string.h>

/* e^x for x in [-87, 88] (clamped outside): x = k ln2 + r, |r| <= ln2/2,
 * e^r by a degree-6 Taylor polynomial (error < 1e-7 relative), times 2^k
 * built in the exponent bits. */
static inline float vae_expf_poly(float x)
{
    /* NaN in, NaN out (a NaN weight or input must not turn into a number);
     * the arithmetic runs on 0 instead, since NaN would reach an int cast. */
    const float in = x;
    x = x == x ? x : 0.0f;
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504f + magic;
    float k = t - magic;
    /* ln2 in two parts (Cody-Waite): k * 0.693359375 is exact for any k here */
    float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f +
              r * (0.00833333377f + r * 0.00138888892f)))));
    int32_t ki;
    uint32_t bits;
    ki = (int32_t)k;
    bits = (uint32_t)(ki + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return in == in ? p * scale : in;
}

#endif
