/*
 * f32-im2col-s2-scalar.c - im2col of one B panel whose taps are all runs
 * of every other float (kernels.h: the Downsample's stride 2): the
 * reference for the SIMD twins, and the kernel of the scalar and NEON
 * tables.
 */
#include "kernels/kernels.h"

void vae_f32_im2col_s2_ukernel__scalar(size_t kc, size_t nr, size_t taps, size_t t0,
                                       const float *in, size_t plane, const vae_tap_run *run,
                                       float *dst)
{
    size_t c = t0 / taps, t = t0 % taps;
    for (size_t kq = 0; kq < kc; kq++, dst += nr) {
        const size_t lo = (size_t)run[t].lo, hi = (size_t)run[t].hi;
        for (size_t i = 0; i < lo; i++) dst[i] = 0.0f;
        if (hi > lo) {
            const float *src = in + c * plane + run[t].off;
            for (size_t i = lo; i < hi; i++) dst[i] = src[2 * (i - lo)];
        }
        for (size_t i = hi; i < nr; i++) dst[i] = 0.0f;
        if (++t == taps) {
            t = 0;
            c++;
        }
    }
}
