/*
 * layers.c - `bench --layers`: how close the convolution kernels come to the
 * machine's FMA peak, without the rest of the network around them.
 *
 * Each row is one 3x3 stride-1 layer shape of the SDXL VAE (channels x
 * image side), on random data, timed through vae_conv2d as the network
 * calls it:
 *   direct    the im2col GEMM with the weights packed once beforehand, as
 *             the loader packs every convolution that does not go through
 *             Winograd (VAE_FLAG_DIRECT_CONV runs this kernel);
 *   winograd  the default path, F(4x4, 3x3) with the per-call weight
 *             transform included.
 * GFLOP/s are nominal (2 x the direct algorithm's multiply-adds over the
 * time), so Winograd's exceed the peak: it does about a quarter of the
 * multiplications. Median of the runs after one warm-up; for the direct
 * kernels also the best run, which is what the FMA peak (best of 3 rounds)
 * is comparable with on a machine shared with other work.
 *
 * For the direct kernels, before every run, the GEMM microkernel alone on
 * one A and one B panel per thread that stay in L1 (about 20 ms): the most
 * any GEMM could get out of the machine at that moment. On a shared VM it
 * swings with the neighbours while the register-only FMA loop does not
 * (seen here: 46-105% of the FMA peak, docs/performance.md, "Noise"), so
 * "ukernel" is its median %peak and "of uk" the median, over the runs, of
 * each run's rate over the microkernel's just before it: what the driver
 * (packing, caches, threads) keeps of the kernel, whatever the machine does.
 */
#include "layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ops/ops.h"

/* The microkernel on panels in L1, on every thread of the pool. */
typedef struct hot_job {
    const vae_kernel_table *kt;
    float **buf; /* per thread: an A panel, a B panel and a C tile */
    int calls;   /* per item */
} hot_job;

#define HOT_ITEMS_PER_THREAD 8
#define HOT_CALLS 2000 /* about 2.5 ms per item for 12x32 */

static void hot_item(void *arg, size_t item, int thread)
{
    hot_job *j = arg;
    const size_t mr = j->kt->gemm_mr, nr = j->kt->gemm_nr, kc = VAE_GEMM_KC;
    float *a = j->buf[thread], *b = a + mr * kc, *c = b + kc * nr;
    (void)item;
    for (int i = 0; i < j->calls; i++) j->kt->gemm(mr, nr, kc, a, b, c, nr, 1);
}

/* GFLOP/s of the microkernel on all threads now (about 20 ms). */
static double hot_gflops(vae_ctx *ctx, hot_job *hj)
{
    const size_t items = (size_t)HOT_ITEMS_PER_THREAD * (size_t)ctx->n_threads;
    double t0 = vae_now();
    vae_pool_run(ctx->pool, items, hot_item, hj);
    double dt = vae_now() - t0;
    return 2.0 * (double)(ctx->kt->gemm_mr * ctx->kt->gemm_nr * VAE_GEMM_KC) * hj->calls *
           (double)items / dt / 1e9;
}

typedef struct conv_times {
    double median, best; /* seconds */
    double hot;          /* the microkernel's median GFLOP/s (hot != NULL) */
    double of_hot;       /* median of each run's GFLOP/s over the hot rate before it */
} conv_times;

/* `runs` (<= MAX_RUNS) calls after one warm-up; with hj, the microkernel
 * is measured before each. 0, or -1 on failure. */
static int time_conv(vae_ctx *ctx, const vae_conv *cv, const float *in, int32_t side,
                     float *out, int runs, hot_job *hj, double flops, conv_times *ct)
{
    double t[MAX_RUNS], hot[MAX_RUNS], ratio[MAX_RUNS];
    vae_error err;
    memset(&err, 0, sizeof err);
    for (int r = -1; r < runs; r++) {
        double h = hj && r >= 0 ? hot_gflops(ctx, hj) : 0;
        double t0 = vae_now();
        if (vae_conv2d(ctx, cv, VAE_CONV_SAME, in, side, side, out, 0, &err) != VAE_OK) {
            fprintf(stderr, "bench --layers: %s\n", err.msg);
            return -1;
        }
        if (r >= 0) {
            t[r] = vae_now() - t0;
            hot[r] = h;
            ratio[r] = h > 0 ? flops / t[r] / 1e9 / h : 0;
        }
    }
    ct->best = min_of(t, runs);
    ct->median = median_of(t, runs);
    ct->hot = hj ? median_of(hot, runs) : 0;
    ct->of_hot = hj ? median_of(ratio, runs) : 0;
    return 0;
}

int bench_layers(int runs, int threads, double peak)
{
    static const struct { int32_t ch, side; } shapes[] = {
        {512, 32}, {512, 64}, {512, 128}, {256, 128}, {256, 256}, {128, 256},
    };
    vae_ctx ctx;
    vae_error err;
    memset(&err, 0, sizeof err);
    if (vae_ctx_init(&ctx, threads, &err) != VAE_OK) {
        fprintf(stderr, "bench --layers: %s\n", err.msg);
        return 1;
    }
    /* the microkernel's panels, per thread */
    const size_t hot_floats = ctx.kt->gemm_mr * VAE_GEMM_KC + VAE_GEMM_KC * ctx.kt->gemm_nr +
                              ctx.kt->gemm_mr * ctx.kt->gemm_nr;
    hot_job hj = {ctx.kt, calloc((size_t)ctx.n_threads, sizeof(float *)), HOT_CALLS};
    int rc = hj.buf ? 0 : 1;
    for (int t = 0; t < ctx.n_threads && rc == 0; t++) {
        uint64_t s = 0x40u + (uint64_t)t;
        if (!(hj.buf[t] = vae_alloc_floats(hot_floats))) rc = 1;
        else
            for (size_t k = 0; k < hot_floats; k++) hj.buf[t][k] = 0.01f * uniform_pm1(&s);
    }
    if (rc) {
        fprintf(stderr, "bench --layers: out of memory\n");
        goto done;
    }
    printf("\nconvolution layers, 3x3 stride 1, %d thread%s, median of %d (nominal GFLOP/s);\n"
           "best: the fastest run's %%peak; ukernel: the GEMM microkernel on panels in L1,\n"
           "measured before each direct run (median %%peak); of uk: median of each run over it\n",
           ctx.n_threads, ctx.n_threads == 1 ? "" : "s", runs);
    printf("%-14s %10s %9s %7s %7s %8s %6s %10s %9s %7s\n", "layer", "direct ms", "GFLOP/s",
           "%peak", "best", "ukernel", "of uk", "wino ms", "GFLOP/s", "%peak");
    uint64_t seed = 0x1a7e5u;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && rc == 0; i++) {
        const int32_t c = shapes[i].ch, side = shapes[i].side;
        const size_t nw = (size_t)c * (size_t)c * 9, nx = (size_t)c * (size_t)side * (size_t)side;
        float *w = vae_alloc_floats(nw), *in = vae_alloc_floats(nx), *out = vae_alloc_floats(nx);
        float *bias = vae_alloc_floats((uint64_t)c);
        vae_conv direct, wino;
        memset(&direct, 0, sizeof direct);
        memset(&wino, 0, sizeof wino);
        if (!w || !in || !out || !bias) {
            fprintf(stderr, "bench --layers: out of memory\n");
            rc = 1;
            goto next;
        }
        for (size_t k = 0; k < nw; k++) w[k] = 0.025f * uniform_pm1(&seed);
        for (size_t k = 0; k < nx; k++) in[k] = 0.5f * uniform_pm1(&seed);
        for (int32_t k = 0; k < c; k++) bias[k] = 0.5f * uniform_pm1(&seed);
        direct.cout = direct.cin = wino.cout = wino.cin = c;
        direct.ksize = wino.ksize = 3;
        direct.bias = wino.bias = bias;
        if (vae_packed_init(&direct.w, (size_t)c, (size_t)c * 9, ctx.kt->gemm_mr, w) != VAE_OK) {
            fprintf(stderr, "bench --layers: out of memory\n");
            rc = 1;
            goto next;
        }
        wino.w_raw = w;
        double flops = 2.0 * (double)c * (double)c * 9.0 * (double)side * (double)side;
        conv_times d, wg;
        ctx.winograd = 0;
        rc = time_conv(&ctx, &direct, in, side, out, runs, &hj, flops, &d);
        ctx.winograd = 1;
        if (rc == 0) rc = time_conv(&ctx, &wino, in, side, out, runs, NULL, flops, &wg);
        if (rc) {
            rc = 1;
            goto next;
        }
        char name[32];
        snprintf(name, sizeof name, "%dch %dx%d", c, side, side);
        double gd = flops / d.median / 1e9, gdb = flops / d.best / 1e9, gw = flops / wg.median / 1e9;
        if (peak > 0)
            printf("%-14s %10.2f %9.1f %6.1f%% %6.1f%% %7.1f%% %5.1f%% %10.2f %9.1f %6.1f%%\n", name,
                   d.median * 1e3, gd, 100.0 * gd / peak, 100.0 * gdb / peak, 100.0 * d.hot / peak,
                   100.0 * d.of_hot, wg.median * 1e3, gw, 100.0 * gw / peak);
        else
            printf("%-14s %10.2f %9.1f %7s %7s %8s %5.1f%% %10.2f %9.1f %7s\n", name,
                   d.median * 1e3, gd, "-", "-", "-", 100.0 * d.of_hot, wg.median * 1e3, gw, "-");
    next:
        vae_packed_free(&direct.w);
        vae_free_aligned(w);
        vae_free_aligned(in);
        vae_free_aligned(out);
        vae_free_aligned(bias);
    }
done:
    for (int t = 0; hj.buf && t < ctx.n_threads; t++) vae_free_aligned(hj.buf[t]);
    free(hj.buf);
    vae_ctx_free(&ctx);
    return rc;
}
