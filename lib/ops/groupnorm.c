/* groupnorm.c - GroupNorm (+ SiLU). Statistics are taken in double with two
 * passes (mean, then the mean of squared deviations), the way PyTorch's
 * reference gets them to fp32 rounding; eps is the model's (1e-6 for every
 * released VAE: 1e-5 would already cost 1e-4 of parity). */
#include "ops/ops.h"

#include <math.h>

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

static void gn_item(void *arg, size_t g, int thread)
{
    (void)thread;
    gn_job *j = arg;
    const vae_kernel_table *kt = j->kt;
    int32_t cpg = j->nm->c / j->groups;
    size_t c0 = g * (size_t)cpg, n = (size_t)cpg * j->hw;
    const float *x = j->in + c0 * j->hw;
    double mean = kt->sum(n, x) / (double)n;
    double rstd = 1.0 / sqrt(kt->sqdev(n, x, mean) / (double)n + (double)j->eps);
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
