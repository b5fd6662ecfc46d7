/* test_imageio.c - the .npy and PNG readers/writers of examples/common.
 *
 * The expected PngSuite and photo values below (sizes, FNV-1a hashes of the
 * decoded RGB16 samples, spot pixels) were computed by a separate decoder
 * written in Python on plain zlib, not by the code under test. */
#include <check.h>
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/npy.h"
#include "common/png.h"
#include "testutil.h"

/* ---- small helpers -------------------------------------------------------- */

typedef struct buf_t {
    uint8_t *p;
    size_t n, cap;
} buf_t;

static void buf_put(buf_t *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->n + n) ncap *= 2;
        b->p = realloc(b->p, ncap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = ncap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void buf_be32(buf_t *b, uint32_t v)
{
    uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_put(b, q, 4);
}

static void buf_free(buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static uint64_t fnv1a_rgb(const png_rgb *im)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t n = (size_t)im->width * im->height * 3;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (im->pixels[i] & 0xffu)) * 0x100000001b3ull;
        h = (h ^ (uint8_t)(im->pixels[i] >> 8)) * 0x100000001b3ull;
    }
    return h;
}

/* Every sample of a decoded image is within maxval. */
static int samples_in_range(const png_rgb *im)
{
    size_t n = (size_t)im->width * im->height * 3;
    for (size_t i = 0; i < n; i++)
        if (im->pixels[i] > im->maxval) return 0;
    return 1;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    buf_t b = {0};
    uint8_t tmp[4096];
    size_t n;
    if (!f) return NULL;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) buf_put(&b, tmp, n);
    fclose(f);
    *len = b.n;
    return b.p;
}

static void spit(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* A private temp directory per test (Check forks each test). */
static char tmpdir[256];

static void make_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_imageio.XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_file(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

static const char *shared_or_skip(const char *what)
{
    const char *s = tu_shared_dir();
    if (!s) {
        printf("%s: skipped: ../shared not found\n", what);
        fflush(stdout);
    }
    return s;
}

/* ---- npy ------------------------------------------------------------------ */

/* A .npy with the given header dict, padded as numpy pads it. */
static void npy_build(buf_t *b, int major, const char *dict, const void *data, size_t dlen)
{
    size_t pre = major == 1 ? 10 : 12, hlen = strlen(dict) + 1;
    uint8_t head[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (uint8_t)major, 0};
    hlen += (64 - (pre + hlen) % 64) % 64;
    if (major == 1) {
        head[8] = (uint8_t)hlen;
        head[9] = (uint8_t)(hlen >> 8);
    } else {
        head[8] = (uint8_t)hlen;
        head[9] = (uint8_t)(hlen >> 8);
        head[10] = head[11] = 0;
    }
    b->n = 0;
    buf_put(b, head, pre);
    buf_put(b, dict, strlen(dict));
    for (size_t i = strlen(dict) + 1; i < hlen; i++) buf_put(b, " ", 1);
    buf_put(b, "\n", 1);
    buf_put(b, data, dlen);
}

START_TEST(npy_roundtrip)
{
    static const struct {
        int32_t ndim;
        int64_t shape[4];
        const char *text; /* the shape as numpy writes it */
    } cases[] = {
        {1, {5}, "(5,)"},          {1, {1}, "(1,)"},       {2, {3, 4}, "(3, 4)"},
        {4, {1, 3, 5, 7}, "(1, 3, 5, 7)"}, {4, {2, 1, 1, 3}, "(2, 1, 1, 3)"},
        {0, {0}, "()"},            {3, {2, 0, 3}, "(2, 0, 3)"},
    };
    char path[512], err[256];
    make_tmpdir();
    tmp_file(path, sizeof path, "a.npy");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint64_t count = 1;
        float *data;
        npy_array a, m;
        uint8_t *file;
        size_t flen, hlen;
        uint32_t seed = (uint32_t)c + 1;
        for (int32_t i = 0; i < cases[c].ndim; i++) count *= (uint64_t)cases[c].shape[i];
        data = malloc((count ? count : 1) * sizeof *data);
        for (uint64_t i = 0; i < count; i++)
            data[i] = ((float)(lcg(&seed) % 20001) - 10000.0f) / 37.0f;
        if (count > 2) {
            data[0] = -0.0f;
            data[1] = 1e-40f; /* subnormal */
            data[2] = INFINITY;
        }
        ck_assert_int_eq(npy_write(path, data, cases[c].ndim, cases[c].shape, err,
                                   sizeof err), 0);
        file = slurp(path, &flen);
        ck_assert_ptr_nonnull(file);
        /* Format 1.0, prefix padded to 64 bytes ending in '\n'. */
        ck_assert_int_eq(file[6], 1);
        ck_assert_int_eq(file[7], 0);
        hlen = file[8] | (size_t)file[9] << 8;
        ck_assert_uint_eq((10 + hlen) % 64, 0);
        ck_assert_int_eq(file[10 + hlen - 1], '\n');
        ck_assert_uint_eq(flen, 10 + hlen + count * 4);
        {
            char want[128];
            snprintf(want, sizeof want,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                     cases[c].text);
            ck_assert_int_eq(memcmp(file + 10, want, strlen(want)), 0);
        }
        ck_assert_int_eq(npy_read(path, &a, err, sizeof err), 0);
        ck_assert_int_eq(npy_read_mem(file, flen, &m, err, sizeof err), 0);
        ck_assert_int_eq(a.ndim, cases[c].ndim);
        ck_assert_uint_eq(a.count, count);
        ck_assert_uint_eq(m.count, count);
        ck_assert_ptr_nonnull(a.data);
        for (int32_t i = 0; i < a.ndim; i++) ck_assert_int_eq(a.shape[i], cases[c].shape[i]);
        if (count) {
            ck_assert_int_eq(memcmp(a.data, data, count * 4), 0);
            ck_assert_int_eq(memcmp(m.data, data, count * 4), 0);
        }
        npy_free(&a);
        npy_free(&m);
        npy_free(&m); /* twice is harmless */
        ck_assert_ptr_null(m.data);
        free(file);
        free(data);
    }
    remove_tmpdir();
}
END_TEST

START_TEST(npy_dtypes)
{
    /* <f2 covers zero, normal, subnormal, max, inf and a rounding value. */
    static const uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400,
                                 0x7c00, 0x8000, 0x3555, 0xfc00};
    static const float hf[] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x3ffp-24f, 0x1p-14f,
                               INFINITY, -0.0f, 0.333251953125f, -INFINITY};
    static const double d[] = {1.5, -1e300, 1e-50, 3.141592653589793, -0.0, 1e300};
    uint8_t bytes[64];
    buf_t b = {0};
    npy_array a;
    char err[256];

    for (size_t i = 0; i < 10; i++) {
        bytes[2 * i] = (uint8_t)h[i];
        bytes[2 * i + 1] = (uint8_t)(h[i] >> 8);
    }
    npy_build(&b, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 5), }", bytes, 20);
    ck_assert_msg(npy_read_mem(b.p, b.n, &a, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(a.count, 10);
    for (size_t i = 0; i < 10; i++)
        ck_assert_msg(memcmp(&a.data[i], &hf[i], 4) == 0, "f2 element %zu: %a", i,
                      (double)a.data[i]);
    npy_free(&a);
    {
        float nan;
        bytes[0] = 0x01;
        bytes[1] = 0x7e; /* NaN stays NaN */
        npy_build(&b, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (), }", bytes, 2);
        ck_assert_int_eq(npy_read_mem(b.p, b.n, &a, err, sizeof err), 0);
        nan = a.data[0];
        ck_assert(nan != nan);
        ck_assert_int_eq(a.ndim, 0);
        ck_assert_uint_eq(a.count, 1);
        npy_free(&a);
    }

    for (size_t i = 0; i < 6; i++) {
        uint64_t u;
        memcpy(&u, &d[i], 8);
        for (int k = 0; k < 8; k++) bytes[8 * i + (size_t)k] = (uint8_t)(u >> (8 * k));
    }
    /* Format 2.0, double quotes, another key order, Python 2 longs. */
    npy_build(&b, 2, "{\"shape\": (6L,), \"fortran_order\": False, \"descr\": \"<f8\"}",
              bytes, 48);
    ck_assert_msg(npy_read_mem(b.p, b.n, &a, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(a.ndim, 1);
    ck_assert_int_eq(a.shape[0], 6);
    ck_assert(a.data[0] == 1.5f);
    ck_assert(a.data[1] == -INFINITY);
    ck_assert(a.data[2] == 0.0f);
    ck_assert(a.data[3] == (float)3.141592653589793);
    ck_assert(a.data[4] == 0.0f && signbit(a.data[4]));
    ck_assert(a.data[5] == INFINITY);
    npy_free(&a);

    /* Format 3.0 (utf-8 header) reads the same. */
    {
        float f[3] = {1, 2, 3};
        npy_build(&b, 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", f, 12);
        ck_assert_msg(npy_read_mem(b.p, b.n, &a, err, sizeof err) == 0, "%s", err);
        ck_assert(a.data[2] == 3.0f);
        npy_free(&a);
    }
    buf_free(&b);
}
END_TEST

START_TEST(npy_malformed)
{
    static const struct {
        const char *dict;
        size_t dlen;
        const char *why; /* a word the message must contain */
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, "fortran"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "big-endian"},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype"},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8, "dtype"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "descr"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8, "need"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 8, "need"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 0, "need"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }",
         8, "overflow"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 3), }", 8,
         "overflow"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8,
         "overflow"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
         4, "dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 8, "negative"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", 8, "tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", 8, "tuple"},
        {"{'descr': '<f4', 'fortran_order': False, }", 8, "missing"},
        {"{'descr': '<f4', 'shape': (2,), }", 8, "missing"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8,
         "duplicate"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unexpected"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", 8, "after"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", 8, "fortran_order"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", 8, "npy header"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }", 8, "npy header"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,,), }", 8, "integer"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2x,), }", 8, "integer"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8, "npy header"},
        {"", 8, "npy header"},
        {"'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8, "npy header"},
        {"{'descr' '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "expected ':'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", 8, "in 'shape'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,", 8, "unterminated"},
        {"{'descr': '<f4", 8, "string"},
        {"{'descr': '<f4\\n', 'fortran_order': False, 'shape': (2,), }", 8, "escapes"},
        {"{descr: '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "quoted string"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'abcdefghijklmnopqrstuvwxyz"
         "abcdefghijklmnopqrstuvwxyz': 1}", 8, "npy header"},
    };
    static const uint8_t zeros[64];
    buf_t b = {0};
    npy_array a;
    char err[256], path[512];
    make_tmpdir();
    tmp_file(path, sizeof path, "bad.npy");

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        npy_build(&b, 1, cases[c].dict, zeros, cases[c].dlen);
        err[0] = '\0';
        ck_assert_msg(npy_read_mem(b.p, b.n, &a, err, sizeof err) == -1, "case %zu accepted",
                      c);
        ck_assert_ptr_null(a.data);
        ck_assert_msg(strstr(err, cases[c].why) != NULL, "case %zu: '%s' lacks '%s'", c, err,
                      cases[c].why);
        ck_assert_ptr_null(strchr(err, '\n'));
        /* The file path reads in another way: it must agree. */
        spit(path, b.p, b.n);
        ck_assert_int_eq(npy_read(path, &a, err, sizeof err), -1);
        ck_assert_ptr_nonnull(strstr(err, path));
        ck_assert_ptr_null(a.data);
    }

    /* Every truncation of a valid file, and one byte too many. */
    {
        float f[6] = {1, 2, 3, 4, 5, 6};
        npy_build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f,
                  24);
        for (size_t n = 0; n < b.n; n++) {
            ck_assert_int_eq(npy_read_mem(b.p, n, &a, err, sizeof err), -1);
            spit(path, b.p, n);
            ck_assert_int_eq(npy_read(path, &a, err, sizeof err), -1);
        }
        buf_put(&b, "", 1);
        ck_assert_int_eq(npy_read_mem(b.p, b.n, &a, err, sizeof err), -1);
        spit(path, b.p, b.n);
        ck_assert_int_eq(npy_read(path, &a, err, sizeof err), -1);
        ck_assert_ptr_nonnull(strstr(err, "longer"));
        b.n--;
        spit(path, b.p, b.n);
        ck_assert_int_eq(npy_read(path, &a, err, sizeof err), 0);
        npy_free(&a);

        /* Bad magic, versions, a header length past the end. */
        b.p[0] = 0x92;
        ck_assert_int_eq(npy_read_mem(b.p, b.n, &a, err, sizeof err), -1);
        ck_assert_ptr_nonnull(strstr(err, "magic"));
        b.p[0] = 0x93;
        b.p[6] = 4;
        ck_assert_int_eq(npy_read_mem(b.p, b.n, &a, err, sizeof err), -1);
        ck_assert_ptr_nonnull(strstr(err, "version"));
        b.p[6] = 1;
        b.p[7] = 1;
        ck_assert_int_eq(npy_read_mem(b.p, b.n, &a, err, sizeof err), -1);
        b.p[7] = 0;
        b.p[9] = 1; /* header length + 256: beyond the file */
        ck_assert_int_eq(npy_read_mem(b.p, b.n, &a, err, sizeof err), -1);
        ck_assert_ptr_nonnull(strstr(err, "header"));
        spit(path, b.p, b.n);
        ck_assert_int_eq(npy_read(path, &a, err, sizeof err), -1);
        b.p[9] = 0;
        b.p[8] = 0; /* header length 0 */
        ck_assert_int_eq(npy_read_mem(b.p, b.n, &a, err, sizeof err), -1);
        spit(path, b.p, b.n);
        ck_assert_int_eq(npy_read(path, &a, err, sizeof err), -1);
        /* Format 2.0: every truncation, then a header length of 4 GiB. */
        npy_build(&b, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f,
                  24);
        for (size_t n = 0; n < b.n; n++)
            ck_assert_int_eq(npy_read_mem(b.p, n, &a, err, sizeof err), -1);
        b.p[11] = 0xff;
        ck_assert_int_eq(npy_read_mem(b.p, b.n, &a, err, sizeof err), -1);
        spit(path, b.p, b.n);
        ck_assert_int_eq(npy_read(path, &a, err, sizeof err), -1);
    }
    ck_assert_int_eq(npy_read_mem(NULL, 0, &a, err, sizeof err), -1);
    tmp_file(path, sizeof path, "missing.npy");
    ck_assert_int_eq(npy_read(path, &a, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "missing.npy"));
    /* A NULL or zero-sized err buffer is fine. */
    ck_assert_int_eq(npy_read(path, &a, NULL, 0), -1);
    buf_free(&b);
    remove_tmpdir();
}
END_TEST

START_TEST(npy_write_errors)
{
    float f[2] = {1, 2};
    int64_t shape9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 2}, neg[1] = {-2}, big[3] = {INT64_MAX, 2, 2};
    char err[256], path[512];
    make_tmpdir();
    tmp_file(path, sizeof path, "w.npy");
    ck_assert_int_eq(npy_write(path, f, 9, shape9, err, sizeof err), -1);
    ck_assert_int_eq(npy_write(path, f, 1, neg, err, sizeof err), -1);
    ck_assert_int_eq(npy_write(path, f, 3, big, err, sizeof err), -1);
    ck_assert_int_eq(npy_write(path, NULL, 1, shape9 + 8, err, sizeof err), -1);
    ck_assert_int_ne(access(path, F_OK), 0);
    tmp_file(path, sizeof path, "no/such/dir/w.npy");
    ck_assert_int_eq(npy_write(path, f, 1, shape9 + 8, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no/such/dir"));
    if (access("/dev/full", W_OK) == 0) {
        /* Always full: the write must fail, and /dev/full must stay. */
        ck_assert_int_eq(npy_write("/dev/full", f, 1, shape9 + 8, err, sizeof err), -1);
        ck_assert_int_eq(access("/dev/full", F_OK), 0);
    }
    remove_tmpdir();
}
END_TEST

/* ---- PNG: building test files -------------------------------------------- */

static void png_chunk(buf_t *b, const char *type, const void *data, uint32_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    buf_be32(b, len);
    buf_put(b, type, 4);
    buf_put(b, data, len);
    crc = crc32(crc, (const Bytef *)type, 4);
    if (len) crc = crc32(crc, data, len);
    buf_be32(b, (uint32_t)crc);
}

static void png_sig(buf_t *b)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    b->n = 0;
    buf_put(b, sig, 8);
}

static void png_ihdr(buf_t *b, uint32_t w, uint32_t h, int depth, int ct, int il)
{
    uint8_t d[13];
    buf_t t = {0};
    buf_be32(&t, w);
    buf_be32(&t, h);
    memcpy(d, t.p, 8);
    d[8] = (uint8_t)depth;
    d[9] = (uint8_t)ct;
    d[10] = d[11] = 0;
    d[12] = (uint8_t)il;
    png_chunk(b, "IHDR", d, 13);
    buf_free(&t);
}

/* zlib-compresses raw into IDAT chunks of at most split bytes (0: one). */
static void png_idat(buf_t *b, const uint8_t *raw, size_t rawlen, size_t split)
{
    uLongf zlen = compressBound((uLong)rawlen);
    uint8_t *z = malloc(zlen);
    ck_assert_int_eq(compress2(z, &zlen, raw, (uLong)rawlen, 6), Z_OK);
    if (!split) split = zlen;
    for (size_t o = 0; o < zlen; o += split)
        png_chunk(b, "IDAT", z + o, (uint32_t)(zlen - o < split ? zlen - o : split));
    free(z);
}

/* An image described by its samples, encoded independently of png.c:
 * pack, Adam7-split and filter (random filter per row). */
typedef struct spec {
    uint32_t w, h;
    int ct, depth, il;
    uint16_t *s;          /* w*h*channels samples */
    uint8_t plte[768];
    int nplte;
} spec;

static int channels_of(int ct)
{
    return ct == 0 || ct == 3 ? 1 : ct == 2 ? 3 : ct == 4 ? 2 : 4;
}

static int pred(int ft, int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    switch (ft) {
    case 1: return a;
    case 2: return b;
    case 3: return (a + b) / 2;
    case 4: return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    default: return 0;
    }
}

static void encode_raw(const spec *sp, uint32_t *seed, buf_t *out)
{
    static const int p7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                 {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
    static const int p1[1][4] = {{0, 0, 1, 1}};
    const int(*ps)[4] = sp->il ? p7 : p1;
    int np = sp->il ? 7 : 1, ch = channels_of(sp->ct);
    int bpp = (ch * sp->depth + 7) / 8;
    out->n = 0;
    for (int p = 0; p < np; p++) {
        uint32_t pw = 0, ph = 0;
        size_t rb;
        uint8_t *prev, *cur, *f;
        for (uint32_t x = (uint32_t)ps[p][0]; x < sp->w; x += (uint32_t)ps[p][2]) pw++;
        for (uint32_t y = (uint32_t)ps[p][1]; y < sp->h; y += (uint32_t)ps[p][3]) ph++;
        if (!pw || !ph) continue;
        rb = ((size_t)pw * (size_t)ch * (size_t)sp->depth + 7) / 8;
        prev = calloc(rb, 1);
        cur = calloc(rb, 1);
        f = calloc(rb + 1, 1);
        for (uint32_t r = 0; r < ph; r++) {
            uint32_t y = (uint32_t)ps[p][1] + r * (uint32_t)ps[p][3];
            memset(cur, 0, rb);
            for (uint32_t c = 0; c < pw; c++) {
                uint32_t x = (uint32_t)ps[p][0] + c * (uint32_t)ps[p][2];
                for (int k = 0; k < ch; k++) {
                    unsigned v = sp->s[((size_t)y * sp->w + x) * (size_t)ch + (size_t)k];
                    size_t i = (size_t)c * (size_t)ch + (size_t)k;
                    if (sp->depth == 16) {
                        cur[2 * i] = (uint8_t)(v >> 8);
                        cur[2 * i + 1] = (uint8_t)v;
                    } else if (sp->depth == 8) {
                        cur[i] = (uint8_t)v;
                    } else {
                        size_t bit = i * (size_t)sp->depth;
                        cur[bit / 8] |= (uint8_t)(v << (8 - sp->depth - (int)(bit % 8)));
                    }
                }
            }
            f[0] = (uint8_t)(lcg(seed) % 5);
            for (size_t i = 0; i < rb; i++) {
                int a = i >= (size_t)bpp ? cur[i - (size_t)bpp] : 0;
                int c = i >= (size_t)bpp ? prev[i - (size_t)bpp] : 0;
                f[i + 1] = (uint8_t)(cur[i] - pred(f[0], a, prev[i], c));
            }
            buf_put(out, f, rb + 1);
            memcpy(prev, cur, rb);
        }
        free(prev);
        free(cur);
        free(f);
    }
}

static void spec_random(spec *sp, uint32_t w, uint32_t h, int ct, int depth, int il,
                        uint32_t *seed)
{
    int ch = channels_of(ct);
    size_t n = (size_t)w * h * (size_t)ch;
    memset(sp, 0, sizeof *sp);
    sp->w = w;
    sp->h = h;
    sp->ct = ct;
    sp->depth = depth;
    sp->il = il;
    sp->s = malloc(n * sizeof *sp->s);
    if (ct == 3) {
        sp->nplte = (int)(lcg(seed) % (1u << depth)) + 1;
        for (int i = 0; i < 3 * sp->nplte; i++) sp->plte[i] = (uint8_t)lcg(seed);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t v = lcg(seed) & ((1u << depth) - 1);
        sp->s[i] = (uint16_t)(ct == 3 ? v % (uint32_t)sp->nplte : v);
    }
}

static void spec_png(const spec *sp, uint32_t *seed, size_t split, buf_t *png)
{
    buf_t raw = {0};
    encode_raw(sp, seed, &raw);
    png_sig(png);
    png_ihdr(png, sp->w, sp->h, sp->depth, sp->ct, sp->il);
    if (sp->ct == 3) png_chunk(png, "PLTE", sp->plte, (uint32_t)(3 * sp->nplte));
    png_idat(png, raw.p, raw.n, split);
    png_chunk(png, "IEND", NULL, 0);
    buf_free(&raw);
}

/* What the decoder must produce for a spec. */
static int spec_matches(const spec *sp, const png_rgb *im)
{
    int ch = channels_of(sp->ct);
    uint32_t maxval = sp->ct == 3 ? 255u : (1u << sp->depth) - 1;
    if (im->width != sp->w || im->height != sp->h || im->maxval != maxval) return 0;
    for (size_t i = 0; i < (size_t)sp->w * sp->h; i++) {
        const uint16_t *s = sp->s + i * (size_t)ch, *o = im->pixels + 3 * i;
        uint16_t r, g, b;
        if (sp->ct == 3) {
            r = sp->plte[3 * s[0]];
            g = sp->plte[3 * s[0] + 1];
            b = sp->plte[3 * s[0] + 2];
        } else if (ch <= 2) {
            r = g = b = s[0];
        } else {
            r = s[0];
            g = s[1];
            b = s[2];
        }
        if (o[0] != r || o[1] != g || o[2] != b) return 0;
    }
    return 1;
}

static const int combos[][2] = {{0, 1}, {0, 2}, {0, 4}, {0, 8}, {0, 16}, {2, 8},
                                {2, 16}, {3, 1}, {3, 2}, {3, 4}, {3, 8}, {4, 8},
                                {4, 16}, {6, 8}, {6, 16}};
#define NCOMBOS (sizeof combos / sizeof combos[0])

/* ---- PNG tests ------------------------------------------------------------ */

START_TEST(png_roundtrip)
{
    static const uint32_t sizes[][2] = {{1, 1}, {7, 5}, {33, 17}, {64, 1}, {1, 64}, {300, 200}};
    char path[512], err[256];
    make_tmpdir();
    tmp_file(path, sizeof path, "rt.png");
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        uint32_t w = sizes[c][0], h = sizes[c][1], seed = (uint32_t)c;
        size_t n = (size_t)w * h * 3;
        uint8_t *rgb = malloc(n);
        png_rgb im;
        /* Left half noise, right half smooth: every filter gets chosen. */
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++)
                for (int k = 0; k < 3; k++)
                    rgb[((size_t)y * w + x) * 3 + (size_t)k] =
                        x < w / 2 ? (uint8_t)lcg(&seed) : (uint8_t)(x * 3 + y * 5 + (uint32_t)k * 40);
        ck_assert_msg(png_write_rgb8(path, rgb, w, h, err, sizeof err) == 0, "%s", err);
        ck_assert_msg(png_read_rgb(path, &im, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(im.width, w);
        ck_assert_uint_eq(im.height, h);
        ck_assert_uint_eq(im.maxval, 255);
        for (size_t i = 0; i < n; i++) ck_assert_uint_eq(im.pixels[i], rgb[i]);
        png_free(&im);
        png_free(&im);
        ck_assert_ptr_null(im.pixels);
        free(rgb);
    }
    remove_tmpdir();
}
END_TEST

START_TEST(png_write_errors)
{
    uint8_t rgb[12] = {0};
    char path[512], err[256];
    make_tmpdir();
    tmp_file(path, sizeof path, "no/such/dir/x.png");
    ck_assert_int_eq(png_write_rgb8(path, rgb, 2, 2, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no/such/dir"));
    tmp_file(path, sizeof path, "x.png");
    ck_assert_int_eq(png_write_rgb8(path, rgb, 0, 2, err, sizeof err), -1);
    ck_assert_int_eq(png_write_rgb8(path, NULL, 2, 2, err, sizeof err), -1);
    ck_assert_int_eq(png_write_rgb8(path, rgb, 1u << 16, 1u << 15, err, sizeof err), -1);
    ck_assert_int_ne(access(path, F_OK), 0);
    if (access("/dev/full", W_OK) == 0) {
        /* A device that is always full: the write must fail, not succeed. */
        ck_assert_int_eq(png_write_rgb8("/dev/full", rgb, 2, 2, err, sizeof err), -1);
        ck_assert_int_eq(access("/dev/full", F_OK), 0);
    }
    remove_tmpdir();
}
END_TEST

/* Every colour type and bit depth, plain and interlaced, at sizes where some
 * Adam7 passes are empty, split over many IDATs. */
START_TEST(png_all_formats)
{
    static const uint32_t sizes[][2] = {{1, 1}, {2, 2}, {3, 9}, {9, 3}, {5, 5},
                                        {8, 8}, {17, 13}, {33, 2}};
    uint32_t seed = 12345;
    char err[256];
    for (size_t c = 0; c < NCOMBOS; c++)
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++)
            for (int il = 0; il <= 1; il++) {
                spec sp;
                buf_t png = {0};
                png_rgb im;
                spec_random(&sp, sizes[z][0], sizes[z][1], combos[c][0], combos[c][1], il,
                            &seed);
                spec_png(&sp, &seed, (z % 3) * 7, &png);
                ck_assert_msg(png_read_rgb_mem(png.p, png.n, &im, err, sizeof err) == 0,
                              "ct %d depth %d %ux%u il %d: %s", sp.ct, sp.depth, sp.w, sp.h,
                              il, err);
                ck_assert_msg(spec_matches(&sp, &im), "ct %d depth %d %ux%u il %d: pixels",
                              sp.ct, sp.depth, sp.w, sp.h, il);
                png_free(&im);
                free(sp.s);
                buf_free(&png);
            }
}
END_TEST

/* A hand-written 1-bit gray image whose pixels are known without any
 * encoder: 10x2, row 0 = 1010101011, row 1 = 0000000001. */
START_TEST(png_known_bits)
{
    static const uint8_t raw[] = {0, 0xaa, 0xc0, 0, 0x00, 0x40};
    static const uint8_t row0[10] = {1, 0, 1, 0, 1, 0, 1, 0, 1, 1};
    buf_t b = {0};
    png_rgb im;
    char err[256];
    png_sig(&b);
    png_ihdr(&b, 10, 2, 1, 0, 0);
    png_idat(&b, raw, sizeof raw, 0);
    png_chunk(&b, "IEND", NULL, 0);
    ck_assert_msg(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(im.maxval, 1);
    for (int x = 0; x < 10; x++) {
        ck_assert_uint_eq(im.pixels[3 * x], row0[x]);
        ck_assert_uint_eq(im.pixels[3 * x + 2], row0[x]);
        ck_assert_uint_eq(im.pixels[30 + 3 * x + 1], x == 9);
    }
    png_free(&im);

    /* 16-bit RGB keeps every bit; alpha of RGBA is dropped. */
    {
        static const uint8_t raw16[] = {0, 0x12, 0x34, 0xab, 0xcd, 0xff, 0xfe, 0, 1, 0, 2,
                                        0, 3};
        static const uint8_t rawa[] = {2, 10, 20, 30, 40, 250, 251, 252, 253};
        png_sig(&b);
        png_ihdr(&b, 2, 1, 16, 2, 0);
        png_idat(&b, raw16, sizeof raw16, 0);
        png_chunk(&b, "IEND", NULL, 0);
        ck_assert_msg(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(im.maxval, 65535);
        ck_assert_uint_eq(im.pixels[0], 0x1234);
        ck_assert_uint_eq(im.pixels[1], 0xabcd);
        ck_assert_uint_eq(im.pixels[2], 0xfffe);
        ck_assert_uint_eq(im.pixels[5], 3);
        png_free(&im);
        /* Filter 2 (up) on the first row means "+0". */
        png_sig(&b);
        png_ihdr(&b, 2, 1, 8, 6, 0);
        png_idat(&b, rawa, sizeof rawa, 0);
        png_chunk(&b, "IEND", NULL, 0);
        ck_assert_msg(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(im.pixels[0], 10);
        ck_assert_uint_eq(im.pixels[2], 30);
        ck_assert_uint_eq(im.pixels[3], 250);
        ck_assert_uint_eq(im.pixels[5], 252);
        png_free(&im);
    }
    buf_free(&b);
}
END_TEST

/* Builds a 4x3 palette-4-bit image with extra chunks placed by `variant`. */
static void build_variant(buf_t *b, int variant)
{
    static const uint8_t plte[9] = {255, 0, 0, 0, 255, 0, 0, 0, 255};
    /* 4 pixels of 4 bits = 2 bytes per row; indices 0..2. */
    uint8_t raw[9] = {0, 0x01, 0x20, 0, 0x12, 0x00, 0, 0x22, 0x11};
    uLongf zlen = 64;
    uint8_t z[64];
    png_sig(b);
    if (variant == 1) png_chunk(b, "PLTE", plte, 9);           /* before IHDR */
    png_ihdr(b, 4, 3, 4, variant == 15 ? 0 : 3, 0);
    if (variant == 9) png_ihdr(b, 4, 3, 4, 3, 0);               /* twice */
    png_chunk(b, "tEXt", "Comment\0hi", 10);
    if (variant != 2) png_chunk(b, "PLTE", plte, variant == 3 ? 6 : 9);
    if (variant == 4) png_chunk(b, "PLTE", plte, 9);            /* duplicate */
    if (variant == 5) png_chunk(b, "ABCD", "x", 1);             /* unknown critical */
    png_chunk(b, "tRNS", "\x00\x80", 2);
    png_chunk(b, "prIv", "anything", 8);                        /* unknown ancillary */
    if (variant == 6) raw[8] = 0x13;                            /* index 3 of 3 */
    if (variant == 7) raw[3] = 5;                               /* filter type 5 */
    ck_assert_int_eq(compress2(z, &zlen, raw, variant == 8 ? 8 : sizeof raw, 6), Z_OK);
    if (variant == 10) {
        png_chunk(b, "IDAT", z, 5);
        png_chunk(b, "tEXt", "a\0b", 3);                        /* splits the IDATs */
        png_chunk(b, "IDAT", z + 5, (uint32_t)zlen - 5);
    } else {
        /* 1-byte IDATs and an empty one: still one stream. */
        for (uLongf i = 0; i < zlen; i++) png_chunk(b, "IDAT", z + i, 1);
        png_chunk(b, "IDAT", NULL, 0);
    }
    if (variant == 11) png_chunk(b, "PLTE", plte, 9);           /* after IDAT */
    if (variant == 16) png_chunk(b, "IEND", "x", 1);
    else if (variant != 12) png_chunk(b, "IEND", NULL, 0);
    if (variant == 13) buf_put(b, "trailing garbage", 16);
    if (variant == 14) {
        /* IDAT data beyond the end of the zlib stream. */
        b->n -= 12;
        png_chunk(b, "IDAT", "junk", 4);
        png_chunk(b, "IEND", NULL, 0);
    }
}

START_TEST(png_structure)
{
    static const struct {
        int variant, ok;
        const char *why;
    } cases[] = {
        {0, 1, ""},                  {1, 0, "must be IHDR"},   {2, 0, "PLTE"},
        {3, 0, "palette index"},     {4, 0, "duplicate PLTE"}, {5, 0, "unknown critical"},
        {6, 0, "palette index 3"},   {7, 0, "filter type 5"},  {8, 0, "image data"},
        {9, 0, "duplicate IHDR"},    {10, 0, "consecutive"},   {11, 0, "PLTE after IDAT"},
        {12, 0, "IEND"},             {13, 1, ""},              {14, 0, "after the end"},
        {15, 0, "not allowed in a gray"}, {16, 0, "chunk IEND at byte"},
    };
    buf_t b = {0};
    png_rgb im;
    char err[256];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        err[0] = '\0';
        build_variant(&b, cases[c].variant);
        ck_assert_msg(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err) == (cases[c].ok ? 0 : -1),
                      "variant %d: %s", cases[c].variant, err);
        if (cases[c].ok) {
            /* Row 2 is "2 2 1 1": blue blue green green. */
            ck_assert_uint_eq(im.width, 4);
            ck_assert_uint_eq(im.maxval, 255);
            ck_assert_uint_eq(im.pixels[(2 * 4 + 0) * 3 + 2], 255);
            ck_assert_uint_eq(im.pixels[(2 * 4 + 3) * 3 + 1], 255);
            ck_assert_uint_eq(im.pixels[(0 * 4 + 0) * 3 + 0], 255);
            png_free(&im);
        } else {
            ck_assert_ptr_null(im.pixels);
            ck_assert_msg(strstr(err, cases[c].why) != NULL, "variant %d: '%s' lacks '%s'",
                          cases[c].variant, err, cases[c].why);
            ck_assert_ptr_null(strchr(err, '\n'));
        }
    }

    /* A CRC error names the chunk and its offset. */
    build_variant(&b, 0);
    b.p[b.n - 13] ^= 1; /* last IDAT's CRC */
    ck_assert_int_eq(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "chunk IDAT at byte") && strstr(err, "CRC mismatch"), "%s", err);
    /* Signature. */
    build_variant(&b, 0);
    b.p[1] = 'p';
    ck_assert_int_eq(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "signature"));
    ck_assert_int_eq(png_read_rgb_mem(b.p, 0, &im, err, sizeof err), -1);
    ck_assert_int_eq(png_read_rgb_mem(NULL, 0, &im, err, sizeof err), -1);
    ck_assert_int_eq(png_read_rgb("/nonexistent/x.png", &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.png"));
    /* A corrupt file: the message names the file and the reason. */
    {
        char path[512];
        make_tmpdir();
        tmp_file(path, sizeof path, "bad.png");
        build_variant(&b, 6);
        spit(path, b.p, b.n);
        ck_assert_int_eq(png_read_rgb(path, &im, err, sizeof err), -1);
        ck_assert_msg(strstr(err, path) && strstr(err, "palette index"), "%s", err);
        remove_tmpdir();
    }
    buf_free(&b);
}
END_TEST

START_TEST(png_ihdr_checks)
{
    static const struct {
        uint32_t w, h;
        int depth, ct, il;
        const char *why;
    } cases[] = {
        {4, 4, 4, 2, 0, "bit depth 4"},     {4, 4, 16, 3, 0, "bit depth 16"},
        {4, 4, 8, 5, 0, "colour type 5"},   {4, 4, 8, 1, 0, "colour type 1"},
        {4, 4, 3, 0, 0, "bit depth 3"},     {4, 4, 8, 7, 0, "colour type 7"},
        {4, 4, 8, 2, 2, "interlace"},       {0, 4, 8, 2, 0, "out of range"},
        {4, 0, 8, 2, 0, "out of range"},    {0x80000000u, 1, 8, 2, 0, "out of range"},
        {0x7fffffffu, 0x7fffffffu, 8, 2, 0, "limit of 2^30"},
        {40000, 40000, 1, 0, 0, "limit of 2^30"},
        {1u << 30, 2, 8, 0, 0, "limit of 2^30"},
    };
    buf_t b = {0};
    png_rgb im;
    char err[256];
    uint8_t raw[1] = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        png_sig(&b);
        png_ihdr(&b, cases[c].w, cases[c].h, cases[c].depth, cases[c].ct, cases[c].il);
        png_idat(&b, raw, 1, 0);
        png_chunk(&b, "IEND", NULL, 0);
        ck_assert_int_eq(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err), -1);
        ck_assert_msg(strstr(err, cases[c].why) != NULL, "case %zu: '%s' lacks '%s'", c, err,
                      cases[c].why);
    }
    /* 2^30 pixels exactly passes IHDR; the (tiny) data is then too short,
     * and nothing near 2^30 bytes may have been allocated up front. */
    png_sig(&b);
    png_ihdr(&b, 1u << 15, 1u << 15, 8, 6, 1);
    png_idat(&b, raw, 1, 0);
    png_chunk(&b, "IEND", NULL, 0);
    ck_assert_int_eq(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "image data") != NULL, "%s", err);
    /* Wrong IHDR length. */
    png_sig(&b);
    png_chunk(&b, "IHDR", "\0\0\0\1\0\0\0\1\x08\0\0\0", 12);
    ck_assert_int_eq(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "expected 13"));
    buf_free(&b);
}
END_TEST

/* Filtered data over 1 MiB makes the decoder grow its inflate buffer; the
 * size check must hold across that too. */
START_TEST(png_large)
{
    const uint32_t w = 1100, h = 1000;
    size_t n = (size_t)h * (w + 1);
    uint8_t *raw = calloc(n + 1, 1);
    buf_t b = {0};
    png_rgb im;
    char err[256];
    for (size_t y = 0; y < h; y++) raw[y * (w + 1) + 1 + y % w] = (uint8_t)y;
    for (int delta = -1; delta <= 1; delta++) {
        png_sig(&b);
        png_ihdr(&b, w, h, 8, 0, 0);
        png_idat(&b, raw, (size_t)((ptrdiff_t)n + delta), 1000);
        png_chunk(&b, "IEND", NULL, 0);
        if (delta == 0) {
            ck_assert_msg(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err) == 0, "%s", err);
            ck_assert_uint_eq(im.pixels[((size_t)999 * w + 999 % w) * 3 + 1], (uint8_t)999);
            ck_assert_uint_eq(im.pixels[((size_t)999 * w + 998) * 3], 0);
            png_free(&im);
        } else {
            ck_assert_int_eq(png_read_rgb_mem(b.p, b.n, &im, err, sizeof err), -1);
            ck_assert_msg(strstr(err, delta < 0 ? "image data is" : "longer"), "%s", err);
        }
    }
    free(raw);
    buf_free(&b);
}
END_TEST

/* ---- PngSuite and the photos ---------------------------------------------- */

static const struct {
    const char *name;
    uint32_t w, h, maxval;
    uint64_t fnv;
} known[] = {
    {"basn0g01.png", 32, 32, 1, 0x698bb82e89dc59ddull},
    {"basn0g02.png", 32, 32, 3, 0xd0cc8ffa235c7b25ull},
    {"basn0g04.png", 32, 32, 15, 0x2155640a461af325ull},
    {"basn0g08.png", 32, 32, 255, 0x6ff8f34c225dc535ull},
    {"basn0g16.png", 32, 32, 65535, 0x77986c4f87df01e9ull},
    {"basn2c08.png", 32, 32, 255, 0xd804af7d29944d25ull},
    {"basn2c16.png", 32, 32, 65535, 0x04da3226ad023a7dull},
    {"basn3p01.png", 32, 32, 255, 0x936159913be6b325ull},
    {"basn3p02.png", 32, 32, 255, 0x1ecec1650478f325ull},
    {"basn3p04.png", 32, 32, 255, 0x7854950cfa323e25ull},
    {"basn3p08.png", 32, 32, 255, 0x4c46707fcfdaa585ull},
    {"basn4a08.png", 32, 32, 255, 0x5eaa2fa46fab1aa5ull},
    {"basn4a16.png", 32, 32, 65535, 0x4af6f01775cbae35ull},
    {"basn6a08.png", 32, 32, 255, 0x371330c052115225ull},
    {"basn6a16.png", 32, 32, 65535, 0x32914767acbb2aadull},
    {"../images/astronaut.png", 512, 512, 255, 0x4f96fb7296d9d635ull},
    {"../images/coffee.png", 600, 400, 255, 0x1d2139185ac46d74ull},
    {"../images/chelsea.png", 451, 300, 255, 0x0946967c55359f92ull},
};

static const struct {
    const char *name;
    uint32_t x, y;
    uint16_t rgb[3];
} spots[] = {
    {"basn0g01.png", 0, 0, {1, 1, 1}},           {"basn0g01.png", 31, 0, {0, 0, 0}},
    {"basn0g01.png", 10, 5, {1, 1, 1}},          {"basn0g02.png", 9, 3, {2, 2, 2}},
    {"basn0g04.png", 13, 7, {4, 4, 4}},          {"basn0g16.png", 20, 11, {51712, 51712, 51712}},
    {"basn2c16.png", 0, 0, {65535, 65535, 0}},   {"basn2c16.png", 31, 0, {0, 65535, 0}},
    {"basn2c16.png", 15, 17, {33825, 29596, 2114}},
    {"basn3p02.png", 0, 0, {0, 0, 255}},         {"basn3p02.png", 17, 30, {255, 0, 0}},
    {"basn3p04.png", 3, 4, {255, 102, 0}},       {"basn3p04.png", 30, 1, {0, 255, 153}},
    {"basn6a16.png", 24, 6, {3449, 65535, 0}},   {"basn4a08.png", 5, 25, {49, 49, 49}},
    {"../images/astronaut.png", 0, 0, {154, 147, 151}},
    {"../images/astronaut.png", 256, 170, {213, 201, 201}},
    {"../images/coffee.png", 300, 133, {225, 135, 49}},
    {"../images/coffee.png", 599, 399, {143, 60, 29}},
    {"../images/chelsea.png", 225, 100, {186, 140, 106}},
    {"../images/chelsea.png", 450, 299, {162, 138, 128}},
};

static int suite_path(char *out, size_t cap, const char *shared, const char *name)
{
    return snprintf(out, cap, "%s/testdata/pngsuite/%s", shared, name) < (int)cap;
}

static int png_name(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 4 && strcmp(e->d_name + n - 4, ".png") == 0;
}

/* PngSuite names end in <colour type><g|c|p|a><depth>: "basn3p04". */
static int expected_maxval(const char *name, uint32_t *maxval)
{
    size_t n = strlen(name);
    int ct, depth;
    if (n < 8) return 0;
    ct = name[n - 8] - '0';
    depth = (name[n - 6] - '0') * 10 + (name[n - 5] - '0');
    if (ct < 0 || ct > 6 || !strchr("gcpa", name[n - 7]) ||
        (depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16))
        return 0;
    *maxval = ct == 3 ? 255u : (1u << depth) - 1;
    return 1;
}

START_TEST(pngsuite_decode)
{
    const char *shared = shared_or_skip("pngsuite_decode");
    struct dirent **list;
    int n, decoded = 0, rejected = 0;
    char path[1024], err[256];
    if (!shared) return;
    snprintf(path, sizeof path, "%s/testdata/pngsuite", shared);
    n = scandir(path, &list, png_name, alphasort);
    ck_assert_msg(n > 0, "no PNG files in %s", path);
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        png_rgb im;
        int rc;
        uint32_t mv;
        suite_path(path, sizeof path, shared, name);
        rc = png_read_rgb(path, &im, err, sizeof err);
        if (name[0] == 'x') {
            /* Intentionally corrupt files. */
            ck_assert_msg(rc == -1, "%s: corrupt file accepted", name);
            ck_assert_ptr_null(im.pixels);
            ck_assert_msg(err[0] && !strchr(err, '\n'), "%s: bad message", name);
            rejected++;
            continue;
        }
        ck_assert_msg(rc == 0, "%s", err);
        ck_assert(im.width > 0 && im.height > 0);
        ck_assert_msg(samples_in_range(&im), "%s: sample above maxval", name);
        if (expected_maxval(name, &mv))
            ck_assert_msg(im.maxval == mv, "%s: maxval %u, expected %u", name, im.maxval, mv);
        decoded++;
        png_free(&im);
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    printf("pngsuite: %d decoded, %d rejected\n", decoded, rejected);
    fflush(stdout);
    ck_assert_int_gt(decoded, 0);
}
END_TEST

/* Interlaced files decode to the same pixels as their plain twins: the
 * original suite's basiXXXX/basnXXXX and libpng's iNAME/NAME layouts. */
START_TEST(pngsuite_interlace_twins)
{
    const char *shared = shared_or_skip("pngsuite_interlace_twins");
    struct dirent **list;
    int n, pairs = 0, interlaced = 0;
    char pa[1024], pb[1024], twin[256], err[256];
    if (!shared) return;
    snprintf(pa, sizeof pa, "%s/testdata/pngsuite", shared);
    n = scandir(pa, &list, png_name, alphasort);
    ck_assert_int_gt(n, 0);
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        png_rgb a, b;
        size_t len;
        uint8_t *raw;
        twin[0] = '\0';
        if (name[0] == 'i') snprintf(twin, sizeof twin, "%s", name + 1);
        else if (strlen(name) == 12 && name[3] == 'i' && name[0] != 'x') {
            snprintf(twin, sizeof twin, "%s", name);
            twin[3] = 'n';
        }
        if (!twin[0]) continue;
        suite_path(pb, sizeof pb, shared, twin);
        if (access(pb, R_OK) != 0) continue;
        suite_path(pa, sizeof pa, shared, name);
        raw = slurp(pa, &len);
        ck_assert_ptr_nonnull(raw);
        if (len > 28 && raw[28] == 1) interlaced++;
        free(raw);
        ck_assert_msg(png_read_rgb(pa, &a, err, sizeof err) == 0, "%s", err);
        ck_assert_msg(png_read_rgb(pb, &b, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(a.width, b.width);
        ck_assert_uint_eq(a.height, b.height);
        ck_assert_uint_eq(a.maxval, b.maxval);
        ck_assert_msg(memcmp(a.pixels, b.pixels, (size_t)a.width * a.height * 6) == 0,
                      "%s and %s differ", name, twin);
        png_free(&a);
        png_free(&b);
        pairs++;
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    printf("pngsuite: %d interlaced/plain pairs identical (%d of them Adam7)\n", pairs,
           interlaced);
    fflush(stdout);
    ck_assert_int_gt(pairs, 0);
    ck_assert_int_gt(interlaced, 0);
}
END_TEST

START_TEST(pngsuite_known_values)
{
    const char *shared = shared_or_skip("pngsuite_known_values");
    char path[1024], err[256];
    if (!shared) return;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        png_rgb im;
        suite_path(path, sizeof path, shared, known[i].name);
        ck_assert_msg(png_read_rgb(path, &im, err, sizeof err) == 0, "%s", err);
        ck_assert_msg(im.width == known[i].w && im.height == known[i].h,
                      "%s: %ux%u, expected %ux%u", known[i].name, im.width, im.height,
                      known[i].w, known[i].h);
        ck_assert_uint_eq(im.maxval, known[i].maxval);
        ck_assert_msg(fnv1a_rgb(&im) == known[i].fnv, "%s: pixels differ from the reference",
                      known[i].name);
        for (size_t s = 0; s < sizeof spots / sizeof spots[0]; s++) {
            const uint16_t *p;
            if (strcmp(spots[s].name, known[i].name) != 0) continue;
            p = im.pixels + ((size_t)spots[s].y * im.width + spots[s].x) * 3;
            ck_assert_msg(p[0] == spots[s].rgb[0] && p[1] == spots[s].rgb[1] &&
                              p[2] == spots[s].rgb[2],
                          "%s (%u, %u): %u %u %u", known[i].name, spots[s].x, spots[s].y,
                          p[0], p[1], p[2]);
        }
        png_free(&im);
    }
}
END_TEST

START_TEST(photos)
{
    static const struct {
        const char *name;
        uint32_t w, h;
    } ph[] = {{"astronaut.png", 512, 512}, {"coffee.png", 600, 400}, {"chelsea.png", 451, 300}};
    const char *shared = shared_or_skip("photos");
    char path[1024], err[256];
    if (!shared) return;
    make_tmpdir();
    for (size_t i = 0; i < 3; i++) {
        png_rgb im, back;
        uint8_t *rgb;
        size_t n;
        snprintf(path, sizeof path, "%s/testdata/images/%s", shared, ph[i].name);
        ck_assert_msg(png_read_rgb(path, &im, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(im.width, ph[i].w);
        ck_assert_uint_eq(im.height, ph[i].h);
        ck_assert_uint_eq(im.maxval, 255);
        /* Through our writer and back: unchanged. */
        n = (size_t)im.width * im.height * 3;
        rgb = malloc(n);
        for (size_t k = 0; k < n; k++) rgb[k] = (uint8_t)im.pixels[k];
        tmp_file(path, sizeof path, ph[i].name);
        ck_assert_msg(png_write_rgb8(path, rgb, im.width, im.height, err, sizeof err) == 0,
                      "%s", err);
        ck_assert_msg(png_read_rgb(path, &back, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(memcmp(back.pixels, im.pixels, n * 2), 0);
        png_free(&back);
        png_free(&im);
        free(rgb);
    }
    remove_tmpdir();
}
END_TEST

/* ---- fuzz-ish ------------------------------------------------------------- */

/* Recomputes every chunk CRC, so mutations get past the CRC check. */
static void fix_crcs(uint8_t *p, size_t len)
{
    size_t pos = 8;
    while (len >= 12 && pos <= len - 12) {
        uint32_t n = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 |
                     (uint32_t)p[pos + 2] << 8 | p[pos + 3];
        uLong c;
        if (n > len - pos - 12) break;
        c = crc32(crc32(0L, Z_NULL, 0), p + pos + 4, n + 4);
        p[pos + 8 + n] = (uint8_t)(c >> 24);
        p[pos + 9 + n] = (uint8_t)(c >> 16);
        p[pos + 10 + n] = (uint8_t)(c >> 8);
        p[pos + 11 + n] = (uint8_t)c;
        pos += 12 + (size_t)n;
    }
}

static void check_decode(const uint8_t *p, size_t len)
{
    png_rgb im;
    char err[128];
    int rc = png_read_rgb_mem(p, len, &im, err, sizeof err);
    ck_assert(rc == 0 || rc == -1);
    if (rc == 0) {
        ck_assert_ptr_nonnull(im.pixels);
        ck_assert(samples_in_range(&im));
        png_free(&im);
    } else {
        ck_assert_ptr_null(im.pixels);
        ck_assert(err[0] != '\0');
    }
}

static void fuzz_one(const uint8_t *png, size_t len, uint32_t seed, int rounds)
{
    uint8_t *m = malloc(len);
    png_rgb im;
    char err[128];
    /* Every truncation must be rejected (the file ends with IEND). */
    for (size_t n = 0; n < len; n++)
        ck_assert_int_eq(png_read_rgb_mem(png, n, &im, err, sizeof err), -1);
    for (int r = 0; r < rounds; r++) {
        int flips = 1 + (int)(lcg(&seed) % 4);
        memcpy(m, png, len);
        for (int k = 0; k < flips; k++) {
            size_t at = lcg(&seed) % len;
            /* Half bit flips, half random bytes; keep the signature mostly. */
            if (lcg(&seed) & 1) m[at] ^= (uint8_t)(1u << (lcg(&seed) % 8));
            else m[at] = (uint8_t)lcg(&seed);
        }
        check_decode(m, len);
        fix_crcs(m, len);
        check_decode(m, len);
        check_decode(m, lcg(&seed) % (len + 1));
    }
    free(m);
}

START_TEST(png_fuzz)
{
    uint32_t seed = 777;
    char path[512], err[256];
    buf_t b = {0};
    make_tmpdir();

    /* Our writer's output. */
    {
        uint8_t rgb[23 * 17 * 3];
        uint8_t *file;
        size_t len;
        for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i % 7 ? lcg(&seed) : i);
        tmp_file(path, sizeof path, "f.png");
        ck_assert_int_eq(png_write_rgb8(path, rgb, 23, 17, err, sizeof err), 0);
        file = slurp(path, &len);
        fuzz_one(file, len, 1, 1500);
        free(file);
    }
    /* Every format, interlaced, many IDATs. */
    for (size_t c = 0; c < NCOMBOS; c++) {
        spec sp;
        spec_random(&sp, 11, 7, combos[c][0], combos[c][1], 1, &seed);
        spec_png(&sp, &seed, 40, &b);
        fuzz_one(b.p, b.n, (uint32_t)c, 300);
        free(sp.s);
    }
    /* Mutate the decompressed data and recompress: this reaches the filter
     * and palette code with bad filter bytes and indices. */
    for (int r = 0; r < 400; r++) {
        spec sp;
        buf_t raw = {0};
        size_t c = (size_t)r % NCOMBOS;
        spec_random(&sp, 1 + lcg(&seed) % 13, 1 + lcg(&seed) % 13, combos[c][0],
                    combos[c][1], r & 1, &seed);
        encode_raw(&sp, &seed, &raw);
        for (int k = 0; k < 3; k++) raw.p[lcg(&seed) % raw.n] = (uint8_t)lcg(&seed);
        if (r % 5 == 0) raw.n -= lcg(&seed) % raw.n;       /* short */
        if (r % 7 == 0) buf_put(&raw, "xyz", 1 + (size_t)(r % 3)); /* long */
        png_sig(&b);
        png_ihdr(&b, sp.w, sp.h, sp.depth, sp.ct, sp.il);
        if (sp.ct == 3) png_chunk(&b, "PLTE", sp.plte, (uint32_t)(3 * sp.nplte));
        png_idat(&b, raw.p, raw.n, 0);
        png_chunk(&b, "IEND", NULL, 0);
        check_decode(b.p, b.n);
        buf_free(&raw);
        free(sp.s);
    }
    /* A few PngSuite files too, when present. */
    {
        static const char *names[] = {"basn3p02.png", "ibasn0g04.png", "basn6a16.png",
                                      "iftbbn3p08.png", "basi3p02.png", "basi0g04.png"};
        const char *shared = tu_shared_dir();
        for (size_t i = 0; shared && i < sizeof names / sizeof names[0]; i++) {
            uint8_t *file;
            size_t len;
            suite_path(path, sizeof path, shared, names[i]);
            file = slurp(path, &len);
            if (!file) continue;
            fuzz_one(file, len, (uint32_t)i + 100, 500);
            free(file);
        }
    }
    buf_free(&b);
    remove_tmpdir();
}
END_TEST

static Suite *imageio_suite(void)
{
    Suite *s = suite_create("imageio");
    TCase *npy = tcase_create("npy"), *png = tcase_create("png");
    TCase *suite = tcase_create("pngsuite"), *fuzz = tcase_create("fuzz");
    tcase_add_test(npy, npy_roundtrip);
    tcase_add_test(npy, npy_dtypes);
    tcase_add_test(npy, npy_malformed);
    tcase_add_test(npy, npy_write_errors);
    tcase_add_test(png, png_roundtrip);
    tcase_add_test(png, png_write_errors);
    tcase_add_test(png, png_all_formats);
    tcase_add_test(png, png_known_bits);
    tcase_add_test(png, png_structure);
    tcase_add_test(png, png_ihdr_checks);
    tcase_add_test(png, png_large);
    tcase_add_test(suite, pngsuite_decode);
    tcase_add_test(suite, pngsuite_interlace_twins);
    tcase_add_test(suite, pngsuite_known_values);
    tcase_add_test(suite, photos);
    tcase_add_test(fuzz, png_fuzz);
    /* Sanitizer builds are slow; the default 4 s is too tight for them. */
    tcase_set_timeout(png, 120);
    tcase_set_timeout(suite, 120);
    tcase_set_timeout(fuzz, 300);
    suite_add_tcase(s, npy);
    suite_add_tcase(s, png);
    suite_add_tcase(s, suite);
    suite_add_tcase(s, fuzz);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(imageio_suite());
    int failed;
    if (!tu_shared_dir()) printf("test_imageio: skipped: ../shared not found "
                                 "(PngSuite and photo tests)\n");
    fflush(stdout);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
