/*
 * f32-im2col-s2-avx2.c - im2col of one B panel whose taps are all runs of
 * every other float (kernels.h: the Downsample's stride 2), for AVX2: the
 * AVX-512 kernel's scheme on vectors of 8, with vmaskmovps (masked-out
 * lanes are not read and cannot fault) and a shuffle and a lane permute
 * for the even floats.
 */
#include "kernels/kernels.h"

#include <immintrin.h>

/* Floats p0 + j of the span with a <= p0 + j < b, as a vmaskmovps mask. */
static inline __m256i span(size_t p0, size_t a, size_t b)
{
    const __m256i j = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                       _mm256_set1_epi32((int32_t)p0));
    return _mm256_and_si256(_mm256_cmpgt_epi32(j, _mm256_set1_epi32((int32_t)a - 1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)b), j));
}

void vae_f32_im2col_s2_ukernel__avx2(size_t kc, size_t nr, size_t taps, size_t t0,
                                     const float *in, size_t plane, const vae_tap_run *run,
                                     float *dst)
{
    size_t c = t0 / taps, t = t0 % taps;
    for (size_t kq = 0; kq < kc; kq++, dst += nr) {
        const size_t lo = (size_t)run[t].lo, hi = (size_t)run[t].hi;
        /* pixel i reads float 2i of the span from base; the run's floats
         * are [2 lo, 2 hi - 1) */
        const size_t a = 2 * lo, b = hi > lo ? 2 * hi - 1 : a;
        const uintptr_t base = vae_tap_run_base(in, c, plane, &run[t], 2);
        size_t j0 = 0;
        if (hi > lo) /* the same tap of the next channel, taps rows on */
            for (size_t q = a; q < b; q += 16)
                _mm_prefetch((const char *)(base + (plane + q) * sizeof(float)), _MM_HINT_T0);
        for (; j0 + 8 <= nr; j0 += 8) {
            const size_t p0 = 2 * j0;
            const __m256 v0 = _mm256_maskload_ps((const float *)(base + p0 * sizeof(float)), span(p0, a, b));
            const __m256 v1 =
                _mm256_maskload_ps((const float *)(base + (p0 + 8) * sizeof(float)), span(p0 + 8, a, b));
            /* [v0 0 2 | v1 0 2 | v0 4 6 | v1 4 6], then the 64-bit pairs in order */
            const __m256 e = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0));
            _mm256_storeu_ps(dst + j0, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e),
                                                                              _MM_SHUFFLE(3, 1, 2, 0))));
        }
        for (; j0 < nr; j0++)
            dst[j0] = j0 >= lo && j0 < hi ? ((const float *)base)[2 * j0] : 0.0f;
        if (++t == taps) {
            t = 0;
            c++;
        }
    }
}
