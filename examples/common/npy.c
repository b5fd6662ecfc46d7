/* npy.c - NumPy .npy reader (float16/32/64 -> float32) and float32 writer.
 *
 * The format: "\x93NUMPY", major, minor, a little-endian header length
 * (uint16 for 1.0, uint32 for 2.0/3.0), then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a newline, then the raw C-order data.
 * The dict is parsed strictly here (exactly those three keys) rather than
 * by a general Python literal evaluator: anything unexpected is an error. */
#include "npy.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* numpy's own np.load refuses headers over 10000 bytes by default; 1 MiB is
 * far more than any legal 8-d header needs and bounds what we read. */
#define NPY_HEADER_LIMIT (1u << 20)
#define NPY_CHUNK 65536

#if defined(__GNUC__) || defined(__clang__)
#define NPY_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NPY_PRINTF(f, a)
#endif

static void set_err(char *err, size_t cap, const char *fmt, ...) NPY_PRINTF(3, 4);
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (!err || cap == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Prefix "path: " to a message already in err (keeps it one line). */
static void prefix_path(char *err, size_t cap, const char *path)
{
    char tmp[512];
    if (!err || cap == 0) return;
    snprintf(tmp, sizeof tmp, "%s", err);
    snprintf(err, cap, "%s: %s", path, tmp);
}

/* Removes what a failed write left, but only a regular file: never a device
 * or FIFO the caller named (/dev/stdout, /dev/full). */
static void remove_partial(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) remove(path);
}

/* What the header says, and where the data starts. */
typedef struct npy_info {
    int itemsize;           /* 2, 4 or 8: '<f2', '<f4', '<f8' */
    int32_t ndim;
    int64_t shape[NPY_MAX_DIMS];
    uint64_t count;
    size_t data_off;        /* bytes before the data */
    size_t data_bytes;      /* count * itemsize */
} npy_info;

static uint32_t rd_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Magic, version and header length. Needs at most 12 bytes of buf; sets
 * *data_off to where the data starts (not checked against len here). */
static int parse_prefix(const uint8_t *buf, size_t len, size_t *hdr_off,
                        size_t *data_off, char *err, size_t errcap)
{
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    size_t pre;
    uint32_t hlen;
    if (len < 10 || memcmp(buf, magic, 6) != 0) {
        if (len >= 6 && memcmp(buf, magic, 6) != 0)
            set_err(err, errcap, "not a .npy file (bad magic)");
        else
            set_err(err, errcap, "truncated: %zu bytes is too short for a .npy file", len);
        return -1;
    }
    if (buf[6] == 1) {
        pre = 10;
        hlen = (uint32_t)buf[8] | (uint32_t)buf[9] << 8;
    } else if (buf[6] == 2 || buf[6] == 3) {
        if (len < 12) {
            set_err(err, errcap, "truncated: %zu bytes is too short for a .npy %d.0 file",
                    len, buf[6]);
            return -1;
        }
        pre = 12;
        hlen = rd_le32(buf + 8);
    } else {
        set_err(err, errcap, "unsupported .npy format version %d.%d", buf[6], buf[7]);
        return -1;
    }
    if (buf[7] != 0) {
        set_err(err, errcap, "unsupported .npy format version %d.%d", buf[6], buf[7]);
        return -1;
    }
    if (hlen > NPY_HEADER_LIMIT) {
        set_err(err, errcap, "header length %u exceeds the %u-byte limit", hlen,
                NPY_HEADER_LIMIT);
        return -1;
    }
    *hdr_off = pre;
    *data_off = pre + hlen;
    return 0;
}

/* ---- the header dict ----------------------------------------------------- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int is_ident(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_';
}

/* A quoted string without escapes (no key or descr we accept needs them). */
static int parse_str(cursor *c, char *out, size_t cap, char *err, size_t errcap)
{
    char q;
    size_t n = 0;
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) {
        set_err(err, errcap, "npy header: expected a quoted string");
        return -1;
    }
    q = *c->p++;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\n') break; /* unterminated, reported below */
        if (*c->p == '\\' || n + 1 >= cap) {
            set_err(err, errcap, "npy header: %s", *c->p == '\\'
                    ? "escapes in strings are not supported" : "string too long");
            return -1;
        }
        out[n++] = *c->p++;
    }
    if (c->p >= c->end || *c->p != q) {
        set_err(err, errcap, "npy header: unterminated string");
        return -1;
    }
    c->p++;
    out[n] = '\0';
    return 0;
}

static int parse_bool(cursor *c, int *v, char *err, size_t errcap)
{
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && memcmp(c->p, "True", 4) == 0 && (left == 4 || !is_ident(c->p[4]))) {
        c->p += 4;
        *v = 1;
        return 0;
    }
    if (left >= 5 && memcmp(c->p, "False", 5) == 0 && (left == 5 || !is_ident(c->p[5]))) {
        c->p += 5;
        *v = 0;
        return 0;
    }
    set_err(err, errcap, "npy header: 'fortran_order' must be True or False");
    return -1;
}

static int parse_dim(cursor *c, int64_t *v, char *err, size_t errcap)
{
    int64_t x = 0;
    if (c->p < c->end && *c->p == '-') {
        set_err(err, errcap, "npy header: negative dimension in 'shape'");
        return -1;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
        set_err(err, errcap, "npy header: expected an integer in 'shape'");
        return -1;
    }
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int d = *c->p++ - '0';
        if (x > (INT64_MAX - d) / 10) {
            set_err(err, errcap, "npy header: dimension in 'shape' overflows int64");
            return -1;
        }
        x = x * 10 + d;
    }
    /* Python 2 wrote longs as 123L. */
    if (c->p < c->end && *c->p == 'L') c->p++;
    if (c->p < c->end && is_ident(*c->p)) {
        set_err(err, errcap, "npy header: malformed integer in 'shape'");
        return -1;
    }
    *v = x;
    return 0;
}

/* A tuple of non-negative ints: (), (3,), (2, 3), (2, 3,). "(3)" is an int
 * in Python, not a tuple, so it is refused as numpy would. */
static int parse_shape(cursor *c, npy_info *h, char *err, size_t errcap)
{
    int trailing_comma = 0;
    h->ndim = 0;
    if (c->p >= c->end || *c->p != '(') {
        set_err(err, errcap, "npy header: 'shape' must be a tuple");
        return -1;
    }
    c->p++;
    skip_ws(c);
    while (c->p < c->end && *c->p != ')') {
        int64_t d;
        if (h->ndim >= NPY_MAX_DIMS) {
            set_err(err, errcap, "npy header: 'shape' has more than %d dimensions",
                    NPY_MAX_DIMS);
            return -1;
        }
        if (parse_dim(c, &d, err, errcap) != 0) return -1;
        h->shape[h->ndim++] = d;
        skip_ws(c);
        trailing_comma = 0;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            trailing_comma = 1;
            skip_ws(c);
        } else if (c->p < c->end && *c->p != ')') {
            set_err(err, errcap, "npy header: expected ',' or ')' in 'shape'");
            return -1;
        }
    }
    if (c->p >= c->end) {
        set_err(err, errcap, "npy header: unterminated 'shape' tuple");
        return -1;
    }
    c->p++;
    if (h->ndim == 1 && !trailing_comma) {
        set_err(err, errcap, "npy header: 'shape' (n) is not a tuple (needs \"(n,)\")");
        return -1;
    }
    return 0;
}

/* Parses the dict in buf[off..end) into h (itemsize, ndim, shape). */
static int parse_dict(const uint8_t *buf, size_t off, size_t end, npy_info *h,
                      char *err, size_t errcap)
{
    cursor c = {(const char *)buf + off, (const char *)buf + end};
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0, fortran = 0;
    char key[32], descr[32];

    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') {
        set_err(err, errcap, "npy header: expected '{'");
        return -1;
    }
    c.p++;
    for (;;) {
        skip_ws(&c);
        if (c.p < c.end && *c.p == '}') break;
        if (parse_str(&c, key, sizeof key, err, errcap) != 0) return -1;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') {
            set_err(err, errcap, "npy header: expected ':' after '%s'", key);
            return -1;
        }
        c.p++;
        skip_ws(&c);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = 1;
            if (c.p < c.end && *c.p != '\'' && *c.p != '"') {
                set_err(err, errcap, "npy header: 'descr' is not a simple dtype string "
                        "(structured arrays are not supported)");
                return -1;
            }
            if (parse_str(&c, descr, sizeof descr, err, errcap) != 0) return -1;
        } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
            seen_fortran = 1;
            if (parse_bool(&c, &fortran, err, errcap) != 0) return -1;
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1;
            if (parse_shape(&c, h, err, errcap) != 0) return -1;
        } else if (strcmp(key, "descr") == 0 || strcmp(key, "fortran_order") == 0 ||
                   strcmp(key, "shape") == 0) {
            set_err(err, errcap, "npy header: duplicate key '%s'", key);
            return -1;
        } else {
            set_err(err, errcap, "npy header: unexpected key '%s'", key);
            return -1;
        }
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}') break;
        set_err(err, errcap, "npy header: expected ',' or '}' after '%s'", key);
        return -1;
    }
    c.p++; /* '}' */
    skip_ws(&c);
    if (c.p != c.end) {
        set_err(err, errcap, "npy header: unexpected bytes after the dict");
        return -1;
    }
    if (!seen_descr || !seen_fortran || !seen_shape) {
        set_err(err, errcap, "npy header: missing key '%s'",
                !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
        return -1;
    }
    if (fortran) {
        set_err(err, errcap, "fortran_order True is not supported (C order only)");
        return -1;
    }
    if (strcmp(descr, "<f4") == 0) h->itemsize = 4;
    else if (strcmp(descr, "<f8") == 0) h->itemsize = 8;
    else if (strcmp(descr, "<f2") == 0) h->itemsize = 2;
    else if (descr[0] == '>' && (strcmp(descr + 1, "f2") == 0 ||
                                 strcmp(descr + 1, "f4") == 0 ||
                                 strcmp(descr + 1, "f8") == 0)) {
        set_err(err, errcap, "big-endian dtype '%s' is not supported", descr);
        return -1;
    } else {
        set_err(err, errcap, "unsupported dtype '%s' (want '<f4', '<f8' or '<f2')", descr);
        return -1;
    }
    return 0;
}

/* count = product of shape, and its size in bytes, both overflow-checked. */
static int shape_count(npy_info *h, char *err, size_t errcap)
{
    uint64_t n = 1;
    int zero = 0;
    for (int32_t i = 0; i < h->ndim; i++)
        if (h->shape[i] == 0) zero = 1;
    /* With a zero dimension the product is 0 whatever the others are. */
    if (zero) n = 0;
    else
        for (int32_t i = 0; i < h->ndim; i++) {
            uint64_t d = (uint64_t)h->shape[i];
            if (n > UINT64_MAX / d) {
                set_err(err, errcap, "npy header: shape product overflows");
                return -1;
            }
            n *= d;
        }
    if (n > SIZE_MAX / 8 || n > SIZE_MAX / sizeof(float)) {
        set_err(err, errcap, "npy header: array of %llu elements is too large",
                (unsigned long long)n);
        return -1;
    }
    h->count = n;
    h->data_bytes = (size_t)n * (size_t)h->itemsize;
    return 0;
}

/* Prefix + dict, given the first data_off bytes of the file in buf. */
static int parse_header(const uint8_t *buf, size_t len, npy_info *h, char *err,
                        size_t errcap)
{
    size_t hdr_off, data_off;
    memset(h, 0, sizeof *h);
    if (parse_prefix(buf, len, &hdr_off, &data_off, err, errcap) != 0) return -1;
    if (data_off > len) {
        set_err(err, errcap, "truncated: header of %zu bytes runs past the end of the "
                "file (%zu bytes)", data_off - hdr_off, len);
        return -1;
    }
    h->data_off = data_off;
    if (parse_dict(buf, hdr_off, data_off, h, err, errcap) != 0) return -1;
    return shape_count(h, err, errcap);
}

/* ---- element conversion -------------------------------------------------- */

static float half_to_float(uint16_t v)
{
    uint32_t sign = (uint32_t)(v >> 15) << 31, e = (v >> 10) & 0x1f, m = v & 0x3ffu;
    uint32_t bits;
    float f;
    if (e == 0) {
        if (m == 0) {
            bits = sign;
        } else { /* subnormal half -> normal float: shift the mantissa up */
            uint32_t fe = 113;
            while (!(m & 0x400u)) {
                m <<= 1;
                fe--;
            }
            bits = sign | fe << 23 | (m & 0x3ffu) << 13;
        }
    } else if (e == 31) {
        bits = sign | 0xffu << 23 | m << 13; /* inf, NaN keeps its payload */
    } else {
        bits = sign | (e + 112) << 23 | m << 13;
    }
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float double_to_float(double d)
{
    /* Beyond FLT_MAX + half an ulp a float cast would be out of range: say
     * infinity explicitly instead of relying on Annex F. */
    const double lim = (double)FLT_MAX + 0x1p103;
    if (d >= lim) return INFINITY;
    if (d <= -lim) return -INFINITY;
    return (float)d;
}

/* n elements of itemsize bytes (little-endian) from src to dst. */
static void convert(const uint8_t *src, int itemsize, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = src + i * (size_t)itemsize;
        if (itemsize == 4) {
            uint32_t b = rd_le32(p);
            memcpy(&dst[i], &b, sizeof b);
        } else if (itemsize == 8) {
            uint64_t b = (uint64_t)rd_le32(p) | (uint64_t)rd_le32(p + 4) << 32;
            double d;
            memcpy(&d, &b, sizeof d);
            dst[i] = double_to_float(d);
        } else {
            dst[i] = half_to_float((uint16_t)(p[0] | p[1] << 8));
        }
    }
}

static int alloc_out(const npy_info *h, npy_array *out, char *err, size_t errcap)
{
    /* Never NULL, even for an empty array, so callers need no special case. */
    size_t n = h->count ? (size_t)h->count : 1;
    out->data = malloc(n * sizeof(float));
    if (!out->data) {
        set_err(err, errcap, "out of memory for %llu floats",
                (unsigned long long)h->count);
        return -1;
    }
    out->ndim = h->ndim;
    for (int32_t i = 0; i < h->ndim; i++) out->shape[i] = h->shape[i];
    out->count = h->count;
    return 0;
}

/* ---- public -------------------------------------------------------------- */

int npy_read_mem(const uint8_t *buf, size_t len, npy_array *out, char *err,
                 size_t errcap)
{
    npy_info h;
    if (!out) {
        set_err(err, errcap, "npy_read_mem: out is NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!buf) {
        set_err(err, errcap, "npy_read_mem: buf is NULL");
        return -1;
    }
    if (parse_header(buf, len, &h, err, errcap) != 0) return -1;
    if (len - h.data_off != h.data_bytes) {
        set_err(err, errcap, "data is %zu bytes but shape and dtype need %zu",
                len - h.data_off, h.data_bytes);
        return -1;
    }
    if (alloc_out(&h, out, err, errcap) != 0) return -1;
    convert(buf + h.data_off, h.itemsize, out->data, (size_t)h.count);
    return 0;
}

/* Reads exactly n bytes or reports how many it got. */
static size_t read_full(FILE *f, void *dst, size_t n)
{
    return n ? fread(dst, 1, n, f) : 0;
}

int npy_read(const char *path, npy_array *out, char *err, size_t errcap)
{
    FILE *f;
    uint8_t pre[12], *hbuf = NULL, *chunk = NULL;
    size_t got, hdr_off, data_off, done = 0, cap = 0;
    npy_info h;
    int rc = -1;

    if (!out) {
        set_err(err, errcap, "npy_read: out is NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!path) {
        set_err(err, errcap, "npy_read: path is NULL");
        return -1;
    }
    f = fopen(path, "rb");
    if (!f) {
        set_err(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* The header first (bounded by NPY_HEADER_LIMIT), then the data in
     * chunks straight into the float array: no second copy of the file. */
    got = read_full(f, pre, sizeof pre);
    if (parse_prefix(pre, got, &hdr_off, &data_off, err, errcap) != 0) goto fail;
    hbuf = malloc(data_off > got ? data_off : got);
    if (!hbuf) {
        set_err(err, errcap, "out of memory");
        goto fail;
    }
    memcpy(hbuf, pre, got);
    if (data_off > got) got += read_full(f, hbuf + got, data_off - got);
    if (got < data_off) {
        if (ferror(f)) set_err(err, errcap, "read error: %s", strerror(errno));
        else parse_header(hbuf, got, &h, err, errcap);
        goto fail;
    }
    /* Every legal dict is longer than 2 bytes, so data never starts inside
     * the 12 bytes read first. */
    if (data_off < got) {
        set_err(err, errcap, "npy header: header length %zu is too short",
                data_off - hdr_off);
        goto fail;
    }
    if (parse_header(hbuf, data_off, &h, err, errcap) != 0) goto fail;
    chunk = malloc(NPY_CHUNK);
    if (!chunk) {
        set_err(err, errcap, "out of memory");
        goto fail;
    }
    /* The float array grows with the data actually read (doubling, up to
     * the count the header claims), so that a short file whose header
     * claims a huge shape costs no more memory than its own size. */
    while (done < h.data_bytes) {
        /* NPY_CHUNK is a multiple of every itemsize. */
        size_t want = h.data_bytes - done, n, have;
        if (want > NPY_CHUNK) want = NPY_CHUNK;
        n = read_full(f, chunk, want);
        if (n != want) {
            if (ferror(f))
                set_err(err, errcap, "read error: %s", strerror(errno));
            else
                set_err(err, errcap, "truncated: data is %zu bytes but shape and dtype "
                        "need %zu", done + n, h.data_bytes);
            goto fail;
        }
        have = (done + n) / (size_t)h.itemsize;
        if (have > cap) {
            size_t ncap = cap > (size_t)h.count / 2 ? (size_t)h.count : cap * 2;
            float *nd;
            if (ncap < have) ncap = have;
            nd = realloc(out->data, ncap * sizeof(float));
            if (!nd) {
                set_err(err, errcap, "out of memory for %zu floats", ncap);
                goto fail;
            }
            out->data = nd;
            cap = ncap;
        }
        convert(chunk, h.itemsize, out->data + done / (size_t)h.itemsize,
                n / (size_t)h.itemsize);
        done += n;
    }
    if (!out->data) { /* an empty array: data is never NULL on success */
        out->data = malloc(sizeof(float));
        if (!out->data) {
            set_err(err, errcap, "out of memory");
            goto fail;
        }
    }
    out->ndim = h.ndim;
    for (int32_t i = 0; i < h.ndim; i++) out->shape[i] = h.shape[i];
    out->count = h.count;
    if (fgetc(f) != EOF) {
        set_err(err, errcap, "data is longer than shape and dtype need (%zu bytes)",
                h.data_bytes);
        goto fail;
    }
    rc = 0;
fail:
    free(chunk);
    free(hbuf);
    fclose(f);
    if (rc != 0) {
        npy_free(out);
        memset(out, 0, sizeof *out); /* the shape too, as documented */
        prefix_path(err, errcap, path);
    }
    return rc;
}

static void wr_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int npy_write(const char *path, const float *data, int32_t ndim,
              const int64_t *shape, char *err, size_t errcap)
{
    /* 8 dims of up to 19 digits plus the fixed text stay far below this. */
    char hdr[384];
    uint8_t *chunk = NULL;
    size_t hlen, total, pad;
    uint64_t count = 1;
    int zero = 0, n;
    FILE *f;

    if (!path || ndim < 0 || ndim > NPY_MAX_DIMS || (ndim > 0 && !shape)) {
        set_err(err, errcap, "npy_write: bad arguments (ndim %d)", (int)ndim);
        return -1;
    }
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            set_err(err, errcap, "npy_write: negative dimension %lld",
                    (long long)shape[i]);
            return -1;
        }
        if (shape[i] == 0) zero = 1;
    }
    if (zero) count = 0;
    else
        for (int32_t i = 0; i < ndim; i++) {
            if (count > UINT64_MAX / (uint64_t)shape[i] ||
                count * (uint64_t)shape[i] > SIZE_MAX / sizeof(float)) {
                set_err(err, errcap, "npy_write: shape product overflows");
                return -1;
            }
            count *= (uint64_t)shape[i];
        }
    if (count && !data) {
        set_err(err, errcap, "npy_write: data is NULL");
        return -1;
    }

    /* numpy's own layout: "{'descr': '<f4', 'fortran_order': False,
     * 'shape': (2, 3), }", spaces, '\n', the whole prefix a multiple of 64. */
    n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int32_t i = 0; i < ndim; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)shape[i]);
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    hlen = (size_t)n;
    total = 10 + hlen + 1;
    pad = (64 - total % 64) % 64;
    if (hlen + pad + 1 >= sizeof hdr) { /* cannot happen with <= 8 dims */
        set_err(err, errcap, "npy_write: header too long");
        return -1;
    }
    memset(hdr + hlen, ' ', pad);
    hlen += pad;
    hdr[hlen++] = '\n';

    chunk = malloc(NPY_CHUNK);
    if (!chunk) {
        set_err(err, errcap, "out of memory");
        return -1;
    }
    f = fopen(path, "wb");
    if (!f) {
        set_err(err, errcap, "%s: cannot create: %s", path, strerror(errno));
        free(chunk);
        return -1;
    }
    {
        uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                           (uint8_t)hlen, (uint8_t)(hlen >> 8)};
        int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre &&
                 fwrite(hdr, 1, hlen, f) == hlen;
        /* Byte by byte to little-endian, so a big-endian host writes the
         * same file. */
        for (uint64_t i = 0; ok && i < count;) {
            size_t m = 0;
            while (i < count && m + 4 <= NPY_CHUNK) {
                uint32_t b;
                memcpy(&b, &data[i++], sizeof b);
                wr_le32(chunk + m, b);
                m += 4;
            }
            ok = fwrite(chunk, 1, m, f) == m;
        }
        if (!ok) {
            set_err(err, errcap, "%s: write failed: %s", path, strerror(errno));
            fclose(f);
            remove_partial(path);
            free(chunk);
            return -1;
        }
    }
    free(chunk);
    if (fclose(f) != 0) {
        set_err(err, errcap, "%s: write failed: %s", path, strerror(errno));
        remove_partial(path);
        return -1;
    }
    return 0;
}

void npy_free(npy_array *a)
{
    if (!a) return;
    free(a->data);
    a->data = NULL;
    a->ndim = 0;
    a->count = 0;
}
