/*
 * f32-gemm-6x16-avx2-fma.c - the GEMM microkernel for AVX2+FMA (kernels.h).
 *
 * 6 rows x 2 vectors of 8 = 12 ymm accumulators, plus 2 for the B row and 1
 * for the broadcast A element: 15 of 16 registers. 12 independent FMA chains
 * cover 2 FMA pipes x 4-5 cycles of latency, so the loop is throughput bound:
 * per k, 12 FMAs against 8 loads (2 B vectors + 6 broadcasts from memory),
 * which two or three load ports absorb.
 *
 * Built with -mavx2 -mfma -mf16c (the Makefile keys on the -avx2-fma.c
 * suffix); only called when dispatch.c has seen AVX2, FMA and OS YMM state.
 */
#include "kernels/kernels.h"

#include <immintrin.h>

#define MR 6
#define NR 16

/* mask_table + 16 - nr gives lanes j < nr all-ones: the column masks for a
 * partial tile. */
static const int32_t mask_table[32] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
};

static inline void store_row(float *cr, __m256 v0, __m256 v1, size_t nr,
                             int acc, __m256i m0, __m256i m1)
{
    if (nr == NR) {
        if (acc) {
            v0 = _mm256_add_ps(_mm256_loadu_ps(cr), v0);
            v1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), v1);
        }
        _mm256_storeu_ps(cr, v0);
        _mm256_storeu_ps(cr + 8, v1);
        return;
    }
    /* Partial tile: masked loads and stores never touch lanes >= nr. The
     * second half is skipped outright when empty, so no access (not even a
     * fully masked one) goes past the row. */
    if (acc) v0 = _mm256_add_ps(_mm256_maskload_ps(cr, m0), v0);
    _mm256_maskstore_ps(cr, m0, v0);
    if (nr > 8) {
        if (acc) v1 = _mm256_add_ps(_mm256_maskload_ps(cr + 8, m1), v1);
        _mm256_maskstore_ps(cr + 8, m1, v1);
    }
}

void vae_f32_gemm_ukernel_6x16__avx2_fma(size_t mr, size_t nr, size_t kc,
                                         const float *a, const float *b,
                                         float *c, size_t ldc, int acc)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

    /* Rows of A padded past mr are zero (the packer's contract), so all 6
     * rows are always computed; only the stores look at mr.
     * Not unrolled: one k step already has 12 independent FMAs, and unrolled
     * by 4, gcc 12 interleaves the steps until it runs out of registers and
     * spills accumulators (measured: ~89% of peak against ~96% for this). */
    for (size_t k = kc; k != 0; k--) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 av;
        av = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(av, b0, c40);
        c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(av, b0, c50);
        c51 = _mm256_fmadd_ps(av, b1, c51);
        a += MR;
        b += NR;
    }

    __m256i m0 = _mm256_setzero_si256(), m1 = _mm256_setzero_si256();
    if (nr < NR) {
        m0 = _mm256_loadu_si256((const __m256i *)(mask_table + NR - nr));
        m1 = _mm256_loadu_si256((const __m256i *)(mask_table + NR - nr + 8));
    }
    store_row(c, c00, c01, nr, acc, m0, m1);
    if (mr > 1) store_row(c + 1 * ldc, c10, c11, nr, acc, m0, m1);
    if (mr > 2) store_row(c + 2 * ldc, c20, c21, nr, acc, m0, m1);
    if (mr > 3) store_row(c + 3 * ldc, c30, c31, nr, acc, m0, m1);
    if (mr > 4) store_row(c + 4 * ldc, c40, c41, nr, acc, m0, m1);
    if (mr > 5) store_row(c + 5 * ldc, c50, c51, nr, acc, m0, m1);
}
