/*
 * f32-groupnorm-silu.h - the arithmetic of GroupNorm (+ SiLU), written as
 * plain loops that the compiler turns into vector code of the including
 * file's ISA (f32-groupnorm-silu-{scalar,avx2-fma,avx512}.c name the
 * functions). Sums use 16 double-precision partial sums in a fixed order,
 * so the result does not depend on the ISA; exp is our own polynomial
 * (below 2 ulp on the range SiLU needs), so it vectorises and gives the same
 * bits on every ISA (no FMA contraction).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("tree-vectorize", "fp-contract=off")
#endif

#define GN_LANES 16

double GN_SUM_NAME(size_t n, const float *x)
{
    double acc[GN_LANES] = {0};
    size_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (size_t l = 0; l < GN_LANES; l++) acc[l] += (double)x[i + l];
    for (size_t l = 0; i < n; i++, l++) acc[l] += (double)x[i];
    double s = 0;
    for (size_t l = 0; l < GN_LANES; l++) s += acc[l];
    return s;
}

double GN_SQDEV_NAME(size_t n, const float *x, double mean)
{
    double acc[GN_LANES] = {0};
    size_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (size_t l = 0; l < GN_LANES; l++) {
            double d = (double)x[i + l] - mean;
            acc[l] += d * d;
        }
    for (size_t l = 0; i < n; i++, l++) {
        double d = (double)x[i] - mean;
        acc[l] += d * d;
    }
    double s = 0;
    for (size_t l = 0; l < GN_LANES; l++) s += acc[l];
    return s;
}

/* e^x for x in [-87, 88] (clamped outside): x = k ln2 + r, |r| <= ln2/2,
 * e^r by a degree-6 Taylor polynomial (error < 1e-7 relative), times 2^k
 * built in the exponent bits. */
static inline float gn_expf(float x)
{
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
    return p * scale;
}

/* y = (x - mean) * a + b, then SiLU y / (1 + e^-y) when silu. */
void GN_APPLY_NAME(size_t n, const float *x, float *y, float mean, float a, float b, int silu)
{
    if (silu) {
        for (size_t i = 0; i < n; i++) {
            float v = (x[i] - mean) * a + b;
            y[i] = v / (1.0f + gn_expf(-v));
        }
    } else {
        for (size_t i = 0; i < n; i++) y[i] = (x[i] - mean) * a + b;
    }
}
