/* conv2d.c - 3x3 and 1x1 convolutions as GEMM: out[cout][pixel] =
 * W[cout][cin*k*k] * im2col(in)[cin*k*k][pixel]. The im2col never exists as
 * a whole: each thread gathers one KC x NC block straight into the packed
 * panel layout the microkernel reads. Nearest-2x upsampling and the
 * Downsample padding are folded into that gather, so the upsampled tensor is
 * never stored either. */
#include "ops/ops.h"

#include <string.h>

typedef struct conv_src {
    const float *in;
    int32_t h, w;        /* input size */
    int32_t ow;          /* output width */
    int32_t ksize;
    int mode;
} conv_src;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Input offset (within one channel plane) that output pixel (oy, ox) reads
 * at tap (ky, kx), or -1 where the tap falls on padding. */
static int64_t tap_offset(const conv_src *s, int32_t oy, int32_t ox, int32_t ky, int32_t kx)
{
    int32_t iy, ix;
    if (s->ksize == 1) {
        iy = oy; ix = ox;
    } else if (s->mode == VAE_CONV_SAME) {
        iy = oy + ky - 1; ix = ox + kx - 1;
    } else if (s->mode == VAE_CONV_DOWN2) {
        iy = 2 * oy + ky; ix = 2 * ox + kx;
    } else { /* VAE_CONV_UP2: the tap in the upsampled image, then halved */
        iy = oy + ky - 1; ix = ox + kx - 1;
        iy = iy < 0 ? -1 : iy / 2;
        ix = ix < 0 ? -1 : ix / 2;
    }
    if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) return -1;
    return (int64_t)iy * s->w + ix;
}

#define MAX_NR 64
#define MAX_TAPS 9

/* im2col of one K x N block, written panel by panel. For each panel the
 * offsets of its pixels are worked out once per tap; a tap whose pixels
 * read one contiguous run of the input (most taps of a stride-1 conv away
 * from the borders) is a plain copy, the others a gather. */
static void im2col_pack(const void *vsrc, size_t k0, size_t kc, size_t n0, size_t nc,
                        size_t nr, float *dst)
{
    const conv_src *s = vsrc;
    const size_t kk = (size_t)s->ksize * (size_t)s->ksize;
    const size_t hw = (size_t)s->h * (size_t)s->w;
    int64_t off[MAX_TAPS][MAX_NR];
    int contig[MAX_TAPS];
    for (size_t p0 = 0; p0 < nc; p0 += nr) {
        size_t cnt = min_sz(nr, nc - p0);
        int32_t oy0 = (int32_t)((n0 + p0) / (size_t)s->ow), ox0 = (int32_t)((n0 + p0) % (size_t)s->ow);
        for (size_t t = 0; t < kk; t++) {
            int32_t oy = oy0, ox = ox0, ky = (int32_t)(t / (size_t)s->ksize), kx = (int32_t)(t % (size_t)s->ksize);
            contig[t] = 1;
            for (size_t i = 0; i < cnt; i++) {
                off[t][i] = tap_offset(s, oy, ox, ky, kx);
                if (off[t][i] < 0 || off[t][i] != off[t][0] + (int64_t)i) contig[t] = 0;
                if (++ox == s->ow) { ox = 0; oy++; }
            }
        }
        float *panel = dst + (p0 / nr) * kc * nr;
        size_t ci = k0 / kk, t = k0 % kk;
        for (size_t kq = 0; kq < kc; kq++) {
            const float *plane = s->in + ci * hw;
            float *d = panel + kq * nr;
            if (contig[t]) {
                memcpy(d, plane + off[t][0], cnt * sizeof(float));
            } else {
                for (size_t i = 0; i < cnt; i++) d[i] = off[t][i] < 0 ? 0.0f : plane[off[t][i]];
            }
            for (size_t i = cnt; i < nr; i++) d[i] = 0.0f;
            if (++t == kk) { t = 0; ci++; }
        }
    }
}

/* 1x1 convolutions read rows of the input directly. */
static void direct_pack(const void *vsrc, size_t k0, size_t kc, size_t n0, size_t nc, size_t nr,
                        float *dst)
{
    const conv_src *s = vsrc;
    size_t hw = (size_t)s->h * (size_t)s->w;
    vae_pack_b(nr, kc, nc, s->in + k0 * hw + n0, hw, dst);
}

typedef struct conv_job {
    const vae_ctx *ctx;
    const vae_conv *cv;
    conv_src src;
    float *out;
    size_t npix;
    int accumulate;
} conv_job;

static void conv_item(void *arg, size_t item, int thread)
{
    conv_job *j = arg;
    size_t n0 = item * VAE_GEMM_NC, nc = min_sz(VAE_GEMM_NC, j->npix - n0);
    int direct = j->cv->ksize == 1 && j->src.mode == VAE_CONV_SAME;
    vae_gemm_chunk(j->ctx->kt, &j->cv->w, n0, nc, direct ? direct_pack : im2col_pack, &j->src,
                   j->out, j->npix, j->accumulate, j->ctx->scratch[thread]);
    /* bias after the sum: the chunk is still in cache */
    for (int32_t co = 0; co < j->cv->cout; co++) {
        float b = j->cv->bias[co];
        float *o = j->out + (size_t)co * j->npix + n0;
        for (size_t q = 0; q < nc; q++) o[q] += b;
    }
}

int32_t vae_conv2d(vae_ctx *ctx, const vae_conv *cv, int mode, const float *in, int32_t h,
                   int32_t w, float *out, int accumulate, vae_error *err)
{
    int32_t oh = h, ow = w;
    if (mode == VAE_CONV_DOWN2) { oh = h / 2; ow = w / 2; }
    if (mode == VAE_CONV_UP2) { oh = h * 2; ow = w * 2; }
    if (oh < 1 || ow < 1)
        return vae_fail(err, VAE_ERR_INVALID_ARGUMENT, "convolution of a %dx%d input has no output", h, w);
    if (ctx->kt->gemm_nr > MAX_NR || cv->ksize * cv->ksize > MAX_TAPS)
        return vae_fail(err, VAE_ERR_INTERNAL, "conv tile %zu or kernel %d unsupported",
                        ctx->kt->gemm_nr, cv->ksize);
    if (cv->w.mr != ctx->kt->gemm_mr)
        return vae_fail(err, VAE_ERR_INTERNAL, "weights packed for MR=%zu, kernel wants %zu",
                        cv->w.mr, ctx->kt->gemm_mr);
    conv_job j;
    j.ctx = ctx;
    j.cv = cv;
    j.src.in = in;
    j.src.h = h;
    j.src.w = w;
    j.src.ow = ow;
    j.src.ksize = cv->ksize;
    j.src.mode = mode;
    j.out = out;
    j.npix = (size_t)oh * (size_t)ow;
    j.accumulate = accumulate;
    double t0 = ctx->prof ? vae_now() : 0;
    vae_pool_run(ctx->pool, (j.npix + VAE_GEMM_NC - 1) / VAE_GEMM_NC, conv_item, &j);
    int kind = cv->ksize == 1 ? VAE_PROF_CONV1X1
             : mode == VAE_CONV_UP2 ? VAE_PROF_CONV_UP
             : mode == VAE_CONV_DOWN2 ? VAE_PROF_CONV_DOWN : VAE_PROF_CONV3X3;
    vae_prof_add(ctx, kind, t0,
                 2.0 * cv->cout * cv->cin * cv->ksize * cv->ksize * (double)j.npix);
    return VAE_OK;
}
