/*
 * test_alloc_fail.c - allocation-failure injection: a complete load +
 * encode + decode is run once to count the library's allocations, then
 * again once per allocation with exactly that one failing. Every run must
 * end in VAE_ERR_NO_MEMORY with a message (never a crash, never a wrong
 * status), a failed load must return no handle, and a handle whose call
 * failed must still give the exact results afterwards. Leaks are caught by
 * the sanitizer build of this test (make check SANITIZE=address,undefined),
 * which CI runs. cJSON's own allocations are not injected (its parser cannot
 * tell a failed allocation from bad JSON). All of it twice: with fp32
 * weights and with VAE_LOAD_HALF_WEIGHTS.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/npy.h"
#include "core/common.h"
#include "sdxlvae.h"
#include "testutil.h"

static char dir[1024];
static npy_array img, lat;
/* the load flags of the run: 0, then VAE_LOAD_HALF_WEIGHTS, whose load
 * rounds to F16 and whose convolutions widen into per-call buffers */
static const uint32_t load_flags[2] = {0, VAE_LOAD_HALF_WEIGHTS};
static uint32_t flags;
static float *ref_lat, *ref_img;
static uint64_t n_lat, n_img;

static void setup(void)
{
    char p[1200], err[256];
    snprintf(dir, sizeof dir, "%s/micro-ldm-f32", tu_fixtures_dir());
    snprintf(p, sizeof p, "%s/image.npy", dir);
    ck_assert_msg(npy_read(p, &img, err, sizeof err) == 0, "%s", err);
    snprintf(p, sizeof p, "%s/latent.npy", dir);
    ck_assert_msg(npy_read(p, &lat, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
    npy_free(&img);
    npy_free(&lat);
    free(ref_lat);
    free(ref_img);
    ref_lat = ref_img = NULL;
}

static int32_t tile; /* the second test: through the tiled executor */

static vae_run_options opts(void)
{
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = VAE_FLAG_RAW_LATENT;
    ro.n_threads = 1; /* one allocation order */
    ro.tile = tile;
    return ro;
}

/* Load, encode, decode. Returns the first failing status (VAE_OK if none);
 * checks the outputs against the reference when they succeed. */
static int32_t scenario(float *out_lat, float *out_img, int *stage)
{
    vae_model *m = (vae_model *)1;
    vae_load_options lo;
    vae_load_options_init(&lo, sizeof lo);
    lo.n_threads = 1;
    lo.flags = flags;
    vae_run_options ro = opts();
    int32_t h = (int32_t)img.shape[2], w = (int32_t)img.shape[3];
    *stage = 0;
    int32_t rc = vae_load(dir, &lo, &m);
    if (rc != VAE_OK) {
        ck_assert_ptr_null(m);
        return rc;
    }
    *stage = 1;
    rc = vae_encode(m, img.data, 1, h, w, out_lat, n_lat, &ro);
    if (rc == VAE_OK) {
        *stage = 2;
        rc = vae_decode(m, lat.data, 1, (int32_t)lat.shape[2], (int32_t)lat.shape[3], out_img, n_img,
                        &ro);
    }
    if (rc != VAE_OK) {
        /* the handle still works, and gives the same bits */
        const char *msg = vae_last_error(m);
        ck_assert_msg(msg[0] != '\0', "no message for status %d", rc);
        vae_test_fail_alloc(0);
        float *l2 = malloc(n_lat * sizeof(float)), *i2 = malloc(n_img * sizeof(float));
        ck_assert_int_eq(vae_encode(m, img.data, 1, h, w, l2, n_lat, &ro), VAE_OK);
        ck_assert_int_eq(vae_decode(m, lat.data, 1, (int32_t)lat.shape[2], (int32_t)lat.shape[3], i2,
                                    n_img, &ro), VAE_OK);
        if (ref_lat) {
            ck_assert_int_eq(memcmp(l2, ref_lat, n_lat * sizeof(float)), 0);
            ck_assert_int_eq(memcmp(i2, ref_img, n_img * sizeof(float)), 0);
        }
        free(l2);
        free(i2);
    }
    vae_free(m);
    return rc;
}

static void every_allocation(int which_flags)
{
    int stage;
    flags = load_flags[which_flags];
    n_lat = lat.count;
    n_img = 3 * (uint64_t)img.shape[2] * (uint64_t)img.shape[3];
    ref_lat = malloc(n_lat * sizeof(float));
    ref_img = malloc(n_img * sizeof(float));
    vae_test_fail_alloc(0);
    ck_assert_int_eq(scenario(ref_lat, ref_img, &stage), VAE_OK);
    long total = vae_test_alloc_count();
    ck_assert_int_gt(total, 10);
    float *l = malloc(n_lat * sizeof(float)), *im = malloc(n_img * sizeof(float));
    long failed_load = 0, failed_run = 0;
    for (long n = 1; n <= total + 2; n++) {
        vae_test_fail_alloc(n);
        int32_t rc = scenario(l, im, &stage);
        vae_test_fail_alloc(0);
        if (n <= total) {
            ck_assert_msg(rc == VAE_ERR_NO_MEMORY,
                          "allocation %ld of %ld failing gave status %d (%s) at stage %d: %s", n, total,
                          rc, vae_strerror(rc), stage, stage == 0 ? vae_last_error(NULL) : "");
            if (stage == 0) failed_load++;
            else failed_run++;
        } else {
            ck_assert_int_eq(rc, VAE_OK); /* past the last allocation: nothing fails */
            ck_assert_int_eq(memcmp(l, ref_lat, n_lat * sizeof(float)), 0);
            ck_assert_int_eq(memcmp(im, ref_img, n_img * sizeof(float)), 0);
        }
    }
    printf("alloc_fail (load flags 0x%x): %ld allocation sites in load + encode + decode, each "
           "failed once: %ld during load, %ld during encode/decode; all gave VAE_ERR_NO_MEMORY\n",
           flags, total, failed_load, failed_run);
    free(l);
    free(im);
}

START_TEST(test_every_allocation_fails_cleanly)
{
    every_allocation(_i);
}
END_TEST

/* The same through the tiled executor (16-pixel tiles): its plan, regions,
 * cached blocks, checkpoints and statistics. */
START_TEST(test_every_tiled_allocation_fails_cleanly)
{
    tile = 16;
    every_allocation(0);
    tile = 0;
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc_fail");
    TCase *tc = tcase_create("alloc_fail");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_every_allocation_fails_cleanly, 0, 2);
    tcase_add_test(tc, test_every_tiled_allocation_fails_cleanly);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
