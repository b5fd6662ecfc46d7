/*
 * f32-gemm-6x16-scalar.c - the reference GEMM microkernel (see kernels.h).
 *
 * Every SIMD twin is tested against this one. Each output element is the sum
 * over k = 0..kc-1 of a*b in that order, accumulated from 0 and then stored
 * (or added to C), the same structure as the SIMD kernels; only their fused
 * multiply-add rounding differs, hence the tolerance in the tests.
 */
#include "kernels/kernels.h"

/* A plain multiply then add, never fused: the product is its own statement
 * and, for clang, contraction is off (gcc contracts only under
 * -ffp-contract=fast, which -std=c11 turns off; it warns on this pragma). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define MR 6
#define NR 16

void vae_f32_gemm_ukernel_6x16__scalar(size_t mr, size_t nr, size_t kc,
                                       const float *a, const float *b,
                                       float *c, size_t ldc, int acc)
{
    float t[MR][NR] = {{0}};

    /* k outermost so a and b are read once, in the packed order; each t[i][j]
     * still sums its k terms in order. */
    for (size_t k = 0; k < kc; k++) {
        const float *ak = a + k * MR;
        const float *bk = b + k * NR;
        for (size_t i = 0; i < MR; i++) {
            const float ai = ak[i];
            for (size_t j = 0; j < NR; j++) {
                float p = ai * bk[j];
                t[i][j] += p;
            }
        }
    }

    for (size_t i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        if (acc) {
            for (size_t j = 0; j < nr; j++) ci[j] += t[i][j];
        } else {
            for (size_t j = 0; j < nr; j++) ci[j] = t[i][j];
        }
    }
}
