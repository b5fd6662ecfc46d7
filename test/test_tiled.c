/*
 * test_tiled.c - tiled execution gives the untiled answer: on every fixture
 * (../shared/fixtures when present, test/fixtures always), encode and decode
 * with tile sides of 8 to 40 image pixels (1 to 5 latent pixels: every tile
 * border, halo and image corner case appears) match the untiled output and
 * the reference to max|a-b|/max|b| <= 1e-4; the budget picks tiling by
 * itself; circular padding is translation-equivariant; estimates are sane.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/npy.h"
#include "sdxlvae.h"
#include "testutil.h"
#include "testfix.h"

#define TOL 1e-4


static vae_run_options opts(uint32_t flags, int32_t tile)
{
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = VAE_FLAG_RAW_LATENT | flags;
    ro.tile = tile;
    return ro;
}

static float *decode(vae_model *m, const npy_array *z, const vae_run_options *ro, uint64_t *n_out)
{
    int32_t n = (int32_t)z->shape[0], h = (int32_t)z->shape[2], w = (int32_t)z->shape[3];
    uint64_t ni;
    ck_assert_int_eq(vae_decoded_size(m, n, h, w, &ni), VAE_OK);
    float *out = malloc(ni * sizeof(float));
    ck_assert_ptr_nonnull(out);
    int32_t rc = vae_decode(m, z->data, n, h, w, out, ni, ro);
    ck_assert_msg(rc == VAE_OK, "vae_decode: %s", vae_last_error(m));
    *n_out = ni;
    return out;
}

static float *encode_moments(vae_model *m, const npy_array *x, const vae_run_options *ro,
                             uint64_t *n_out)
{
    int32_t n = (int32_t)x->shape[0], h = (int32_t)x->shape[2], w = (int32_t)x->shape[3];
    uint64_t nl;
    ck_assert_int_eq(vae_encoded_size(m, n, h, w, &nl), VAE_OK);
    float *out = malloc(2 * nl * sizeof(float));
    ck_assert_ptr_nonnull(out);
    int32_t rc = vae_encode_moments(m, x->data, n, h, w, out, 2 * nl, ro);
    ck_assert_msg(rc == VAE_OK, "vae_encode_moments: %s", vae_last_error(m));
    *n_out = 2 * nl;
    return out;
}

static void expect_close(const char *what, const char *dir, int32_t tile, const float *a,
                         const float *b, uint64_t n)
{
    double e = tu_rel_err(a, b, n);
    printf("  %-44s %-22s tile %3d rel err %.3g\n", dir, what, tile, e);
    ck_assert_msg(e <= TOL, "%s: %s with tile %d: rel err %.3g > %g", dir, what, tile, e, TOL);
}

static const int32_t tiles[] = {8, 16, 24, 40};

/* Decode: tiled == untiled == reference, for the fixture's latents. */
START_TEST(test_decode_tiles)
{
    const char *dir = fixtures[_i].dir;
    vae_model *m = load_model(dir, 2);
    npy_array zin = load_npy(dir, "zin.npy"), zdec = load_npy(dir, "zdecoded.npy");
    vae_run_options ro = opts(0, 0);
    uint64_t n0, n1;
    float *ref = decode(m, &zin, &ro, &n0);
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        ro = opts(0, tiles[t]);
        float *out = decode(m, &zin, &ro, &n1);
        expect_close("decode tiled/untiled", dir, tiles[t], out, ref, n0);
        expect_close("decode tiled/reference", dir, tiles[t], out, zdec.data, n0);
        free(out);
    }
    free(ref);
    npy_free(&zin);
    npy_free(&zdec);
    vae_free(m);
}
END_TEST

/* Encode: the moments, tiled, against untiled and the reference. */
START_TEST(test_encode_tiles)
{
    const char *dir = fixtures[_i].dir;
    vae_model *m = load_model(dir, 2);
    npy_array img = load_npy(dir, "image.npy"), mom = load_npy(dir, "moments.npy");
    vae_run_options ro = opts(0, 0);
    uint64_t n0, n1;
    float *ref = encode_moments(m, &img, &ro, &n0);
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        ro = opts(0, tiles[t]);
        float *out = encode_moments(m, &img, &ro, &n1);
        expect_close("moments tiled/untiled", dir, tiles[t], out, ref, n0);
        expect_close("moments tiled/reference", dir, tiles[t], out, mom.data, n0);
        free(out);
    }
    free(ref);
    npy_free(&img);
    npy_free(&mom);
    vae_free(m);
}
END_TEST

/* A larger random latent (17 x 13: tiles that do not divide it) on the
 * first fixture, tiled with 1 and 2 threads: equal to the bit, and close to
 * untiled. */
START_TEST(test_tiled_threads_and_odd_sizes)
{
    const char *dir = fixtures[0].dir;
    vae_model *m1 = load_model(dir, 1), *m2 = load_model(dir, 2);
    npy_array z;
    memset(&z, 0, sizeof z);
    z.ndim = 4;
    z.shape[0] = 1;
    z.shape[1] = (uint64_t)vae_latent_channels(m1);
    z.shape[2] = 17;
    z.shape[3] = 13;
    z.count = z.shape[1] * 17 * 13;
    z.data = malloc(z.count * sizeof(float));
    uint64_t s = 12345;
    for (uint64_t i = 0; i < z.count; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        z.data[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    vae_run_options ro = opts(0, 0);
    uint64_t n0, n1, n2;
    float *ref = decode(m2, &z, &ro, &n0);
    ro = opts(0, 40);
    float *a = decode(m1, &z, &ro, &n1), *b = decode(m2, &z, &ro, &n2);
    ck_assert_msg(memcmp(a, b, n1 * sizeof(float)) == 0, "tiled decode differs between 1 and 2 threads");
    expect_close("17x13 decode tiled/untiled", dir, 40, a, ref, n0);
    free(a);
    free(b);
    free(ref);
    free(z.data);
    vae_free(m1);
    vae_free(m2);
}
END_TEST

/* The budget decides: below the untiled estimate the call tiles by itself
 * (and says so in the estimate); below what any tiling needs it fails
 * before doing anything, naming the minimum. */
START_TEST(test_budget_and_estimate)
{
    const char *dir = fixtures[0].dir;
    vae_model *m = load_model(dir, 2);
    npy_array zin = load_npy(dir, "zin.npy");
    int32_t f = vae_downsample_factor(m);
    int32_t H = (int32_t)zin.shape[2] * f, W = (int32_t)zin.shape[3] * f;
    vae_memory_estimate est;
    memset(&est, 0, sizeof est);
    est.size = sizeof est;
    vae_run_options ro = opts(0, 0);
    ck_assert_int_eq(vae_estimate_memory(m, VAE_STAGE_DECODE, H, W, &ro, &est), VAE_OK);
    ck_assert_int_eq(est.tiled, 0);
    ck_assert_int_eq(est.fits, 1);
    ck_assert_uint_gt(est.untiled_bytes, 0);
    ck_assert_uint_gt(est.weights_bytes, 0);
    ck_assert_uint_eq(est.io_bytes, (zin.count / zin.shape[0] + 3 * (uint64_t)H * (uint64_t)W) * 4);
    printf("  estimate %dx%d: untiled %llu bytes, tiled %llu (tile %d)\n", H, W,
           (unsigned long long)est.untiled_bytes, (unsigned long long)est.tiled_bytes, est.tile);

    /* a budget under the untiled need: tiled, automatically */
    ro.max_memory = est.untiled_bytes - 1;
    ck_assert_int_eq(vae_estimate_memory(m, VAE_STAGE_DECODE, H, W, &ro, &est), VAE_OK);
    ck_assert_int_eq(est.tiled, 1);
    ck_assert_int_eq(est.fits, 1);
    ck_assert_int_gt(est.tile, 0);
    ck_assert_uint_le(est.tiled_bytes, ro.max_memory);
    ck_assert(est.work_ratio >= 1.0);
    uint64_t n0, n1;
    vae_run_options r0 = opts(0, 0);
    float *ref = decode(m, &zin, &r0, &n0), *out = decode(m, &zin, &ro, &n1);
    expect_close("decode by budget", dir, est.tile, out, ref, n0);
    free(out);

    /* a forced tile shows in the estimate */
    ro = opts(0, 16);
    ck_assert_int_eq(vae_estimate_memory(m, VAE_STAGE_DECODE, H, W, &ro, &est), VAE_OK);
    ck_assert_int_eq(est.tiled, 1);
    ck_assert_int_eq(est.tile, 16);

    /* nothing fits: refused up front, with the minimum in the message */
    ro = opts(0, 0);
    ro.max_memory = 1000;
    ck_assert_int_eq(vae_estimate_memory(m, VAE_STAGE_DECODE, H, W, &ro, &est), VAE_OK);
    ck_assert_int_eq(est.fits, 0);
    ck_assert_int_eq(vae_decode(m, zin.data, (int32_t)zin.shape[0], (int32_t)zin.shape[2],
                                (int32_t)zin.shape[3], ref, n0, &ro),
                     VAE_ERR_NO_MEMORY);
    ck_assert_msg(strstr(vae_last_error(m), "needs at least") != NULL, "%s", vae_last_error(m));

    /* bad arguments */
    ro = opts(0, 12);
    ck_assert_int_eq(vae_estimate_memory(m, VAE_STAGE_DECODE, H, W, &ro, &est), VAE_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(vae_last_error(m), "tile is 12") != NULL, "%s", vae_last_error(m));
    ro = opts(0, 0);
    ck_assert_int_eq(vae_estimate_memory(m, 7, H, W, &ro, &est), VAE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vae_estimate_memory(m, VAE_STAGE_DECODE, H + 1, W, &ro, &est),
                     VAE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vae_estimate_memory(m, VAE_STAGE_DECODE, H, W, &ro, NULL),
                     VAE_ERR_INVALID_ARGUMENT);
    free(ref);
    npy_free(&zin);
    vae_free(m);
}
END_TEST

/* Odd shapes, drawn with a fixed seed: images from 8 x 8 up, tiles from 8
 * pixels to about the image side, both stages, with and without circular
 * padding (then against the circular call in one tile). */
START_TEST(test_random_shapes)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/micro-ldm-f32", tu_fixtures_dir());
    vae_model *m = load_model(dir, 2);
    int32_t f = vae_downsample_factor(m), C = vae_latent_channels(m);
    uint64_t s = 0x9E3779B97F4A7C15ull;
#define NEXT() (s = s * 6364136223846793005ull + 1442695040888963407ull, (uint32_t)(s >> 33))
    for (int it = 0; it < 24; it++) {
        int32_t h = f * (int32_t)(1 + NEXT() % 9), w = f * (int32_t)(1 + NEXT() % 9);
        int32_t tile = f * (int32_t)(1 + NEXT() % 6);
        int circ = (int)(NEXT() % 3 == 0), enc = (int)(NEXT() % 2);
        uint32_t flags = circ ? VAE_FLAG_CIRCULAR : 0;
        npy_array x;
        memset(&x, 0, sizeof x);
        x.ndim = 4;
        x.shape[0] = 1;
        x.shape[1] = enc ? 3 : C;
        x.shape[2] = enc ? h : h / f;
        x.shape[3] = enc ? w : w / f;
        x.count = (uint64_t)x.shape[1] * (uint64_t)x.shape[2] * (uint64_t)x.shape[3];
        x.data = malloc(x.count * sizeof(float));
        for (uint64_t i = 0; i < x.count; i++) x.data[i] = (float)(NEXT() % 2000) / 1000.0f - 1.0f;
        vae_run_options r0 = opts(flags, 0), r1 = opts(flags, tile);
        uint64_t n0, n1;
        float *a = enc ? encode_moments(m, &x, &r0, &n0) : decode(m, &x, &r0, &n0);
        float *b = enc ? encode_moments(m, &x, &r1, &n1) : decode(m, &x, &r1, &n1);
        char what[96];
        snprintf(what, sizeof what, "%s %dx%d%s", enc ? "encode" : "decode", h, w,
                 circ ? " circular" : "");
        expect_close(what, dir, tile, b, a, n0);
        free(a);
        free(b);
        free(x.data);
    }
#undef NEXT
    vae_free(m);
}
END_TEST

/* Weights held in 16 bits and a decoder-only handle go through the tiled
 * executor as through the untiled one. */
START_TEST(test_tiled_half_weights_decoder_only)
{
    const char *dir = fixtures[_i].dir;
    vae_model *m = NULL;
    vae_load_options lo;
    vae_load_options_init(&lo, sizeof lo);
    lo.flags = VAE_LOAD_HALF_WEIGHTS | VAE_LOAD_NO_ENCODER;
    ck_assert_int_eq(vae_load(dir, &lo, &m), VAE_OK);
    npy_array zin = load_npy(dir, "zin.npy");
    vae_run_options ro = opts(0, 0);
    uint64_t n0, n1;
    float *ref = decode(m, &zin, &ro, &n0);
    ro = opts(0, 16);
    float *out = decode(m, &zin, &ro, &n1);
    expect_close("half weights, decoder only", dir, 16, out, ref, n0);
    free(out);
    free(ref);
    npy_free(&zin);
    vae_free(m);
}
END_TEST

/* Progress through the tiled executor: reports rise, never reach 1.0
 * before the end, and the last is exactly 1.0; cancelling stops the call. */
typedef struct prog {
    int calls;
    float last;
    int bad;
    int cancel_at;
} prog;

static int32_t on_progress(void *user, float f, int32_t stage)
{
    prog *p = user;
    if (stage != VAE_STAGE_DECODE || f < p->last || (f >= 1.0f && p->last >= 1.0f)) p->bad = 1;
    p->last = f;
    p->calls++;
    return p->cancel_at && p->calls >= p->cancel_at;
}

START_TEST(test_tiled_progress)
{
    const char *dir = fixtures[0].dir;
    vae_model *m = load_model(dir, 2);
    npy_array zin = load_npy(dir, "zin.npy");
    vae_run_options ro = opts(0, 16);
    prog p = {0, 0.0f, 0, 0};
    ro.progress = on_progress;
    ro.progress_user = &p;
    uint64_t n;
    float *out = decode(m, &zin, &ro, &n);
    ck_assert_int_eq(p.bad, 0);
    ck_assert_int_gt(p.calls, 10);
    ck_assert(p.last == 1.0f);
    prog c = {0, 0.0f, 0, 5};
    ro.progress_user = &c;
    ck_assert_int_eq(vae_decode(m, zin.data, (int32_t)zin.shape[0], (int32_t)zin.shape[2],
                                (int32_t)zin.shape[3], out, n, &ro),
                     VAE_ERR_CANCELLED);
    ck_assert_int_eq(c.calls, 5);
    free(out);
    npy_free(&zin);
    vae_free(m);
}
END_TEST

/* Rolls a c x h x w tensor by (dy, dx). */
static void roll(const float *src, float *dst, uint64_t c, uint64_t h, uint64_t w, uint64_t dy,
                 uint64_t dx)
{
    for (uint64_t k = 0; k < c; k++)
        for (uint64_t y = 0; y < h; y++)
            for (uint64_t x = 0; x < w; x++)
                dst[(k * h + (y + dy) % h) * w + (x + dx) % w] = src[(k * h + y) * w + x];
}

/* Circular padding: the network commutes with wrap-around shifts, so the
 * decode of a rolled latent is the rolled decode (8 pixels per latent
 * pixel), and the encode of a rolled image is the rolled latent. Zero
 * padding would break this at the borders. */
START_TEST(test_circular_equivariance)
{
    const char *dir = fixtures[_i].dir;
    vae_model *m = load_model(dir, 2);
    npy_array zin = load_npy(dir, "zin.npy"), img = load_npy(dir, "image.npy");
    int32_t f = vae_downsample_factor(m);
    uint64_t C = zin.shape[1], h = zin.shape[2], w = zin.shape[3];
    zin.shape[0] = 1;
    zin.count = C * h * w;
    img.shape[0] = 1;
    img.count = 3 * img.shape[2] * img.shape[3];
    vae_run_options ro = opts(VAE_FLAG_CIRCULAR, 0);
    uint64_t n0, n1;
    float *a = decode(m, &zin, &ro, &n0);
    npy_array zr = zin;
    zr.data = malloc(zin.count * sizeof(float));
    roll(zin.data, zr.data, C, h, w, 1, 2);
    ro = opts(VAE_FLAG_CIRCULAR, 16);
    float *b = decode(m, &zr, &ro, &n1);
    float *ar = malloc(n0 * sizeof(float));
    roll(a, ar, 3, h * (uint64_t)f, w * (uint64_t)f, (uint64_t)f, 2 * (uint64_t)f);
    expect_close("circular decode, rolled", dir, 16, b, ar, n0);
    /* and it is not the zero-padded decode */
    vae_run_options plain = opts(0, 0);
    float *c = decode(m, &zin, &plain, &n1);
    ck_assert_msg(tu_rel_err(a, c, n0) > 1e-3, "circular decode equals the zero-padded one");

    /* encode */
    ro = opts(VAE_FLAG_CIRCULAR, 0);
    uint64_t m0, m1;
    float *ea = encode_moments(m, &img, &ro, &m0);
    npy_array ir = img;
    ir.data = malloc(img.count * sizeof(float));
    roll(img.data, ir.data, 3, img.shape[2], img.shape[3], (uint64_t)f, 0);
    ro = opts(VAE_FLAG_CIRCULAR, 8);
    float *eb = encode_moments(m, &ir, &ro, &m1);
    float *ear = malloc(m0 * sizeof(float));
    roll(ea, ear, 2 * C, img.shape[2] / (uint64_t)f, img.shape[3] / (uint64_t)f, 1, 0);
    expect_close("circular encode, rolled", dir, 8, eb, ear, m0);

    free(a); free(b); free(c); free(ar); free(zr.data);
    free(ea); free(eb); free(ear); free(ir.data);
    npy_free(&zin);
    npy_free(&img);
    vae_free(m);
}
END_TEST

int main(void)
{
    const char *shared = tu_shared_dir();
    if (shared) {
        char p[1100];
        snprintf(p, sizeof p, "%s/fixtures", shared);
        add_fixtures(p);
    } else {
        printf("skipped: ../shared not found (shared fixtures)\n");
    }
    add_fixtures(tu_fixtures_dir());
    if (n_fixtures == 0) {
        printf("no fixtures found\n");
        return 1;
    }
    Suite *s = suite_create("tiled");
    TCase *tc = tcase_create("tiled");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_decode_tiles, 0, n_fixtures);
    tcase_add_loop_test(tc, test_encode_tiles, 0, n_fixtures);
    tcase_add_test(tc, test_tiled_threads_and_odd_sizes);
    tcase_add_test(tc, test_budget_and_estimate);
    tcase_add_test(tc, test_tiled_progress);
    tcase_add_test(tc, test_random_shapes);
    tcase_add_loop_test(tc, test_tiled_half_weights_decoder_only, 0, n_fixtures);
    tcase_add_loop_test(tc, test_circular_equivariance, 0, n_fixtures);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
