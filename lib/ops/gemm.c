/* gemm.c - packed-A GEMM drivers over the microkernels (GotoBLAS blocking:
 * K in blocks of VAE_GEMM_KC, N in chunks of VAE_GEMM_NC; threads take whole
 * N chunks, so every output element is summed in the same order whatever
 * the thread count). */
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double vae_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *vae_prof_name(int kind)
{
    static const char *const names[VAE_PROF_KINDS] = {
        "conv3x3", "upsample+conv3x3", "downsample conv3x3", "conv1x1", "groupnorm+silu",
        "attention"};
    return kind >= 0 && kind < VAE_PROF_KINDS ? names[kind] : "?";
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

uint64_t vae_packed_floats(size_t m, size_t k, size_t mr)
{
    uint64_t r;
    if (!vae_mul_ok(div_up(m, mr) * (uint64_t)mr, k, &r)) return UINT64_MAX;
    return r;
}

void vae_packed_fill(vae_packed *p, size_t m, size_t k, size_t mr, const float *a, float *buf)
{
    p->m = m;
    p->k = k;
    p->mr = mr;
    p->data = buf;
    size_t panels = div_up(m, mr);
    for (size_t k0 = 0; k0 < k; k0 += VAE_GEMM_KC) {
        size_t kc = min_sz(VAE_GEMM_KC, k - k0);
        vae_pack_a(mr, m, kc, a + k0, k, p->data + k0 * panels * mr);
    }
}

int32_t vae_packed_init(vae_packed *p, size_t m, size_t k, size_t mr, const float *a)
{
    uint64_t n = vae_packed_floats(m, k, mr);
    float *buf = n == UINT64_MAX ? NULL : vae_alloc_floats(n);
    p->data = NULL;
    if (!buf) return VAE_ERR_NO_MEMORY;
    vae_packed_fill(p, m, k, mr, a, buf);
    return VAE_OK;
}

void vae_packed_free(vae_packed *p)
{
    if (!p) return;
    vae_free_aligned(p->data);
    p->data = NULL;
}

void vae_gemm_chunk(const vae_kernel_table *kt, const vae_packed *a, size_t n0, size_t nc,
                    vae_bpack_fn pack, const void *bsrc, float *c, size_t ldc, int accumulate,
                    float *bbuf)
{
    const size_t MR = a->mr, NR = kt->gemm_nr, m = a->m, k = a->k;
    const size_t panels = div_up(m, MR);
    for (size_t k0 = 0; k0 < k; k0 += VAE_GEMM_KC) {
        size_t kc = min_sz(VAE_GEMM_KC, k - k0);
        pack(bsrc, k0, kc, n0, nc, NR, bbuf);
        const float *ablock = a->data + k0 * panels * MR;
        int acc = accumulate || k0 > 0;
        /* B panel outer, A panels inner: the B panel (kc x NR, up to 32 KB)
         * stays in L1 while the A panels (6 or 12 KB each) stream from L2. */
        for (size_t np = 0; np * NR < nc; np++) {
            size_t nr = min_sz(NR, nc - np * NR);
            const float *bp = bbuf + np * kc * NR;
            for (size_t mp = 0; mp < panels; mp++) {
                size_t mr = min_sz(MR, m - mp * MR);
                kt->gemm(mr, nr, kc, ablock + mp * kc * MR, bp, c + mp * MR * ldc + np * NR, ldc, acc);
            }
        }
    }
}

void vae_pack_b_all(const vae_kernel_table *kt, size_t k, size_t n, const float *b, size_t ldb,
                    float *dst)
{
    const size_t NR = kt->gemm_nr, npad = div_up(n, NR) * NR;
    for (size_t k0 = 0; k0 < k; k0 += VAE_GEMM_KC)
        vae_pack_b(NR, min_sz(VAE_GEMM_KC, k - k0), n, b + k0 * ldb, ldb, dst + k0 * npad);
}

void vae_gemm_prepacked(const vae_kernel_table *kt, const vae_packed *a, const float *b,
                        size_t n, float *c, size_t ldc, int accumulate)
{
    const size_t MR = a->mr, NR = kt->gemm_nr, m = a->m, k = a->k;
    const size_t panels = div_up(m, MR), npad = div_up(n, NR) * NR;
    for (size_t k0 = 0; k0 < k; k0 += VAE_GEMM_KC) {
        size_t kc = min_sz(VAE_GEMM_KC, k - k0);
        const float *ablock = a->data + k0 * panels * MR;
        int acc = accumulate || k0 > 0;
        for (size_t np = 0; np * NR < n; np++) {
            size_t nr = min_sz(NR, n - np * NR);
            const float *bp = b + k0 * npad + np * kc * NR;
            for (size_t mp = 0; mp < panels; mp++)
                kt->gemm(min_sz(MR, m - mp * MR), nr, kc, ablock + mp * kc * MR, bp,
                         c + mp * MR * ldc + np * NR, ldc, acc);
        }
    }
}

void vae_bpack_matrix(const void *src, size_t k0, size_t kc, size_t n0, size_t nc, size_t nr,
                      float *dst)
{
    const vae_matrix *b = src;
    vae_pack_b(nr, kc, nc, b->p + k0 * b->ld + n0, b->ld, dst);
}

typedef struct gemm_job {
    const vae_ctx *ctx;
    const vae_packed *a;
    vae_matrix b;
    float *c;
    size_t n, ldc;
    int accumulate;
} gemm_job;

static void gemm_item(void *arg, size_t item, int thread)
{
    gemm_job *j = arg;
    size_t n0 = item * VAE_GEMM_NC;
    vae_gemm_chunk(j->ctx->kt, j->a, n0, min_sz(VAE_GEMM_NC, j->n - n0), vae_bpack_matrix,
                   &j->b, j->c + n0, j->ldc, j->accumulate, j->ctx->scratch[thread]);
}

int32_t vae_gemm(vae_ctx *ctx, size_t m, size_t n, size_t k, const float *a, size_t lda,
                 const float *b, size_t ldb, float *c, size_t ldc, int accumulate,
                 vae_error *err)
{
    vae_packed pa;
    /* vae_packed_init wants a dense A; copy when lda != k (rare). */
    const float *dense = a;
    float *tmp = NULL;
    if (lda != k) {
        tmp = vae_alloc_floats((uint64_t)m * k);
        if (!tmp) return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory in a %zux%zu GEMM", m, k);
        for (size_t i = 0; i < m; i++) memcpy(tmp + i * k, a + i * lda, k * sizeof(float));
        dense = tmp;
    }
    int32_t rc = vae_packed_init(&pa, m, k, ctx->kt->gemm_mr, dense);
    vae_free_aligned(tmp);
    if (rc != VAE_OK) return vae_fail(err, rc, "out of memory packing a %zux%zu GEMM", m, k);
    gemm_job j = {ctx, &pa, {b, ldb}, c, n, ldc, accumulate};
    vae_pool_run(ctx->pool, div_up(n, VAE_GEMM_NC), gemm_item, &j);
    vae_packed_free(&pa);
    return VAE_OK;
}

int32_t vae_ctx_init(vae_ctx *ctx, int n_threads, vae_error *err)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->kt = vae_kernels();
    ctx->winograd = 1;
    ctx->pool = vae_pool_create(n_threads);
    if (!ctx->pool) return vae_fail(err, VAE_ERR_NO_MEMORY, "cannot start %d threads", n_threads);
    ctx->n_threads = vae_pool_threads(ctx->pool);
    ctx->scratch = vae_calloc_n((size_t)ctx->n_threads, sizeof *ctx->scratch);
    ctx->wg_v = vae_calloc_n((size_t)ctx->n_threads, sizeof *ctx->wg_v);
    ctx->wg_m = vae_calloc_n((size_t)ctx->n_threads, sizeof *ctx->wg_m);
    ctx->chunk = vae_calloc_n((size_t)ctx->n_threads, sizeof *ctx->chunk);
    if (!ctx->scratch || !ctx->wg_v || !ctx->wg_m || !ctx->chunk) goto oom;
    /* NC is a multiple of every table's NR (ops.h), so this holds whichever
     * table the call ends up with (the model's, vae_model.kt) */
    size_t per = (size_t)VAE_GEMM_KC * VAE_GEMM_NC;
    for (int i = 0; i < ctx->n_threads; i++) {
        ctx->scratch[i] = vae_alloc_floats(per);
        if (!ctx->scratch[i]) goto oom;
    }
    return VAE_OK;
oom:
    vae_ctx_free(ctx);
    return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory for per-thread scratch");
}

float *vae_ctx_buffer(float **buf, uint64_t *cap, uint64_t n)
{
    if (*buf && *cap >= n) return *buf;
    vae_free_aligned(*buf);
    *buf = vae_alloc_floats(n);
    *cap = *buf ? n : 0;
    return *buf;
}

int32_t vae_ctx_thread_buffers(const vae_ctx *ctx, float **bufs, uint64_t *cap, uint64_t n)
{
    if (*cap >= n) return VAE_OK;
    for (int i = 0; i < ctx->n_threads; i++) {
        vae_free_aligned(bufs[i]);
        bufs[i] = vae_alloc_floats(n);
    }
    *cap = n;
    for (int i = 0; i < ctx->n_threads; i++)
        if (!bufs[i]) {
            *cap = 0;
            return VAE_ERR_NO_MEMORY;
        }
    return VAE_OK;
}

void vae_ctx_free(vae_ctx *ctx)
{
    if (ctx->scratch)
        for (int i = 0; i < ctx->n_threads; i++) vae_free_aligned(ctx->scratch[i]);
    free(ctx->scratch);
    vae_free_aligned(ctx->wg_u);
    vae_free_aligned(ctx->wide);
    vae_free_aligned(ctx->wide_packed);
    for (int i = 0; ctx->wg_v && i < ctx->n_threads; i++) vae_free_aligned(ctx->wg_v[i]);
    for (int i = 0; ctx->wg_m && i < ctx->n_threads; i++) vae_free_aligned(ctx->wg_m[i]);
    for (int i = 0; ctx->chunk && i < ctx->n_threads; i++) vae_free_aligned(ctx->chunk[i]);
    free(ctx->wg_v);
    free(ctx->wg_m);
    free(ctx->chunk);
    vae_pool_destroy(ctx->pool);
    memset(ctx, 0, sizeof *ctx);
}
