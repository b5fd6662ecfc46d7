/*
 * test_load_flags.c - the bits of vae_load_options.flags, on every fixture
 * (../shared/fixtures when present, test/fixtures/micro-* always):
 *
 *  - VAE_LOAD_HALF_WEIGHTS: the weights take half the memory; from an F16 or
 *    BF16 file the outputs are bit-identical to those of the fp32-held
 *    model (the 16-bit copy is the file's, and widening is exact); from an
 *    F32 file they differ only by the rounding of the weights to F16,
 *    measured and bounded here. An F32 tensor beyond the F16 range stays
 *    fp32. Several threads may run one such handle at once.
 *  - VAE_LOAD_NO_ENCODER / VAE_LOAD_NO_DECODER: the skipped half costs no
 *    memory and is refused at run time; the other half gives the same bits
 *    as the full model; both flags together are an invalid argument.
 *  - vae_model_weight_bytes() counts exactly the arrays the loader keeps.
 */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/npy.h"
#include "format/safetensors.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "sdxlvae.h"
#include "testutil.h"
#include "testfix.h"

/*
 * The bound on max|half - fp32| / max|fp32| for an F32 file. Rounding a
 * weight to F16 moves it by at most 2^-11 relative (4.9e-4), about 2.8e-4
 * rms; a layer's output, a sum over many weights with independent
 * roundings, moves by about that rms relative too, and a few dozen layers in
 * series add up in quadrature to about 1.5e-3 rms; the largest deviation
 * over a whole output, relative to its largest value, lands near there.
 * Measured: 6e-4 to 1.2e-3 on these fixtures (printed by the test;
 * docs/api.md has the table). 1e-2 leaves room for other random weights and
 * still fails on any real mistake (a wrong tensor, a bf16 read as f16, a
 * lost packing: errors of 0.1 and more).
 */
#define HALF_F32_TOL 1e-2

static double half_err[32][3];          /* F32 files: moments, decoded, zdecoded */
static uint64_t bytes_full[32], bytes_half[32];
static int32_t fixture_dtype[32];

static vae_model *load(const char *path, uint32_t flags)
{
    vae_model *m = NULL;
    vae_load_options lo;
    vae_load_options_init(&lo, sizeof lo);
    lo.flags = flags;
    lo.n_threads = 2;
    int32_t rc = vae_load(path, &lo, &m);
    ck_assert_msg(rc == VAE_OK, "vae_load(%s, 0x%x): %s: %s", path, flags, vae_strerror(rc),
                  vae_last_error(NULL));
    return m;
}

static int32_t dtype_of(const vae_model *m)
{
    vae_model_info info;
    info.size = sizeof info;
    ck_assert_int_eq(vae_get_info(m, &info), VAE_OK);
    return info.weight_dtype;
}

/* The outputs of one model on a fixture's inputs: moments of image.npy,
 * decode of latent.npy, decode of zin.npy (NULL where the model lacks that
 * half). Freed by free_outputs. */
typedef struct outputs {
    float *o[3];
    uint64_t n[3];
} outputs;

static void run_all(vae_model *m, const char *dir, uint32_t run_flags, outputs *r)
{
    npy_array img = load_npy(dir, "image.npy"), lat = load_npy(dir, "latent.npy"),
              zin = load_npy(dir, "zin.npy");
    vae_model_info info;
    info.size = sizeof info;
    ck_assert_int_eq(vae_get_info(m, &info), VAE_OK);
    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = VAE_FLAG_RAW_LATENT | run_flags;
    memset(r, 0, sizeof *r);
    if (info.has_encoder) {
        int32_t n = (int32_t)img.shape[0], h = (int32_t)img.shape[2], w = (int32_t)img.shape[3];
        ck_assert_int_eq(vae_encoded_size(m, n, h, w, &r->n[0]), VAE_OK);
        r->n[0] *= 2;
        r->o[0] = malloc(r->n[0] * sizeof(float));
        ck_assert_int_eq(vae_encode_moments(m, img.data, n, h, w, r->o[0], r->n[0], &ro), VAE_OK);
    }
    if (info.has_decoder) {
        const npy_array *in[2] = {&lat, &zin};
        for (int k = 0; k < 2; k++) {
            int32_t n = (int32_t)in[k]->shape[0], h = (int32_t)in[k]->shape[2],
                    w = (int32_t)in[k]->shape[3];
            ck_assert_int_eq(vae_decoded_size(m, n, h, w, &r->n[1 + k]), VAE_OK);
            r->o[1 + k] = malloc(r->n[1 + k] * sizeof(float));
            ck_assert_int_eq(vae_decode(m, in[k]->data, n, h, w, r->o[1 + k], r->n[1 + k], &ro),
                             VAE_OK);
        }
    }
    npy_free(&img);
    npy_free(&lat);
    npy_free(&zin);
}

static void free_outputs(outputs *r)
{
    for (int k = 0; k < 3; k++) free(r->o[k]);
}

static const char *const out_names[3] = {"moments", "decoded", "zdecoded"};

static void assert_same_bits(const outputs *a, const outputs *b, const char *dir, const char *what)
{
    for (int k = 0; k < 3; k++) {
        if (!a->o[k] || !b->o[k]) continue;
        ck_assert_uint_eq(a->n[k], b->n[k]);
        ck_assert_msg(memcmp(a->o[k], b->o[k], a->n[k] * sizeof(float)) == 0,
                      "%s: %s: %s differs (rel %.3g)", dir, what, out_names[k],
                      tu_rel_err(a->o[k], b->o[k], a->n[k]));
    }
}

/* ---- what the weights should take, from the file's header ------------------- */

static uint64_t footprint(uint64_t nbytes)
{
    return nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64;
}

/* One tensor as an fp32-held model keeps it: 1-d (biases, norms) as is;
 * stride-1 3x3 convs as stored; 1x1 and Downsample convs packed for the
 * GEMM kernels (rows rounded up to the kernels' MR). */
static uint64_t fp32_bytes(const st_tensor *t)
{
    if (t->ndim == 1 || (t->ndim == 4 && t->shape[2] == 3 && !strstr(t->name, "downsample")))
        return footprint(t->count * 4);
    uint64_t mr = vae_kernels()->gemm_mr, rows = ((uint64_t)t->shape[0] + mr - 1) / mr * mr;
    return footprint(rows * (t->count / (uint64_t)t->shape[0]) * 4);
}

/* The same with VAE_LOAD_HALF_WEIGHTS: every conv weight raw in 16 bits. */
static uint64_t half_bytes(const st_tensor *t)
{
    return t->ndim == 1 ? footprint(t->count * 4) : footprint(t->count * 2);
}

/* Sums f over the file's tensors (every fixture file holds only the VAE's). */
static uint64_t file_bytes(const char *dir, uint64_t (*f)(const st_tensor *))
{
    char path[1200];
    st_file sf;
    vae_error e;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(st_open(path, &sf, &e), VAE_OK);
    uint64_t sum = 0;
    for (size_t i = 0; i < sf.n_tensors; i++) sum += f(&sf.tensors[i]);
    st_close(&sf);
    return sum;
}

/* ---- VAE_LOAD_HALF_WEIGHTS ---------------------------------------------------- */

START_TEST(test_half_weights)
{
    const char *dir = fixtures[_i].dir;
    vae_model *full = load(dir, 0), *half = load(dir, VAE_LOAD_HALF_WEIGHTS);
    int32_t dt = dtype_of(full);
    fixture_dtype[_i] = dt;
    ck_assert_int_eq(dtype_of(half), dt); /* the file's dtype, whatever is held */

    /* memory: exactly what the loader allocates, and half of it */
    uint64_t bf = vae_model_weight_bytes(full), bh = vae_model_weight_bytes(half);
    bytes_full[_i] = bf;
    bytes_half[_i] = bh;
    ck_assert_uint_eq(bf, file_bytes(dir, fp32_bytes));
    ck_assert_uint_eq(bh, file_bytes(dir, half_bytes));
    double ratio = (double)bh / (double)bf;
    printf("  %-52s %-4s weights %10llu -> %10llu bytes (%.3f)\n", dir,
           dt == VAE_DTYPE_F32 ? "F32" : dt == VAE_DTYPE_F16 ? "F16" : "BF16",
           (unsigned long long)bf, (unsigned long long)bh, ratio);
    ck_assert_msg(ratio >= 0.45 && ratio <= 0.55, "%s: half/fp32 weight bytes %.3f", dir, ratio);

    /* both convolution algorithms: they widen and pack differently */
    for (int direct = 0; direct < 2; direct++) {
        uint32_t rf = direct ? VAE_FLAG_DIRECT_CONV : 0;
        outputs a, b;
        run_all(full, dir, rf, &a);
        run_all(half, dir, rf, &b);
        if (dt == VAE_DTYPE_F16 || dt == VAE_DTYPE_BF16) {
            assert_same_bits(&b, &a, dir, direct ? "half weights, direct" : "half weights");
        } else {
            for (int k = 0; k < 3; k++) {
                double e = tu_rel_err(b.o[k], a.o[k], a.n[k]);
                printf("  %-52s F32 rounded to F16: %-8s rel err %.3g%s\n", dir, out_names[k], e,
                       direct ? " (direct)" : "");
                if (e > half_err[_i][k]) half_err[_i][k] = e;
                ck_assert_msg(e <= HALF_F32_TOL, "%s: %s: F16-rounded weights: rel err %.3g > %g",
                              dir, out_names[k], e, HALF_F32_TOL);
                ck_assert_msg(e > 0, "%s: %s: no rounding error at all: were the weights rounded?",
                              dir, out_names[k]);
            }
        }
        free_outputs(&a);
        free_outputs(&b);
    }
    vae_free(full);
    vae_free(half);
}
END_TEST

/* The model is immutable: two threads encoding and decoding on one
 * half-weights handle at once (each widening into its own call's buffers)
 * get the serial bits. */
typedef struct run_arg {
    vae_model *m;
    const char *dir;
    outputs r;
} run_arg;

static void *run_thread(void *p)
{
    run_arg *a = p;
    run_all(a->m, a->dir, 0, &a->r);
    return NULL;
}

START_TEST(test_half_weights_concurrent)
{
    const char *dir = fixtures[_i].dir;
    vae_model *half = load(dir, VAE_LOAD_HALF_WEIGHTS);
    outputs ref;
    run_all(half, dir, 0, &ref);
    run_arg args[2] = {{half, dir, {{0}, {0}}}, {half, dir, {{0}, {0}}}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, run_thread, &args[i]), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_same_bits(&args[i].r, &ref, dir, "concurrent calls");
        free_outputs(&args[i].r);
    }
    free_outputs(&ref);
    vae_free(half);
}
END_TEST

/* An F32 tensor with a value beyond the F16 range (which would round to
 * infinity) is kept in fp32, in the form an fp32-held model gives it; the
 * other tensors are still rounded. Two tensors are edited in a copy of
 * micro-ldm-f32: one of a packed (1x1) conv and one of a raw 3x3 conv. */
START_TEST(test_half_weights_out_of_range)
{
    char src[1200], tmpdir[] = "/tmp/sdxlvae-half-XXXXXX", path[1200], cmd[3000];
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(src, sizeof src, "%s/micro-ldm-f32", tu_fixtures_dir());
    snprintf(cmd, sizeof cmd, "cp '%s'/model.safetensors '%s'/config.json '%s'/*.npy '%s/'", src, src,
             src, tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);

    /* the edit: one weight of each tensor becomes 1e5 (F16's largest is 65504) */
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len), *edit = malloc(len);
    ck_assert_uint_eq(fread(buf, 1, len, f), len);
    fclose(f);
    memcpy(edit, buf, len);
    st_file sf;
    vae_error e;
    ck_assert_int_eq(st_open_mem(buf, len, "micro-ldm-f32", &sf, &e), VAE_OK);
    static const char *const names[2] = {"post_quant_conv.weight", "decoder.conv_in.weight"};
    uint64_t extra = 0;
    for (int i = 0; i < 2; i++) {
        const st_tensor *t = st_find(&sf, names[i]);
        ck_assert_msg(t && t->dtype == ST_F32, "%s", names[i]);
        float big = i ? -1e5f : 1e5f;
        memcpy(edit + (t->data - buf) + 4 * (t->count / 2), &big, sizeof big);
        extra += fp32_bytes(t) - half_bytes(t);
    }
    st_close(&sf);
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(edit, 1, len, f), len);
    fclose(f);
    free(buf);
    free(edit);

    vae_model *orig_half = load(src, VAE_LOAD_HALF_WEIGHTS);
    vae_model *full = load(tmpdir, 0), *half = load(tmpdir, VAE_LOAD_HALF_WEIGHTS);
    ck_assert_uint_eq(vae_model_weight_bytes(half), vae_model_weight_bytes(orig_half) + extra);
    outputs a, b;
    run_all(full, tmpdir, 0, &a);
    run_all(half, tmpdir, 0, &b);
    for (int k = 0; k < 3; k++) {
        for (uint64_t j = 0; j < b.n[k]; j++)
            if (!isfinite(b.o[k][j])) ck_abort_msg("%s[%llu] = %g", out_names[k], (unsigned long long)j, b.o[k][j]);
        double err = tu_rel_err(b.o[k], a.o[k], a.n[k]);
        ck_assert_msg(err <= HALF_F32_TOL, "%s: rel err %.3g", out_names[k], err);
    }
    free_outputs(&a);
    free_outputs(&b);
    vae_free(orig_half);
    vae_free(full);
    vae_free(half);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- VAE_LOAD_NO_ENCODER / VAE_LOAD_NO_DECODER -------------------------------- */

START_TEST(test_one_half_only)
{
    const char *dir = fixtures[_i].dir;
    for (int hw = 0; hw < 2; hw++) {
        uint32_t base = hw ? VAE_LOAD_HALF_WEIGHTS : 0;
        vae_model *full = load(dir, base), *dec = load(dir, base | VAE_LOAD_NO_ENCODER),
                  *enc = load(dir, base | VAE_LOAD_NO_DECODER);
        uint64_t bf = vae_model_weight_bytes(full), bd = vae_model_weight_bytes(dec),
                 be = vae_model_weight_bytes(enc);
        /* each half's arrays, and nothing else, are gone */
        ck_assert_uint_lt(bd, bf);
        ck_assert_uint_lt(be, bf);
        ck_assert_uint_eq(bd + be, bf);
        if (!hw)
            printf("  %-52s weights: full %llu, decoder only %llu, encoder only %llu bytes\n", dir,
                   (unsigned long long)bf, (unsigned long long)bd, (unsigned long long)be);

        vae_model_info info;
        info.size = sizeof info;
        ck_assert_int_eq(vae_get_info(dec, &info), VAE_OK);
        ck_assert_int_eq(info.has_encoder, 0);
        ck_assert_int_eq(info.has_decoder, 1);
        ck_assert_int_eq(vae_get_info(enc, &info), VAE_OK);
        ck_assert_int_eq(info.has_encoder, 1);
        ck_assert_int_eq(info.has_decoder, 0);

        /* the missing half is refused, with a message on the handle */
        float x[3 * 8 * 8] = {0}, y[2 * 16 * 8 * 8];
        int32_t rc = vae_encode(dec, x, 1, 8, 8, y, sizeof y / sizeof y[0], NULL);
        ck_assert_int_eq(rc, VAE_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(vae_last_error(dec), "vae_encode") &&
                          strstr(vae_last_error(dec), "no encoder"),
                      "message: '%s'", vae_last_error(dec));
        ck_assert_int_eq(vae_encode_moments(dec, x, 1, 8, 8, y, sizeof y / sizeof y[0], NULL),
                         VAE_ERR_UNSUPPORTED);
        ck_assert_int_eq(vae_decode(enc, y, 1, 1, 1, x, sizeof x / sizeof x[0], NULL),
                         VAE_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(vae_last_error(enc), "no decoder"), "message: '%s'",
                      vae_last_error(enc));

        /* the half that is there gives the full model's bits */
        outputs a, d, c;
        run_all(full, dir, 0, &a);
        run_all(dec, dir, 0, &d);
        run_all(enc, dir, 0, &c);
        ck_assert_ptr_null(d.o[0]);
        ck_assert_ptr_null(c.o[1]);
        assert_same_bits(&d, &a, dir, "decoder only");
        assert_same_bits(&c, &a, dir, "encoder only");
        free_outputs(&a);
        free_outputs(&d);
        free_outputs(&c);
        vae_free(full);
        vae_free(dec);
        vae_free(enc);
    }
}
END_TEST

START_TEST(test_no_encoder_and_no_decoder)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/micro-ldm-f32", tu_fixtures_dir());
    for (int hw = 0; hw < 2; hw++) {
        vae_model *m = (vae_model *)1;
        vae_load_options lo;
        vae_load_options_init(&lo, sizeof lo);
        lo.flags = VAE_LOAD_NO_ENCODER | VAE_LOAD_NO_DECODER | (hw ? VAE_LOAD_HALF_WEIGHTS : 0);
        ck_assert_int_eq(vae_load(dir, &lo, &m), VAE_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(vae_last_error(NULL), "VAE_LOAD_NO_ENCODER"), "message: '%s'",
                      vae_last_error(NULL));
    }
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
        printf("test_load_flags: skipped ../shared/fixtures: ../shared not found "
               "(set SDXLVAE_SHARED); testing the project's own fixtures only\n");
    }
    int n_shared = n_fixtures;
    add_fixtures(tu_fixtures_dir());
    if (n_fixtures == n_shared) {
        fprintf(stderr, "test_load_flags: no fixtures found in %s\n", tu_fixtures_dir());
        return 1;
    }
    Suite *s = suite_create("load_flags");
    TCase *tc = tcase_create("flags");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_half_weights, 0, n_fixtures);
    tcase_add_loop_test(tc, test_half_weights_concurrent, 0, n_fixtures);
    tcase_add_test(tc, test_half_weights_out_of_range);
    tcase_add_loop_test(tc, test_one_half_only, 0, n_fixtures);
    tcase_add_test(tc, test_no_encoder_and_no_decoder);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    /* no fork: the summary below needs the tests' results */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("VAE_LOAD_HALF_WEIGHTS per fixture: weight bytes fp32 -> half, and for F32 files the "
           "worst rel err of the outputs (moments, decoded, zdecoded) against the fp32-held model:\n");
    for (int i = 0; i < n_fixtures; i++) {
        printf("  %-60s %10llu -> %10llu", fixtures[i].dir, (unsigned long long)bytes_full[i],
               (unsigned long long)bytes_half[i]);
        if (fixture_dtype[i] == VAE_DTYPE_F32)
            printf("  %.2e %.2e %.2e\n", half_err[i][0], half_err[i][1], half_err[i][2]);
        else
            printf("  bit-identical\n");
    }
    return failed ? 1 : 0;
}
