/*
 * winograd.c - stride-1 3x3 convolutions by Winograd's F(4x4, 3x3).
 *
 * Each 4x4 block of output pixels is computed from a 6x6 input tile in three
 * steps: V = B^T d B per input channel, then for each of the 36 transform
 * positions xi an ordinary product M[xi] = U[xi] V[xi] over the channels (U
 * = G g G^T, the transformed weights), then Y = A^T M A. The products carry
 * the work and run on the same GEMM microkernels as the direct path, with 36
 * multiply-adds per 16 outputs and channel pair instead of 144.
 *
 * The transformed weights would take 4x the memory of the weights, so they
 * are made per call (under 1% of the layer's work). Threads take whole
 * chunks of tiles: every output is computed the same way for any thread
 * count. The transforms add rounding: the parity tests measure it.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/winograd.h"
#include "ops/ops.h"

#define WG_TILES 64 /* tiles per work item: V and M of a chunk stay in L2/L3 */

typedef struct wg_job {
    const vae_ctx *ctx;
    const vae_conv *cv;
    const float *in;
    int32_t h, w, tiles_x;
    size_t n_tiles;
    const float *u;       /* 36 packed A matrices, each upanel floats */
    size_t upanel;
    float *out;
    int accumulate;
    float **v, **m;       /* per thread: transformed inputs, products */
} wg_job;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static void wg_item(void *arg, size_t item, int thread)
{
    wg_job *j = arg;
    const vae_kernel_table *kt = j->ctx->kt;
    const size_t MR = kt->gemm_mr, NR = kt->gemm_nr;
    const size_t cin = (size_t)j->cv->cin, cout = (size_t)j->cv->cout;
    const size_t t0 = item * WG_TILES, nt = min_sz(WG_TILES, j->n_tiles - t0);
    const size_t ntp = (nt + NR - 1) / NR * NR; /* padded to whole panels */
    const size_t hw = (size_t)j->h * (size_t)j->w;
    float *v = j->v[thread], *m = j->m[thread];

    /* 1. input transform, written straight into packed B panels:
     * V[xi] is cin x ntp, K-blocked like every packed B. */
    const size_t vxi = cin * ntp;
    for (size_t t = 0; t < ntp; t++) {
        size_t panel = t / NR, col = t % NR;
        int32_t ty = 0, tx = 0;
        int valid = t < nt;
        if (valid) {
            ty = (int32_t)((t0 + t) / (size_t)j->tiles_x) * 4 - 1;
            tx = (int32_t)((t0 + t) % (size_t)j->tiles_x) * 4 - 1;
        }
        for (size_t ci = 0; ci < cin; ci++) {
            size_t k0 = ci / VAE_GEMM_KC * VAE_GEMM_KC, kc = min_sz(VAE_GEMM_KC, cin - k0);
            float *dst = v + k0 * ntp + panel * kc * NR + (ci - k0) * NR + col;
            float d[36];
            if (valid) {
                const float *plane = j->in + ci * hw;
                for (int r = 0; r < 6; r++) {
                    int32_t y = ty + r;
                    for (int c = 0; c < 6; c++) {
                        int32_t x = tx + c;
                        d[r * 6 + c] = (y >= 0 && y < j->h && x >= 0 && x < j->w)
                                           ? plane[(size_t)y * (size_t)j->w + (size_t)x] : 0.0f;
                    }
                }
            } else {
                memset(d, 0, sizeof d);
            }
            vae_f32_winograd_f4x3_input__scalar(d, dst, vxi);
        }
    }

    /* 2. M[xi] (cout x nt, row stride ntp) = U[xi] V[xi] */
    const size_t panels = (cout + MR - 1) / MR;
    for (size_t xi = 0; xi < 36; xi++) {
        const float *uxi = j->u + xi * j->upanel, *vx = v + xi * vxi;
        float *mx = m + xi * cout * ntp;
        for (size_t k0 = 0; k0 < cin; k0 += VAE_GEMM_KC) {
            size_t kc = min_sz(VAE_GEMM_KC, cin - k0);
            for (size_t mp = 0; mp < panels; mp++) {
                size_t mr = min_sz(MR, cout - mp * MR);
                const float *ap = uxi + k0 * panels * MR + mp * kc * MR;
                for (size_t np = 0; np * NR < nt; np++) {
                    size_t nr = min_sz(NR, nt - np * NR);
                    kt->gemm(mr, nr, kc, ap, vx + k0 * ntp + np * kc * NR,
                             mx + mp * MR * ntp + np * NR, ntp, k0 > 0);
                }
            }
        }
    }

    /* 3. output transform, bias, (fused residual) store of the valid part */
    const size_t mxi = cout * ntp;
    for (size_t co = 0; co < cout; co++) {
        float b = j->cv->bias[co];
        float *oplane = j->out + co * hw;
        for (size_t t = 0; t < nt; t++) {
            float y[16];
            vae_f32_winograd_f4x3_output__scalar(m + co * ntp + t, mxi, y);
            int32_t oy = (int32_t)((t0 + t) / (size_t)j->tiles_x) * 4;
            int32_t ox = (int32_t)((t0 + t) % (size_t)j->tiles_x) * 4;
            for (int r = 0; r < 4 && oy + r < j->h; r++) {
                float *o = oplane + (size_t)(oy + r) * (size_t)j->w + (size_t)ox;
                for (int c = 0; c < 4 && ox + c < j->w; c++)
                    o[c] = j->accumulate ? o[c] + (y[r * 4 + c] + b) : y[r * 4 + c] + b;
            }
        }
    }
}

typedef struct wg_weights_job {
    const vae_conv *cv;
    const float *w;       /* cout x cin x 3 x 3 */
    float *rowmajor;      /* 36 x cout x cin */
} wg_weights_job;

static void wg_weight_item(void *arg, size_t co, int thread)
{
    (void)thread;
    wg_weights_job *j = arg;
    size_t cin = (size_t)j->cv->cin, cout = (size_t)j->cv->cout;
    for (size_t ci = 0; ci < cin; ci++)
        vae_f32_winograd_f4x3_weight__scalar(j->w + (co * cin + ci) * 9,
                                             j->rowmajor + co * cin + ci, cout * cin);
}

int32_t vae_conv3x3_winograd(vae_ctx *ctx, const vae_conv *cv, const float *w_raw,
                             const float *in, int32_t h, int32_t w, float *out, int accumulate,
                             vae_error *err)
{
    const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, MR = ctx->kt->gemm_mr,
                 NR = ctx->kt->gemm_nr;
    int32_t rc = VAE_OK;
    wg_job j;
    memset(&j, 0, sizeof j);
    size_t upanel = (size_t)vae_packed_floats(cout, cin, MR);
    float *rowmajor = vae_alloc_floats((uint64_t)36 * cout * cin);
    float *u = vae_alloc_floats((uint64_t)36 * upanel);
    j.v = calloc((size_t)ctx->n_threads, sizeof *j.v);
    j.m = calloc((size_t)ctx->n_threads, sizeof *j.m);
    if (!rowmajor || !u || !j.v || !j.m) goto oom;
    size_t ntp = (WG_TILES + NR - 1) / NR * NR;
    for (int i = 0; i < ctx->n_threads; i++) {
        j.v[i] = vae_alloc_floats((uint64_t)36 * cin * ntp);
        j.m[i] = vae_alloc_floats((uint64_t)36 * cout * ntp);
        if (!j.v[i] || !j.m[i]) goto oom;
    }
    /* U = G g G^T for every (co, ci), then each U[xi] packed for the kernel */
    wg_weights_job wj = {cv, w_raw, rowmajor};
    vae_pool_run(ctx->pool, cout, wg_weight_item, &wj);
    for (size_t xi = 0; xi < 36; xi++) {
        vae_packed p;
        vae_packed_fill(&p, cout, cin, MR, rowmajor + xi * cout * cin, u + xi * upanel);
    }
    vae_free_aligned(rowmajor);
    rowmajor = NULL;

    j.ctx = ctx;
    j.cv = cv;
    j.in = in;
    j.h = h;
    j.w = w;
    j.tiles_x = (w + 3) / 4;
    j.n_tiles = (size_t)((h + 3) / 4) * (size_t)j.tiles_x;
    j.u = u;
    j.upanel = upanel;
    j.out = out;
    j.accumulate = accumulate;
    vae_pool_run(ctx->pool, (j.n_tiles + WG_TILES - 1) / WG_TILES, wg_item, &j);
    goto out;
oom:
    rc = vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory for a Winograd convolution (%zu -> %zu channels)",
                  cin, cout);
out:
    if (j.v)
        for (int i = 0; i < ctx->n_threads; i++) vae_free_aligned(j.v[i]);
    if (j.m)
        for (int i = 0; i < ctx->n_threads; i++) vae_free_aligned(j.m[i]);
    free(j.v);
    free(j.m);
    vae_free_aligned(u);
    vae_free_aligned(rowmajor);
    return rc;
}
