/* attention.c - the single-head self-attention of the mid blocks:
 * x += proj(softmax(q^T k / sqrt(C)) v^T). Queries are taken in blocks of
 * ATT_BQ rows, one block per work item, so the N x N score matrix never
 * exists: each thread holds only ATT_BQ x N scores. K and V^T are packed for
 * the kernels once and shared by every block. */
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ATT_BQ 48 /* a multiple of the microkernel's MR */

typedef struct att_job {
    const vae_ctx *ctx;
    const float *qt;   /* N x C, pre-scaled by 1/sqrt(C) */
    const float *kp;   /* K (C x N), packed by vae_pack_b_all */
    const float *vp;   /* V^T (N x C), packed by vae_pack_b_all */
    float *out;        /* C x N */
    size_t n, c;
    float **s, **pk, **o; /* per thread: scores, packed P, block output */
} att_job;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static void att_item(void *arg, size_t item, int thread)
{
    att_job *j = arg;
    const vae_kernel_table *kt = j->ctx->kt;
    size_t i0 = item * ATT_BQ, bq = min_sz(ATT_BQ, j->n - i0), n = j->n, c = j->c;
    float *s = j->s[thread], *o = j->o[thread], *bbuf = j->ctx->scratch[thread];
    vae_packed a;

    (void)bbuf;
    /* S = Qt[i0:i0+bq] * K */
    vae_packed_fill(&a, bq, c, kt->gemm_mr, j->qt + i0 * c, j->pk[thread]);
    vae_gemm_prepacked(kt, &a, j->kp, n, s, n, 0);
    for (size_t i = 0; i < bq; i++) kt->softmax(n, s + i * n);
    /* O = P * Vt  (bq x c) */
    vae_packed_fill(&a, bq, n, kt->gemm_mr, s, j->pk[thread]);
    vae_gemm_prepacked(kt, &a, j->vp, c, o, c, 0);
    for (size_t i = 0; i < bq; i++)
        for (size_t ch = 0; ch < c; ch++) j->out[ch * n + i0 + i] = o[i * c + ch];
}

static void transpose(const float *src, size_t rows, size_t cols, float *dst, float scale)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t q = 0; q < cols; q++) dst[q * rows + r] = src[r * cols + q] * scale;
}

int32_t vae_attention(vae_ctx *ctx, const vae_norm *nm, int32_t groups, float eps,
                      const vae_conv *q, const vae_conv *k, const vae_conv *v,
                      const vae_conv *proj, float *x, int32_t h, int32_t w, vae_error *err)
{
    size_t c = (size_t)nm->c, n = (size_t)h * (size_t)w, cn = c * n;
    int nt = ctx->n_threads;
    int32_t rc = VAE_OK;
    vae_profile *prof = ctx->prof;
    double t0 = 0;
    float *xn = vae_alloc_floats(cn), *t1 = vae_alloc_floats(cn), *kbuf = vae_alloc_floats(cn);
    float *qt = vae_alloc_floats(cn), *vt = vae_alloc_floats(cn);
    float **s = vae_calloc_n((size_t)nt, sizeof *s), **pk = vae_calloc_n((size_t)nt, sizeof *pk),
          **o = vae_calloc_n((size_t)nt, sizeof *o);
    if (!xn || !t1 || !kbuf || !qt || !vt || !s || !pk || !o) goto oom;
    uint64_t pkn = vae_packed_floats(ATT_BQ, n > c ? n : c, ctx->kt->gemm_mr);
    for (int i = 0; i < nt; i++) {
        s[i] = vae_alloc_floats((uint64_t)ATT_BQ * n);
        pk[i] = vae_alloc_floats(pkn);
        o[i] = vae_alloc_floats((uint64_t)ATT_BQ * c);
        if (!s[i] || !pk[i] || !o[i]) goto oom;
    }

    /* the inner convs and norm count as attention, not as their own kinds */
    t0 = prof ? vae_now() : 0;
    ctx->prof = NULL;
    vae_groupnorm(ctx, nm, groups, eps, x, h, w, xn, 0);
    if ((rc = vae_conv2d(ctx, q, VAE_CONV_SAME, xn, h, w, t1, 0, err)) != VAE_OK) goto out;
    transpose(t1, c, n, qt, (float)(1.0 / sqrt((double)c)));
    if ((rc = vae_conv2d(ctx, v, VAE_CONV_SAME, xn, h, w, t1, 0, err)) != VAE_OK) goto out;
    transpose(t1, c, n, vt, 1.0f);
    if ((rc = vae_conv2d(ctx, k, VAE_CONV_SAME, xn, h, w, kbuf, 0, err)) != VAE_OK) goto out;

    /* pack K and V^T once for all query blocks */
    const size_t NR = ctx->kt->gemm_nr;
    size_t npad = (n + NR - 1) / NR * NR, cpad = (c + NR - 1) / NR * NR;
    float *kp = vae_alloc_floats((uint64_t)c * npad), *vp = vae_alloc_floats((uint64_t)n * cpad);
    if (!kp || !vp) {
        vae_free_aligned(kp);
        vae_free_aligned(vp);
        goto oom;
    }
    vae_pack_b_all(ctx->kt, c, n, kbuf, n, kp);
    vae_pack_b_all(ctx->kt, n, c, vt, c, vp);
    att_job j = {ctx, qt, kp, vp, t1, n, c, s, pk, o};
    vae_pool_run(ctx->pool, (n + ATT_BQ - 1) / ATT_BQ, att_item, &j);
    vae_free_aligned(kp);
    vae_free_aligned(vp);
    /* residual: x += proj(attn) */
    rc = vae_conv2d(ctx, proj, VAE_CONV_SAME, t1, h, w, x, 1, err);
    ctx->prof = prof;
    vae_prof_add(ctx, VAE_PROF_ATTN, t0, 8.0 * (double)c * c * n + 4.0 * (double)n * n * c);
    goto out;
oom:
    rc = vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory in attention over %zu positions", n);
out:
    if (prof) ctx->prof = prof;
    for (int i = 0; i < nt; i++) {
        if (s) vae_free_aligned(s[i]);
        if (pk) vae_free_aligned(pk[i]);
        if (o) vae_free_aligned(o[i]);
    }
    free(s);
    free(pk);
    free(o);
    vae_free_aligned(xn);
    vae_free_aligned(t1);
    vae_free_aligned(kbuf);
    vae_free_aligned(qt);
    vae_free_aligned(vt);
    return rc;
}
