/*
 * f16-f32-cvt-f16c.c - binary16 to binary32 with F16C's vcvtph2ps.
 * Built with -mavx -mf16c (the Makefile keys on the -f16c.c suffix); only
 * called when dispatch.c has seen F16C and AVX state enabled by the OS.
 */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <string.h>

void vae_f16_f32_cvt_ukernel__f16c(size_t n, const uint16_t *src, float *dst)
{
    /* Two conversions per iteration: vcvtph2ps is 2 uops, so this keeps the
     * loop overhead small without unrolling further. */
    for (; n >= 16; n -= 16, src += 16, dst += 16) {
        __m128i h0 = _mm_loadu_si128((const __m128i *)src);
        __m128i h1 = _mm_loadu_si128((const __m128i *)(src + 8));
        _mm256_storeu_ps(dst, _mm256_cvtph_ps(h0));
        _mm256_storeu_ps(dst + 8, _mm256_cvtph_ps(h1));
    }
    if (n >= 8) {
        _mm256_storeu_ps(dst, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src)));
        n -= 8, src += 8, dst += 8;
    }
    if (n) {
        /* Tail through a small buffer: never reads or writes past the ends. */
        uint16_t hb[8] = {0};
        float fb[8];
        memcpy(hb, src, n * sizeof *src);
        _mm256_storeu_ps(fb, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hb)));
        memcpy(dst, fb, n * sizeof *dst);
    }
}
