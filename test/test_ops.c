/*
 * test_ops.c - every op against a direct, loop-by-loop double-precision
 * reference written from the PyTorch definitions: 3x3 convolution (stride 1
 * pad 1; Downsample's stride 2 with (0,1,0,1) padding; nearest-2x upsample
 * then conv), 1x1 convolution, the fused residual accumulate, GroupNorm with
 * and without SiLU, and the mid-block attention. Odd sizes and 1-pixel
 * images included; scalar and SIMD kernels both.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "ops/ops.h"
#include "testutil.h"

static uint64_t rng_state = 1;
static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static float *rand_buf(size_t n)
{
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static void make_conv(vae_conv *cv, int cout, int cin, int k, float **w_out)
{
    size_t K = (size_t)cin * (size_t)k * (size_t)k;
    float *w = rand_buf((size_t)cout * K);
    memset(cv, 0, sizeof *cv);
    cv->cout = cout;
    cv->cin = cin;
    cv->ksize = k;
    cv->bias = vae_alloc_floats((uint64_t)cout);
    for (int i = 0; i < cout; i++) cv->bias[i] = frand();
    ck_assert_int_eq(vae_packed_init(&cv->w, (size_t)cout, K, vae_kernels()->gemm_mr, w), VAE_OK);
    *w_out = w;
}

static void free_conv(vae_conv *cv, float *w)
{
    vae_conv_free(cv);
    free(w);
}

/* torch.nn.functional.conv2d on the (possibly padded / upsampled) input */
static void ref_conv(const float *in, int cin, int h, int w, const float *wt, const float *bias,
                     int cout, int k, int mode, double *out, int *oh_out, int *ow_out)
{
    int oh = h, ow = w;
    if (mode == VAE_CONV_DOWN2) { oh = h / 2; ow = w / 2; }
    if (mode == VAE_CONV_UP2) { oh = 2 * h; ow = 2 * w; }
    for (int co = 0; co < cout; co++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double s = bias[co];
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy, ix, H = h, W = w;
                            if (k == 1) { iy = y; ix = x; }
                            else if (mode == VAE_CONV_SAME) { iy = y + ky - 1; ix = x + kx - 1; }
                            else if (mode == VAE_CONV_DOWN2) { iy = 2 * y + ky; ix = 2 * x + kx; }
                            else { iy = y + ky - 1; ix = x + kx - 1; H = 2 * h; W = 2 * w; }
                            if (iy < 0 || ix < 0 || iy >= H || ix >= W) continue;
                            if (mode == VAE_CONV_UP2 && k == 3) { iy /= 2; ix /= 2; }
                            s += (double)wt[((co * cin + ci) * k + ky) * k + kx] *
                                 in[((size_t)ci * h + iy) * w + ix];
                        }
                out[((size_t)co * oh + y) * ow + x] = s;
            }
    *oh_out = oh;
    *ow_out = ow;
}

static double rel_err_d(const float *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= num)) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}

static const struct { int cout, cin, k, h, w, mode; } conv_cases[] = {
    {1, 1, 3, 1, 1, VAE_CONV_SAME},   {7, 3, 3, 5, 9, VAE_CONV_SAME},
    {13, 5, 3, 8, 8, VAE_CONV_DOWN2}, {6, 4, 3, 3, 5, VAE_CONV_UP2},
    {17, 33, 1, 7, 11, VAE_CONV_SAME}, {32, 32, 3, 16, 12, VAE_CONV_SAME},
    {8, 40, 3, 17, 19, VAE_CONV_SAME}, /* K = 360 spans two K blocks */
    {5, 30, 3, 10, 6, VAE_CONV_DOWN2}, {9, 31, 3, 12, 13, VAE_CONV_UP2},
    {3, 3, 3, 2, 2, VAE_CONV_DOWN2},  {4, 300, 1, 3, 3, VAE_CONV_SAME},
    {2, 3, 3, 1, 1, VAE_CONV_UP2},    {19, 70, 3, 9, 15, VAE_CONV_UP2}, /* 135 px: two N chunks */
    {16, 16, 3, 1, 1, VAE_CONV_SAME}, {16, 300, 3, 5, 7, VAE_CONV_SAME}, /* partial tiles, K > KC */
    {40, 17, 3, 36, 41, VAE_CONV_SAME}, /* 90 tiles: two Winograd chunks */
    {6, 5, 3, 10, 70, VAE_CONV_DOWN2}, /* output rows of 35: whole panels read every other float */
    /* rows of whole panels (16 or 32 px): each tap a run with zero ends, or
     * all zero on the padding rows (the im2col plan's runs) */
    {8, 20, 3, 6, 64, VAE_CONV_SAME}, {5, 7, 3, 4, 32, VAE_CONV_SAME},
    {6, 9, 3, 3, 64, VAE_CONV_UP2},   {4, 6, 3, 8, 128, VAE_CONV_DOWN2},
    /* enough pixels for chunks of 256 on 2 threads (at least 16 each), the
     * last one half full; and on 1 thread for the folded Upsample */
    {5, 6, 3, 64, 130, VAE_CONV_SAME}, {6, 10, 1, 64, 130, VAE_CONV_SAME},
    {4, 5, 3, 64, 72, VAE_CONV_UP2},
};

static void run_conv_case(int ci, int isa, int threads)
{
    vae_kernels_set_max_isa(isa);
    int cout = conv_cases[ci].cout, cin = conv_cases[ci].cin, k = conv_cases[ci].k,
        h = conv_cases[ci].h, w = conv_cases[ci].w, mode = conv_cases[ci].mode;
    vae_conv cv;
    float *wt;
    make_conv(&cv, cout, cin, k, &wt);
    float *in = rand_buf((size_t)cin * h * w);
    size_t on = (size_t)cout * 4 * h * w;
    double *ref = malloc(on * sizeof(double));
    int oh, ow;
    ref_conv(in, cin, h, w, wt, cv.bias, cout, k, mode, ref, &oh, &ow);
    size_t n = (size_t)cout * oh * ow;
    float *out = malloc(n * sizeof(float));
    vae_ctx ctx;
    vae_error err;
    ck_assert_int_eq(vae_ctx_init(&ctx, threads, &err), VAE_OK);
    ck_assert_int_eq(vae_conv2d(&ctx, &cv, mode, in, h, w, out, 0, &err), VAE_OK);
    double e = rel_err_d(out, ref, n);
    ck_assert_msg(e < 1e-5, "conv case %d (%s): rel err %g", ci, ctx.kt->isa, e);
    /* accumulate: out += conv(in) */
    float *acc = rand_buf(n);
    double *ref2 = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) ref2[i] = acc[i] + ref[i];
    ck_assert_int_eq(vae_conv2d(&ctx, &cv, mode, in, h, w, acc, 1, &err), VAE_OK);
    e = rel_err_d(acc, ref2, n);
    ck_assert_msg(e < 1e-5, "conv case %d accumulate: rel err %g", ci, e);
    /* stride-1 3x3 (and upsample + 3x3) from the weights as stored:
     * Winograd F(4x4, 3x3) and the direct form, with and without the fused
     * residual add */
    if ((mode == VAE_CONV_SAME || mode == VAE_CONV_UP2) && k == 3) {
        cv.w_raw = vae_alloc_floats((uint64_t)cout * cin * 9);
        memcpy(cv.w_raw, wt, sizeof(float) * cout * cin * 9);
        for (int wg = 0; wg < 2; wg++) {
            ctx.winograd = wg;
            memset(out, 0xff, n * sizeof(float));
            ck_assert_int_eq(vae_conv2d(&ctx, &cv, mode, in, h, w, out, 0, &err), VAE_OK);
            /* Winograd's transforms round more than the direct sum (about
             * 1e-5 of the largest output for a K of 2700); the whole-model
             * parity tests bound what that does end to end */
            double tol = wg ? 4e-5 : 1e-5;
            e = rel_err_d(out, ref, n);
            ck_assert_msg(e < tol, "conv case %d raw weights winograd=%d (%s): rel err %g", ci, wg,
                          ctx.kt->isa, e);
            float *acc2 = rand_buf(n);
            for (size_t i = 0; i < n; i++) ref2[i] = acc2[i] + ref[i];
            ck_assert_int_eq(vae_conv2d(&ctx, &cv, mode, in, h, w, acc2, 1, &err), VAE_OK);
            e = rel_err_d(acc2, ref2, n);
            ck_assert_msg(e < tol, "conv case %d raw weights winograd=%d accumulate: %g", ci, wg, e);
            free(acc2);
        }
        vae_free_aligned(cv.w_raw);
        cv.w_raw = NULL;
    }
    /* the Upsample conv folded into four 2x2 convs gives the same */
    if (mode == VAE_CONV_UP2) {
        ck_assert_int_eq(vae_conv_prepare_upsample(&cv, wt, ctx.kt->gemm_mr), VAE_OK);
        ck_assert(cv.has_sub);
        memset(out, 0xff, n * sizeof(float));
        ck_assert_int_eq(vae_conv2d(&ctx, &cv, mode, in, h, w, out, 0, &err), VAE_OK);
        e = rel_err_d(out, ref, n);
        ck_assert_msg(e < 1e-5, "conv case %d folded upsample (%s): rel err %g", ci, ctx.kt->isa, e);
    }
    vae_ctx_free(&ctx);
    free(acc); free(ref2); free(out); free(ref); free(in);
    free_conv(&cv, wt);
    vae_kernels_set_max_isa(VAE_ISA_BEST);
}

START_TEST(test_conv_best) { run_conv_case(_i, VAE_ISA_BEST, 2); }
END_TEST
START_TEST(test_conv_scalar) { run_conv_case(_i, VAE_ISA_SCALAR, 1); }
END_TEST

static void ref_groupnorm(const float *x, int c, int hw, int groups, float eps, const float *g,
                          const float *b, int silu, double *y)
{
    int cpg = c / groups;
    for (int gi = 0; gi < groups; gi++) {
        double s = 0, ss = 0;
        size_t n = (size_t)cpg * hw, off = (size_t)gi * cpg * hw;
        for (size_t i = 0; i < n; i++) s += x[off + i];
        double mean = s / n;
        for (size_t i = 0; i < n; i++) ss += (x[off + i] - mean) * (x[off + i] - mean);
        double rstd = 1 / sqrt(ss / n + eps);
        for (int ch = gi * cpg; ch < (gi + 1) * cpg; ch++)
            for (int i = 0; i < hw; i++) {
                double v = (x[(size_t)ch * hw + i] - mean) * rstd * g[ch] + b[ch];
                y[(size_t)ch * hw + i] = silu ? v / (1 + exp(-v)) : v;
            }
    }
}

START_TEST(test_groupnorm)
{
    static const int cases[][4] = {{32, 32, 1, 1}, {64, 32, 5, 7}, {24, 8, 4, 4}, {6, 3, 1, 9}};
    for (int silu = 0; silu < 2; silu++)
        for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
            int c = cases[t][0], groups = cases[t][1], h = cases[t][2], w = cases[t][3];
            size_t n = (size_t)c * h * w;
            float *x = rand_buf(n), *y = malloc(n * 4);
            for (size_t i = 0; i < n; i++) x[i] = x[i] * 3 + 5; /* offset: catches one-pass variance */
            vae_norm nm = {c, rand_buf((size_t)c), rand_buf((size_t)c)};
            double *ref = malloc(n * sizeof(double));
            ref_groupnorm(x, c, h * w, groups, 1e-6f, nm.gamma, nm.beta, silu, ref);
            vae_ctx ctx;
            vae_error err;
            ck_assert_int_eq(vae_ctx_init(&ctx, 2, &err), VAE_OK);
            vae_groupnorm(&ctx, &nm, groups, 1e-6f, x, h, w, y, silu);
            double e = rel_err_d(y, ref, n);
            ck_assert_msg(e < 1e-6, "groupnorm c=%d g=%d %dx%d silu=%d: %g", c, groups, h, w, silu, e);
            /* in place gives the same */
            vae_groupnorm(&ctx, &nm, groups, 1e-6f, x, h, w, x, silu);
            ck_assert_int_eq(memcmp(x, y, n * 4), 0);
            vae_ctx_free(&ctx);
            free(x); free(y); free(ref); free(nm.gamma); free(nm.beta);
        }
}
END_TEST

/* x += proj(softmax(q^T k / sqrt(c)) v^T) with q, k, v = 1x1 convs of GroupNorm(x) */
START_TEST(test_attention)
{
    static const int cases[][3] = {{32, 1, 1}, {32, 3, 5}, {64, 8, 8}, {32, 7, 13}, {32, 10, 11}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int c = cases[t][0], h = cases[t][1], w = cases[t][2], n = h * w;
        vae_conv q, k, v, p;
        float *wq, *wk, *wv, *wp;
        make_conv(&q, c, c, 1, &wq);
        make_conv(&k, c, c, 1, &wk);
        make_conv(&v, c, c, 1, &wv);
        make_conv(&p, c, c, 1, &wp);
        vae_norm nm = {c, rand_buf((size_t)c), rand_buf((size_t)c)};
        float *x = rand_buf((size_t)c * n);
        double *xn = malloc(sizeof(double) * c * n), *Q = malloc(sizeof(double) * c * n),
               *K = malloc(sizeof(double) * c * n), *V = malloc(sizeof(double) * c * n),
               *A = malloc(sizeof(double) * c * n), *ref = malloc(sizeof(double) * c * n),
               *row = malloc(sizeof(double) * n);
        ref_groupnorm(x, c, n, 32, 1e-6f, nm.gamma, nm.beta, 0, xn);
        const float *ws[3] = {wq, wk, wv};
        const float *bs[3] = {q.bias, k.bias, v.bias};
        double *outs[3] = {Q, K, V};
        for (int m = 0; m < 3; m++)
            for (int o = 0; o < c; o++)
                for (int i = 0; i < n; i++) {
                    double s = bs[m][o];
                    for (int ci = 0; ci < c; ci++) s += ws[m][o * c + ci] * xn[(size_t)ci * n + i];
                    outs[m][(size_t)o * n + i] = s;
                }
        for (int i = 0; i < n; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int ci = 0; ci < c; ci++) s += Q[(size_t)ci * n + i] * K[(size_t)ci * n + j];
                row[j] = s / sqrt((double)c);
                if (row[j] > mx) mx = row[j];
            }
            for (int j = 0; j < n; j++) sum += (row[j] = exp(row[j] - mx));
            for (int ci = 0; ci < c; ci++) {
                double s = 0;
                for (int j = 0; j < n; j++) s += row[j] / sum * V[(size_t)ci * n + j];
                A[(size_t)ci * n + i] = s;
            }
        }
        for (int o = 0; o < c; o++)
            for (int i = 0; i < n; i++) {
                double s = p.bias[o];
                for (int ci = 0; ci < c; ci++) s += wp[o * c + ci] * A[(size_t)ci * n + i];
                ref[(size_t)o * n + i] = x[(size_t)o * n + i] + s;
            }
        vae_ctx ctx;
        vae_error err;
        ck_assert_int_eq(vae_ctx_init(&ctx, 2, &err), VAE_OK);
        ck_assert_int_eq(vae_attention(&ctx, &nm, 32, 1e-6f, &q, &k, &v, &p, x, h, w, &err), VAE_OK);
        double e = rel_err_d(x, ref, (size_t)c * n);
        ck_assert_msg(e < 1e-5, "attention c=%d %dx%d: %g", c, h, w, e);
        vae_ctx_free(&ctx);
        free_conv(&q, wq); free_conv(&k, wk); free_conv(&v, wv); free_conv(&p, wp);
        free(nm.gamma); free(nm.beta); free(x);
        free(xn); free(Q); free(K); free(V); free(A); free(ref); free(row);
    }
}
END_TEST

/* The lean (x, K, V^T) and flash (running softmax, K and V recomputed per
 * chunk of queries) forms of the tiled executor against the full one, which
 * test_attention checks against a double reference: sizes that cut the
 * chunks (768 positions, 6144 queries) and key blocks unevenly. */
START_TEST(test_attention_lean_and_flash)
{
    static const int cases[][3] = {{32, 1, 1}, {32, 7, 13}, {64, 40, 41}, {32, 83, 85}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int c = cases[t][0], h = cases[t][1], w = cases[t][2];
        size_t cn = (size_t)c * (size_t)h * (size_t)w;
        vae_conv q, k, v, p;
        float *wq, *wk, *wv, *wp;
        make_conv(&q, c, c, 1, &wq);
        make_conv(&k, c, c, 1, &wk);
        make_conv(&v, c, c, 1, &wv);
        make_conv(&p, c, c, 1, &wp);
        vae_norm nm = {c, rand_buf((size_t)c), rand_buf((size_t)c)};
        float *x = rand_buf(cn);
        /* sharper scores than random weights give, so the running max moves */
        for (size_t i = 0; i < cn; i++) x[i] *= 1.0f + 3.0f * (float)(i % 7);
        float *full = malloc(cn * sizeof(float)), *lean = malloc(cn * sizeof(float)),
              *flash = malloc(cn * sizeof(float));
        memcpy(full, x, cn * sizeof(float));
        memcpy(lean, x, cn * sizeof(float));
        vae_ctx ctx;
        vae_error err;
        ck_assert_int_eq(vae_ctx_init(&ctx, 2, &err), VAE_OK);
        ck_assert_int_eq(vae_attention(&ctx, &nm, 32, 1e-6f, &q, &k, &v, &p, full, h, w, &err), VAE_OK);
        ck_assert_int_eq(vae_attention_lean(&ctx, &nm, 32, 1e-6f, &q, &k, &v, &p, lean, h, w, &err), VAE_OK);
        ck_assert_int_eq(vae_attention_flash(&ctx, &nm, 32, 1e-6f, &q, &k, &v, &p, x, flash, h, w, &err),
                         VAE_OK);
        double el = tu_rel_err(lean, full, cn), ef = tu_rel_err(flash, full, cn);
        ck_assert_msg(el < 1e-5, "lean attention c=%d %dx%d: %g", c, h, w, el);
        ck_assert_msg(ef < 1e-5, "flash attention c=%d %dx%d: %g", c, h, w, ef);
        vae_ctx_free(&ctx);
        free_conv(&q, wq); free_conv(&k, wk); free_conv(&v, wv); free_conv(&p, wp);
        free(nm.gamma); free(nm.beta); free(x); free(full); free(lean); free(flash);
    }
}
END_TEST

/* The generic GEMM over several blocks in every dimension, with an lda
 * that is not k. */
START_TEST(test_gemm)
{
    size_t m = 37, n = 300, k = 530, lda = 541, ldb = 307, ldc = 303;
    float *a = rand_buf(m * lda), *b = rand_buf(k * ldb), *c = rand_buf(m * ldc);
    double *ref = malloc(sizeof(double) * m * ldc);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < ldc; j++) {
            double s = c[i * ldc + j];
            if (j < n)
                for (size_t q = 0; q < k; q++) s += (double)a[i * lda + q] * b[q * ldb + j];
            ref[i * ldc + j] = s;
        }
    vae_ctx ctx;
    vae_error err;
    ck_assert_int_eq(vae_ctx_init(&ctx, 2, &err), VAE_OK);
    ck_assert_int_eq(vae_gemm(&ctx, m, n, k, a, lda, b, ldb, c, ldc, 1, &err), VAE_OK);
    ck_assert_double_lt(rel_err_d(c, ref, m * ldc), 1e-5);
    vae_ctx_free(&ctx);
    free(a); free(b); free(c); free(ref);
}
END_TEST

/* The GroupNorm kernels of this CPU's table give the scalar twin's bits,
 * and SiLU with our exp stays within 3e-7 relative of the exact value. */
START_TEST(test_groupnorm_kernels)
{
    const vae_kernel_table *best = vae_kernels(), *sc = vae_kernels_scalar();
    size_t n = 4099;
    float *x = rand_buf(n), *y1 = malloc(n * 4), *y2 = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] *= 40.0f; /* SiLU's tails: e^-40 .. e^40 */
    ck_assert(best->sum(n, x) == sc->sum(n, x));
    ck_assert(best->sqdev(n, x, 0.25) == sc->sqdev(n, x, 0.25));
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    ck_assert_double_eq_tol(sc->sum(n, x), s, 1e-9 * n * 40);
    for (int silu = 0; silu < 2; silu++) {
        best->norm_silu(n, x, y1, 0.5f, 1.25f, -0.75f, silu);
        sc->norm_silu(n, x, y2, 0.5f, 1.25f, -0.75f, silu);
        ck_assert_int_eq(memcmp(y1, y2, n * 4), 0);
        for (size_t i = 0; i < n; i++) {
            /* from the same float v: in the tails e^v amplifies v's own
             * rounding by |v| */
            double v = (double)((x[i] - 0.5f) * 1.25f - 0.75f);
            double want = silu ? v / (1.0 + exp(-v)) : v;
            ck_assert_msg(fabs(y2[i] - want) <= 3e-7 * fabs(want) + 1e-30,
                          "silu=%d x=%g: %.9g vs %.9g", silu, x[i], y2[i], want);
        }
    }
    /* softmax: same bits on every ISA, sums to 1, matches a double softmax */
    for (size_t i = 0; i < n; i++) y1[i] = y2[i] = x[i] * 0.5f;
    best->softmax(n, y1);
    sc->softmax(n, y2);
    ck_assert_int_eq(memcmp(y1, y2, n * 4), 0);
    double mx = -1e30, tot = 0, got = 0;
    for (size_t i = 0; i < n; i++) mx = x[i] * 0.5 > mx ? x[i] * 0.5 : mx;
    for (size_t i = 0; i < n; i++) tot += exp((double)(x[i] * 0.5f) - mx);
    for (size_t i = 0; i < n; i++) {
        double want = exp((double)(x[i] * 0.5f) - mx) / tot;
        ck_assert_msg(fabs(y2[i] - want) <= 4e-6 * want + 1e-30, "softmax %zu: %g vs %g", i, y2[i], want);
        got += y2[i];
    }
    ck_assert_double_eq_tol(got, 1.0, 1e-5);
    free(x); free(y1); free(y2);
}
END_TEST

/* Each ISA's Winograd transforms give the scalar twin's bits (the whole
 * convolution is checked against a double reference in test_conv_*). */
START_TEST(test_winograd_kernels)
{
    const vae_kernel_table *best = vae_kernels(), *sc = vae_kernels_scalar();
    float *d = rand_buf(36 * 64), *v1 = malloc(36 * 64 * 4), *v2 = malloc(36 * 64 * 4);
    for (size_t n = 1; n <= 64; n += 21) {
        memset(v1, 0, 36 * 64 * 4);
        memset(v2, 0, 36 * 64 * 4);
        best->wg_input(n, d, 64, v1, 64);
        sc->wg_input(n, d, 64, v2, 64);
        ck_assert_int_eq(memcmp(v1, v2, 36 * 64 * 4), 0);
        best->wg_output(n, d, 64, v1, 64);
        sc->wg_output(n, d, 64, v2, 64);
        ck_assert_int_eq(memcmp(v1, v2, 16 * 64 * 4), 0);
        best->wg_weight(n, d, 64, v1, 64);
        sc->wg_weight(n, d, 64, v2, 64);
        ck_assert_int_eq(memcmp(v1, v2, 36 * 64 * 4), 0);
    }
    free(d); free(v1); free(v2);
}
END_TEST

static void count_item(void *arg, size_t item, int thread)
{
    int *hits = arg;
    (void)thread;
    __atomic_fetch_add(&hits[item], 1, __ATOMIC_RELAXED);
}

START_TEST(test_pool_covers_every_item_once)
{
    static int hits[1000];
    for (int t = 1; t <= 4; t++) {
        vae_pool *p = vae_pool_create(t);
        ck_assert_ptr_nonnull(p);
        for (int rep = 0; rep < 50; rep++) {
            size_t nitems = (size_t)(rep * 37 % 1000);
            memset(hits, 0, sizeof hits);
            vae_pool_run(p, nitems, count_item, hits);
            for (size_t i = 0; i < 1000; i++)
                ck_assert_int_eq(hits[i], i < nitems ? 1 : 0);
        }
        vae_pool_destroy(p);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 300);
    int nconv = (int)(sizeof conv_cases / sizeof conv_cases[0]);
    tcase_add_loop_test(tc, test_conv_best, 0, nconv);
    tcase_add_loop_test(tc, test_conv_scalar, 0, nconv);
    tcase_add_test(tc, test_groupnorm);
    tcase_add_test(tc, test_groupnorm_kernels);
    tcase_add_test(tc, test_winograd_kernels);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_attention_lean_and_flash);
    tcase_add_test(tc, test_gemm);
    tcase_add_test(tc, test_pool_covers_every_item_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
