/*
 * test_api.c - the public contract: versions, status codes, argument
 * checking with messages that name the argument, size queries, options
 * structs of other sizes, per-handle and per-thread errors, and one model
 * shared by several threads giving the same results as serial calls.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/npy.h"
#include "sdxlvae.h"
#include "testutil.h"

static char model_dir[1024];

static vae_model *load(void)
{
    vae_model *m = NULL;
    snprintf(model_dir, sizeof model_dir, "%s/micro-diffusers-f16", tu_fixtures_dir());
    ck_assert_msg(vae_load(model_dir, NULL, &m) == VAE_OK, "%s", vae_last_error(NULL));
    return m;
}

static void expect_msg(const vae_model *m, const char *needle)
{
    const char *msg = vae_last_error(m);
    ck_assert_msg(strstr(msg, needle) != NULL, "message '%s' lacks '%s'", msg, needle);
}

START_TEST(test_versions)
{
    ck_assert_uint_eq(vae_version_number(), VAE_VERSION_NUMBER);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", VAE_VERSION_MAJOR, VAE_VERSION_MINOR, VAE_VERSION_PATCH);
    ck_assert_str_eq(vae_version_string(), v);
    ck_assert_uint_eq(vae_abi_version(), VAE_ABI_VERSION);
    for (int32_t c = 0; c >= -8; c--) {
        ck_assert_ptr_nonnull(vae_strerror(c));
        ck_assert_str_ne(vae_strerror(c), "unknown status code");
    }
    ck_assert_str_eq(vae_strerror(-1000), "unknown status code");
    ck_assert_str_eq(vae_strerror(12345), "unknown status code");
}
END_TEST

START_TEST(test_queries)
{
    vae_model *m = load();
    ck_assert_int_eq(vae_latent_channels(m), 4);
    ck_assert_int_eq(vae_downsample_factor(m), 4); /* 3 levels */
    ck_assert_float_eq(vae_scaling_factor(m), 0.18215f);
    ck_assert_float_eq(vae_shift_factor(m), 0.0f);
    uint64_t n = 0;
    ck_assert_int_eq(vae_encoded_size(m, 2, 16, 24, &n), VAE_OK);
    ck_assert_uint_eq(n, 2 * 4 * 4 * 6);
    ck_assert_int_eq(vae_decoded_size(m, 3, 5, 7, &n), VAE_OK);
    ck_assert_uint_eq(n, 3 * 3 * 20 * 28);
    vae_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    ck_assert_int_eq(vae_get_info(m, &info), VAE_OK);
    ck_assert_str_eq(info.family, "SD1.x/SD2.x");
    ck_assert_str_eq(info.naming, "diffusers");
    ck_assert_int_eq(info.weight_dtype, VAE_DTYPE_F16);
    ck_assert_int_eq(info.has_encoder, 1);
    ck_assert_int_eq(info.has_decoder, 1);
    ck_assert_float_eq(info.norm_eps, 1e-6f);
    /* NULL handle: zeros, never a crash */
    ck_assert_int_eq(vae_latent_channels(NULL), 0);
    ck_assert_int_eq(vae_downsample_factor(NULL), 0);
    vae_free(m);
    vae_free(NULL);
}
END_TEST

START_TEST(test_bad_arguments)
{
    vae_model *m = NULL;
    float buf[4096];
    uint64_t n;
    ck_assert_int_eq(vae_load(NULL, NULL, &m), VAE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(m);
    expect_msg(NULL, "path is NULL");
    ck_assert_int_eq(vae_load(model_dir, NULL, NULL), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(NULL, "out is NULL");
    m = load();

    ck_assert_int_eq(vae_encoded_size(m, 1, 15, 16, &n), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "not a multiple of 4");
    ck_assert_int_eq(vae_encoded_size(m, 0, 16, 16, &n), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "batch size n = 0");
    ck_assert_int_eq(vae_encoded_size(m, 1, -16, 16, &n), VAE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vae_encoded_size(m, 1, 16, 16, NULL), VAE_ERR_INVALID_ARGUMENT);
    /* sizes whose product overflows */
    ck_assert_int_eq(vae_encoded_size(m, INT32_MAX, INT32_MAX - 3, INT32_MAX - 3, &n),
                     VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "too large");
    ck_assert_int_eq(vae_decoded_size(m, 1, INT32_MAX, 4, &n), VAE_ERR_INVALID_ARGUMENT);

    ck_assert_int_eq(vae_encode(m, NULL, 1, 16, 16, buf, 4096, NULL), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "image is NULL");
    ck_assert_int_eq(vae_encode(m, buf, 1, 16, 16, NULL, 4096, NULL), VAE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vae_encode(NULL, buf, 1, 16, 16, buf, 4096, NULL), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(NULL, "model is NULL");
    ck_assert_int_eq(vae_encode(m, buf, 1, 16, 18, buf, 4096, NULL), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "16 x 18 is not a multiple of 4");
    ck_assert_int_eq(vae_encode(m, buf, 1, 16, 16, buf + 1024, 63, NULL), VAE_ERR_BUFFER_TOO_SMALL);
    expect_msg(m, "64 needed");
    ck_assert_int_eq(vae_encode_moments(m, buf, 1, 16, 16, buf + 1024, 64, NULL), VAE_ERR_BUFFER_TOO_SMALL);
    expect_msg(m, "128 needed");
    ck_assert_int_eq(vae_decode(m, buf, 1, 4, 4, buf + 1024, 3 * 16 * 16 - 1, NULL), VAE_ERR_BUFFER_TOO_SMALL);

    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = 1u << 7;
    ck_assert_int_eq(vae_encode(m, buf, 1, 16, 16, buf + 1024, 64, &ro), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "unknown flags 0x80");
    vae_run_options_init(&ro, sizeof ro);
    ro.n_threads = -2;
    ck_assert_int_eq(vae_decode(m, buf, 1, 4, 4, buf + 1024, 768, &ro), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "n_threads is -2");
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = VAE_FLAG_SAMPLE;
    ck_assert_int_eq(vae_decode(m, buf, 1, 4, 4, buf + 1024, 768, &ro), VAE_ERR_INVALID_ARGUMENT);
    ro.size = 0;
    ck_assert_int_eq(vae_decode(m, buf, 1, 4, 4, buf + 1024, 768, &ro), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "size is 0");
    vae_free(m);
}
END_TEST

/* An options struct from a newer header (larger, zero tail) is accepted; a
 * non-zero unknown tail is refused; an older, shorter one gets defaults. */
START_TEST(test_options_versions)
{
    vae_model *m = load();
    float img[3 * 16 * 16], lat[64], lat2[64];
    for (int i = 0; i < 3 * 16 * 16; i++) img[i] = (float)((i * 37) % 200) / 100.0f - 1.0f;
    struct {
        vae_run_options o;
        uint64_t future[4];
    } big;
    memset(&big, 0, sizeof big);
    vae_run_options_init(&big.o, sizeof big); /* a newer header's bigger struct */
    ck_assert_uint_eq(big.o.size, sizeof big);
    ck_assert_int_eq(vae_encode(m, img, 1, 16, 16, lat, 64, &big.o), VAE_OK);
    ck_assert_int_eq(vae_encode(m, img, 1, 16, 16, lat2, 64, NULL), VAE_OK);
    ck_assert_int_eq(memcmp(lat, lat2, sizeof lat), 0);
    big.future[2] = 1;
    ck_assert_int_eq(vae_encode(m, img, 1, 16, 16, lat, 64, &big.o), VAE_ERR_INVALID_ARGUMENT);
    expect_msg(m, "non-zero byte");
    /* init writes exactly the size it is given, never more */
    unsigned char canary[64];
    memset(canary, 0xAB, sizeof canary);
    vae_run_options_init((vae_run_options *)(void *)canary, 8);
    ck_assert_uint_eq(canary[0] | canary[1] << 8, 8);
    for (size_t i = 4; i < 8; i++) ck_assert_uint_eq(canary[i], 0);
    for (size_t i = 8; i < sizeof canary; i++) ck_assert_uint_eq(canary[i], 0xAB);
    vae_load_options_init((vae_load_options *)(void *)canary, 2); /* too small: untouched */
    ck_assert_uint_eq(canary[2], 0);
    ck_assert_uint_eq(canary[8], 0xAB);
    /* an old struct that ends after flags: raw latents, default threads */
    vae_run_options old;
    memset(&old, 0xFF, sizeof old);
    old.size = 8;
    old.flags = VAE_FLAG_RAW_LATENT;
    ck_assert_int_eq(vae_encode(m, img, 1, 16, 16, lat, 64, &old), VAE_OK);
    float sc = vae_scaling_factor(m);
    for (int i = 0; i < 64; i++) ck_assert_float_eq_tol(lat[i] * sc, lat2[i], 1e-6f);
    vae_free(m);
}
END_TEST

START_TEST(test_error_is_per_handle_and_thread)
{
    vae_model *a = load(), *b = load();
    float x[16];
    uint64_t n;
    ck_assert_int_eq(vae_encoded_size(a, 1, 3, 4, &n), VAE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vae_decode(b, x, 1, 1, 1, x, 1, NULL), VAE_ERR_BUFFER_TOO_SMALL);
    expect_msg(a, "not a multiple");
    expect_msg(b, "image buffer holds 1 floats");
    char small[8];
    uint64_t len = vae_copy_last_error(a, small, sizeof small);
    ck_assert_uint_gt(len, 7);
    ck_assert_uint_eq(strlen(small), 7);
    ck_assert_int_eq(strncmp(small, vae_last_error(a), 7), 0);
    ck_assert_uint_eq(vae_copy_last_error(a, NULL, 0), len);
    vae_free(a);
    vae_free(b);
}
END_TEST

/* Several threads on one handle, encode and decode mixed: results equal the
 * serial ones to the bit. */
typedef struct worker {
    const vae_model *m;
    const float *img, *lat;
    float *out;
    int encode;
    int32_t rc;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.n_threads = 1 + (w->encode & 1);
    for (int rep = 0; rep < 3 && w->rc == VAE_OK; rep++)
        w->rc = w->encode ? vae_encode(w->m, w->img, 2, 16, 16, w->out, 128, &ro)
                          : vae_decode(w->m, w->lat, 2, 4, 6, w->out, 2 * 3 * 16 * 24, &ro);
    return NULL;
}

START_TEST(test_shared_handle_threads)
{
    vae_model *m = load();
    char path[1200], err[256];
    npy_array img, lat;
    snprintf(path, sizeof path, "%s/image.npy", model_dir);
    ck_assert_int_eq(npy_read(path, &img, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/zin.npy", model_dir);
    ck_assert_int_eq(npy_read(path, &lat, err, sizeof err), 0);
    ck_assert_int_eq((int)img.shape[0], 2);
    ck_assert_int_eq((int)lat.shape[2], 4);
    ck_assert_int_eq((int)lat.shape[3], 6);
    static float serial_enc[128], serial_dec[2 * 3 * 16 * 24];
    ck_assert_int_eq(vae_encode(m, img.data, 2, 16, 16, serial_enc, 128, NULL), VAE_OK);
    ck_assert_int_eq(vae_decode(m, lat.data, 2, 4, 6, serial_dec, 2 * 3 * 16 * 24, NULL), VAE_OK);
    enum { NT = 6 };
    pthread_t th[NT];
    worker w[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (worker){m, img.data, lat.data, malloc(2 * 3 * 16 * 24 * sizeof(float)), i % 2, VAE_OK};
        ck_assert_int_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].rc, VAE_OK);
        if (w[i].encode) ck_assert_int_eq(memcmp(w[i].out, serial_enc, sizeof serial_enc), 0);
        else ck_assert_int_eq(memcmp(w[i].out, serial_dec, sizeof serial_dec), 0);
        free(w[i].out);
    }
    npy_free(&img);
    npy_free(&lat);
    vae_free(m);
}
END_TEST

/* Hostile values: NaN or Inf in an input is not an error; it propagates
 * (GroupNorm spreads it over the whole image) and the call returns VAE_OK
 * with a defined shape of output: documented in docs/api.md. */
START_TEST(test_nan_inf_inputs)
{
    vae_model *m = load();
    float img[3 * 16 * 16], lat[64], out[3 * 16 * 16];
    float bad[2] = {NAN, INFINITY};
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < 3 * 16 * 16; i++) img[i] = (float)(i % 13) / 13.0f;
        img[100] = bad[b];
        ck_assert_int_eq(vae_encode(m, img, 1, 16, 16, lat, 64, NULL), VAE_OK);
        int nonfinite = 0;
        for (int i = 0; i < 64; i++) nonfinite += !isfinite(lat[i]);
        ck_assert_int_gt(nonfinite, 0);
        for (int i = 0; i < 64; i++) lat[i] = i == 5 ? bad[b] : 0.1f;
        ck_assert_int_eq(vae_decode(m, lat, 1, 4, 4, out, 3 * 16 * 16, NULL), VAE_OK);
        nonfinite = 0;
        for (int i = 0; i < 3 * 16 * 16; i++) nonfinite += !isfinite(out[i]);
        ck_assert_int_gt(nonfinite, 0);
    }
    vae_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_versions);
    tcase_add_test(tc, test_queries);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_options_versions);
    tcase_add_test(tc, test_error_is_per_handle_and_thread);
    tcase_add_test(tc, test_shared_handle_threads);
    tcase_add_test(tc, test_nan_inf_inputs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
