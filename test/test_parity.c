/*
 * test_parity.c - our encoder and decoder against the original Stability AI
 * code: every fixture folder (../shared/fixtures when present, and the
 * project's own test/fixtures always) must match to max|a-b|/max|b| <= 1e-4
 * for the moments, the latent, the decode of that latent and the decode of
 * a random latent. Also: results are bit-identical for 1 and 2 threads, and
 * the scalar kernels agree with the SIMD ones.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/npy.h"
#include <math.h>
#include "kernels/kernels.h"
#include "sdxlvae.h"
#include "testutil.h"
#include "testfix.h"

#define TOL 1e-4

static double worst[32][4];

static double check_close(const char *what, const char *dir, const float *ours, const npy_array *ref)
{
    double e = tu_rel_err(ours, ref->data, ref->count);
    printf("  %-48s %-10s rel err %.3g\n", dir, what, e);
    ck_assert_msg(e <= TOL, "%s: %s rel err %.3g > %g", dir, what, e, TOL);
    return e;
}

/* The four outputs of one fixture; returns them in out[] for comparisons. */
static uint32_t extra_flags; /* VAE_FLAG_DIRECT_CONV for the direct-path run */
static void run_fixture(int idx, int threads, float *out[4], uint64_t sizes[4])
{
    const char *dir = fixtures[idx].dir;
    vae_model *m = load_model(dir, threads);
    npy_array img = load_npy(dir, "image.npy"), mom = load_npy(dir, "moments.npy"),
              lat = load_npy(dir, "latent.npy"), dec = load_npy(dir, "decoded.npy"),
              zin = load_npy(dir, "zin.npy"), zdec = load_npy(dir, "zdecoded.npy");
    int32_t n = (int32_t)img.shape[0], h = (int32_t)img.shape[2], w = (int32_t)img.shape[3];
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = VAE_FLAG_RAW_LATENT | extra_flags;

    ck_assert_uint_eq(mom.shape[1], 2 * (uint64_t)vae_latent_channels(m));
    sizes[0] = mom.count;
    out[0] = malloc(mom.count * sizeof(float));
    ck_assert_int_eq(vae_encode_moments(m, img.data, n, h, w, out[0], mom.count, &ro), VAE_OK);
    double e0 = check_close("moments", dir, out[0], &mom);

    uint64_t nl;
    ck_assert_int_eq(vae_encoded_size(m, n, h, w, &nl), VAE_OK);
    ck_assert_uint_eq(nl, lat.count);
    sizes[1] = nl;
    out[1] = malloc(nl * sizeof(float));
    ck_assert_int_eq(vae_encode(m, img.data, n, h, w, out[1], nl, &ro), VAE_OK);
    double e1 = check_close("latent", dir, out[1], &lat);

    uint64_t ni;
    int32_t lh = (int32_t)lat.shape[2], lw = (int32_t)lat.shape[3];
    ck_assert_int_eq(vae_decoded_size(m, n, lh, lw, &ni), VAE_OK);
    ck_assert_uint_eq(ni, dec.count);
    sizes[2] = ni;
    out[2] = malloc(ni * sizeof(float));
    ck_assert_int_eq(vae_decode(m, lat.data, n, lh, lw, out[2], ni, &ro), VAE_OK);
    double e2 = check_close("decoded", dir, out[2], &dec);

    int32_t zn = (int32_t)zin.shape[0], zh = (int32_t)zin.shape[2], zw = (int32_t)zin.shape[3];
    ck_assert_int_eq(vae_decoded_size(m, zn, zh, zw, &ni), VAE_OK);
    ck_assert_uint_eq(ni, zdec.count);
    sizes[3] = ni;
    out[3] = malloc(ni * sizeof(float));
    ck_assert_int_eq(vae_decode(m, zin.data, zn, zh, zw, out[3], ni, &ro), VAE_OK);
    double e3 = check_close("zdecoded", dir, out[3], &zdec);

    double e[4] = {e0, e1, e2, e3};
    for (int i = 0; i < 4; i++)
        if (e[i] > worst[idx][i]) worst[idx][i] = e[i];

    npy_free(&img); npy_free(&mom); npy_free(&lat);
    npy_free(&dec); npy_free(&zin); npy_free(&zdec);
    vae_free(m);
}

static void free4(float *o[4])
{
    for (int i = 0; i < 4; i++) free(o[i]);
}

START_TEST(test_fixture_parity)
{
    float *o[4];
    uint64_t s[4];
    run_fixture(_i, 1, o, s);
    free4(o);
}
END_TEST

/* The direct convolutions (no Winograd) pass parity too. */
START_TEST(test_direct_conv_parity)
{
    float *o[4];
    uint64_t s[4];
    extra_flags = VAE_FLAG_DIRECT_CONV;
    run_fixture(_i, 2, o, s);
    extra_flags = 0;
    free4(o);
}
END_TEST

/* Work is split over threads by whole output blocks, so every element is
 * summed in the same order: the outputs must be equal to the bit. */
START_TEST(test_threads_bit_identical)
{
    float *o1[4], *o2[4];
    uint64_t s[4];
    run_fixture(_i, 1, o1, s);
    run_fixture(_i, 2, o2, s);
    for (int k = 0; k < 4; k++)
        ck_assert_msg(memcmp(o1[k], o2[k], s[k] * sizeof(float)) == 0,
                      "%s: output %d differs between 1 and 2 threads", fixtures[_i].dir, k);
    free4(o1);
    free4(o2);
}
END_TEST

/* The scalar kernels (the reference for every SIMD twin) pass parity too. */
START_TEST(test_scalar_path_parity)
{
    float *o[4];
    uint64_t s[4];
    vae_kernels_set_max_isa(VAE_ISA_SCALAR);
    ck_assert_str_eq(vae_kernels()->isa, "scalar");
    run_fixture(_i, 2, o, s);
    vae_kernels_set_max_isa(VAE_ISA_BEST);
    free4(o);
}
END_TEST

/* A model runs with the kernels its weights were packed for at load: loaded
 * under the scalar cap (MR 6) and called after the cap is lifted (MR 12 on
 * AVX-512), a call neither fails on the packing nor changes its bits. */
START_TEST(test_model_keeps_its_kernels)
{
    const char *dir = fixtures[0].dir;
    vae_kernels_set_max_isa(VAE_ISA_SCALAR);
    vae_model *m = load_model(dir, 2);
    npy_array zin = load_npy(dir, "zin.npy");
    int32_t zn = (int32_t)zin.shape[0], zh = (int32_t)zin.shape[2], zw = (int32_t)zin.shape[3];
    uint64_t ni;
    ck_assert_int_eq(vae_decoded_size(m, zn, zh, zw, &ni), VAE_OK);
    float *capped = malloc(ni * sizeof(float)), *lifted = malloc(ni * sizeof(float));
    ck_assert(capped && lifted);
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = VAE_FLAG_RAW_LATENT | VAE_FLAG_DIRECT_CONV;
    ck_assert_int_eq(vae_decode(m, zin.data, zn, zh, zw, capped, ni, &ro), VAE_OK);
    vae_kernels_set_max_isa(VAE_ISA_BEST);
    if (vae_kernels() == vae_kernels_scalar())
        printf("note: no SIMD table here: the lifted cap changes nothing\n");
    int32_t rc = vae_decode(m, zin.data, zn, zh, zw, lifted, ni, &ro);
    ck_assert_msg(rc == VAE_OK, "%s: %s", vae_strerror(rc), vae_last_error(m));
    ck_assert(memcmp(capped, lifted, ni * sizeof(float)) == 0);
    free(capped);
    free(lifted);
    npy_free(&zin);
    vae_free(m);
}
END_TEST

/* Sampling: seeded, reproducible, different from the mean, and the scaled
 * latent is (raw - shift) * scale. */
START_TEST(test_sample_and_scaling)
{
    const char *dir = fixtures[0].dir;
    vae_model *m = load_model(dir, 0);
    npy_array img = load_npy(dir, "image.npy");
    int32_t n = (int32_t)img.shape[0], h = (int32_t)img.shape[2], w = (int32_t)img.shape[3];
    uint64_t nl;
    ck_assert_int_eq(vae_encoded_size(m, n, h, w, &nl), VAE_OK);
    float *raw = malloc(nl * 4), *scaled = malloc(nl * 4), *s1 = malloc(nl * 4), *s2 = malloc(nl * 4),
          *s3 = malloc(nl * 4);
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = VAE_FLAG_RAW_LATENT;
    ck_assert_int_eq(vae_encode(m, img.data, n, h, w, raw, nl, &ro), VAE_OK);
    ck_assert_int_eq(vae_encode(m, img.data, n, h, w, scaled, nl, NULL), VAE_OK);
    float sc = vae_scaling_factor(m), sh = vae_shift_factor(m);
    for (uint64_t i = 0; i < nl; i++)
        ck_assert_float_eq_tol(scaled[i], (raw[i] - sh) * sc, 1e-6f);
    ro.flags = VAE_FLAG_RAW_LATENT | VAE_FLAG_SAMPLE;
    ro.seed = 42;
    ck_assert_int_eq(vae_encode(m, img.data, n, h, w, s1, nl, &ro), VAE_OK);
    ck_assert_int_eq(vae_encode(m, img.data, n, h, w, s2, nl, &ro), VAE_OK);
    ro.seed = 43;
    ck_assert_int_eq(vae_encode(m, img.data, n, h, w, s3, nl, &ro), VAE_OK);
    ck_assert_int_eq(memcmp(s1, s2, nl * 4), 0);
    ck_assert_int_ne(memcmp(s1, s3, nl * 4), 0);
    ck_assert_int_ne(memcmp(s1, raw, nl * 4), 0);
    /* the sample stays near the mean: |s - mean| <= 8 std for every element
     * is astronomically likely; a broken variance would break it */
    float *mom = malloc(2 * nl * 4);
    ck_assert_int_eq(vae_encode_moments(m, img.data, n, h, w, mom, 2 * nl, NULL), VAE_OK);
    int32_t C = vae_latent_channels(m);
    uint64_t per = nl / (uint64_t)n / (uint64_t)C;
    for (int32_t b = 0; b < n; b++)
        for (uint64_t k = 0; k < (uint64_t)C * per; k++) {
            float mean = mom[(uint64_t)b * 2 * C * per + k];
            float lv = mom[(uint64_t)b * 2 * C * per + (uint64_t)C * per + k];
            float sd = expf(0.5f * (lv < -30 ? -30 : lv > 20 ? 20 : lv));
            float d = fabsf(s1[(uint64_t)b * C * per + k] - mean);
            ck_assert_msg(d <= 8 * sd + 1e-6f, "sample %g too far from mean %g (sd %g)",
                          s1[(uint64_t)b * C * per + k], mean, sd);
        }
    /* scaled decode == raw decode of the unscaled latent */
    uint64_t ni;
    int32_t lh = h / vae_downsample_factor(m), lw = w / vae_downsample_factor(m);
    ck_assert_int_eq(vae_decoded_size(m, n, lh, lw, &ni), VAE_OK);
    float *d1 = malloc(ni * 4), *d2 = malloc(ni * 4);
    ck_assert_int_eq(vae_decode(m, scaled, n, lh, lw, d1, ni, NULL), VAE_OK);
    ro.flags = VAE_FLAG_RAW_LATENT;
    ck_assert_int_eq(vae_decode(m, raw, n, lh, lw, d2, ni, &ro), VAE_OK);
    ck_assert_double_le(tu_rel_err(d1, d2, ni), 1e-5);
    free(raw); free(scaled); free(s1); free(s2); free(s3); free(mom); free(d1); free(d2);
    npy_free(&img);
    vae_free(m);
}
END_TEST

int main(void)
{
    const char *shared = tu_shared_dir();
    if (shared) {
        char root[1024];
        snprintf(root, sizeof root, "%s/fixtures", shared);
        add_fixtures(root);
    } else {
        printf("test_parity: skipped ../shared/fixtures: ../shared not found "
               "(set SDXLVAE_SHARED); testing the project's own fixtures only\n");
    }
    int n_shared = n_fixtures;
    add_fixtures(tu_fixtures_dir());
    if (n_fixtures == n_shared) {
        fprintf(stderr, "test_parity: no fixtures found in %s\n", tu_fixtures_dir());
        return 1;
    }
    Suite *s = suite_create("parity");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_fixture_parity, 0, n_fixtures);
    tcase_add_loop_test(tc, test_threads_bit_identical, 0, n_fixtures);
    tcase_add_loop_test(tc, test_direct_conv_parity, 0, n_fixtures);
    tcase_add_loop_test(tc, test_scalar_path_parity, 0, n_fixtures);
    tcase_add_test(tc, test_sample_and_scaling);
    tcase_add_test(tc, test_model_keeps_its_kernels);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    /* no fork: the worst-error table below needs the tests' results */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("worst relative error per fixture (moments, latent, decoded, zdecoded):\n");
    for (int i = 0; i < n_fixtures; i++)
        printf("  %-60s %.2e %.2e %.2e %.2e\n", fixtures[i].dir, worst[i][0], worst[i][1],
               worst[i][2], worst[i][3]);
    return failed ? 1 : 0;
}
