/*
 * f32-gemm-6x32-avx512.c - the GEMM microkernel for AVX-512F (kernels.h).
 *
 * 6 rows x 2 vectors of 16 = 12 zmm accumulators, plus 2 for the B row: 14
 * of 32 registers. Per k: 12 FMAs (6 cycles on two 512-bit FMA ports)
 * against 2 B loads and 6 A broadcasts, which gcc and clang fold into the
 * FMAs as embedded-broadcast memory operands (vfmadd231ps (%rax){1to16}), so
 * the loop is 12 FMAs, 2 loads and the loop counter, with 12 independent
 * chains covering 2 ports x 4 cycles of latency.
 *
 * MR stays 6 (weights are packed once, at load, for the table's MR); only NR
 * differs from the AVX2 table, and B is packed per call with the table's NR.
 *
 * Built with -mavx512f -mavx512vl -mfma (the Makefile keys on the -avx512.c
 * suffix); only called when dispatch.c has seen AVX-512F/VL and the OS
 * saving opmask and ZMM state.
 */
#include "kernels/kernels.h"

#include <immintrin.h>

#define MR 6
#define NR 32

static inline void store_row(float *cr, __m512 v0, __m512 v1, size_t nr,
                             int acc, __mmask16 m0, __mmask16 m1)
{
    if (nr == NR) {
        if (acc) {
            v0 = _mm512_add_ps(_mm512_loadu_ps(cr), v0);
            v1 = _mm512_add_ps(_mm512_loadu_ps(cr + 16), v1);
        }
        _mm512_storeu_ps(cr, v0);
        _mm512_storeu_ps(cr + 16, v1);
        return;
    }
    /* Partial tile: masked lanes are neither read nor written (and cannot
     * fault). The second half is skipped outright when empty, so no access
     * at all, not even a fully masked one, goes past the row. */
    if (acc) v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), v0);
    _mm512_mask_storeu_ps(cr, m0, v0);
    if (nr > 16) {
        if (acc) v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), v1);
        _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
}

void vae_f32_gemm_ukernel_6x32__avx512(size_t mr, size_t nr, size_t kc,
                                       const float *a, const float *b,
                                       float *c, size_t ldc, int acc)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
    __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
    __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
    __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
    __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();

    /* Rows of A padded past mr are zero (the packer's contract), so all 6
     * rows are always computed; only the stores look at mr. Not unrolled:
     * one k step already has 12 independent FMAs (see the AVX2 kernel). */
    for (size_t k = kc; k != 0; k--) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = _mm512_loadu_ps(b + 16);
        __m512 av;
        av = _mm512_set1_ps(a[0]);
        c00 = _mm512_fmadd_ps(av, b0, c00);
        c01 = _mm512_fmadd_ps(av, b1, c01);
        av = _mm512_set1_ps(a[1]);
        c10 = _mm512_fmadd_ps(av, b0, c10);
        c11 = _mm512_fmadd_ps(av, b1, c11);
        av = _mm512_set1_ps(a[2]);
        c20 = _mm512_fmadd_ps(av, b0, c20);
        c21 = _mm512_fmadd_ps(av, b1, c21);
        av = _mm512_set1_ps(a[3]);
        c30 = _mm512_fmadd_ps(av, b0, c30);
        c31 = _mm512_fmadd_ps(av, b1, c31);
        av = _mm512_set1_ps(a[4]);
        c40 = _mm512_fmadd_ps(av, b0, c40);
        c41 = _mm512_fmadd_ps(av, b1, c41);
        av = _mm512_set1_ps(a[5]);
        c50 = _mm512_fmadd_ps(av, b0, c50);
        c51 = _mm512_fmadd_ps(av, b1, c51);
        a += MR;
        b += NR;
    }

    /* Lane j of the tile is stored when j < nr: bits [0, nr) of a 32-bit
     * mask, the low 16 for the first vector and the high 16 for the second.
     * (1u << 32 would be undefined, but nr == NR never uses the masks.) */
    __mmask16 m0 = 0xffff, m1 = 0xffff;
    if (nr < NR) {
        const uint32_t m = (UINT32_C(1) << nr) - 1u;
        m0 = (__mmask16)(m & 0xffffu);
        m1 = (__mmask16)(m >> 16);
    }
    store_row(c, c00, c01, nr, acc, m0, m1);
    if (mr > 1) store_row(c + 1 * ldc, c10, c11, nr, acc, m0, m1);
    if (mr > 2) store_row(c + 2 * ldc, c20, c21, nr, acc, m0, m1);
    if (mr > 3) store_row(c + 3 * ldc, c30, c31, nr, acc, m0, m1);
    if (mr > 4) store_row(c + 4 * ldc, c40, c41, nr, acc, m0, m1);
    if (mr > 5) store_row(c + 5 * ldc, c50, c51, nr, acc, m0, m1);
}
