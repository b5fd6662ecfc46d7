/*
 * f32-gemm-scalar.h - the body of the reference GEMM microkernels
 * (f32-gemm-6x16-scalar.c, f32-gemm-12x32-scalar.c), shared so that every
 * tile computes each element the same way: the sum over k = 0..kc-1 of a*b
 * in that order, accumulated from 0 and then stored (or added to C), the
 * same structure as the SIMD kernels; only their fused multiply-add rounding
 * differs, hence the tolerance in the tests. Element (i, j) of a 12x32 tile is
 * therefore bit for bit element (i mod 6, j mod 16) of the 6x16 tile over
 * the same rows and columns.
 *
 * Internal to lib/kernels/: include it from a kernel file only.
 */
#ifndef SDXLVAE_F32_GEMM_SCALAR_H
#define SDXLVAE_F32_GEMM_SCALAR_H

#include "kernels/kernels.h"

/* A plain multiply then add, never fused: the product is its own statement
 * and, for clang, contraction is off (gcc contracts only under
 * -ffp-contract=fast, which -std=c11 turns off; it warns on this pragma).
 * The pragma holds to the end of the including file. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define VAE_SCALAR_GEMM_MR 12
#define VAE_SCALAR_GEMM_NR_MAX 32

/* Called with constant tile_mr <= 12 and tile_nr <= 32, and always inlined,
 * so each kernel is compiled for its own tile as if written out by hand. */
static inline __attribute__((always_inline)) void
vae_f32_gemm_scalar_tile(size_t tile_mr, size_t tile_nr, size_t mr, size_t nr, size_t kc,
                         const float *a, const float *b, float *c, size_t ldc, int acc)
{
    /* Zeroed whole: as fast as the exact tile here, and clearing only
     * tile_nr columns in a loop made gcc 12's 6x16 kernel 40% slower. */
    float t[VAE_SCALAR_GEMM_MR][VAE_SCALAR_GEMM_NR_MAX] = {{0}};

    /* k outermost so a and b are read once, in the packed order; each t[i][j]
     * still sums its k terms in order. */
    for (size_t k = 0; k < kc; k++) {
        const float *ak = a + k * tile_mr;
        const float *bk = b + k * tile_nr;
        for (size_t i = 0; i < tile_mr; i++) {
            const float ai = ak[i];
            for (size_t j = 0; j < tile_nr; j++) {
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

#endif
