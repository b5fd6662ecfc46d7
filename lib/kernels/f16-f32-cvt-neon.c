/*
 * f16-f32-cvt-neon.c - binary16 to binary32 with aarch64's fcvtl (vector
 * half to single). Exact, like every conversion of a half to a float; a NaN
 * keeps its sign and payload and is made quiet (Linux runs with FPCR.DN
 * clear), as the scalar twin does, so the two agree bit for bit. Advanced
 * SIMD and the half-to-single conversion are aarch64 baseline: no flags. On
 * any other target it compiles to nothing.
 */
#include "kernels/kernels.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

void vae_f16_f32_cvt_ukernel__neon(size_t n, const uint16_t *src, float *dst)
{
    for (; n >= 16; n -= 16, src += 16, dst += 16) {
        const uint16x8_t h0 = vld1q_u16(src), h1 = vld1q_u16(src + 8);
        vst1q_f32(dst, vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h0))));
        vst1q_f32(dst + 4, vcvt_high_f32_f16(vreinterpretq_f16_u16(h0)));
        vst1q_f32(dst + 8, vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h1))));
        vst1q_f32(dst + 12, vcvt_high_f32_f16(vreinterpretq_f16_u16(h1)));
    }
    for (; n >= 4; n -= 4, src += 4, dst += 4)
        vst1q_f32(dst, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src))));
    if (n) {
        /* Tail through a small buffer: never reads or writes past the ends. */
        uint16_t hb[4] = {0};
        float fb[4];
        memcpy(hb, src, n * sizeof *src);
        vst1q_f32(fb, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(hb))));
        memcpy(dst, fb, n * sizeof *dst);
    }
}

#endif
