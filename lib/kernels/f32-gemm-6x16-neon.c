/*
 * f32-gemm-6x16-neon.c - the GEMM microkernel for aarch64 Advanced SIMD
 * (kernels.h). NEON is part of the aarch64 baseline, so this file needs no
 * flags; on any other target it compiles to nothing (the Makefile builds
 * *-neon.c on every non-x86-64 target, 32-bit ARM included).
 *
 * 6 rows x 4 vectors of 4 = 24 accumulators, 4 for the B row and 2 for the
 * A column: 30 of the 32 vector registers. The A elements are used by lane
 * (fmla by element), so there are no broadcasts at all.
 */
#include "kernels/kernels.h"

#if defined(__aarch64__)

#include <arm_neon.h>

#define MR 6
#define NR 16

void vae_f32_gemm_ukernel_6x16__neon(size_t mr, size_t nr, size_t kc,
                                     const float *a, const float *b,
                                     float *c, size_t ldc, int acc)
{
    float32x4_t t[MR][4];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 4; j++) t[i][j] = vdupq_n_f32(0.0f);

    /* Rows of A padded past mr are zero (the packer's contract), so all 6
     * rows are computed; only the stores look at mr. A is read as 4 + 2
     * floats so the last group never reads past the panel. */
    for (size_t k = kc; k != 0; k--) {
        const float32x4_t a0123 = vld1q_f32(a);
        const float32x2_t a45 = vld1_f32(a + 4);
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        const float32x4_t b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
#define ROW(i, av, lane, fma)                                                \
    do {                                                                     \
        t[i][0] = fma(t[i][0], b0, av, lane);                                \
        t[i][1] = fma(t[i][1], b1, av, lane);                                \
        t[i][2] = fma(t[i][2], b2, av, lane);                                \
        t[i][3] = fma(t[i][3], b3, av, lane);                                \
    } while (0)
        ROW(0, a0123, 0, vfmaq_laneq_f32);
        ROW(1, a0123, 1, vfmaq_laneq_f32);
        ROW(2, a0123, 2, vfmaq_laneq_f32);
        ROW(3, a0123, 3, vfmaq_laneq_f32);
        ROW(4, a45, 0, vfmaq_lane_f32);
        ROW(5, a45, 1, vfmaq_lane_f32);
#undef ROW
        a += MR;
        b += NR;
    }

    for (size_t i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        if (nr == NR) {
            for (int j = 0; j < 4; j++) {
                float32x4_t v = t[i][j];
                if (acc) v = vaddq_f32(vld1q_f32(ci + 4 * j), v);
                vst1q_f32(ci + 4 * j, v);
            }
        } else {
            /* Partial tile through a buffer: never touches columns >= nr. */
            float buf[NR];
            for (int j = 0; j < 4; j++) vst1q_f32(buf + 4 * j, t[i][j]);
            if (acc) {
                for (size_t j = 0; j < nr; j++) ci[j] += buf[j];
            } else {
                for (size_t j = 0; j < nr; j++) ci[j] = buf[j];
            }
        }
    }
}

#else
/* ISO C wants a declaration in every translation unit. */
typedef int vae_gemm_neon_unused;
#endif
