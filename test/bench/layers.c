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
 */
#include "layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ops/ops.h"

/* Median seconds of `runs` (<= MAX_RUNS) calls after one warm-up, and the
 * fastest in *best; < 0 on failure. */
static double time_conv(vae_ctx *ctx, const vae_conv *cv, const float *in, int32_t side,
                        float *out, int runs, double *best)
{
    double t[MAX_RUNS];
    vae_error err;
    memset(&err, 0, sizeof err);
    for (int r = -1; r < runs; r++) {
        double t0 = vae_now();
        if (vae_conv2d(ctx, cv, VAE_CONV_SAME, in, side, side, out, 0, &err) != VAE_OK) {
            fprintf(stderr, "bench --layers: %s\n", err.msg);
            return -1;
        }
        if (r >= 0) t[r] = vae_now() - t0;
    }
    *best = min_of(t, runs);
    return median_of(t, runs);
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
    printf("\nconvolution layers, 3x3 stride 1, %d thread%s, median of %d (nominal GFLOP/s);\n"
           "best: the fastest run's %%peak\n",
           ctx.n_threads, ctx.n_threads == 1 ? "" : "s", runs);
    printf("%-14s %10s %9s %7s %7s %10s %9s %7s\n", "layer", "direct ms", "GFLOP/s", "%peak",
           "best", "wino ms", "GFLOP/s", "%peak");
    int rc = 0;
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
        double tdb, twb;
        ctx.winograd = 0;
        double td = time_conv(&ctx, &direct, in, side, out, runs, &tdb);
        ctx.winograd = 1;
        double tw = td < 0 ? -1 : time_conv(&ctx, &wino, in, side, out, runs, &twb);
        if (td < 0 || tw < 0) {
            rc = 1;
            goto next;
        }
        char name[32];
        snprintf(name, sizeof name, "%dch %dx%d", c, side, side);
        double gd = flops / td / 1e9, gdb = flops / tdb / 1e9, gw = flops / tw / 1e9;
        if (peak > 0)
            printf("%-14s %10.2f %9.1f %6.1f%% %6.1f%% %10.2f %9.1f %6.1f%%\n", name, td * 1e3, gd,
                   100.0 * gd / peak, 100.0 * gdb / peak, tw * 1e3, gw, 100.0 * gw / peak);
        else
            printf("%-14s %10.2f %9.1f %7s %7s %10.2f %9.1f %7s\n", name, td * 1e3, gd, "-", "-",
                   tw * 1e3, gw, "-");
    next:
        vae_packed_free(&direct.w);
        vae_free_aligned(w);
        vae_free_aligned(in);
        vae_free_aligned(out);
        vae_free_aligned(bias);
    }
    vae_ctx_free(&ctx);
    return rc;
}
