/*
 * test_loader.c - what vae_load accepts and how it refuses the rest: every
 * damaged file must give the right status and a message that names the file
 * and the tensor or byte; nothing may crash or leak. The damaged files are
 * made from test/fixtures/micro-ldm-f32 by editing its JSON header.
 */
#include <cJSON.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/safetensors.h"
#include "sdxlvae.h"
#include "testutil.h"

static char tmpdir[256];
static unsigned char *good;     /* the good model file */
static size_t good_len;
static uint64_t good_hlen;

static void read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*len + 1);
    ck_assert_uint_eq(fread(*buf, 1, *len, f), *len);
    fclose(f);
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sdxlvae-loader-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    char path[1024];
    snprintf(path, sizeof path, "%s/micro-ldm-f32/model.safetensors", tu_fixtures_dir());
    read_file(path, &good, &good_len);
    good_hlen = 0;
    for (int i = 7; i >= 0; i--) good_hlen = (good_hlen << 8) | good[i];
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    free(good);
}

/* Writes tmpdir/name with header edited by edit(); returns the path. */
typedef void (*edit_fn)(cJSON *root);
static const char *write_edited_extra(const char *name, edit_fn edit, size_t extra);
static const char *write_edited(const char *name, edit_fn edit)
{
    return write_edited_extra(name, edit, 0);
}
/* ... with extra zero bytes appended to the data section */
static const char *write_edited_extra(const char *name, edit_fn edit, size_t extra)
{
    static char path[1024];
    cJSON *root = cJSON_ParseWithLength((const char *)good + 8, good_hlen);
    ck_assert_ptr_nonnull(root);
    if (edit) edit(root);
    char *json = cJSON_PrintUnformatted(root);
    size_t jl = strlen(json), dl = good_len - 8 - good_hlen;
    unsigned char *buf = calloc(1, 8 + jl + dl + extra);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)jl >> (8 * i));
    memcpy(buf + 8, json, jl);
    memcpy(buf + 8 + jl, good + 8 + good_hlen, dl);
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    write_file(path, buf, 8 + jl + dl + extra);
    free(buf);
    free(json);
    cJSON_Delete(root);
    return path;
}

/* Loads path and expects status want with every needle in the message. */
static void expect_fail(const char *path, int32_t want, const char *n1, const char *n2)
{
    vae_model *m = (vae_model *)1;
    int32_t rc = vae_load(path, NULL, &m);
    const char *msg = vae_last_error(NULL);
    printf("  %-14s %s\n", vae_strerror(rc), msg);
    ck_assert_msg(rc == want, "%s: got %d (%s), want %d; message: %s", path, rc, vae_strerror(rc), want, msg);
    ck_assert_ptr_null(m);
    if (n1) ck_assert_msg(strstr(msg, n1) != NULL, "message '%s' lacks '%s'", msg, n1);
    if (n2) ck_assert_msg(strstr(msg, n2) != NULL, "message '%s' lacks '%s'", msg, n2);
}

START_TEST(test_good_file_loads)
{
    const char *p = write_edited("model.safetensors", NULL);
    vae_model *m = NULL;
    /* no config.json beside it: the architecture comes from the shapes, and
     * the group count (4 in this fixture) from the default 32 - which 8 and
     * 16 channels cannot be split into: a clear error, not a wrong result */
    expect_fail(p, VAE_ERR_MODEL, "not divisible into 32 groups", "without config.json");
    char cfg[1024], src[1024];
    snprintf(src, sizeof src, "%s/micro-ldm-f32/config.json", tu_fixtures_dir());
    snprintf(cfg, sizeof cfg, "%s/config.json", tmpdir);
    unsigned char *c;
    size_t cl;
    read_file(src, &c, &cl);
    write_file(cfg, c, cl);
    free(c);
    ck_assert_int_eq(vae_load(p, NULL, &m), VAE_OK);
    vae_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    ck_assert_int_eq(vae_get_info(m, &info), VAE_OK);
    ck_assert_int_eq(info.levels, 2);
    ck_assert_int_eq(info.block_out_channels[0], 8);
    ck_assert_int_eq(info.block_out_channels[1], 16);
    ck_assert_int_eq(info.layers_per_block, 1);
    ck_assert_int_eq(info.latent_channels, 4);
    ck_assert_int_eq(info.norm_num_groups, 4);
    ck_assert_int_eq(info.downsample_factor, 2);
    ck_assert_int_eq(info.weight_dtype, VAE_DTYPE_F32);
    ck_assert_str_eq(info.naming, "ldm");
    ck_assert_str_eq(info.family, "SDXL");
    ck_assert_float_eq(info.scaling_factor, 0.13025f);
    /* parameter count = elements in the header */
    st_file f;
    vae_error e;
    ck_assert_int_eq(st_open(p, &f, &e), VAE_OK);
    uint64_t count = 0;
    for (size_t i = 0; i < f.n_tensors; i++) count += f.tensors[i].count;
    st_close(&f);
    ck_assert_uint_eq(info.parameter_count, count);
    /* a smaller (older) info struct gets only its own fields */
    vae_model_info small;
    memset(&small, 0xAB, sizeof small);
    small.size = 8;
    ck_assert_int_eq(vae_get_info(m, &small), VAE_OK);
    ck_assert_int_eq(small.latent_channels, 4);
    ck_assert_int_eq(small.levels, (int32_t)0xABABABAB);
    /* explicit config_path */
    vae_free(m);
    vae_load_options lo;
    vae_load_options_init(&lo, sizeof lo);
    lo.config_path = cfg;
    ck_assert_int_eq(vae_load(p, &lo, &m), VAE_OK);
    vae_free(m);
}
END_TEST

START_TEST(test_missing_file)
{
    expect_fail("/nonexistent/dir/sdxl_vae.safetensors", VAE_ERR_IO, "/nonexistent/dir/sdxl_vae.safetensors",
                "No such file");
    expect_fail(tmpdir, VAE_ERR_IO, tmpdir, "diffusion_pytorch_model.safetensors");
}
END_TEST

START_TEST(test_truncated)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/trunc.safetensors", tmpdir);
    /* cut in the data section: the last tensor's end falls outside */
    write_file(path, good, good_len - 100);
    expect_fail(path, VAE_ERR_FORMAT, "out of range", "trunc.safetensors");
    /* cut in the header */
    write_file(path, good, 8 + good_hlen / 2);
    expect_fail(path, VAE_ERR_FORMAT, "header length", NULL);
    write_file(path, good, 5);
    expect_fail(path, VAE_ERR_FORMAT, "too short", NULL);
    write_file(path, good, 0);
    expect_fail(path, VAE_ERR_FORMAT, "too short", NULL);
}
END_TEST

START_TEST(test_bad_json)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/badjson.safetensors", tmpdir);
    unsigned char *b = malloc(good_len);
    memcpy(b, good, good_len);
    b[8 + good_hlen / 2] = '{'; /* breaks the JSON in the middle */
    write_file(path, b, good_len);
    expect_fail(path, VAE_ERR_FORMAT, "malformed JSON", "byte");
    memcpy(b, good, good_len);
    b[8] = '[';
    write_file(path, b, good_len);
    expect_fail(path, VAE_ERR_FORMAT, "not a JSON object", NULL);
    free(b);
}
END_TEST

static cJSON *first_tensor(cJSON *root)
{
    for (cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) return e;
    return NULL;
}

static void edit_offsets(cJSON *root)
{
    cJSON *t = first_tensor(root);
    cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
    cJSON_SetNumberValue(cJSON_GetArrayItem(o, 1), 1e12);
}
static void edit_dtype(cJSON *root)
{
    /* same byte count, a dtype the format knows but weights cannot be */
    cJSON *t = first_tensor(root);
    cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("I32"));
}
static void edit_unknown_dtype(cJSON *root)
{
    cJSON *t = first_tensor(root);
    cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("Q4_K"));
}
static void edit_unused_i64(cJSON *root)
{
    /* full checkpoints carry integer tensors the VAE never reads: one more,
     * in 8 bytes appended to the data section (write_edited_extra) */
    char js[200];
    snprintf(js, sizeof js, "{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[%llu,%llu]}",
             (unsigned long long)(good_len - 8 - good_hlen), (unsigned long long)(good_len - good_hlen));
    cJSON_AddItemToObject(root, "cond_stage_model.position_ids", cJSON_Parse(js));
}
static void edit_hole(cJSON *root)
{
    /* the last 4 bytes of the first tensor belong to nobody */
    cJSON *t = first_tensor(root);
    cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
    cJSON_SetNumberValue(cJSON_GetArrayItem(o, 1), cJSON_GetArrayItem(o, 1)->valuedouble - 4);
    cJSON *s = cJSON_GetObjectItem(t, "shape");
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 0), cJSON_GetArrayItem(s, 0)->valuedouble - 1);
}
static void edit_size_mismatch(cJSON *root)
{
    cJSON *t = first_tensor(root);
    cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
    cJSON_SetNumberValue(cJSON_GetArrayItem(o, 1), cJSON_GetArrayItem(o, 1)->valuedouble - 4);
}
static void edit_negative_shape(cJSON *root)
{
    cJSON *t = first_tensor(root);
    cJSON_SetNumberValue(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "shape"), 0), -3);
}
static void edit_overflow_shape(cJSON *root)
{
    cJSON *t = first_tensor(root);
    cJSON *s = cJSON_GetObjectItem(t, "shape");
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 0), 4294967296.0);
    cJSON_AddItemToArray(s, cJSON_CreateNumber(4294967296.0));
    cJSON_AddItemToArray(s, cJSON_CreateNumber(4294967296.0));
}
static void edit_missing(cJSON *root)
{
    /* renamed, so its bytes still belong to a tensor */
    cJSON *t = cJSON_DetachItemFromObject(root, "decoder.mid.attn_1.q.weight");
    cJSON_AddItemToObject(root, "unused.q.weight", t);
}
static void edit_shape(cJSON *root)
{
    /* same byte count, other shape: [16,16,1,1] -> [16,1,16,1] */
    cJSON *t = cJSON_GetObjectItem(root, "decoder.mid.attn_1.q.weight");
    cJSON *s = cJSON_GetObjectItem(t, "shape");
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 1), 1);
    cJSON_SetNumberValue(cJSON_GetArrayItem(s, 2), 16);
}
static void edit_overlap(cJSON *root)
{
    /* point the second tensor at the first one's bytes */
    cJSON *a = first_tensor(root), *b = a->next;
    while (b && cJSON_GetArrayItem(cJSON_GetObjectItem(b, "data_offsets"), 1)->valuedouble -
                        cJSON_GetArrayItem(cJSON_GetObjectItem(b, "data_offsets"), 0)->valuedouble !=
                    cJSON_GetArrayItem(cJSON_GetObjectItem(a, "data_offsets"), 1)->valuedouble -
                        cJSON_GetArrayItem(cJSON_GetObjectItem(a, "data_offsets"), 0)->valuedouble)
        b = b->next;
    ck_assert_ptr_nonnull(b);
    cJSON_ReplaceItemInObject(b, "data_offsets", cJSON_Duplicate(cJSON_GetObjectItem(a, "data_offsets"), 1));
}
static void edit_no_vae(cJSON *root)
{
    cJSON_AddItemToObject(root, "x.weight", cJSON_DetachItemFromObject(root, "encoder.conv_in.weight"));
    cJSON_AddItemToObject(root, "y.weight", cJSON_DetachItemFromObject(root, "decoder.conv_in.weight"));
}
static void edit_dup_prefix(cJSON *root)
{
    /* a UNet-like tensor (empty, so it overlaps nothing) must be ignored */
    cJSON *t = cJSON_Parse("{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}");
    cJSON_AddItemToObject(root, "model.diffusion_model.out.2.bias", t);
}

START_TEST(test_header_damage)
{
    char cfg[1024], src[1024];
    unsigned char *c;
    size_t cl;
    snprintf(src, sizeof src, "%s/micro-ldm-f32/config.json", tu_fixtures_dir());
    snprintf(cfg, sizeof cfg, "%s/config.json", tmpdir);
    read_file(src, &c, &cl);
    write_file(cfg, c, cl);
    free(c);
    char first[256];
    cJSON *root = cJSON_ParseWithLength((const char *)good + 8, good_hlen);
    snprintf(first, sizeof first, "'%s'", first_tensor(root)->string);
    cJSON_Delete(root);

    expect_fail(write_edited("a.safetensors", edit_offsets), VAE_ERR_FORMAT, first, "out of range");
    expect_fail(write_edited("b.safetensors", edit_dtype), VAE_ERR_UNSUPPORTED, first, "is I32");
    expect_fail(write_edited("b2.safetensors", edit_unknown_dtype), VAE_ERR_FORMAT, first,
                "unknown dtype \"Q4_K\"");
    expect_fail(write_edited("b3.safetensors", edit_hole), VAE_ERR_FORMAT, "holes", NULL);
    expect_fail(write_edited("c.safetensors", edit_size_mismatch), VAE_ERR_FORMAT, first, "need");
    expect_fail(write_edited("d.safetensors", edit_negative_shape), VAE_ERR_FORMAT, first, "shape");
    expect_fail(write_edited("e.safetensors", edit_overflow_shape), VAE_ERR_FORMAT, first, "overflows");
    expect_fail(write_edited("f.safetensors", edit_missing), VAE_ERR_MODEL,
                "'decoder.mid.attn_1.q.weight'", "missing");
    expect_fail(write_edited("g.safetensors", edit_shape), VAE_ERR_MODEL,
                "'decoder.mid.attn_1.q.weight' has shape [16, 1, 16, 1]", "expected [16, 16, 1, 1]");
    expect_fail(write_edited("h.safetensors", edit_overlap), VAE_ERR_FORMAT, "overlap", NULL);
    expect_fail(write_edited("i.safetensors", edit_no_vae), VAE_ERR_MODEL, "no VAE found", NULL);
    vae_model *m = NULL;
    ck_assert_int_eq(vae_load(write_edited("j.safetensors", edit_dup_prefix), NULL, &m), VAE_OK);
    vae_free(m);
    /* an unused I64 tensor does not matter */
    ck_assert_msg(vae_load(write_edited_extra("k.safetensors", edit_unused_i64, 8), NULL, &m) == VAE_OK,
                  "%s", vae_last_error(NULL));
    vae_free(m);
    /* trailing bytes no tensor owns are refused */
    expect_fail(write_edited_extra("l.safetensors", NULL, 8), VAE_ERR_FORMAT, "trailing", NULL);
}
END_TEST

START_TEST(test_bad_config)
{
    const char *p = write_edited("model.safetensors", NULL);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/config.json", tmpdir);
    static const struct { const char *json; int32_t rc; const char *needle; } cases[] = {
        {"{\"block_out_channels\": [8, 16], \"norm_num_groups\": 4,", VAE_ERR_FORMAT, "malformed JSON"},
        {"[1, 2]", VAE_ERR_FORMAT, "not a JSON object"},
        {"{\"block_out_channels\": [8, 32], \"norm_num_groups\": 4}", VAE_ERR_MODEL, "block_out_channels[1] = 32"},
        {"{\"block_out_channels\": [8, 16, 16], \"norm_num_groups\": 4}", VAE_ERR_MODEL, "3 block_out_channels"},
        {"{\"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"latent_channels\": 16}", VAE_ERR_MODEL, "latent_channels = 16"},
        {"{\"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"layers_per_block\": 2}", VAE_ERR_MODEL, "layers_per_block = 2"},
        {"{\"block_out_channels\": [8, 16], \"norm_num_groups\": \"four\"}", VAE_ERR_FORMAT, "norm_num_groups"},
        {"{\"block_out_channels\": [8, 16], \"norm_num_groups\": 3}", VAE_ERR_MODEL, "3 groups"},
        {"{\"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"use_quant_conv\": false}", VAE_ERR_MODEL, "use_quant_conv"},
        {"{\"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"scaling_factor\": 0}", VAE_ERR_FORMAT, "scaling_factor"},
        {"{\"block_out_channels\": [], \"norm_num_groups\": 4}", VAE_ERR_FORMAT, "block_out_channels"},
        {"{\"norm_num_groups\": 4, \"in_channels\": 4}", VAE_ERR_UNSUPPORTED, "only RGB"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(cfg, cases[i].json, strlen(cases[i].json));
        expect_fail(p, cases[i].rc, cases[i].needle, NULL);
    }
    /* without block_out_channels the levels come from the weights */
    vae_model *m = NULL;
    const char *noboc = "{\"norm_num_groups\": 4, \"scaling_factor\": 0.5}";
    write_file(cfg, noboc, strlen(noboc));
    ck_assert_msg(vae_load(p, NULL, &m) == VAE_OK, "%s", vae_last_error(NULL));
    ck_assert_float_eq(vae_scaling_factor(m), 0.5f);
    vae_free(m);
    /* a config.json of another class beside the weights is not ours: the
     * architecture comes from the shapes (and the default 32 groups fail
     * for these 8-channel levels, with that said) ... */
    const char *unet = "{\"_class_name\": \"UNet2DConditionModel\", \"norm_num_groups\": 32}";
    write_file(cfg, unet, strlen(unet));
    expect_fail(p, VAE_ERR_MODEL, "without config.json", NULL);
    /* ... but one named by the caller must be a VAE's */
    vae_load_options lo;
    vae_load_options_init(&lo, sizeof lo);
    lo.config_path = cfg;
    m = (vae_model *)1;
    ck_assert_int_eq(vae_load(p, &lo, &m), VAE_ERR_UNSUPPORTED);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(vae_last_error(NULL), "UNet2DConditionModel"));
}
END_TEST

/* The diffusers folder layouts: DIR/{config.json, diffusion_pytorch_model.safetensors}
 * and DIR/vae/ of a full pipeline. */
START_TEST(test_folder_layouts)
{
    char d[1024], p[1200], src[1024];
    unsigned char *c;
    size_t cl;
    snprintf(src, sizeof src, "%s/micro-ldm-f32/config.json", tu_fixtures_dir());
    read_file(src, &c, &cl);
    snprintf(d, sizeof d, "%s/pipe/vae", tmpdir);
    snprintf(p, sizeof p, "%s/pipe", tmpdir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_int_eq(mkdir(d, 0700), 0);
    snprintf(p, sizeof p, "%s/config.json", d);
    write_file(p, c, cl);
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", d);
    write_file(p, good, good_len);
    free(c);
    vae_model *m = NULL;
    snprintf(p, sizeof p, "%s/pipe", tmpdir);
    ck_assert_msg(vae_load(p, NULL, &m) == VAE_OK, "%s", vae_last_error(NULL));
    vae_free(m);
    ck_assert_msg(vae_load(d, NULL, &m) == VAE_OK, "%s", vae_last_error(NULL));
    vae_free(m);
}
END_TEST

/* st_open_mem on every prefix of a valid file never crashes, and only the
 * whole file is accepted. */
START_TEST(test_every_truncation)
{
    for (size_t len = 0; len < good_len; len += (len < 8 + good_hlen + 64 ? 1 : 997)) {
        st_file f;
        vae_error e;
        int32_t rc = st_open_mem(good, len, "x", &f, &e);
        ck_assert_msg(rc != VAE_OK, "a %zu-byte prefix was accepted", len);
        st_close(&f);
    }
    st_file f;
    vae_error e;
    ck_assert_int_eq(st_open_mem(good, good_len, "x", &f, &e), VAE_OK);
    ck_assert_ptr_nonnull(st_find(&f, "decoder.conv_in.weight"));
    ck_assert_ptr_null(st_find(&f, "decoder.conv_in.weigh"));
    st_close(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_good_file_loads);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_bad_json);
    tcase_add_test(tc, test_header_damage);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_folder_layouts);
    tcase_add_test(tc, test_every_truncation);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
