/* conv2d.c - 3x3 and 1x1 convolutions as GEMM: out[cout][pixel] =
 * W[cout][cin*k*k] * im2col(in)[cin*k*k][pixel]. The im2col never exists as
 * a whole: each thread gathers one KC x NC block straight into the packed
 * panel layout the microkernel reads. Nearest-2x upsampling and the
 * Downsample padding are folded into that gather, so the upsampled tensor is
 * never stored either. */
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

/* mode VAE_CONV_SUB (internal): a ksize x ksize window whose top-left tap
 * is at (oy + by, ox + bx): the 2x2 kernels of the folded Upsample. */
#define VAE_CONV_SUB 3

typedef struct conv_src {
    const float *in;
    int32_t h, w;        /* input size */
    int32_t ow;          /* output width */
    int32_t ksize;
    int mode;
    int32_t by, bx;      /* VAE_CONV_SUB only */
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
    } else if (s->mode == VAE_CONV_SUB) {
        iy = oy + ky + s->by; ix = ox + kx + s->bx;
    } else { /* VAE_CONV_UP2: the tap in the upsampled image, then halved */
        iy = oy + ky - 1; ix = ox + kx - 1;
        iy = iy < 0 ? -1 : iy / 2;
        ix = ix < 0 ? -1 : ix / 2;
    }
    if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) return -1;
    return (int64_t)iy * s->w + ix;
}

#define MIN_NR 16 /* the plan has room for VAE_GEMM_NC / MIN_NR panels */
#define MAX_NR 64
#define MAX_TAPS 9

/*
 * Where every element of one N chunk's im2col comes from, worked out once per
 * chunk: the packer is called for each of the chunk's K blocks (18 for a
 * 512-channel 3x3), and the offsets depend only on the pixel and the tap.
 *
 * For a panel and a tap the pixels [lo, hi) usually read one run of the
 * input plane, step 1 (stride-1 taps) or 2 (Downsample), with zeros (the
 * padding) on either side: a copy between two zero fills. A panel whose taps
 * are all step-1 runs (the common case: a stride-1 conv whose rows are whole
 * panels) is packed by the kernel table's im2col, which needs no call per
 * row, one whose taps are all step-2 runs (the Downsample's) by its
 * im2col_s2; the others here, with a gather where the pixels wrap to the
 * next image row inside the panel.
 */
typedef struct im2col_plan {
    const conv_src *src;
    const vae_kernel_table *kt;
    vae_tap_run run[VAE_GEMM_NC / MIN_NR][MAX_TAPS]; /* [panel][tap]; off: of pixel lo */
    int8_t step[VAE_GEMM_NC / MIN_NR][MAX_TAPS];     /* 1, 2, or 0: gather from off[] */
    int8_t runs[VAE_GEMM_NC / MIN_NR];               /* 1: every tap a step-1 run (kt->im2col),
                                                        2: step 2 (kt->im2col_s2), 0: neither */
    int64_t off[MAX_TAPS][VAE_GEMM_NC];              /* [tap][pixel of the chunk], -1: padding */
} im2col_plan;

static void im2col_plan_init(im2col_plan *pl, const conv_src *s, const vae_kernel_table *kt,
                             size_t n0, size_t nc)
{
    const size_t kk = (size_t)s->ksize * (size_t)s->ksize, nr = kt->gemm_nr;
    pl->src = s;
    pl->kt = kt;
    for (size_t t = 0; t < kk; t++) {
        int32_t oy = (int32_t)(n0 / (size_t)s->ow), ox = (int32_t)(n0 % (size_t)s->ow);
        int32_t ky = (int32_t)(t / (size_t)s->ksize), kx = (int32_t)(t % (size_t)s->ksize);
        for (size_t q = 0; q < nc; q++) {
            pl->off[t][q] = tap_offset(s, oy, ox, ky, kx);
            if (++ox == s->ow) { ox = 0; oy++; }
        }
    }
    for (size_t p0 = 0, p = 0; p0 < nc; p0 += nr, p++) {
        const size_t cnt = min_sz(nr, nc - p0);
        int s1 = 1, s2 = 1; /* every tap a run of step 1, of step 2 */
        for (size_t t = 0; t < kk; t++) {
            const int64_t *o = pl->off[t] + p0;
            size_t lo = 0, hi = cnt;
            while (lo < cnt && o[lo] < 0) lo++;
            while (hi > lo && o[hi - 1] < 0) hi--;
            int step = hi - lo > 1 && o[lo + 1] - o[lo] == 2 ? 2 : 1;
            for (size_t i = lo; i < hi && step; i++)
                if (o[i] != o[lo] + step * (int64_t)(i - lo)) step = 0;
            pl->run[p][t] = (vae_tap_run){hi > lo ? o[lo] : 0, (int32_t)lo, (int32_t)hi};
            pl->step[p][t] = (int8_t)step;
            if (step != 1) s1 = 0;
            if (step != 2 && !(step == 1 && hi - lo <= 1)) s2 = 0; /* one pixel: either */
        }
        pl->runs[p] = (int8_t)(s1 ? 1 : s2 ? 2 : 0);
    }
}

/* im2col of one K x N block, written panel by panel from the plan of the
 * chunk (n0 and nc are the plan's: vae_gemm_chunk passes its own). */
static void im2col_pack(const void *vplan, size_t k0, size_t kc, size_t n0, size_t nc,
                        size_t nr, float *dst)
{
    const im2col_plan *pl = vplan;
    const conv_src *s = pl->src;
    const size_t kk = (size_t)s->ksize * (size_t)s->ksize;
    const size_t hw = (size_t)s->h * (size_t)s->w;
    (void)n0;
    for (size_t p0 = 0, p = 0; p0 < nc; p0 += nr, p++) {
        const size_t cnt = min_sz(nr, nc - p0);
        float *panel = dst + p * kc * nr;
        if (pl->runs[p]) {
            (pl->runs[p] == 1 ? pl->kt->im2col : pl->kt->im2col_s2)(kc, nr, kk, k0, s->in, hw,
                                                                    pl->run[p], panel);
            continue;
        }
        size_t ci = k0 / kk, t = k0 % kk;
        for (size_t kq = 0; kq < kc; kq++) {
            const float *plane = s->in + ci * hw;
            const vae_tap_run r = pl->run[p][t];
            const int step = pl->step[p][t];
            const int64_t *o = pl->off[t] + p0;
            float *d = panel + kq * nr;
            if (step != 0) {
                /* zero ends of a pixel or two, then the run: no calls for
                 * the ends, and plane + off is only formed for a run */
                for (int32_t i = 0; i < r.lo; i++) d[i] = 0.0f;
                if (step == 1 && r.hi > r.lo) {
                    memcpy(d + r.lo, plane + r.off, (size_t)(r.hi - r.lo) * sizeof(float));
                } else if (r.hi > r.lo) {
                    const float *src = plane + r.off;
                    for (int32_t i = r.lo; i < r.hi; i++) d[i] = src[2 * (i - r.lo)];
                }
                for (size_t i = (size_t)r.hi; i < nr; i++) d[i] = 0.0f;
            } else {
                for (size_t i = 0; i < cnt; i++) d[i] = o[i] < 0 ? 0.0f : plane[o[i]];
                for (size_t i = cnt; i < nr; i++) d[i] = 0.0f;
            }
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
    size_t chunk;        /* pixels per item (chunk_width) */
    int accumulate;
} conv_job;

/*
 * Pixels per work item. Wide chunks read the weights (9.4 MB for 512
 * channels, from L3) once per 256 pixels instead of 128; narrow ones leave
 * more items to share out, and a thread slowed by something else on the
 * machine then takes fewer of them. Wide where every thread gets at least
 * 16. Each output sums the same terms in the same order either way.
 */
static size_t chunk_width(size_t npix, int n_threads)
{
    return npix >= (size_t)VAE_GEMM_NC * 16 * (size_t)n_threads ? VAE_GEMM_NC : VAE_GEMM_NC / 2;
}

/* ctx->chunk for a conv of cout output channels (ops.h says why). */
static int32_t chunk_buffers(vae_ctx *ctx, int32_t cout, vae_error *err)
{
    if (vae_ctx_thread_buffers(ctx, ctx->chunk, &ctx->chunk_cap, (uint64_t)cout * VAE_GEMM_NC) ==
        VAE_OK)
        return VAE_OK;
    return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory for a %d-channel convolution", cout);
}

/* out[co][q] = t[co][q] + bias[co] for the nc pixels of a chunk */
static void store_chunk(const float *t, size_t ldt, const float *bias, size_t cout, float *out,
                        size_t ldo, size_t nc)
{
    for (size_t co = 0; co < cout; co++) {
        const float b = bias[co], *tr = t + co * ldt;
        float *o = out + co * ldo;
        size_t q = 0;
        for (; q + 64 <= nc; q += 64) /* a constant count: gcc -O2 vectorizes it */
            for (size_t i = 0; i < 64; i++) o[q + i] = tr[q + i] + b;
        for (; q < nc; q++) o[q] = tr[q] + b;
    }
}

static void conv_item(void *arg, size_t item, int thread)
{
    conv_job *j = arg;
    size_t n0 = item * j->chunk, nc = min_sz(j->chunk, j->npix - n0);
    const size_t cout = (size_t)j->cv->cout;
    float *chunk = j->ctx->chunk[thread]; /* cout x nc: ops.h says why */
    if (j->accumulate) /* the sum starts from the output, as it would in place */
        for (size_t co = 0; co < cout; co++)
            memcpy(chunk + co * nc, j->out + co * j->npix + n0, nc * sizeof(float));
    if (j->cv->ksize == 1 && j->src.mode == VAE_CONV_SAME) {
        vae_gemm_chunk(j->ctx->kt, &j->cv->w, n0, nc, direct_pack, &j->src, chunk, nc,
                       j->accumulate, j->ctx->scratch[thread]);
    } else {
        im2col_plan pl;
        im2col_plan_init(&pl, &j->src, j->ctx->kt, n0, nc);
        vae_gemm_chunk(j->ctx->kt, &j->cv->w, n0, nc, im2col_pack, &pl, chunk, nc, j->accumulate,
                       j->ctx->scratch[thread]);
    }
    store_chunk(chunk, nc, j->cv->bias, cout, j->out + n0, j->npix, nc); /* still in cache */
}

/*
 * Nearest-2x upsampling then a 3x3 conv (pad 1) is, for each parity (py, px)
 * of the output pixel (2y+py, 2x+px), a 2x2 conv of the low-resolution input:
 * the upsampled rows 2y+py-1 .. 2y+py+1 are the input rows y-1, y, y (py=0)
 * or y, y, y+1 (py=1), so taps that land on the same input row add their
 * weights. Zero padding of the upsampled image is zero padding of the input.
 * Exact up to the rounding of the summed weights.
 */
static const int sub_rows[2][2][2] = {
    /* [parity][window row d] -> range of 3x3 kernel rows folded into it */
    {{0, 0}, {1, 2}}, /* py = 0: window rows y-1, y */
    {{0, 1}, {2, 2}}, /* py = 1: window rows y, y+1 */
};

int32_t vae_conv_prepare_upsample(vae_conv *cv, const float *w, size_t mr)
{
    size_t cout = (size_t)cv->cout, cin = (size_t)cv->cin, K = cin * 4;
    float *tmp = vae_alloc_floats((uint64_t)cout * K);
    if (!tmp) return VAE_ERR_NO_MEMORY;
    int32_t rc = VAE_OK;
    for (int p = 0; p < 4 && rc == VAE_OK; p++) {
        int py = p >> 1, px = p & 1;
        for (size_t co = 0; co < cout; co++)
            for (size_t ci = 0; ci < cin; ci++)
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        float sum = 0.0f;
                        for (int ky = sub_rows[py][dy][0]; ky <= sub_rows[py][dy][1]; ky++)
                            for (int kx = sub_rows[px][dx][0]; kx <= sub_rows[px][dx][1]; kx++)
                                sum += w[((co * cin + ci) * 3 + (size_t)ky) * 3 + (size_t)kx];
                        tmp[co * K + ci * 4 + (size_t)(dy * 2 + dx)] = sum;
                    }
        rc = vae_packed_init(&cv->sub[p], cout, K, mr, tmp);
    }
    vae_free_aligned(tmp);
    if (rc == VAE_OK) cv->has_sub = 1;
    return rc;
}

void vae_conv_free(vae_conv *cv)
{
    vae_free_aligned(cv->w_raw);
    cv->w_raw = NULL;
    vae_free_aligned(cv->w16);
    cv->w16 = NULL;
    vae_packed_free(&cv->w);
    for (int p = 0; p < 4; p++) vae_packed_free(&cv->sub[p]);
    vae_free_aligned(cv->bias);
    cv->bias = NULL;
    cv->has_sub = 0;
}

typedef struct up_job {
    const vae_ctx *ctx;
    const vae_conv *cv;
    conv_src src;        /* the low-resolution input */
    float *out;          /* cout x 2h x 2w */
    size_t npix;         /* h * w */
    size_t chunk;        /* pixels per item (chunk_width) */
} up_job;

static void up_item(void *arg, size_t item, int thread)
{
    up_job *j = arg;
    size_t n0 = item * j->chunk, nc = min_sz(j->chunk, j->npix - n0);
    const size_t w = (size_t)j->src.w, ow = 2 * w, opix = 4 * j->npix;
    float *tmp = j->ctx->chunk[thread]; /* cout x nc */
    for (int p = 0; p < 4; p++) {
        int py = p >> 1, px = p & 1;
        conv_src s = j->src;
        s.by = py ? 0 : -1;
        s.bx = px ? 0 : -1;
        im2col_plan pl;
        im2col_plan_init(&pl, &s, j->ctx->kt, n0, nc);
        vae_gemm_chunk(j->ctx->kt, &j->cv->sub[p], n0, nc, im2col_pack, &pl, tmp, nc, 0,
                       j->ctx->scratch[thread]);
        /* scatter to the parity's pixels, adding the bias */
        for (int32_t co = 0; co < j->cv->cout; co++) {
            const float *t = tmp + (size_t)co * nc;
            float *o = j->out + (size_t)co * opix;
            float b = j->cv->bias[co];
            size_t y = n0 / w, x = n0 % w;
            for (size_t q = 0; q < nc; q++) {
                o[(2 * y + (size_t)py) * ow + 2 * x + (size_t)px] = t[q] + b;
                if (++x == w) { x = 0; y++; }
            }
        }
    }
}

static int32_t conv_upsample_folded(vae_ctx *ctx, const vae_conv *cv, const float *in, int32_t h,
                                    int32_t w, float *out, vae_error *err)
{
    up_job j;
    memset(&j, 0, sizeof j);
    j.ctx = ctx;
    j.cv = cv;
    j.src.in = in;
    j.src.h = h;
    j.src.w = w;
    j.src.ow = w;
    j.src.ksize = 2;
    j.src.mode = VAE_CONV_SUB;
    j.out = out;
    j.npix = (size_t)h * (size_t)w;
    int32_t rc = chunk_buffers(ctx, cv->cout, err);
    if (rc != VAE_OK) return rc;
    j.chunk = chunk_width(j.npix, ctx->n_threads);
    vae_pool_run(ctx->pool, (j.npix + j.chunk - 1) / j.chunk, up_item, &j);
    return VAE_OK;
}

/* Winograd pays when there are channels to amortise the transforms over;
 * the RGB-facing convs (3 channels on one side) stay direct. */
static int use_winograd(const vae_ctx *ctx, const vae_conv *cv)
{
    return ctx->winograd && cv->cin >= 16 && cv->cout >= 16;
}

/*
 * A conv whose weights the model holds in 16 bits: widen them (exactly)
 * into the call's buffer, then run the fp32 path an fp32-held model takes
 * for this conv: stride-1 and Upsample 3x3 from the raw weights (Winograd,
 * or packing per call), the rest (1x1, Downsample) from weights packed here
 * as the loader packs them. Same fp32 values, same kernels: the output has
 * the same bits as that of a model loaded without the flag from the same
 * F16/BF16 file.
 */
static int32_t conv2d_half(vae_ctx *ctx, const vae_conv *cv, int mode, const float *in, int32_t h,
                           int32_t w, float *out, int accumulate, vae_error *err)
{
    const size_t K = (size_t)cv->cin * (size_t)cv->ksize * (size_t)cv->ksize;
    const uint64_t n = (uint64_t)cv->cout * K;
    float *wide = vae_ctx_buffer(&ctx->wide, &ctx->wide_cap, n);
    if (!wide)
        return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory widening %llu convolution weights",
                        (unsigned long long)n);
    if (cv->w16_dtype == VAE_DTYPE_BF16) ctx->kt->bf16_to_f32((size_t)n, cv->w16, wide);
    else ctx->kt->f16_to_f32((size_t)n, cv->w16, wide);
    vae_conv view = *cv; /* owns nothing: never freed */
    view.w16 = NULL;
    if (cv->ksize == 3 && (mode == VAE_CONV_SAME || mode == VAE_CONV_UP2)) {
        view.w_raw = wide;
    } else {
        const size_t mr = ctx->kt->gemm_mr;
        uint64_t np = vae_packed_floats((size_t)cv->cout, K, mr);
        float *buf = np == UINT64_MAX ? NULL
                                      : vae_ctx_buffer(&ctx->wide_packed, &ctx->wide_packed_cap, np);
        if (!buf)
            return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory packing %llu convolution weights",
                            (unsigned long long)n);
        vae_packed_fill(&view.w, (size_t)cv->cout, K, mr, wide, buf);
    }
    return vae_conv2d(ctx, &view, mode, in, h, w, out, accumulate, err);
}

int32_t vae_conv2d(vae_ctx *ctx, const vae_conv *cv, int mode, const float *in, int32_t h,
                   int32_t w, float *out, int accumulate, vae_error *err)
{
    if (cv->w16) return conv2d_half(ctx, cv, mode, in, h, w, out, accumulate, err);
    if (cv->w_raw && (mode == VAE_CONV_SAME || mode == VAE_CONV_UP2) && cv->ksize == 3) {
        int32_t rc;
        int up2 = mode == VAE_CONV_UP2;
        double t0 = ctx->prof ? vae_now() : 0;
        if (use_winograd(ctx, cv)) {
            /* upsample + conv: Winograd on the upsampled image as the gather
             * sees it (2.25 multiplies per output and channel pair, against
             * 4 for the folded 2x2 kernels below) */
            rc = vae_conv3x3_winograd(ctx, cv, cv->w_raw, in, h, w, up2, out, accumulate, err);
            vae_prof_add(ctx, up2 ? VAE_PROF_CONV_UP : VAE_PROF_CONV3X3, t0,
                         2.0 * cv->cout * cv->cin * 9 * (double)h * w * (up2 ? 4 : 1));
            return rc;
        }
        /* direct: pack (or fold) the weights for this call */
        vae_conv tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.cout = cv->cout;
        tmp.cin = cv->cin;
        tmp.ksize = 3;
        tmp.bias = cv->bias;
        int32_t prc = up2 && !accumulate
                          ? vae_conv_prepare_upsample(&tmp, cv->w_raw, ctx->kt->gemm_mr)
                          : vae_packed_init(&tmp.w, (size_t)cv->cout, (size_t)cv->cin * 9,
                                            ctx->kt->gemm_mr, cv->w_raw);
        if (prc != VAE_OK) {
            vae_conv tmp2 = tmp;
            tmp2.bias = NULL;
            vae_conv_free(&tmp2);
            return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory packing a convolution");
        }
        rc = vae_conv2d(ctx, &tmp, mode, in, h, w, out, accumulate, err);
        tmp.bias = NULL; /* the caller's */
        vae_conv_free(&tmp);
        return rc;
    }
    if (ctx->kt->gemm_nr < MIN_NR || ctx->kt->gemm_nr > MAX_NR)
        return vae_fail(err, VAE_ERR_INTERNAL, "GEMM tile NR=%zu unsupported", ctx->kt->gemm_nr);
    if (mode == VAE_CONV_UP2 && cv->has_sub && !accumulate) {
        if (cv->sub[0].mr != ctx->kt->gemm_mr)
            return vae_fail(err, VAE_ERR_INTERNAL, "weights packed for MR=%zu, kernel wants %zu",
                            cv->sub[0].mr, ctx->kt->gemm_mr);
        double t0 = ctx->prof ? vae_now() : 0;
        int32_t rc = conv_upsample_folded(ctx, cv, in, h, w, out, err);
        vae_prof_add(ctx, VAE_PROF_CONV_UP, t0, 2.0 * cv->cout * cv->cin * 9 * 4.0 * h * w);
        return rc;
    }
    int32_t oh = h, ow = w;
    if (mode == VAE_CONV_DOWN2) { oh = h / 2; ow = w / 2; }
    if (mode == VAE_CONV_UP2) { oh = h * 2; ow = w * 2; }
    if (oh < 1 || ow < 1)
        return vae_fail(err, VAE_ERR_INVALID_ARGUMENT, "convolution of a %dx%d input has no output", h, w);
    if (cv->ksize * cv->ksize > MAX_TAPS)
        return vae_fail(err, VAE_ERR_INTERNAL, "convolution kernel %dx%d unsupported", cv->ksize,
                        cv->ksize);
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
    int32_t rc = chunk_buffers(ctx, cv->cout, err);
    if (rc != VAE_OK) return rc;
    double t0 = ctx->prof ? vae_now() : 0;
    j.chunk = chunk_width(j.npix, ctx->n_threads);
    vae_pool_run(ctx->pool, (j.npix + j.chunk - 1) / j.chunk, conv_item, &j);
    int kind = cv->ksize == 1 ? VAE_PROF_CONV1X1
             : mode == VAE_CONV_UP2 ? VAE_PROF_CONV_UP
             : mode == VAE_CONV_DOWN2 ? VAE_PROF_CONV_DOWN : VAE_PROF_CONV3X3;
    vae_prof_add(ctx, kind, t0,
                 2.0 * cv->cout * cv->cin * cv->ksize * cv->ksize * (double)j.npix);
    return VAE_OK;
}
