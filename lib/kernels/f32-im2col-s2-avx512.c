/*
 * f32-im2col-s2-avx512.c - im2col of one B panel whose taps are all runs
 * of every other float (kernels.h: the Downsample's stride 2), for
 * AVX-512F.
 *
 * 16 outputs come from 32 floats: two loads, masked to the run's span (the
 * floats between the ones taken lie inside it; lanes outside are neither
 * read nor can fault, and come back zero), and one two-source permute that
 * keeps the even lanes.
 *
 * Packing was a third of the 128-channel Downsample (M = 128 output
 * channels share each packed panel, against 512 in the big layers), and
 * it is waiting for the input rows, each from another 256 KB plane, more
 * than copying: the permute alone gained nothing measurable, the prefetch
 * of the same tap of the next channel (taps rows on) 5-10%. Paired in one
 * process against the scalar copy, 2 threads: the 128-, 256- and
 * 512-channel Downsamples 10%, 7% and 4% faster. The same prefetch in the
 * stride-1 kernel did nothing (its planes are read in order).
 */
#include "kernels/kernels.h"

#include <immintrin.h>

/* Floats [a, b) of the 16 at position p0 of the row's span, as a mask. */
static inline __mmask16 span(size_t p0, size_t a, size_t b)
{
    size_t x = a > p0 ? a - p0 : 0, y = b > p0 ? b - p0 : 0;
    if (y > 16) y = 16;
    if (x >= y) return 0;
    return (__mmask16)(((UINT32_C(1) << y) - 1u) & ~((UINT32_C(1) << x) - 1u));
}

void vae_f32_im2col_s2_ukernel__avx512(size_t kc, size_t nr, size_t taps, size_t t0,
                                       const float *in, size_t plane, const vae_tap_run *run,
                                       float *dst)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
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
        for (; j0 + 16 <= nr; j0 += 16) {
            const size_t p0 = 2 * j0;
            const __m512 v0 = _mm512_maskz_loadu_ps(span(p0, a, b), (const void *)(base + p0 * sizeof(float)));
            const __m512 v1 =
                _mm512_maskz_loadu_ps(span(p0 + 16, a, b), (const void *)(base + (p0 + 16) * sizeof(float)));
            _mm512_storeu_ps(dst + j0, _mm512_permutex2var_ps(v0, even, v1));
        }
        for (; j0 < nr; j0++)
            dst[j0] = j0 >= lo && j0 < hi ? ((const float *)base)[2 * j0] : 0.0f;
        if (++t == taps) {
            t = 0;
            c++;
        }
    }
}
