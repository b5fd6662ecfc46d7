/*
 * f32-im2col-avx2.c - im2col of one B panel whose taps are all runs
 * (kernels.h), for AVX2: the AVX-512 kernel's scheme on vectors of 8, with
 * vmaskmovps (masked-out lanes are not read and cannot fault).
 */
#include "kernels/kernels.h"

#include <immintrin.h>

/* Lanes j of the 8 at column j0 with lo <= j0 + j < hi, as a vmaskmovps mask. */
static inline __m256i lanes(size_t j0, size_t lo, size_t hi)
{
    const __m256i j = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                       _mm256_set1_epi32((int32_t)j0));
    return _mm256_and_si256(_mm256_cmpgt_epi32(j, _mm256_set1_epi32((int32_t)lo - 1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)hi), j));
}

/* Any NR: vectors of 8 with a mask each, then single floats. */
static void im2col_any(size_t kc, size_t nr, size_t taps, size_t t0, const float *in, size_t plane,
                       const vae_tap_run *run, float *dst)
{
    size_t c = t0 / taps, t = t0 % taps;
    for (size_t kq = 0; kq < kc; kq++, dst += nr) {
        const size_t lo = (size_t)run[t].lo, hi = (size_t)run[t].hi;
        const uintptr_t base = vae_tap_run_base(in, c, plane, &run[t], 1);
        size_t j0 = 0;
        for (; j0 + 8 <= nr; j0 += 8)
            _mm256_storeu_ps(dst + j0, _mm256_maskload_ps((const float *)(base + j0 * sizeof(float)),
                                                          lanes(j0, lo, hi)));
        for (; j0 < nr; j0++)
            dst[j0] = j0 >= lo && j0 < hi ? ((const float *)base)[j0] : 0.0f;
        if (++t == taps) {
            t = 0;
            c++;
        }
    }
}

void vae_f32_im2col_ukernel__avx2(size_t kc, size_t nr, size_t taps, size_t t0,
                                  const float *in, size_t plane, const vae_tap_run *run,
                                  float *dst)
{
    if (nr != 16 || taps > 9) {
        im2col_any(kc, nr, taps, t0, in, plane, run, dst);
        return;
    }
    /* The AVX2 table's NR: masks once per tap; a run over the whole row is
     * two plain loads. */
    __m256i m0[9], m1[9];
    int full[9];
    for (size_t t = 0; t < taps; t++) {
        m0[t] = lanes(0, (size_t)run[t].lo, (size_t)run[t].hi);
        m1[t] = lanes(8, (size_t)run[t].lo, (size_t)run[t].hi);
        full[t] = run[t].lo == 0 && run[t].hi == 16;
    }
    size_t c = t0 / taps, t = t0 % taps;
    for (size_t kq = 0; kq < kc; kq++, dst += 16) {
        if (full[t]) {
            const float *src = in + c * plane + run[t].off;
            _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
            _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(src + 8));
        } else {
            const uintptr_t base = vae_tap_run_base(in, c, plane, &run[t], 1);
            _mm256_storeu_ps(dst, _mm256_maskload_ps((const float *)base, m0[t]));
            _mm256_storeu_ps(dst + 8, _mm256_maskload_ps((const float *)(base + 32), m1[t]));
        }
        if (++t == taps) {
            t = 0;
            c++;
        }
    }
}
