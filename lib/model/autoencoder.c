/* autoencoder.c - the graph of the AutoencoderKL (generative-models'
 * sgm/modules/diffusionmodules/model.py): Encoder, Decoder, their ResnetBlocks
 * and mid blocks, on one image at a time. Three activation buffers of the
 * largest layer's size are reused through the whole pass.
 *
 * Every layer goes through conv()/norm()/attn() below, which run it and then
 * report progress. With ctx->progress_count_only they run nothing and only
 * add up the layers' costs: the same walk gives the total a fraction needs. */
#include "model/model.h"

#include <string.h>

/* ---- Progress ------------------------------------------------------------ */

/* The largest float below 1: layers never report 1.0, which is kept for the
 * API's last call, once the result is complete. */
#define BELOW_ONE 0x1.fffffep-1f

int32_t vae_progress_report(vae_ctx *ctx, vae_error *err)
{
    if (!ctx->progress || ctx->progress_count_only) return VAE_OK;
    double f = ctx->progress_total > 0 ? ctx->progress_done / ctx->progress_total : 0.0;
    float ff = f < 0 ? 0.0f : f >= (double)BELOW_ONE ? BELOW_ONE : (float)f;
    if (ctx->progress(ctx->progress_user, ff, ctx->progress_stage) == 0) return VAE_OK;
    return vae_fail(err, VAE_ERR_CANCELLED, "cancelled by the progress callback at %.1f%%",
                    (double)ff * 100.0);
}

/* After a layer of the given cost (nominal multiply-adds). */
static int32_t step(vae_ctx *ctx, double cost, vae_error *err)
{
    ctx->progress_done += cost;
    return vae_progress_report(ctx, err);
}

/* GroupNorm is memory-bound: an element costs about as much time as a few
 * multiply-adds of a convolution. */
#define NORM_COST_PER_ELEMENT 8.0

static int32_t conv(vae_ctx *ctx, const vae_conv *cv, int mode, const float *in, int32_t h,
                    int32_t w, float *out, int accumulate, vae_error *err)
{
    if (!ctx->progress_count_only) {
        int32_t rc = vae_conv2d(ctx, cv, mode, in, h, w, out, accumulate, err);
        if (rc != VAE_OK) return rc;
    }
    double px = (double)h * (double)w;
    if (mode == VAE_CONV_DOWN2) px /= 4;
    else if (mode == VAE_CONV_UP2) px *= 4;
    return step(ctx, px * cv->cout * cv->cin * cv->ksize * cv->ksize, err);
}

static int32_t norm(vae_ctx *ctx, const vae_norm *nm, const vae_arch *a, const float *in,
                    int32_t h, int32_t w, float *out, vae_error *err)
{
    if (!ctx->progress_count_only) vae_groupnorm(ctx, nm, a->groups, a->eps, in, h, w, out, 1);
    return step(ctx, NORM_COST_PER_ELEMENT * nm->c * (double)h * (double)w, err);
}

static int32_t attn(vae_ctx *ctx, const vae_attn *at, const vae_arch *a, float *x, int32_t h,
                    int32_t w, vae_error *err)
{
    if (!ctx->progress_count_only) {
        int32_t rc = vae_attention(ctx, &at->norm, a->groups, a->eps, &at->q, &at->k, &at->v,
                                   &at->proj, x, h, w, err);
        if (rc != VAE_OK) return rc;
    }
    /* q, k, v, proj: 4 c^2 N; scores and their weighted sum: 2 c N^2 */
    double n = (double)h * (double)w, c = at->q.cout;
    return step(ctx, 4 * c * c * n + 2 * c * n * n + NORM_COST_PER_ELEMENT * c * n, err);
}

typedef struct bufs {
    float *a, *b, *c;
} bufs;

static void swap(float **x, float **y)
{
    float *t = *x;
    *x = *y;
    *y = t;
}

/* ResnetBlock: x + conv2(silu(gn2(conv1(silu(gn1(x)))))), with a 1x1
 * shortcut when the channel count changes. The input is in bf->a and the
 * result ends there too. */
static int32_t resnet(const vae_model *m, vae_ctx *ctx, const vae_resnet *r, bufs *bf, int32_t h,
                      int32_t w, vae_error *err)
{
    const vae_arch *a = &m->arch;
    int32_t rc;
    if ((rc = norm(ctx, &r->norm1, a, bf->a, h, w, bf->b, err)) != VAE_OK) return rc;
    if ((rc = conv(ctx, &r->conv1, VAE_CONV_SAME, bf->b, h, w, bf->c, 0, err)) != VAE_OK)
        return rc;
    if ((rc = norm(ctx, &r->norm2, a, bf->c, h, w, bf->b, err)) != VAE_OK) return rc;
    if (r->has_shortcut) {
        if ((rc = conv(ctx, &r->shortcut, VAE_CONV_SAME, bf->a, h, w, bf->c, 0, err)) != VAE_OK)
            return rc;
        swap(&bf->a, &bf->c);
    }
    /* the residual add is fused: conv2 accumulates onto the skip */
    return conv(ctx, &r->conv2, VAE_CONV_SAME, bf->b, h, w, bf->a, 1, err);
}

static int32_t mid(const vae_model *m, vae_ctx *ctx, const vae_coder *c, bufs *bf, int32_t h,
                   int32_t w, vae_error *err)
{
    int32_t rc;
    if ((rc = resnet(m, ctx, &c->mid1, bf, h, w, err)) != VAE_OK) return rc;
    if ((rc = attn(ctx, &c->attn, &m->arch, bf->a, h, w, err)) != VAE_OK) return rc;
    return resnet(m, ctx, &c->mid2, bf, h, w, err);
}

static uint64_t umax(uint64_t x, uint64_t y) { return x > y ? x : y; }

/* Floats of the largest activation of an encode of h x w (image pixels) or
 * a decode of h x w (latent pixels). 0 on overflow. */
uint64_t vae_largest_activation(const vae_arch *a, int dec, int32_t h, int32_t w)
{
    uint64_t best = 0;
    int32_t L = a->levels;
    for (int32_t l = 0; l < L; l++) {
        /* pixels at level l */
        int sh = dec ? (L - 1 - l) : l;
        uint64_t px;
        if (dec) px = ((uint64_t)h << sh) * ((uint64_t)w << sh);
        else px = ((uint64_t)h >> sh) * ((uint64_t)w >> sh);
        uint64_t cin = dec ? (uint64_t)(l == L - 1 ? a->ch[L - 1] : a->ch[l + 1])
                           : (uint64_t)(l == 0 ? a->ch[0] : a->ch[l - 1]);
        best = umax(best, px * umax(cin, (uint64_t)a->ch[l]));
        if (dec && l != 0) best = umax(best, px * 4 * (uint64_t)a->ch[l]);
    }
    uint64_t lat = (uint64_t)(h >> (dec ? 0 : L - 1)) * (uint64_t)(w >> (dec ? 0 : L - 1));
    best = umax(best, lat * 2 * (uint64_t)a->latent_channels);
    return best;
}

static int32_t alloc_bufs(bufs *bf, uint64_t n, vae_error *err)
{
    bf->a = vae_alloc_floats(n);
    bf->b = vae_alloc_floats(n);
    bf->c = vae_alloc_floats(n);
    if (!bf->a || !bf->b || !bf->c)
        return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory for 3 activation buffers of %llu floats",
                        (unsigned long long)n);
    return VAE_OK;
}

static void free_bufs(bufs *bf)
{
    vae_free_aligned(bf->a);
    vae_free_aligned(bf->b);
    vae_free_aligned(bf->c);
}

int32_t vae_run_encoder(const vae_model *m, vae_ctx *ctx, const float *x, int32_t h, int32_t w,
                        float *moments, vae_error *err)
{
    ctx->kt = m->kt; /* the kernels the weights were packed for */
    const vae_arch *a = &m->arch;
    const vae_coder *e = &m->enc;
    bufs bf = {0};
    int32_t rc = VAE_OK;
    if (!ctx->progress_count_only &&
        (rc = alloc_bufs(&bf, vae_largest_activation(a, 0, h, w), err)) != VAE_OK)
        goto out;
    if ((rc = conv(ctx, &e->conv_in, VAE_CONV_SAME, x, h, w, bf.a, 0, err)) != VAE_OK) goto out;
    for (int32_t l = 0; l < a->levels; l++) {
        for (int32_t j = 0; j < e->levels[l].n_res; j++)
            if ((rc = resnet(m, ctx, &e->levels[l].res[j], &bf, h, w, err)) != VAE_OK) goto out;
        if (e->levels[l].has_sample) {
            if ((rc = conv(ctx, &e->levels[l].sample, VAE_CONV_DOWN2, bf.a, h, w, bf.b, 0, err)) !=
                VAE_OK)
                goto out;
            swap(&bf.a, &bf.b);
            h /= 2;
            w /= 2;
        }
    }
    if ((rc = mid(m, ctx, e, &bf, h, w, err)) != VAE_OK) goto out;
    if ((rc = norm(ctx, &e->norm_out, a, bf.a, h, w, bf.b, err)) != VAE_OK) goto out;
    if (a->use_quant_conv) {
        if ((rc = conv(ctx, &e->conv_out, VAE_CONV_SAME, bf.b, h, w, bf.c, 0, err)) != VAE_OK)
            goto out;
        rc = conv(ctx, &m->quant_conv, VAE_CONV_SAME, bf.c, h, w, moments, 0, err);
    } else {
        rc = conv(ctx, &e->conv_out, VAE_CONV_SAME, bf.b, h, w, moments, 0, err);
    }
out:
    free_bufs(&bf);
    return rc;
}

int32_t vae_run_decoder(const vae_model *m, vae_ctx *ctx, const float *z, int32_t h, int32_t w,
                        float *img, vae_error *err)
{
    ctx->kt = m->kt; /* the kernels the weights were packed for */
    const vae_arch *a = &m->arch;
    const vae_coder *d = &m->dec;
    bufs bf = {0};
    int32_t rc = VAE_OK;
    if (!ctx->progress_count_only &&
        (rc = alloc_bufs(&bf, vae_largest_activation(a, 1, h, w), err)) != VAE_OK)
        goto out;
    const float *zin = z;
    if (a->use_post_quant_conv) {
        if ((rc = conv(ctx, &m->post_quant_conv, VAE_CONV_SAME, z, h, w, bf.b, 0, err)) != VAE_OK)
            goto out;
        zin = bf.b;
    }
    if ((rc = conv(ctx, &d->conv_in, VAE_CONV_SAME, zin, h, w, bf.a, 0, err)) != VAE_OK) goto out;
    if ((rc = mid(m, ctx, d, &bf, h, w, err)) != VAE_OK) goto out;
    for (int32_t l = a->levels - 1; l >= 0; l--) {
        for (int32_t j = 0; j < d->levels[l].n_res; j++)
            if ((rc = resnet(m, ctx, &d->levels[l].res[j], &bf, h, w, err)) != VAE_OK) goto out;
        if (d->levels[l].has_sample) {
            if ((rc = conv(ctx, &d->levels[l].sample, VAE_CONV_UP2, bf.a, h, w, bf.b, 0, err)) !=
                VAE_OK)
                goto out;
            swap(&bf.a, &bf.b);
            h *= 2;
            w *= 2;
        }
    }
    if ((rc = norm(ctx, &d->norm_out, a, bf.a, h, w, bf.b, err)) != VAE_OK) goto out;
    rc = conv(ctx, &d->conv_out, VAE_CONV_SAME, bf.b, h, w, img, 0, err);
out:
    free_bufs(&bf);
    return rc;
}

double vae_graph_cost(const vae_model *m, int dec, int32_t h, int32_t w)
{
    vae_ctx c;
    vae_error e;
    memset(&c, 0, sizeof c);
    c.progress_count_only = 1;
    if (dec) vae_run_decoder(m, &c, NULL, h, w, NULL, &e);
    else vae_run_encoder(m, &c, NULL, h, w, NULL, &e);
    return c.progress_done;
}
