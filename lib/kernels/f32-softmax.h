/*
 * f32-softmax.h - x = e^(x - max) / sum over one row, written as plain loops
 * for the including file's ISA (f32-softmax-{scalar,avx2-fma,avx512,neon}.c).
 * The max and the 16 partial sums (double) are taken in a fixed order, so
 * every ISA gives the same bits. no-trapping-math: see
 * f32-groupnorm-silu.h; loops marked [vec] must vectorise
 * (test/test_vectorised.sh).
 */
#include <stddef.h>

#ifdef __clang__
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("tree-vectorize", "fp-contract=off", "no-trapping-math")
#endif

#include "kernels/f32-exp.h"

#define SM_LANES 16

void SOFTMAX_NAME(size_t n, float *x)
{
    float mx[SM_LANES];
    size_t i = 0;
    for (size_t l = 0; l < SM_LANES; l++) mx[l] = x[0];
    for (; i + SM_LANES <= n; i += SM_LANES)
        for (size_t l = 0; l < SM_LANES; l++) /* [vec] */
            mx[l] = x[i + l] > mx[l] ? x[i + l] : mx[l];
    float m = x[0];
    for (size_t l = 0; l < SM_LANES; l++) m = mx[l] > m ? mx[l] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    double acc[SM_LANES] = {0};
    for (i = 0; i + SM_LANES <= n; i += SM_LANES)
        for (size_t l = 0; l < SM_LANES; l++) { /* [vec] */
            float e = vae_expf_poly(x[i + l] - m);
            x[i + l] = e;
            acc[l] += (double)e;
        }
    for (size_t l = 0; i < n; i++, l++) {
        float e = vae_expf_poly(x[i] - m);
        x[i] = e;
        acc[l] += (double)e;
    }
    double s = 0;
    for (size_t l = 0; l < SM_LANES; l++) s += acc[l];
    float inv = (float)(1.0 / s);
    for (i = 0; i < n; i++) /* [vec] */
        x[i] *= inv;
}
