/*
 * test_progress.c - progress reports and cancellation (vae_run_options
 * .progress), the function table of vae_get_api(), the function twins of the
 * constants, and options structs from before the progress fields.
 *
 * Leaks of cancelled calls are for the sanitizer build to find:
 *   make B=/tmp/b-asan SANITIZE=address,undefined OPT=-O1 /tmp/b-asan/test/test_progress
 *   CK_FORK=no /tmp/b-asan/test/test_progress
 */
#include <check.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/npy.h"
#include "sdxlvae.h"
#include "testutil.h"

/* micro-diffusers-f16: 3 levels (f = 4), batches of 2. */
static vae_model *model;
static npy_array image, zin; /* 2 x 3 x 16 x 16, 2 x 4 x 4 x 6 */
#define N 2
#define IMG_FLOATS (N * 3 * 16 * 16)
#define LAT_FLOATS (N * 4 * 4 * 4)
#define DEC_FLOATS (N * 3 * 16 * 24)

static void setup(void)
{
    char dir[1024], path[1200], err[256];
    snprintf(dir, sizeof dir, "%s/micro-diffusers-f16", tu_fixtures_dir());
    ck_assert_msg(vae_load(dir, NULL, &model) == VAE_OK, "%s", vae_last_error(NULL));
    snprintf(path, sizeof path, "%s/image.npy", dir);
    ck_assert_msg(npy_read(path, &image, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/zin.npy", dir);
    ck_assert_msg(npy_read(path, &zin, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(image.count, IMG_FLOATS);
    ck_assert_uint_eq(zin.count, N * 4 * 4 * 6);
}

static void teardown(void)
{
    vae_free(model);
    npy_free(&image);
    npy_free(&zin);
}

/* ---- A recording callback --------------------------------------------------- */

#define MAX_CALLS 1024
typedef struct record {
    int calls;
    float fraction[MAX_CALLS];
    int32_t stage[MAX_CALLS];
    int cancel_at;        /* return 1 on this call (0-based); -1: never */
    pthread_t caller;
    int foreign_thread;   /* a call came from another thread */
} record;

static void record_init(record *r, int cancel_at)
{
    memset(r, 0, sizeof *r);
    r->cancel_at = cancel_at;
    r->caller = pthread_self();
}

static int32_t on_progress(void *user, float fraction, int32_t stage)
{
    record *r = user;
    if (!pthread_equal(pthread_self(), r->caller)) r->foreign_thread = 1;
    if (r->calls < MAX_CALLS) {
        r->fraction[r->calls] = fraction;
        r->stage[r->calls] = stage;
    }
    return r->calls++ == r->cancel_at;
}

enum { ENCODE, MOMENTS, DECODE };

/* One call of kind `kind` into out, with progress into r (NULL: none). */
static int32_t run(int kind, float *out, record *r)
{
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.n_threads = 2;
    if (r) {
        ro.progress = on_progress;
        ro.progress_user = r;
    }
    switch (kind) {
    case ENCODE: return vae_encode(model, image.data, N, 16, 16, out, LAT_FLOATS, &ro);
    case MOMENTS: return vae_encode_moments(model, image.data, N, 16, 16, out, 2 * LAT_FLOATS, &ro);
    default: return vae_decode(model, zin.data, N, 4, 6, out, DEC_FLOATS, &ro);
    }
}

static const char *const kind_name[] = {"vae_encode", "vae_encode_moments", "vae_decode"};

/* ---- Progress ------------------------------------------------------------------- */

START_TEST(test_reports_are_monotonic_and_end_at_one)
{
    static float plain[DEC_FLOATS], watched[DEC_FLOATS];
    static record r;
    for (int kind = ENCODE; kind <= DECODE; kind++) {
        const char *fn = kind_name[kind];
        ck_assert_int_eq(run(kind, plain, NULL), VAE_OK);
        record_init(&r, -1);
        ck_assert_int_eq(run(kind, watched, &r), VAE_OK);
        ck_assert_msg(memcmp(plain, watched, sizeof plain) == 0, "%s: results differ with a callback", fn);
        ck_assert_msg(!r.foreign_thread, "%s: a report came from a worker thread", fn);
        /* 0 first, a report after each layer of each image, 1.0 last */
        ck_assert_msg(r.calls >= 10 && r.calls < MAX_CALLS && (r.calls - 2) % N == 0,
                      "%s: %d calls", fn, r.calls);
        ck_assert_float_eq(r.fraction[0], 0.0f);
        ck_assert_float_eq(r.fraction[r.calls - 1], 1.0f);
        int32_t want = kind == DECODE ? VAE_STAGE_DECODE : VAE_STAGE_ENCODE;
        for (int i = 0; i < r.calls; i++) {
            ck_assert_int_eq(r.stage[i], want);
            ck_assert_msg(r.fraction[i] >= 0.0f && r.fraction[i] <= 1.0f, "%s: fraction %g", fn,
                          (double)r.fraction[i]);
            if (i > 0)
                ck_assert_msg(r.fraction[i] >= r.fraction[i - 1], "%s: call %d: %.9g after %.9g",
                              fn, i, (double)r.fraction[i], (double)r.fraction[i - 1]);
            if (i < r.calls - 1)
                ck_assert_msg(r.fraction[i] < 1.0f, "%s: 1.0 before the end, call %d of %d", fn, i,
                              r.calls);
        }
        /* the fraction covers the batch: after the first image, exactly half */
        int per_image = (r.calls - 2) / N;
        ck_assert_msg(r.fraction[per_image] == 0.5f, "%s: %.9g after image 1 of 2", fn,
                      (double)r.fraction[per_image]);
    }
}
END_TEST

/* Cancelling at the first report, in the middle of the first and of the
 * second image, and at the last layer: VAE_ERR_CANCELLED, no report after
 * the one that cancelled, a message, and the handle gives the same results
 * afterwards. Refusing the final 1.0 report changes nothing. */
START_TEST(test_cancel_anywhere)
{
    static float plain[DEC_FLOATS], out[DEC_FLOATS];
    static record r;
    ck_assert_str_eq(vae_strerror(VAE_ERR_CANCELLED), "cancelled");
    for (int kind = ENCODE; kind <= DECODE; kind++) {
        const char *fn = kind_name[kind];
        ck_assert_int_eq(run(kind, plain, NULL), VAE_OK);
        record_init(&r, -1);
        ck_assert_int_eq(run(kind, out, &r), VAE_OK);
        const int total = r.calls;
        const int points[] = {0, 1, total / 4, total / 2, total / 2 + 1, 3 * total / 4, total - 2};
        for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
            const int at = points[p];
            record_init(&r, at);
            ck_assert_msg(run(kind, out, &r) == VAE_ERR_CANCELLED, "%s: not cancelled at call %d",
                          fn, at);
            ck_assert_msg(r.calls == at + 1, "%s: cancelled at %d, %d calls", fn, at, r.calls);
            const char *msg = vae_last_error(model);
            ck_assert_msg(strstr(msg, fn) && strstr(msg, "cancelled by the progress callback"),
                          "message '%s'", msg);
            ck_assert_str_eq(vae_last_error(NULL), msg);
            /* the handle goes on, with the same results */
            memset(out, 0, sizeof out);
            ck_assert_int_eq(run(kind, out, NULL), VAE_OK);
            ck_assert_msg(memcmp(plain, out, sizeof out) == 0, "%s: differs after a cancel at %d",
                          fn, at);
        }
        record_init(&r, total - 1);
        ck_assert_int_eq(run(kind, out, &r), VAE_OK);
        ck_assert_int_eq(r.calls, total);
        ck_assert_int_eq(memcmp(plain, out, sizeof out), 0);
    }
}
END_TEST

/* Cancelling one call does not disturb another running on the same handle. */
typedef struct job {
    int kind, cancel_at;
    float out[DEC_FLOATS];
    record r;
    int32_t rc;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    record_init(&j->r, j->cancel_at);
    j->rc = run(j->kind, j->out, &j->r);
    return NULL;
}

START_TEST(test_cancel_beside_other_calls)
{
    static float plain[DEC_FLOATS];
    static job jobs[4];
    ck_assert_int_eq(run(DECODE, plain, NULL), VAE_OK);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].kind = DECODE;
        jobs[i].cancel_at = i % 2 ? 5 : -1;
        ck_assert_int_eq(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(!jobs[i].r.foreign_thread, "job %d: a report from another thread", i);
        if (i % 2) {
            ck_assert_int_eq(jobs[i].rc, VAE_ERR_CANCELLED);
        } else {
            ck_assert_int_eq(jobs[i].rc, VAE_OK);
            ck_assert_int_eq(memcmp(jobs[i].out, plain, sizeof plain), 0);
        }
    }
}
END_TEST

/* ---- Options structs from before the progress fields --------------------------- */

static int32_t must_not_be_called(void *user, float fraction, int32_t stage)
{
    (void)user;
    (void)fraction;
    (void)stage;
    ck_abort_msg("a callback past opts->size was called");
    return 1;
}

START_TEST(test_older_options_without_callback)
{
    static float plain[DEC_FLOATS], out[DEC_FLOATS];
    ck_assert_int_eq(run(DECODE, plain, NULL), VAE_OK);
    /* What a program built against the 0.1.0 header before the progress
     * fields passes: size 24; the bytes past it are not read. */
    ck_assert_uint_eq(offsetof(vae_run_options, progress), 24);
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.size = offsetof(vae_run_options, progress);
    ro.n_threads = 2;
    ro.progress = must_not_be_called;
    ro.progress_user = &ro;
    ck_assert_int_eq(vae_decode(model, zin.data, N, 4, 6, out, DEC_FLOATS, &ro), VAE_OK);
    ck_assert_int_eq(memcmp(plain, out, sizeof out), 0);
    ck_assert_int_eq(vae_encode(model, image.data, N, 16, 16, out, LAT_FLOATS, &ro), VAE_OK);
    /* and a NULL callback with a user pointer is just no progress */
    vae_run_options_init(&ro, sizeof ro);
    ro.progress_user = &ro;
    ck_assert_int_eq(vae_decode(model, zin.data, N, 4, 6, out, DEC_FLOATS, &ro), VAE_OK);
    ck_assert_int_eq(memcmp(plain, out, sizeof out), 0);
}
END_TEST

/* ---- The function table ---------------------------------------------------------- */

START_TEST(test_get_api_table)
{
    ck_assert_ptr_null(vae_get_api(0));
    ck_assert_ptr_null(vae_get_api(VAE_ABI_VERSION + 1));
    const vae_api *api = vae_get_api(VAE_ABI_VERSION);
    ck_assert_ptr_nonnull(api);
    ck_assert_ptr_eq(api, vae_get_api(VAE_ABI_VERSION));
    ck_assert_uint_eq(api->size, sizeof(vae_api));
    ck_assert_uint_eq(api->abi_major, VAE_ABI_VERSION);
    ck_assert_uint_eq(api->version_number, vae_version_number());
    ck_assert_uint_eq(api->reserved, 0);
    /* The fixed head, then one pointer per function, no holes. */
    ck_assert_uint_eq(offsetof(vae_api, vae_version_number), 16);
    ck_assert_uint_eq((sizeof(vae_api) - 16) % sizeof(void (*)(void)), 0);
#define SAME(f) ck_assert_msg((void (*)(void))api->f == (void (*)(void))f, #f)
    SAME(vae_version_number);
    SAME(vae_version_string);
    SAME(vae_abi_version);
    SAME(vae_strerror);
    SAME(vae_load_options_init);
    SAME(vae_load);
    SAME(vae_free);
    SAME(vae_latent_channels);
    SAME(vae_downsample_factor);
    SAME(vae_scaling_factor);
    SAME(vae_shift_factor);
    SAME(vae_get_info);
    SAME(vae_run_options_init);
    SAME(vae_encoded_size);
    SAME(vae_decoded_size);
    SAME(vae_encode);
    SAME(vae_encode_moments);
    SAME(vae_decode);
    SAME(vae_last_error);
    SAME(vae_copy_last_error);
    SAME(vae_ok);
    SAME(vae_err_invalid_argument);
    SAME(vae_err_io);
    SAME(vae_err_format);
    SAME(vae_err_unsupported);
    SAME(vae_err_model);
    SAME(vae_err_no_memory);
    SAME(vae_err_buffer_too_small);
    SAME(vae_err_internal);
    SAME(vae_err_cancelled);
    SAME(vae_flag_raw_latent);
    SAME(vae_flag_sample);
    SAME(vae_flag_direct_conv);
    SAME(vae_dtype_f32);
    SAME(vae_dtype_f16);
    SAME(vae_dtype_bf16);
    SAME(vae_dtype_mixed);
    SAME(vae_max_levels);
    SAME(vae_stage_encode);
    SAME(vae_stage_decode);
    SAME(vae_load_options_size);
    SAME(vae_run_options_size);
    SAME(vae_model_info_size);
    SAME(vae_estimate_memory);
    SAME(vae_load_no_encoder);
    SAME(vae_load_no_decoder);
    SAME(vae_load_half_weights);
    SAME(vae_flag_tiled);
    SAME(vae_flag_circular);
    SAME(vae_memory_estimate_size);
#undef SAME
    /* the 43 functions of SDXLVAE_1.0 other than vae_get_api (which is not in
     * its own table) and the 7 of SDXLVAE_1.1: a function added without a
     * table entry shows here. */
    ck_assert_uint_eq((sizeof(vae_api) - 16) / sizeof(void (*)(void)), 20 + 23 + 7);
    /* and the table works */
    float out[DEC_FLOATS];
    ck_assert_int_eq(api->vae_decode(model, zin.data, N, 4, 6, out, DEC_FLOATS, NULL), VAE_OK);
}
END_TEST

START_TEST(test_constant_functions)
{
    ck_assert_int_eq(vae_ok(), VAE_OK);
    ck_assert_int_eq(vae_err_invalid_argument(), VAE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(vae_err_io(), VAE_ERR_IO);
    ck_assert_int_eq(vae_err_format(), VAE_ERR_FORMAT);
    ck_assert_int_eq(vae_err_unsupported(), VAE_ERR_UNSUPPORTED);
    ck_assert_int_eq(vae_err_model(), VAE_ERR_MODEL);
    ck_assert_int_eq(vae_err_no_memory(), VAE_ERR_NO_MEMORY);
    ck_assert_int_eq(vae_err_buffer_too_small(), VAE_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(vae_err_internal(), VAE_ERR_INTERNAL);
    ck_assert_int_eq(vae_err_cancelled(), VAE_ERR_CANCELLED);
    ck_assert_int_eq(VAE_ERR_CANCELLED, -9);
    ck_assert_uint_eq(vae_flag_raw_latent(), VAE_FLAG_RAW_LATENT);
    ck_assert_uint_eq(vae_flag_sample(), VAE_FLAG_SAMPLE);
    ck_assert_uint_eq(vae_flag_direct_conv(), VAE_FLAG_DIRECT_CONV);
    ck_assert_int_eq(vae_dtype_f32(), VAE_DTYPE_F32);
    ck_assert_int_eq(vae_dtype_f16(), VAE_DTYPE_F16);
    ck_assert_int_eq(vae_dtype_bf16(), VAE_DTYPE_BF16);
    ck_assert_int_eq(vae_dtype_mixed(), VAE_DTYPE_MIXED);
    ck_assert_int_eq(vae_max_levels(), VAE_MAX_LEVELS);
    ck_assert_int_eq(vae_stage_encode(), VAE_STAGE_ENCODE);
    ck_assert_int_eq(vae_stage_decode(), VAE_STAGE_DECODE);
    ck_assert_uint_eq(vae_load_options_size(), sizeof(vae_load_options));
    ck_assert_uint_eq(vae_run_options_size(), sizeof(vae_run_options));
    ck_assert_uint_eq(vae_model_info_size(), sizeof(vae_model_info));
    ck_assert_uint_eq(vae_memory_estimate_size(), sizeof(vae_memory_estimate));
    ck_assert_uint_eq(vae_load_no_encoder(), VAE_LOAD_NO_ENCODER);
    ck_assert_uint_eq(vae_load_no_decoder(), VAE_LOAD_NO_DECODER);
    ck_assert_uint_eq(vae_load_half_weights(), VAE_LOAD_HALF_WEIGHTS);
    ck_assert_uint_eq(vae_flag_tiled(), VAE_FLAG_TILED);
    ck_assert_uint_eq(vae_flag_circular(), VAE_FLAG_CIRCULAR);
    /* the sizes docs/abi.md gives for 64-bit targets */
    if (sizeof(void *) == 8) {
        ck_assert_uint_eq(vae_load_options_size(), 24);
        ck_assert_uint_eq(vae_run_options_size(), 56); /* 40 in 0.1.0 */
        ck_assert_uint_eq(offsetof(vae_run_options, max_memory), 40);
        ck_assert_uint_eq(vae_memory_estimate_size(), 64);
        ck_assert_uint_eq(vae_model_info_size(), 144);
        ck_assert_uint_eq(offsetof(vae_run_options, progress_user), 32);
    }
    /* the twins of the version macros predate the others */
    ck_assert_uint_eq(vae_version_number(), VAE_VERSION_NUMBER);
    ck_assert_uint_eq(vae_abi_version(), VAE_ABI_VERSION);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("progress");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_reports_are_monotonic_and_end_at_one);
    tcase_add_test(tc, test_cancel_anywhere);
    tcase_add_test(tc, test_cancel_beside_other_calls);
    tcase_add_test(tc, test_older_options_without_callback);
    tcase_add_test(tc, test_get_api_table);
    tcase_add_test(tc, test_constant_functions);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
