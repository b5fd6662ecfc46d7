/*
 * f32-im2col-avx512.c - im2col of one B panel whose taps are all runs
 * (kernels.h), for AVX-512F.
 *
 * Each row is whole vectors of 16: a masked load (lanes outside the run are
 * neither read nor can fault, and come back zero) and a full store, so the
 * zero ends cost nothing and there is no call per row.
 */
#include "kernels/kernels.h"

#include <immintrin.h>

/* Lanes [lo, hi) of the 16 starting at column j0, as a mask. */
static inline __mmask16 lanes(size_t j0, size_t lo, size_t hi)
{
    size_t a = lo > j0 ? lo - j0 : 0, b = hi > j0 ? hi - j0 : 0;
    if (b > 16) b = 16;
    if (a >= b) return 0;
    return (__mmask16)(((UINT32_C(1) << b) - 1u) & ~((UINT32_C(1) << a) - 1u));
}

/* Any NR: vectors of 16 with a mask each, then single floats. */
static void im2col_any(size_t kc, size_t nr, size_t taps, size_t t0, const float *in, size_t plane,
                       const vae_tap_run *run, float *dst)
{
    size_t c = t0 / taps, t = t0 % taps;
    for (size_t kq = 0; kq < kc; kq++, dst += nr) {
        const size_t lo = (size_t)run[t].lo, hi = (size_t)run[t].hi;
        const uintptr_t base = vae_tap_run_base(in, c, plane, &run[t], 1);
        size_t j0 = 0;
        for (; j0 + 16 <= nr; j0 += 16)
            _mm512_storeu_ps(dst + j0, _mm512_maskz_loadu_ps(lanes(j0, lo, hi),
                                                             (const void *)(base + j0 * sizeof(float))));
        for (; j0 < nr; j0++)
            dst[j0] = j0 >= lo && j0 < hi ? ((const float *)base)[j0] : 0.0f;
        if (++t == taps) {
            t = 0;
            c++;
        }
    }
}

void vae_f32_im2col_ukernel__avx512(size_t kc, size_t nr, size_t taps, size_t t0,
                                    const float *in, size_t plane, const vae_tap_run *run,
                                    float *dst)
{
    if (nr != 32 || taps > 9) {
        im2col_any(kc, nr, taps, t0, in, plane, run, dst);
        return;
    }
    /* The AVX-512 table's NR: per tap, the two masks are worked out once,
     * and a run over the whole row is two plain loads (a masked load costs
     * more: 3.2 against 2.2 ns a row on a hot plane). */
    __mmask16 m0[9], m1[9];
    int full[9];
    for (size_t t = 0; t < taps; t++) {
        m0[t] = lanes(0, (size_t)run[t].lo, (size_t)run[t].hi);
        m1[t] = lanes(16, (size_t)run[t].lo, (size_t)run[t].hi);
        full[t] = run[t].lo == 0 && run[t].hi == 32;
    }
    size_t c = t0 / taps, t = t0 % taps;
    for (size_t kq = 0; kq < kc; kq++, dst += 32) {
        if (full[t]) {
            const float *src = in + c * plane + run[t].off;
            _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
            _mm512_storeu_ps(dst + 16, _mm512_loadu_ps(src + 16));
        } else {
            const uintptr_t base = vae_tap_run_base(in, c, plane, &run[t], 1);
            _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(m0[t], (const void *)base));
            _mm512_storeu_ps(dst + 16, _mm512_maskz_loadu_ps(m1[t], (const void *)(base + 64)));
        }
        if (++t == taps) {
            t = 0;
            c++;
        }
    }
}
