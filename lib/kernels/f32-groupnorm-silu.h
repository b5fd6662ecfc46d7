/*
 * f32-groupnorm-silu.h - the arithmetic of GroupNorm (+ SiLU), written as
 * plain loops that the compiler turns into vector code of the including
 * file's ISA (f32-groupnorm-silu-{scalar,avx2-fma,avx512,neon}.c name the
 * functions). Sums use 16 double-precision partial sums in a fixed order,
 * so the result does not depend on the ISA; exp is our own polynomial
 * (below 2 ulp on the range SiLU needs), so it vectorises and gives the same
 * bits on every ISA (no FMA contraction). Its NaN test and clamps are
 * selects: gcc turns them into blends only under no-trapping-math (nothing
 * here reads FP exception flags), and without AVX-512's masks it otherwise
 * leaves the loop scalar. Loops marked [vec] must vectorise
 * (test/test_vectorised.sh checks each ISA's build).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("tree-vectorize", "fp-contract=off", "no-trapping-math")
#endif

#define GN_LANES 16

double GN_SUM_NAME(size_t n, const float *x)
{
    double acc[GN_LANES] = {0};
    size_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (size_t l = 0; l < GN_LANES; l++) /* [vec] */
            acc[l] += (double)x[i + l];
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
        for (size_t l = 0; l < GN_LANES; l++) { /* [vec] */
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

#include "kernels/f32-exp.h"

/* y = (x - mean) * a + b, then SiLU y / (1 + e^-y) when silu. */
void GN_APPLY_NAME(size_t n, const float *x, float *y, float mean, float a, float b, int silu)
{
    if (silu) {
        for (size_t i = 0; i < n; i++) { /* [vec] */
            float v = (x[i] - mean) * a + b;
            y[i] = v / (1.0f + vae_expf_poly(-v));
        }
    } else {
        for (size_t i = 0; i < n; i++) /* [vec] */
            y[i] = (x[i] - mean) * a + b;
    }
}
