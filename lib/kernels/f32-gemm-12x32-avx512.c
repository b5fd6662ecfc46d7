/*
 * f32-gemm-12x32-avx512.c - the GEMM microkernel for AVX-512F (kernels.h).
 *
 * 12 rows x 2 vectors of 16 = 24 zmm accumulators, plus 2 for the B row and
 * 1 for the broadcast: 27 of 32 registers. Per k: 24 FMAs (12 cycles on two
 * 512-bit FMA ports) against 2 B loads, 12 A broadcasts and a prefetch.
 *
 * Why 12 rows and not the 6 of the other tables: per FMA, the tile reads
 * half as much of B (from L1) and loads and stores C half as often, and the
 * loop overhead is spread over twice the work. The 6x32 tile it replaced
 * ran the 512-channel 3x3 layers about 3% slower on one thread (A/B in one
 * shell); the bits are the same, since each output still sums its k terms
 * in order in one FMA chain.
 *
 * The weights are packed at load for the table's MR (12 here, 6 elsewhere);
 * a model runs with the table it was loaded with (vae_model.kt).
 *
 * Built with -mavx512f -mavx512vl -mfma (the Makefile keys on the -avx512.c
 * suffix); only called when dispatch.c has seen AVX-512F/VL and the OS
 * saving opmask and ZMM state.
 */
#include "kernels/kernels.h"

#include <immintrin.h>

#define MR 12
#define NR 32

/* always inlined: gcc 12 made it a call, twelve per tile */
static inline __attribute__((always_inline)) void store_row(float *cr, __m512 v0, __m512 v1, size_t nr,
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

/* Row i of the tile: accumulators ci_0 (columns 0-15) and ci_1 (16-31). */
#define ZERO_ROW(i) __m512 c##i##_0 = _mm512_setzero_ps(), c##i##_1 = _mm512_setzero_ps()
#define FMA_ROW(i)                                   \
    do {                                             \
        const __m512 av = _mm512_set1_ps(a[i]);      \
        c##i##_0 = _mm512_fmadd_ps(av, b0, c##i##_0); \
        c##i##_1 = _mm512_fmadd_ps(av, b1, c##i##_1); \
    } while (0)
#define STORE_ROW(i) \
    if (mr > i) store_row(c + i * ldc, c##i##_0, c##i##_1, nr, acc, m0, m1)

/*
 * The last panel of a layer whose M is not a multiple of 12: 4 rows of 256
 * channels, 8 of 512 or 128. The packed rows past mr are zeros, so the full
 * tile would give the same bits; these compute only the rows that exist,
 * 3% of the FLOPs of a 256- or 128-channel layer. Rows still step by MR in
 * A. Eight accumulators are just enough to cover the FMA latency.
 */
static inline __attribute__((always_inline)) void tile_4(size_t mr, size_t nr, size_t kc,
                                                         const float *a, const float *b, float *c,
                                                         size_t ldc, int acc, __mmask16 m0,
                                                         __mmask16 m1)
{
    ZERO_ROW(0); ZERO_ROW(1); ZERO_ROW(2); ZERO_ROW(3);
    for (size_t k = kc; k != 0; k--) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = _mm512_loadu_ps(b + 16);
        FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3);
        a += MR;
        b += NR;
    }
    STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3);
}

static inline __attribute__((always_inline)) void tile_8(size_t mr, size_t nr, size_t kc,
                                                         const float *a, const float *b, float *c,
                                                         size_t ldc, int acc, __mmask16 m0,
                                                         __mmask16 m1)
{
    ZERO_ROW(0); ZERO_ROW(1); ZERO_ROW(2); ZERO_ROW(3);
    ZERO_ROW(4); ZERO_ROW(5); ZERO_ROW(6); ZERO_ROW(7);
    for (size_t k = kc; k != 0; k--) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = _mm512_loadu_ps(b + 16);
        FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3);
        FMA_ROW(4); FMA_ROW(5); FMA_ROW(6); FMA_ROW(7);
        a += MR;
        b += NR;
    }
    STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3);
    STORE_ROW(4); STORE_ROW(5); STORE_ROW(6); STORE_ROW(7);
}

void vae_f32_gemm_ukernel_12x32__avx512(size_t mr, size_t nr, size_t kc,
                                        const float *a, const float *b,
                                        float *c, size_t ldc, int acc)
{
    /* Lane j of the tile is stored when j < nr: bits [0, nr) of a 32-bit
     * mask, the low 16 for the first vector and the high 16 for the second.
     * (1u << 32 would be undefined, but nr == NR never uses the masks.) */
    __mmask16 m0 = 0xffff, m1 = 0xffff;
    if (nr < NR) {
        const uint32_t m = (UINT32_C(1) << nr) - 1u;
        m0 = (__mmask16)(m & 0xffffu);
        m1 = (__mmask16)(m >> 16);
    }
    if (mr <= 4) {
        tile_4(mr, nr, kc, a, b, c, ldc, acc, m0, m1);
        return;
    }
    if (mr <= 8) {
        tile_8(mr, nr, kc, a, b, c, ldc, acc, m0, m1);
        return;
    }

    ZERO_ROW(0); ZERO_ROW(1); ZERO_ROW(2); ZERO_ROW(3);
    ZERO_ROW(4); ZERO_ROW(5); ZERO_ROW(6); ZERO_ROW(7);
    ZERO_ROW(8); ZERO_ROW(9); ZERO_ROW(10); ZERO_ROW(11);

    /* Rows of A padded past mr are zero (the packer's contract), so all 12
     * rows are computed here; only the stores look at mr. */
    for (size_t k = kc; k != 0; k--) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = _mm512_loadu_ps(b + 16);
        /* A streams from L2 (and, for the first B panel of a K block, from
         * L3): ask for it 32 k steps (1.5 KB, into the next panel near the
         * end) ahead. Worth 1-8% on the 512-channel layers, A/B; the
         * address may lie past the panels, which a prefetch never faults
         * on, hence an integer. */
        _mm_prefetch((const char *)((uintptr_t)a + 32 * MR * sizeof(float)), _MM_HINT_T0);
        FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3);
        FMA_ROW(4); FMA_ROW(5); FMA_ROW(6); FMA_ROW(7);
        FMA_ROW(8); FMA_ROW(9); FMA_ROW(10); FMA_ROW(11);
        a += MR;
        b += NR;
    }

    STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3);
    STORE_ROW(4); STORE_ROW(5); STORE_ROW(6); STORE_ROW(7);
    STORE_ROW(8); STORE_ROW(9); STORE_ROW(10); STORE_ROW(11);
}
