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
 * are made per call: with the gather in front of it, about a fifth of a
 * 512-channel layer at 32 x 32 (perf, one thread), a few percent from 64 x 64
 * up, where the products grow and the weights do not. Threads take whole
 * chunks of tiles: every output is computed the same way for any thread
 * count. The transforms add rounding: the parity tests measure it.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/winograd.h"
#include "ops/ops.h"

#define WG_TILES 64 /* tiles per work item (<= 64): V and M of a chunk stay in L2/L3 */

typedef struct wg_job {
    const vae_ctx *ctx;
    const vae_conv *cv;
    const float *in;
    int32_t h, w, tiles_x;   /* the (upsampled) image the conv sees = output size */
    int32_t in_w;            /* the stored input's width (w / 2 with up2) */
    size_t in_hw;            /* its plane size */
    int up2;                 /* nearest-2x upsample folded into the gather */
    size_t n_tiles;
    const float *u;       /* 36 packed A matrices, each upanel floats */
    const float *cv_w;    /* the raw weights (cout x cin x 3 x 3) */
    size_t upanel;
    float *out;
    int accumulate;
    float **v, **m;       /* per thread: transformed inputs, products */
    size_t per_item;      /* tiles per work item */
} wg_job;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* The transformed inputs V of tiles t0 .. t0+n-1 (n <= 64) of one channel
 * plane, into v[xi * vs + t]. Runs of tiles that share a tile row go to the
 * wg_input_rows kernel, which reads the 6 image rows under them in place
 * and treats the columns outside the image as zero. Rows above and below
 * the image read a zero line; the upsampled form makes its rows on the fly.
 * Tiles past the last one are zero. */
static void input_tiles(const wg_job *j, const float *plane, size_t t0, size_t n, float *v,
                        size_t vs)
{
    static const float zeros[4 * 64 + 8];
    const vae_kernel_table *kt = j->ctx->kt;
    const int32_t w = j->w, h = j->h;
    const size_t tx_n = (size_t)j->tiles_x;
    float lines[6][4 * 64 + 8];
    size_t t = 0;
    while (t < n) {
        size_t tile = t0 + t;
        if (tile >= j->n_tiles) {
            for (size_t e = 0; e < 36; e++)
                for (size_t q = t; q < n; q++) v[e * vs + q] = 0.0f;
            return;
        }
        size_t row = tile / tx_n, col = tile % tx_n;
        size_t run = min_sz(n - t, tx_n - col);
        if (tile + run > j->n_tiles) run = j->n_tiles - tile;
        int32_t ty = (int32_t)row * 4 - 1, tx = (int32_t)col * 4 - 1;
        int32_t span = 4 * (int32_t)run + 2; /* input columns tx .. tx+span-1 */
        int32_t x0 = tx < 0 ? 0 : tx, x1 = tx + span > w ? w : tx + span;
        size_t lo = (size_t)(x0 - tx), hi = (size_t)(x1 - tx);
        const float *rows[6];
        for (int r = 0; r < 6; r++) {
            int32_t y = ty + r;
            if (y < 0 || y >= h) {
                rows[r] = zeros;
            } else if (!j->up2) {
                rows[r] = plane + (size_t)y * (size_t)w + (size_t)x0;
            } else {
                /* the upsampled row y is stored row y/2, pixel x is x/2: rows
                 * y-1 and y often share a stored row, and then a line */
                if (r > 0 && rows[r - 1] == lines[r - 1] && ((y - 1) >> 1) == (y >> 1)) {
                    rows[r] = rows[r - 1];
                    continue;
                }
                const float *src = plane + (size_t)(y >> 1) * (size_t)j->in_w;
                float *line = lines[r];
                int32_t x = x0;
                if (x & 1) *line++ = src[x++ >> 1];
                const float *s2 = src + (x >> 1);
                size_t pairs = (size_t)(x1 - x) / 2;
                for (size_t k = 0; k < pairs; k++) { /* every stored pixel twice */
                    line[2 * k] = s2[k];
                    line[2 * k + 1] = s2[k];
                }
                if ((x1 - x) & 1) line[2 * pairs] = s2[pairs];
                rows[r] = lines[r];
            }
        }
        kt->wg_input_rows(run, rows, lo, hi, v + t, vs);
        t += run;
    }
}

/* Output transform of tiles t0 .. t0+nt-1 of channel co (m: their M, xi
 * stride ms), bias, and the store (or fused residual add) of the part of
 * each 4x4 block inside the image. Runs of whole tiles in one tile row are
 * written by the wg_output_rows kernel; tiles cut by the image's right or
 * bottom edge (sizes not a multiple of 4) go through a 4x4 buffer. */
static void store_tiles(const wg_job *j, size_t co, const float *m, size_t ms, size_t t0, size_t nt)
{
    const vae_kernel_table *kt = j->ctx->kt;
    const size_t hw = (size_t)j->h * (size_t)j->w, tx_n = (size_t)j->tiles_x;
    const float b = j->cv->bias[co];
    float *oplane = j->out + co * hw;
    size_t t = 0;
    while (t < nt) {
        size_t tile = t0 + t;
        size_t row = tile / tx_n, col = tile % tx_n;
        size_t run = min_sz(min_sz(nt - t, tx_n - col), 64);
        int32_t oy = (int32_t)row * 4, ox = (int32_t)col * 4;
        int whole_rows = oy + 4 <= j->h;
        if (whole_rows && ox + 4 * (int32_t)run > j->w) {
            size_t fit = (size_t)(j->w - ox) / 4;
            if (fit > 0) run = fit; /* the whole tiles first */
            else whole_rows = 0;
        }
        if (whole_rows) {
            float *rows[4];
            for (int r = 0; r < 4; r++) rows[r] = oplane + (size_t)(oy + r) * (size_t)j->w + (size_t)ox;
            kt->wg_output_rows(run, m + t, ms, b, rows, j->accumulate);
        } else {
            float y[16 * 64];
            kt->wg_output(run, m + t, ms, y, 64);
            int32_t rows = j->h - oy < 4 ? j->h - oy : 4;
            for (size_t q = 0; q < run; q++) {
                int32_t x = ox + 4 * (int32_t)q, cols = j->w - x < 4 ? j->w - x : 4;
                for (int32_t r = 0; r < rows; r++) {
                    float *o = oplane + (size_t)(oy + r) * (size_t)j->w + (size_t)x;
                    const float *yt = y + (size_t)(r * 4) * 64 + q;
                    if (j->accumulate)
                        for (int32_t c = 0; c < cols; c++) o[c] += yt[(size_t)c * 64] + b;
                    else
                        for (int32_t c = 0; c < cols; c++) o[c] = yt[(size_t)c * 64] + b;
                }
            }
        }
        t += run;
    }
}

static void wg_item(void *arg, size_t item, int thread)
{
    wg_job *j = arg;
    const vae_kernel_table *kt = j->ctx->kt;
    const size_t MR = kt->gemm_mr, NR = kt->gemm_nr;
    const size_t cin = (size_t)j->cv->cin, cout = (size_t)j->cv->cout;
    const size_t t0 = item * j->per_item, nt = min_sz(j->per_item, j->n_tiles - t0);
    const size_t ntp = (nt + NR - 1) / NR * NR; /* padded to whole panels */
    float *v = j->v[thread], *m = j->m[thread];

    /* 1. input transform, NR tiles at a time, written straight into the
     * packed B panels: V[xi] is cin x ntp, K-blocked like every packed B. */
    const size_t vxi = cin * ntp;
    for (size_t p0 = 0; p0 < ntp; p0 += NR) {
        for (size_t ci = 0; ci < cin; ci++) {
            size_t k0 = ci / VAE_GEMM_KC * VAE_GEMM_KC, kc = min_sz(VAE_GEMM_KC, cin - k0);
            input_tiles(j, j->in + ci * j->in_hw, t0 + p0, NR,
                        v + k0 * ntp + (p0 / NR) * kc * NR + (ci - k0) * NR, vxi);
        }
    }

    /* 2. M[xi] (cout x nt, row stride ntp) = U[xi] V[xi]: V[xi] is laid out
     * as vae_pack_b_all lays out a cin x nt matrix (ntp = nt padded to NR) */
    for (size_t xi = 0; xi < 36; xi++) {
        vae_packed uxi = {cout, cin, MR, (float *)(j->u + xi * j->upanel)};
        vae_gemm_prepacked(kt, &uxi, v + xi * vxi, nt, m + xi * cout * ntp, ntp, 0);
    }

    /* 3. output transform, bias, (fused residual) store of the valid part */
    for (size_t co = 0; co < cout; co++) store_tiles(j, co, m + co * ntp, cout * ntp, t0, nt);
}

/* The inputs g[e * 64 + t] of the weight transform for kernels f0 ..
 * f0+n-1 (n <= 64) of K block k0 (kc input channels) and panel mp (MR output
 * channels), in the order of its outputs, the packed A panel of the
 * products: element f = kq * MR + r is (co = mp * MR + r, ci = k0 + kq);
 * rows past cout are zero. Laying the weights out so at load would save
 * these 9 moves per kernel: 9% of a 512-channel layer at 32 x 32, under 1%
 * of a 256 x 256 decode, for 1.5% more weight memory (measured; not kept). */
static void wg_gather(const wg_job *j, size_t MR, size_t k0, size_t mp, size_t f0, size_t n,
                      float *g)
{
    const size_t cin = (size_t)j->cv->cin, cout = (size_t)j->cv->cout;
    size_t r = f0 % MR, kq = f0 / MR;
    for (size_t t = 0; t < n; t++) {
        size_t co = mp * MR + r;
        if (co < cout) {
            const float *src = j->cv_w + (co * cin + k0 + kq) * 9;
            for (size_t e = 0; e < 9; e++) g[e * 64 + t] = src[e];
        } else {
            for (size_t e = 0; e < 9; e++) g[e * 64 + t] = 0.0f;
        }
        if (++r == MR) {
            r = 0;
            kq++;
        }
    }
}

typedef struct wg_weights_job {
    const wg_job *j;
    float *u;             /* 36 packed A matrices of upanel floats */
    size_t upanel, mr;
} wg_weights_job;

/* U = G g G^T for the MR output channels of panel mp, written straight
 * into the packed layout: for each xi the destination is one contiguous run
 * per K block, so the 36 output streams stay cache friendly. */
static void wg_weight_item(void *arg, size_t mp, int thread)
{
    (void)thread;
    wg_weights_job *w = arg;
    const vae_kernel_table *kt = w->j->ctx->kt;
    const size_t cin = (size_t)w->j->cv->cin, cout = (size_t)w->j->cv->cout, MR = w->mr;
    const size_t panels = (cout + MR - 1) / MR;
    float g[9 * 64];
    for (size_t k0 = 0; k0 < cin; k0 += VAE_GEMM_KC) {
        size_t kc = min_sz(VAE_GEMM_KC, cin - k0);
        float *base = w->u + k0 * panels * MR + mp * kc * MR;
        for (size_t f0 = 0; f0 < kc * MR; f0 += 64) {
            size_t n = min_sz(64, kc * MR - f0);
            wg_gather(w->j, MR, k0, mp, f0, n, g);
            kt->wg_weight(n, g, 64, base + f0, w->upanel);
        }
    }
}

/* ---- Weight-stationary form, for small images ------------------------------
 *
 * With at most WS_MAX_TILES tiles the transformed weights U (4x the weights:
 * 38 MB for a 512-channel layer) would be written to memory and read back
 * for a handful of products each, and that traffic would cost more than the
 * products. Here V (the transformed input of all tiles, a few MB) is made
 * once, and each work item transforms the weights of WS_ROWS output
 * channels (whole panels) one K block at a time into a buffer that stays in L2,
 * multiplies them by V at once and applies the output transform. Every sum
 * runs in the order of the other form. */

#define WS_MAX_TILES 64
#define WS_ROWS 24 /* 4 panels of 6 or 2 of 12: 22 items for 512 channels */

/* Output channels per work item: whole panels, about WS_ROWS of them. */
static size_t ws_rows(size_t mr) { return (mr < WS_ROWS ? WS_ROWS / mr : 1) * mr; }

typedef struct ws_job {
    wg_job *j;
    float *v;             /* 36 packed B matrices of cin x ntp */
    size_t ntp;
} ws_job;

/* V for the channels ci0 .. ci0+15 of every tile. */
static void ws_input_item(void *arg, size_t item, int thread)
{
    (void)thread;
    ws_job *w = arg;
    wg_job *j = w->j;
    const vae_kernel_table *kt = j->ctx->kt;
    const size_t NR = kt->gemm_nr, cin = (size_t)j->cv->cin, ntp = w->ntp, vxi = cin * ntp;
    size_t ci0 = item * 16, ci1 = min_sz(ci0 + 16, cin);
    for (size_t p0 = 0; p0 < ntp; p0 += NR)
        for (size_t ci = ci0; ci < ci1; ci++) {
            size_t k0 = ci / VAE_GEMM_KC * VAE_GEMM_KC, kc = min_sz(VAE_GEMM_KC, cin - k0);
            input_tiles(j, j->in + ci * j->in_hw, p0, NR,
                        w->v + k0 * ntp + (p0 / NR) * kc * NR + (ci - k0) * NR, vxi);
        }
}


static void ws_item(void *arg, size_t item, int thread)
{
    ws_job *w = arg;
    wg_job *j = w->j;
    const vae_kernel_table *kt = j->ctx->kt;
    const size_t MR = kt->gemm_mr, NR = kt->gemm_nr;
    const size_t cin = (size_t)j->cv->cin, cout = (size_t)j->cv->cout, ntp = w->ntp;
    const size_t nt = j->n_tiles, vxi = cin * ntp;
    const size_t co0 = item * ws_rows(MR), rows = min_sz(ws_rows(MR), cout - co0);
    const size_t np = (rows + MR - 1) / MR, mxi = np * MR * ntp;
    float *u = j->v[thread], *m = j->m[thread];
    float g[9 * 64];
    for (size_t k0 = 0; k0 < cin; k0 += VAE_GEMM_KC) {
        size_t kc = min_sz(VAE_GEMM_KC, cin - k0), us = np * kc * MR;
        /* U of this K block for the item's panels: for each xi, np panels
         * of kc x MR, as wg_weight_item writes them */
        for (size_t q = 0; q < np; q++)
            for (size_t f0 = 0; f0 < kc * MR; f0 += 64) {
                size_t n = min_sz(64, kc * MR - f0);
                wg_gather(j, MR, k0, co0 / MR + q, f0, n, g);
                kt->wg_weight(n, g, 64, u + q * kc * MR + f0, us);
            }
        for (size_t xi = 0; xi < 36; xi++) {
            const float *vx = w->v + xi * vxi + k0 * ntp;
            for (size_t p = 0; p * NR < nt; p++) {
                size_t nr = min_sz(NR, nt - p * NR);
                for (size_t q = 0; q < np; q++)
                    kt->gemm(min_sz(MR, rows - q * MR), nr, kc, u + xi * us + q * kc * MR,
                             vx + p * kc * NR, m + xi * mxi + q * MR * ntp + p * NR, ntp, k0 > 0);
            }
        }
    }
    for (size_t r = 0; r < rows; r++) store_tiles(j, co0 + r, m + r * ntp, mxi, 0, nt);
}

int32_t vae_conv3x3_winograd(vae_ctx *ctx, const vae_conv *cv, const float *w_raw,
                             const float *in, int32_t h, int32_t w, int up2, float *out,
                             int accumulate, vae_error *err)
{
    const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, MR = ctx->kt->gemm_mr,
                 NR = ctx->kt->gemm_nr;
    wg_job j;
    memset(&j, 0, sizeof j);
    j.ctx = ctx;
    j.cv = cv;
    j.cv_w = w_raw;
    j.in = in;
    j.in_w = w;
    j.in_hw = (size_t)h * (size_t)w;
    j.up2 = up2;
    if (up2) {
        h *= 2;
        w *= 2;
    }
    j.h = h;
    j.w = w;
    j.tiles_x = (w + 3) / 4;
    j.n_tiles = (size_t)((h + 3) / 4) * (size_t)j.tiles_x;
    j.out = out;
    j.accumulate = accumulate;
    const int ws = j.n_tiles <= WS_MAX_TILES;
    size_t upanel = (size_t)vae_packed_floats(cout, cin, MR);
    size_t ntp = (WG_TILES + NR - 1) / NR * NR, wntp = (j.n_tiles + NR - 1) / NR * NR;
    uint64_t vneed = (uint64_t)36 * cin * ntp, mneed = (uint64_t)36 * cout * ntp;
    if (ws) {
        /* per thread: U of one item's panels for one K block, and their M */
        uint64_t kc = cin < VAE_GEMM_KC ? cin : VAE_GEMM_KC, rows = ws_rows(MR);
        uint64_t ub = (uint64_t)36 * rows * kc, mb = (uint64_t)36 * rows * wntp;
        if (ub > vneed) vneed = ub;
        if (mb > mneed) mneed = mb;
    }
    /* U, or (weight-stationary) V of all tiles, in the one shared buffer */
    float *u = vae_ctx_buffer(&ctx->wg_u, &ctx->wg_u_cap,
                              ws ? (uint64_t)36 * cin * wntp : (uint64_t)36 * upanel);
    if (!u) goto oom;
    /* per-thread buffers share one capacity: grow them together */
    if (vae_ctx_thread_buffers(ctx, ctx->wg_v, &ctx->wg_v_cap, vneed) != VAE_OK ||
        vae_ctx_thread_buffers(ctx, ctx->wg_m, &ctx->wg_m_cap, mneed) != VAE_OK)
        goto oom;
    j.v = ctx->wg_v;
    j.m = ctx->wg_m;
    if (ws) {
        ws_job wj = {&j, u, wntp};
        vae_pool_run(ctx->pool, (cin + 15) / 16, ws_input_item, &wj);
        vae_pool_run(ctx->pool, (cout + ws_rows(MR) - 1) / ws_rows(MR), ws_item, &wj);
        return VAE_OK;
    }
    wg_weights_job wj = {&j, u, upanel, MR};
    vae_pool_run(ctx->pool, (cout + MR - 1) / MR, wg_weight_item, &wj);
    j.u = u;
    j.upanel = upanel;
    /* WG_TILES per item where there is plenty of work; fewer (down to one
     * panel) on small images, so that every thread gets some: a 32x32
     * latent has only 64 tiles. The item size never changes what a tile
     * computes, so results stay the same for any thread count. */
    j.per_item = WG_TILES;
    size_t want = (size_t)ctx->n_threads * 4;
    if (j.n_tiles < WG_TILES * want) {
        size_t per = (j.n_tiles + 2 * (size_t)ctx->n_threads - 1) / (2 * (size_t)ctx->n_threads);
        per = (per + NR - 1) / NR * NR;
        j.per_item = per < NR ? NR : per > WG_TILES ? WG_TILES : per;
    }
    vae_pool_run(ctx->pool, (j.n_tiles + j.per_item - 1) / j.per_item, wg_item, &j);
    return VAE_OK;
oom:
    return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory for a Winograd convolution (%zu -> %zu channels)",
                    cin, cout);
}
