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
    float *out;        /* C x nq, row stride ldo */
    size_t n, c;       /* keys, channels */
    size_t nq, ldo;    /* queries of this run (rows of qt), out's row stride */
    float **s, **pk, **o; /* per thread: scores, packed P, block output */
} att_job;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static void att_item(void *arg, size_t item, int thread)
{
    att_job *j = arg;
    const vae_kernel_table *kt = j->ctx->kt;
    size_t i0 = item * ATT_BQ, bq = min_sz(ATT_BQ, j->nq - i0), n = j->n, c = j->c;
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
        for (size_t ch = 0; ch < c; ch++) j->out[ch * j->ldo + i0 + i] = o[i * c + ch];
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
    att_job j = {ctx, qt, kp, vp, t1, n, c, n, n, s, pk, o};
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

/* ---- The lean form: x, K and V^T only -------------------------------------
 *
 * The form above holds seven C x N tensors besides x; at 4096^2 pixels (N =
 * 512^2 latent positions, C = 512) each is 512 MiB. This one keeps only the
 * packed K and V^T: the normalised input, Q, the attention output and its
 * projection exist for one chunk of positions at a time. Same arithmetic,
 * grouped differently (the residual add rounds once more). */

#define LEAN_CHUNK 768 /* positions per chunk: a multiple of ATT_BQ, VAE_GEMM_KC and every NR */

/* dst (c x cnt) = GroupNorm of columns p0 .. p0+cnt of x (c x n) with the
 * given statistics. */
static void norm_columns(const vae_kernel_table *kt, const vae_norm *nm, int32_t groups,
                         const double *mean, const double *rstd, const float *x, size_t n,
                         size_t p0, size_t cnt, float *dst)
{
    size_t c = (size_t)nm->c, cpg = c / (size_t)groups;
    for (size_t ch = 0; ch < c; ch++) {
        size_t g = ch / cpg;
        float a = (float)(rstd[g] * nm->gamma[ch]);
        kt->norm_silu(cnt, x + ch * n + p0, dst + ch * cnt, (float)mean[g], a, nm->beta[ch], 0);
    }
}

/* GroupNorm's mean and 1/std of each group of the whole input (groups are
 * contiguous in CHW, cnt floats each), as vae_groupnorm takes them. */
static void group_stats(const vae_kernel_table *kt, int32_t groups, float eps, const float *x,
                        size_t cnt, double *mean, double *rstd)
{
    for (int32_t g = 0; g < groups; g++)
        vae_group_stats(kt, x + (size_t)g * cnt, cnt, eps, &mean[g], &rstd[g]);
}

uint64_t vae_attention_floats(int32_t c, uint64_t n, int n_threads, size_t mr, size_t nr)
{
    uint64_t npad = (n + nr - 1) / nr * nr, cpad = ((uint64_t)c + nr - 1) / nr * nr;
    uint64_t nc = n > (uint64_t)c ? n : (uint64_t)c;
    uint64_t per_thread = (uint64_t)ATT_BQ * n + vae_packed_floats(ATT_BQ, nc, mr) +
                          (uint64_t)ATT_BQ * (uint64_t)c;
    return 5 * (uint64_t)c * n + (uint64_t)c * npad + n * cpad + (uint64_t)n_threads * per_thread;
}

uint64_t vae_attention_lean_floats(int32_t c, uint64_t n, int n_threads, size_t nr)
{
    uint64_t npad = (n + nr - 1) / nr * nr, cpad = ((uint64_t)c + nr - 1) / nr * nr;
    uint64_t chunk = 5 * (uint64_t)c * LEAN_CHUNK;
    uint64_t per_thread = (uint64_t)ATT_BQ * n * 2 + (uint64_t)ATT_BQ * cpad * 2;
    return (uint64_t)c * npad + n * cpad + chunk + (uint64_t)n_threads * per_thread;
}

int32_t vae_attention_lean(vae_ctx *ctx, const vae_norm *nm, int32_t groups, float eps,
                           const vae_conv *q, const vae_conv *k, const vae_conv *v,
                           const vae_conv *proj, float *x, int32_t h, int32_t w, vae_error *err)
{
    const vae_kernel_table *kt = ctx->kt;
    size_t c = (size_t)nm->c, n = (size_t)h * (size_t)w, cpg = c / (size_t)groups;
    const size_t NR = kt->gemm_nr;
    size_t npad = (n + NR - 1) / NR * NR, cpad = (c + NR - 1) / NR * NR;
    int nt = ctx->n_threads;
    int32_t rc = VAE_OK;
    vae_profile *prof = ctx->prof;
    double t0 = prof ? vae_now() : 0;
    double *mean = vae_calloc_n((size_t)groups * 2, sizeof *mean), *rstd = mean + groups;
    float *kp = vae_alloc_floats((uint64_t)c * npad), *vp = vae_alloc_floats((uint64_t)n * cpad);
    float *xn = vae_alloc_floats((uint64_t)c * LEAN_CHUNK), *t1 = vae_alloc_floats((uint64_t)c * LEAN_CHUNK);
    float *qt = vae_alloc_floats((uint64_t)c * LEAN_CHUNK), *vt = vae_alloc_floats((uint64_t)c * LEAN_CHUNK);
    float *ao = vae_alloc_floats((uint64_t)c * LEAN_CHUNK);
    float **s = vae_calloc_n((size_t)nt, sizeof *s), **pk = vae_calloc_n((size_t)nt, sizeof *pk),
          **o = vae_calloc_n((size_t)nt, sizeof *o);
    if (!mean || !kp || !vp || !xn || !t1 || !qt || !vt || !ao || !s || !pk || !o) goto oom;
    uint64_t pkn = vae_packed_floats(ATT_BQ, n > c ? n : c, kt->gemm_mr);
    for (int i = 0; i < nt; i++) {
        s[i] = vae_alloc_floats((uint64_t)ATT_BQ * n);
        pk[i] = vae_alloc_floats(pkn);
        o[i] = vae_alloc_floats((uint64_t)ATT_BQ * c);
        if (!s[i] || !pk[i] || !o[i]) goto oom;
    }
    ctx->prof = NULL;
    group_stats(kt, groups, eps, x, cpg * n, mean, rstd);
    /* K and V^T, chunk by chunk, packed as vae_pack_b_all would */
    for (size_t p0 = 0; p0 < n; p0 += LEAN_CHUNK) {
        size_t cnt = min_sz(LEAN_CHUNK, n - p0);
        norm_columns(kt, nm, groups, mean, rstd, x, n, p0, cnt, xn);
        if ((rc = vae_conv2d(ctx, k, VAE_CONV_SAME, xn, 1, (int32_t)cnt, t1, 0, err)) != VAE_OK)
            goto out;
        for (size_t k0 = 0; k0 < c; k0 += VAE_GEMM_KC) {
            size_t kc = min_sz(VAE_GEMM_KC, c - k0);
            vae_pack_b(NR, kc, cnt, t1 + k0 * cnt, cnt, kp + k0 * npad + (p0 / NR) * kc * NR);
        }
        if ((rc = vae_conv2d(ctx, v, VAE_CONV_SAME, xn, 1, (int32_t)cnt, t1, 0, err)) != VAE_OK)
            goto out;
        transpose(t1, c, cnt, vt, 1.0f);
        vae_pack_b_all(kt, cnt, c, vt, c, vp + p0 * cpad);
    }
    /* queries, chunk by chunk: Q, attention, projection, residual */
    for (size_t p0 = 0; p0 < n; p0 += LEAN_CHUNK) {
        size_t cnt = min_sz(LEAN_CHUNK, n - p0);
        norm_columns(kt, nm, groups, mean, rstd, x, n, p0, cnt, xn);
        if ((rc = vae_conv2d(ctx, q, VAE_CONV_SAME, xn, 1, (int32_t)cnt, t1, 0, err)) != VAE_OK)
            goto out;
        transpose(t1, c, cnt, qt, (float)(1.0 / sqrt((double)c)));
        att_job j = {ctx, qt, kp, vp, ao, n, c, cnt, cnt, s, pk, o};
        vae_pool_run(ctx->pool, (cnt + ATT_BQ - 1) / ATT_BQ, att_item, &j);
        if ((rc = vae_conv2d(ctx, proj, VAE_CONV_SAME, ao, 1, (int32_t)cnt, t1, 0, err)) != VAE_OK)
            goto out;
        for (size_t ch = 0; ch < c; ch++) {
            float *xr = x + ch * n + p0;
            const float *yr = t1 + ch * cnt;
            for (size_t i = 0; i < cnt; i++) xr[i] += yr[i];
        }
    }
    ctx->prof = prof;
    vae_prof_add(ctx, VAE_PROF_ATTN, t0, 8.0 * (double)c * c * n + 4.0 * (double)n * n * c);
    goto out;
oom:
    rc = vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory in attention over %zu positions", n);
out:
    ctx->prof = prof;
    for (int i = 0; i < nt; i++) {
        if (s) vae_free_aligned(s[i]);
        if (pk) vae_free_aligned(pk[i]);
        if (o) vae_free_aligned(o[i]);
    }
    free(s);
    free(pk);
    free(o);
    free(mean);
    vae_free_aligned(kp);
    vae_free_aligned(vp);
    vae_free_aligned(xn);
    vae_free_aligned(t1);
    vae_free_aligned(qt);
    vae_free_aligned(vt);
    vae_free_aligned(ao);
    return rc;
}

/* ---- The flash form: x and the output only ---------------------------------
 *
 * For budgets below the lean form's three C x N tensors: K and V are never
 * stored but recomputed, block by block, for each chunk of FLASH_QC queries
 * (under 10% more arithmetic at 512^2 latent positions), and each query's
 * softmax runs over the key blocks with a running maximum and sum. The output
 * goes to a second tensor: later chunks still read x for their keys. */

#define FLASH_QC (ATT_BQ * 128) /* queries per chunk */
#define FLASH_KB 768            /* keys per block: a multiple of VAE_GEMM_KC and every NR */

typedef struct flash_job {
    const vae_ctx *ctx;
    const float *qt;   /* qc x C, scaled */
    const float *kp;   /* K block (C x kb), packed */
    const float *vp;   /* V^T block (kb x C), packed */
    float *acc;        /* qc x C: running unnormalised output */
    float *mx, *sum;   /* qc: running max and sum of e^(s - max) */
    size_t qc, kb, c;
    float **s, **pk;
} flash_job;

static void flash_item(void *arg, size_t item, int thread)
{
    flash_job *j = arg;
    const vae_kernel_table *kt = j->ctx->kt;
    size_t i0 = item * ATT_BQ, bq = min_sz(ATT_BQ, j->qc - i0), kb = j->kb, c = j->c;
    float *s = j->s[thread];
    vae_packed a;
    vae_packed_fill(&a, bq, c, kt->gemm_mr, j->qt + i0 * c, j->pk[thread]);
    vae_gemm_prepacked(kt, &a, j->kp, kb, s, kb, 0);
    for (size_t i = 0; i < bq; i++) {
        float *row = s + i * kb;
        size_t am = 0;
        for (size_t q = 1; q < kb; q++)
            if (row[q] > row[am]) am = q;
        float mb = row[am];
        /* the row becomes e^(s - mb) / lb; at the argmax that is 1 / lb */
        kt->softmax(kb, row);
        double lb = 1.0 / (double)row[am];
        float *m = j->mx + i0 + i, *l = j->sum + i0 + i;
        float mn = *m > mb ? *m : mb;
        double f_old = *l > 0 ? exp((double)*m - mn) : 0.0, f_blk = exp((double)mb - mn);
        *l = (float)(*l * f_old + lb * f_blk);
        *m = mn;
        float pscale = (float)(lb * f_blk), oscale = (float)f_old;
        for (size_t q = 0; q < kb; q++) row[q] *= pscale;
        float *o = j->acc + (i0 + i) * c;
        for (size_t ch = 0; ch < c; ch++) o[ch] *= oscale;
    }
    /* acc += P * V^T */
    vae_packed_fill(&a, bq, kb, kt->gemm_mr, s, j->pk[thread]);
    vae_gemm_prepacked(kt, &a, j->vp, c, j->acc + i0 * c, c, 1);
}

/* An upper bound of what vae_attention_flash allocates (n >= FLASH_QC):
 * kp, vp, vt; xn, t1, qt, acc of a query chunk; mx, sum; per thread the
 * scores and a packed panel. */
uint64_t vae_attention_flash_floats(int32_t c, int n_threads, size_t nr)
{
    uint64_t cc = (uint64_t)c, kbpad = (FLASH_KB + nr - 1) / nr * nr;
    uint64_t blocks = cc * kbpad + (uint64_t)FLASH_KB * (cc + nr) + cc * FLASH_KB;
    uint64_t chunk = 4 * cc * FLASH_QC + 2 * FLASH_QC;
    uint64_t kmax = FLASH_KB > cc ? FLASH_KB : cc;
    uint64_t per_thread = (uint64_t)ATT_BQ * FLASH_KB + (uint64_t)ATT_BQ * (kmax + nr) + 64;
    return blocks + chunk + (uint64_t)n_threads * per_thread;
}

int32_t vae_attention_flash(vae_ctx *ctx, const vae_norm *nm, int32_t groups, float eps,
                            const vae_conv *q, const vae_conv *k, const vae_conv *v,
                            const vae_conv *proj, const float *x, float *out, int32_t h, int32_t w,
                            vae_error *err)
{
    const vae_kernel_table *kt = ctx->kt;
    size_t c = (size_t)nm->c, n = (size_t)h * (size_t)w, cpg = c / (size_t)groups;
    const size_t NR = kt->gemm_nr;
    size_t kbpad = (FLASH_KB + NR - 1) / NR * NR;
    int nt = ctx->n_threads;
    int32_t rc = VAE_OK;
    vae_profile *prof = ctx->prof;
    double t0 = prof ? vae_now() : 0;
    size_t qcap = min_sz(FLASH_QC, n), kcap = min_sz(FLASH_KB, n), big = qcap > kcap ? qcap : kcap;
    double *mean = vae_calloc_n((size_t)groups * 2, sizeof *mean), *rstd = mean + groups;
    float *kp = vae_alloc_floats((uint64_t)c * kbpad);
    float *vp = vae_alloc_floats((uint64_t)FLASH_KB * (c + NR));
    float *xn = vae_alloc_floats((uint64_t)c * big), *t1 = vae_alloc_floats((uint64_t)c * big);
    float *vt = vae_alloc_floats((uint64_t)c * kcap);
    float *qt = vae_alloc_floats((uint64_t)c * qcap), *acc = vae_alloc_floats((uint64_t)c * qcap);
    float *mx = vae_alloc_floats(qcap), *sum = vae_alloc_floats(qcap);
    float **s = vae_calloc_n((size_t)nt, sizeof *s), **pk = vae_calloc_n((size_t)nt, sizeof *pk);
    if (!mean || !kp || !vp || !xn || !t1 || !vt || !qt || !acc || !mx || !sum || !s || !pk) goto oom;
    uint64_t pkn = vae_packed_floats(ATT_BQ, kcap > c ? kcap : c, kt->gemm_mr);
    for (int i = 0; i < nt; i++) {
        s[i] = vae_alloc_floats((uint64_t)ATT_BQ * kcap);
        pk[i] = vae_alloc_floats(pkn);
        if (!s[i] || !pk[i]) goto oom;
    }
    ctx->prof = NULL;
    group_stats(kt, groups, eps, x, cpg * n, mean, rstd);
    for (size_t q0 = 0; q0 < n; q0 += FLASH_QC) {
        size_t qc = min_sz(FLASH_QC, n - q0);
        norm_columns(kt, nm, groups, mean, rstd, x, n, q0, qc, xn);
        if ((rc = vae_conv2d(ctx, q, VAE_CONV_SAME, xn, 1, (int32_t)qc, t1, 0, err)) != VAE_OK) goto out;
        transpose(t1, c, qc, qt, (float)(1.0 / sqrt((double)c)));
        memset(acc, 0, qc * c * sizeof *acc);
        for (size_t i = 0; i < qc; i++) {
            mx[i] = -INFINITY;
            sum[i] = 0;
        }
        for (size_t k0 = 0; k0 < n; k0 += FLASH_KB) {
            size_t kb = min_sz(FLASH_KB, n - k0);
            norm_columns(kt, nm, groups, mean, rstd, x, n, k0, kb, xn);
            if ((rc = vae_conv2d(ctx, k, VAE_CONV_SAME, xn, 1, (int32_t)kb, t1, 0, err)) != VAE_OK) goto out;
            vae_pack_b_all(kt, c, kb, t1, kb, kp);
            if ((rc = vae_conv2d(ctx, v, VAE_CONV_SAME, xn, 1, (int32_t)kb, t1, 0, err)) != VAE_OK) goto out;
            transpose(t1, c, kb, vt, 1.0f);
            vae_pack_b_all(kt, kb, c, vt, c, vp);
            flash_job j = {ctx, qt, kp, vp, acc, mx, sum, qc, kb, c, s, pk};
            vae_pool_run(ctx->pool, (qc + ATT_BQ - 1) / ATT_BQ, flash_item, &j);
        }
        /* normalise, back to C x qc, project, add the residual */
        for (size_t i = 0; i < qc; i++) {
            float inv = (float)(1.0 / (double)sum[i]);
            for (size_t ch = 0; ch < c; ch++) t1[ch * qc + i] = acc[i * c + ch] * inv;
        }
        if ((rc = vae_conv2d(ctx, proj, VAE_CONV_SAME, t1, 1, (int32_t)qc, xn, 0, err)) != VAE_OK) goto out;
        for (size_t ch = 0; ch < c; ch++) {
            const float *xr = x + ch * n + q0, *yr = xn + ch * qc;
            float *orow = out + ch * n + q0;
            for (size_t i = 0; i < qc; i++) orow[i] = xr[i] + yr[i];
        }
    }
    ctx->prof = prof;
    vae_prof_add(ctx, VAE_PROF_ATTN, t0, 8.0 * (double)c * c * n + 4.0 * (double)n * n * c);
    goto out;
oom:
    rc = vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory in attention over %zu positions", n);
out:
    ctx->prof = prof;
    for (int i = 0; i < nt; i++) {
        if (s) vae_free_aligned(s[i]);
        if (pk) vae_free_aligned(pk[i]);
    }
    free(s);
    free(pk);
    free(mean);
    vae_free_aligned(kp);
    vae_free_aligned(vp);
    vae_free_aligned(xn);
    vae_free_aligned(t1);
    vae_free_aligned(vt);
    vae_free_aligned(qt);
    vae_free_aligned(acc);
    vae_free_aligned(mx);
    vae_free_aligned(sum);
    return rc;
}
