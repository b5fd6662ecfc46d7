/* groupnorm.c - GroupNorm (+ SiLU). Statistics are taken in double with two
 * passes (mean, then the mean of squared deviations) over each chunk of a
 * group, merged across chunks, the way PyTorch's reference gets them to fp32
 * rounding; eps is the model's (1e-6 for every
 * released VAE: 1e-5 would already cost 1e-4 of parity). */
#include "ops/ops.h"

#include <math.h>

#define GN_CHUNK 4096 /* floats: 16 KB, two passes stay in L1 */

typedef struct gn_job {
    const vae_kernel_table *kt;
    const vae_norm *nm;
    int32_t groups;
    float eps;
    const float *in;
    float *out;
    size_t hw;
    int silu;
} gn_job;

/* Chan's update: (cnt, mean, m2) += a part of nb values with mean mb and
 * sum of squared deviations qb about it. */
static void chan_merge(double *cnt, double *mean, double *m2, double nb, double mb, double qb)
{
    double tot = *cnt + nb, d = mb - *mean;
    *mean += d * nb / tot;
    *m2 += qb + d * d * *cnt * nb / tot;
    *cnt = tot;
}

/* Both passes per chunk while it is in L1, merged with Chan's update: the
 * group is read from memory once, not twice, and each chunk's deviations
 * are taken about its own mean, as accurate as two passes over the whole
 * group. Chunks are fixed: the same sums on any thread. */
void vae_group_stats(const vae_kernel_table *kt, const float *x, size_t n, float eps,
                     double *mean_out, double *rstd_out)
{
    double cnt = 0, mean = 0, m2 = 0;
    for (size_t i0 = 0; i0 < n; i0 += GN_CHUNK) {
        size_t len = n - i0 < GN_CHUNK ? n - i0 : GN_CHUNK;
        double nb = (double)len, mb = kt->sum(len, x + i0) / nb;
        chan_merge(&cnt, &mean, &m2, nb, mb, kt->sqdev(len, x + i0, mb));
    }
    *mean_out = mean;
    *rstd_out = 1.0 / sqrt(m2 / (double)n + (double)eps);
}

static void gn_item(void *arg, size_t g, int thread)
{
    (void)thread;
    gn_job *j = arg;
    const vae_kernel_table *kt = j->kt;
    int32_t cpg = j->nm->c / j->groups;
    size_t c0 = g * (size_t)cpg, n = (size_t)cpg * j->hw;
    const float *x = j->in + c0 * j->hw;
    double mean, rstd;
    vae_group_stats(kt, x, n, j->eps, &mean, &rstd);
    for (int32_t c = 0; c < cpg; c++) {
        /* (x - mean) * a + beta: folding the mean into the offset would
         * cancel catastrophically when rstd is large (tiny variance) */
        float a = (float)(rstd * j->nm->gamma[c0 + (size_t)c]);
        kt->norm_silu(j->hw, x + (size_t)c * j->hw, j->out + (c0 + (size_t)c) * j->hw, (float)mean,
                      a, j->nm->beta[c0 + (size_t)c], j->silu);
    }
}

void vae_groupnorm(vae_ctx *ctx, const vae_norm *nm, int32_t groups, float eps, const float *in,
                   int32_t h, int32_t w, float *out, int silu)
{
    gn_job j = {ctx->kt, nm, groups, eps, in, out, (size_t)h * (size_t)w, silu};
    double t0 = ctx->prof ? vae_now() : 0;
    vae_pool_run(ctx->pool, (size_t)groups, gn_item, &j);
    vae_prof_add(ctx, VAE_PROF_NORM, t0, 0);
}

/* ---- In pieces (tiled execution) ------------------------------------------ */

typedef struct gn_acc_job {
    const vae_kernel_table *kt;
    int32_t cpg;
    const float *in;
    int32_t w;
    size_t hw;
    int32_t y0, y1, x0, x1;
    double *acc;
} gn_acc_job;

/* One group over the rectangle: its own mean, then M2 about it, then the
 * merge into the running (count, mean, M2). */
static void gn_acc_item(void *arg, size_t g, int thread)
{
    (void)thread;
    gn_acc_job *j = arg;
    const vae_kernel_table *kt = j->kt;
    size_t run = (size_t)(j->x1 - j->x0);
    double nb = (double)j->cpg * (double)(j->y1 - j->y0) * (double)run, sum = 0, m2 = 0;
    if (nb <= 0) return;
    for (int32_t c = 0; c < j->cpg; c++) {
        const float *pl = j->in + (g * (size_t)j->cpg + (size_t)c) * j->hw;
        for (int32_t y = j->y0; y < j->y1; y++) sum += kt->sum(run, pl + (size_t)y * (size_t)j->w + (size_t)j->x0);
    }
    double mb = sum / nb;
    for (int32_t c = 0; c < j->cpg; c++) {
        const float *pl = j->in + (g * (size_t)j->cpg + (size_t)c) * j->hw;
        for (int32_t y = j->y0; y < j->y1; y++)
            m2 += kt->sqdev(run, pl + (size_t)y * (size_t)j->w + (size_t)j->x0, mb);
    }
    double *a = j->acc + 3 * g;
    chan_merge(&a[0], &a[1], &a[2], nb, mb, m2);
}

void vae_groupnorm_accumulate(vae_ctx *ctx, int32_t c, int32_t groups, const float *in, int32_t h,
                              int32_t w, int32_t y0, int32_t y1, int32_t x0, int32_t x1, double *acc)
{
    gn_acc_job j = {ctx->kt, c / groups, in, w, (size_t)h * (size_t)w, y0, y1, x0, x1, acc};
    double t0 = ctx->prof ? vae_now() : 0;
    vae_pool_run(ctx->pool, (size_t)groups, gn_acc_item, &j);
    vae_prof_add(ctx, VAE_PROF_NORM, t0, 0);
}

void vae_groupnorm_finish(const double *acc, int32_t groups, float eps, double *mean, double *rstd)
{
    for (int32_t g = 0; g < groups; g++) {
        const double *a = acc + 3 * g;
        mean[g] = a[1];
        rstd[g] = 1.0 / sqrt(a[2] / a[0] + (double)eps);
    }
}

typedef struct gn_apply_job {
    const vae_kernel_table *kt;
    const vae_norm *nm;
    int32_t cpg;
    const double *mean, *rstd;
    const float *in;
    float *out;
    size_t hw;
    int silu;
} gn_apply_job;

static void gn_apply_item(void *arg, size_t ch, int thread)
{
    (void)thread;
    gn_apply_job *j = arg;
    size_t g = ch / (size_t)j->cpg;
    float a = (float)(j->rstd[g] * j->nm->gamma[ch]);
    j->kt->norm_silu(j->hw, j->in + ch * j->hw, j->out + ch * j->hw, (float)j->mean[g], a,
                     j->nm->beta[ch], j->silu);
}

void vae_groupnorm_apply(vae_ctx *ctx, const vae_norm *nm, int32_t groups, const double *mean,
                         const double *rstd, const float *in, int32_t h, int32_t w, float *out,
                         int silu)
{
    gn_apply_job j = {ctx->kt, nm, nm->c / groups, mean, rstd, in, out,
                      (size_t)h * (size_t)w, silu};
    double t0 = ctx->prof ? vae_now() : 0;
    vae_pool_run(ctx->pool, (size_t)nm->c, gn_apply_item, &j);
    vae_prof_add(ctx, VAE_PROF_NORM, t0, 0);
}
