/* png.c - a PNG decoder (all colour types, bit depths, Adam7) to RGB16 and
 * an 8-bit RGB encoder, on zlib.
 *
 * Decoding is done in three steps: walk the chunks (CRC, order, IHDR/PLTE)
 * while streaming the IDAT payload through inflate into one buffer of the
 * exact filtered size; undo the row filters pass by pass; then expand each
 * pass's pixels into their place in the RGB output. */
#include "png.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* More pixels than this is refused outright: nothing here needs 1 Gpixel,
 * and it keeps every size computed below far from overflowing. */
#define PNG_MAX_PIXELS (1ull << 30)
#define PNG_MAX_CHUNK 0x7fffffffu
/* Inflate into a buffer that grows with the data actually decoded, so a
 * small file that claims a huge image cannot make us allocate it all. */
#define PNG_INFLATE_START (1u << 20)
#define PNG_IDAT_SIZE 65536
/* Fuzzer builds skip the chunk CRC so that mutations reach the code past it
 * (the convention libpng and libspng follow too). */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define PNG_CHECK_CRC 0
#else
#define PNG_CHECK_CRC 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PNG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PNG_PRINTF(f, a)
#endif

static void set_err(char *err, size_t cap, const char *fmt, ...) PNG_PRINTF(3, 4);
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (!err || cap == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

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

static uint32_t rd_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* Adam7: start column/row and step of each pass; pass 0 is "no interlace". */
static const uint8_t adam7[7][4] = {
    {0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
    {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2},
};

typedef struct pass_geom {
    uint32_t x0, y0, dx, dy;
    uint32_t w, h;       /* pixels in this pass (0 = empty pass) */
    size_t rowbytes;     /* without the filter byte */
    size_t off;          /* where its rows start in the inflated data */
} pass_geom;

typedef struct png_dec {
    char *err;
    size_t errcap;
    uint32_t w, h;
    int depth, ctype, interlace, channels;
    uint8_t plte[256 * 3];
    int nplte;
    int npass;
    pass_geom pass[7];
    size_t expected;     /* filtered bytes over all passes */
    z_stream zs;
    int zinit, zdone;
    uint8_t *raw;
    size_t rawcap;
} png_dec;

/* ---- IHDR ---------------------------------------------------------------- */

static int depth_ok(int ctype, int depth)
{
    switch (ctype) {
    case 0: return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3: return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2: case 4: case 6: return depth == 8 || depth == 16;
    default: return 0;
    }
}

static int parse_ihdr(png_dec *d, const uint8_t *p, uint32_t len, size_t at)
{
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    uint64_t pixels, total = 0;
    if (len != 13) {
        set_err(d->err, d->errcap, "chunk IHDR at byte %zu: length %u, expected 13", at, len);
        return -1;
    }
    d->w = rd_be32(p);
    d->h = rd_be32(p + 4);
    d->depth = p[8];
    d->ctype = p[9];
    d->interlace = p[12];
    if (d->w == 0 || d->w > PNG_MAX_CHUNK || d->h == 0 || d->h > PNG_MAX_CHUNK) {
        set_err(d->err, d->errcap, "IHDR: image size %ux%u out of range (1..2^31-1)",
                d->w, d->h);
        return -1;
    }
    if (d->ctype > 6 || chans[d->ctype] == 0) {
        set_err(d->err, d->errcap, "IHDR: invalid colour type %d", d->ctype);
        return -1;
    }
    if (!depth_ok(d->ctype, d->depth)) {
        set_err(d->err, d->errcap, "IHDR: bit depth %d is not allowed with colour type %d",
                d->depth, d->ctype);
        return -1;
    }
    if (p[10] != 0 || p[11] != 0) {
        set_err(d->err, d->errcap, "IHDR: unknown %s method %d",
                p[10] != 0 ? "compression" : "filter", p[10] != 0 ? p[10] : p[11]);
        return -1;
    }
    if (d->interlace > 1) {
        set_err(d->err, d->errcap, "IHDR: unknown interlace method %d", d->interlace);
        return -1;
    }
    pixels = (uint64_t)d->w * d->h;
    if (pixels > PNG_MAX_PIXELS) {
        set_err(d->err, d->errcap, "IHDR: image %ux%u has %llu pixels, more than the "
                "limit of 2^30", d->w, d->h, (unsigned long long)pixels);
        return -1;
    }
    if (pixels > SIZE_MAX / (3 * sizeof(uint16_t))) {
        set_err(d->err, d->errcap, "IHDR: image %ux%u is too large for this machine",
                d->w, d->h);
        return -1;
    }
    d->channels = chans[d->ctype];
    d->npass = d->interlace ? 7 : 1;
    for (int i = 0; i < d->npass; i++) {
        pass_geom *g = &d->pass[i];
        uint64_t bits;
        if (d->interlace) {
            g->x0 = adam7[i][0];
            g->y0 = adam7[i][1];
            g->dx = adam7[i][2];
            g->dy = adam7[i][3];
        } else {
            g->x0 = g->y0 = 0;
            g->dx = g->dy = 1;
        }
        g->w = d->w > g->x0 ? (d->w - g->x0 + g->dx - 1) / g->dx : 0;
        g->h = d->h > g->y0 ? (d->h - g->y0 + g->dy - 1) / g->dy : 0;
        bits = (uint64_t)g->w * (uint64_t)d->channels * (uint64_t)d->depth;
        g->rowbytes = (size_t)((bits + 7) / 8);
        g->off = (size_t)total;
        /* An empty pass has no rows and so no filter bytes either. */
        if (!g->w || !g->h) g->w = g->h = 0;
        else total += (uint64_t)g->h * (1 + (uint64_t)g->rowbytes);
    }
    /* At most 2^30 pixels of 8 bytes plus a filter byte per row: < 2^34. */
    if (total >= SIZE_MAX) {
        set_err(d->err, d->errcap, "IHDR: image %ux%u is too large for this machine",
                d->w, d->h);
        return -1;
    }
    d->expected = (size_t)total;
    return 0;
}

/* ---- IDAT ---------------------------------------------------------------- */

static int feed_idat(png_dec *d, const uint8_t *p, uint32_t len, size_t at)
{
    if (!d->zinit) {
        memset(&d->zs, 0, sizeof d->zs);
        if (inflateInit(&d->zs) != Z_OK) {
            set_err(d->err, d->errcap, "zlib: inflateInit failed");
            return -1;
        }
        d->zinit = 1;
        /* One byte more than expected: a stream that fills it is too long. */
        d->rawcap = d->expected + 1 < PNG_INFLATE_START ? d->expected + 1
                                                        : PNG_INFLATE_START;
        d->raw = malloc(d->rawcap);
        if (!d->raw) {
            set_err(d->err, d->errcap, "out of memory for %zu bytes", d->rawcap);
            return -1;
        }
        d->zs.next_out = d->raw;
        d->zs.avail_out = (uInt)d->rawcap;
    }
    d->zs.next_in = (Bytef *)(uintptr_t)p; /* zlib's API is not const-clean */
    d->zs.avail_in = len;
    while (d->zs.avail_in > 0) {
        size_t produced;
        int r;
        if (d->zdone) {
            set_err(d->err, d->errcap, "chunk IDAT at byte %zu: data after the end of the "
                    "zlib stream", at);
            return -1;
        }
        if (d->zs.avail_out == 0) {
            produced = (size_t)(d->zs.next_out - d->raw);
            if (produced == d->rawcap) {
                /* Full, and below expected + 1 (else we had failed). */
                size_t ncap = d->rawcap > (d->expected + 1) / 2 ? d->expected + 1
                                                                : d->rawcap * 2;
                uint8_t *nraw = realloc(d->raw, ncap);
                if (!nraw) {
                    set_err(d->err, d->errcap, "out of memory for %zu bytes", ncap);
                    return -1;
                }
                d->raw = nraw;
                d->rawcap = ncap;
            }
            d->zs.next_out = d->raw + produced;
            d->zs.avail_out = (uInt)(d->rawcap - produced > UINT_MAX ? UINT_MAX
                                                                      : d->rawcap - produced);
        }
        r = inflate(&d->zs, Z_NO_FLUSH);
        produced = (size_t)(d->zs.next_out - d->raw);
        if (produced > d->expected) {
            set_err(d->err, d->errcap, "chunk IDAT at byte %zu: image data is longer than "
                    "the %zu bytes IHDR implies", at, d->expected);
            return -1;
        }
        if (r == Z_STREAM_END) {
            d->zdone = 1;
            if (produced != d->expected) {
                set_err(d->err, d->errcap, "chunk IDAT at byte %zu: image data is %zu "
                        "bytes, IHDR implies %zu", at, produced, d->expected);
                return -1;
            }
        } else if (r == Z_BUF_ERROR) {
            /* No progress: out of output space (grow above) or input (done). */
            if (d->zs.avail_out != 0) break;
        } else if (r != Z_OK) {
            if (d->zs.msg)
                set_err(d->err, d->errcap, "chunk IDAT at byte %zu: zlib: %s", at, d->zs.msg);
            else
                set_err(d->err, d->errcap, "chunk IDAT at byte %zu: zlib error %d", at, r);
            return -1;
        }
    }
    return 0;
}

/* ---- filters and pixels --------------------------------------------------- */

static uint8_t paeth(int a, int b, int c)
{
    int p = a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return (uint8_t)a;
    return (uint8_t)(pb <= pc ? b : c);
}

static int unfilter_pass(png_dec *d, int pi)
{
    const pass_geom *g = &d->pass[pi];
    size_t bpp = (size_t)(d->channels * d->depth + 7) / 8; /* >= 1 byte */
    size_t rb = g->rowbytes;
    uint8_t *prev = NULL;
    for (uint32_t y = 0; y < g->h; y++) {
        uint8_t *row = d->raw + g->off + (size_t)y * (rb + 1);
        uint8_t *cur = row + 1;
        int ft = row[0];
        size_t i;
        switch (ft) {
        case 0:
            break;
        case 1:
            for (i = bpp; i < rb; i++) cur[i] = (uint8_t)(cur[i] + cur[i - bpp]);
            break;
        case 2:
            if (prev)
                for (i = 0; i < rb; i++) cur[i] = (uint8_t)(cur[i] + prev[i]);
            break;
        case 3:
            for (i = 0; i < rb; i++) {
                int a = i >= bpp ? cur[i - bpp] : 0, b = prev ? prev[i] : 0;
                cur[i] = (uint8_t)(cur[i] + ((a + b) >> 1));
            }
            break;
        case 4:
            for (i = 0; i < rb; i++) {
                int a = i >= bpp ? cur[i - bpp] : 0, b = prev ? prev[i] : 0;
                int c = prev && i >= bpp ? prev[i - bpp] : 0;
                cur[i] = (uint8_t)(cur[i] + paeth(a, b, c));
            }
            break;
        default:
            if (d->interlace)
                set_err(d->err, d->errcap, "IDAT: pass %d row %u: invalid filter type %d",
                        pi + 1, y, ft);
            else
                set_err(d->err, d->errcap, "IDAT: row %u: invalid filter type %d", y, ft);
            return -1;
        }
        prev = cur;
    }
    return 0;
}

/* Sample i of a row, MSB-first packing for depths below 8. */
static unsigned sample(const uint8_t *row, size_t i, int depth)
{
    size_t bit;
    if (depth == 8) return row[i];
    if (depth == 16) return (unsigned)row[2 * i] << 8 | row[2 * i + 1];
    bit = i * (size_t)depth;
    return (unsigned)(row[bit >> 3] >> (8 - depth - (int)(bit & 7))) & ((1u << depth) - 1);
}

static int expand_pass(png_dec *d, int pi, uint16_t *out)
{
    const pass_geom *g = &d->pass[pi];
    int ch = d->channels, dep = d->depth;
    for (uint32_t y = 0; y < g->h; y++) {
        const uint8_t *row = d->raw + g->off + (size_t)y * (g->rowbytes + 1) + 1;
        size_t oy = (size_t)g->y0 + (size_t)y * g->dy;
        for (uint32_t x = 0; x < g->w; x++) {
            size_t ox = (size_t)g->x0 + (size_t)x * g->dx;
            uint16_t *o = out + (oy * d->w + ox) * 3;
            size_t s = (size_t)x * (size_t)ch;
            if (d->ctype == 3) {
                unsigned idx = sample(row, s, dep);
                if ((int)idx >= d->nplte) {
                    set_err(d->err, d->errcap, "pixel (%zu, %zu): palette index %u out of "
                            "range (PLTE has %d entries)", ox, oy, idx, d->nplte);
                    return -1;
                }
                o[0] = d->plte[3 * idx];
                o[1] = d->plte[3 * idx + 1];
                o[2] = d->plte[3 * idx + 2];
            } else if (ch <= 2) { /* gray, gray+alpha: replicate, drop alpha */
                o[0] = o[1] = o[2] = (uint16_t)sample(row, s, dep);
            } else {              /* RGB, RGBA: drop alpha */
                o[0] = (uint16_t)sample(row, s, dep);
                o[1] = (uint16_t)sample(row, s + 1, dep);
                o[2] = (uint16_t)sample(row, s + 2, dep);
            }
        }
    }
    return 0;
}

/* ---- chunk walk ----------------------------------------------------------- */

static int is_letter(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int decode(png_dec *d, const uint8_t *buf, size_t len, png_rgb *out)
{
    size_t pos = 8;
    int seen_ihdr = 0, seen_plte = 0, seen_iend = 0;
    int idat = 0; /* 0 none yet, 1 in the IDAT run, 2 after it */
    uint16_t *pix;

    if (len < 8 || memcmp(buf, png_sig, 8) != 0) {
        set_err(d->err, d->errcap, len >= 8 || (len > 0 && memcmp(buf, png_sig, len) != 0)
                                       ? "not a PNG file (bad signature)"
                                       : "truncated: too short for a PNG file");
        return -1;
    }
    while (!seen_iend) {
        const uint8_t *p, *type;
        uint32_t clen;
        char name[5];
        if (len - pos < 12) {
            if (pos == len)
                set_err(d->err, d->errcap, "truncated: no IEND chunk (file ends at byte %zu)",
                        pos);
            else
                set_err(d->err, d->errcap, "truncated chunk at byte %zu", pos);
            return -1;
        }
        clen = rd_be32(buf + pos);
        type = buf + pos + 4;
        p = buf + pos + 8;
        if (!is_letter(type[0]) || !is_letter(type[1]) || !is_letter(type[2]) ||
            !is_letter(type[3])) {
            set_err(d->err, d->errcap, "chunk at byte %zu: invalid chunk type "
                    "0x%02x%02x%02x%02x", pos, type[0], type[1], type[2], type[3]);
            return -1;
        }
        memcpy(name, type, 4);
        name[4] = '\0';
        if (clen > PNG_MAX_CHUNK) {
            set_err(d->err, d->errcap, "chunk %s at byte %zu: length %u exceeds 2^31-1",
                    name, pos, clen);
            return -1;
        }
        if (clen > len - pos - 12) {
            set_err(d->err, d->errcap, "chunk %s at byte %zu: length %u runs past the end "
                    "of the file (truncated)", name, pos, clen);
            return -1;
        }
        if (PNG_CHECK_CRC &&
            (uint32_t)crc32(crc32(0L, Z_NULL, 0), type, clen + 4) != rd_be32(p + clen)) {
            set_err(d->err, d->errcap, "chunk %s at byte %zu: CRC mismatch", name, pos);
            return -1;
        }
        if (!seen_ihdr && strcmp(name, "IHDR") != 0) {
            set_err(d->err, d->errcap, "chunk %s at byte %zu: the first chunk must be IHDR",
                    name, pos);
            return -1;
        }
        if (idat == 1 && strcmp(name, "IDAT") != 0) idat = 2;

        if (strcmp(name, "IHDR") == 0) {
            if (seen_ihdr) {
                set_err(d->err, d->errcap, "chunk IHDR at byte %zu: duplicate IHDR", pos);
                return -1;
            }
            seen_ihdr = 1;
            if (parse_ihdr(d, p, clen, pos) != 0) return -1;
        } else if (strcmp(name, "PLTE") == 0) {
            if (seen_plte || idat) {
                set_err(d->err, d->errcap, "chunk PLTE at byte %zu: %s", pos,
                        idat ? "PLTE after IDAT" : "duplicate PLTE");
                return -1;
            }
            if (d->ctype == 0 || d->ctype == 4) {
                set_err(d->err, d->errcap, "chunk PLTE at byte %zu: PLTE is not allowed in "
                        "a gray image", pos);
                return -1;
            }
            if (clen == 0 || clen % 3 != 0 || clen > 768) {
                set_err(d->err, d->errcap, "chunk PLTE at byte %zu: bad length %u", pos,
                        clen);
                return -1;
            }
            seen_plte = 1;
            /* For RGB images PLTE is only a suggestion; keep it unused. */
            memcpy(d->plte, p, clen);
            d->nplte = (int)(clen / 3);
        } else if (strcmp(name, "IDAT") == 0) {
            if (idat == 2) {
                set_err(d->err, d->errcap, "chunk IDAT at byte %zu: IDAT chunks are not "
                        "consecutive", pos);
                return -1;
            }
            if (d->ctype == 3 && !seen_plte) {
                set_err(d->err, d->errcap, "chunk IDAT at byte %zu: palette image without "
                        "PLTE before IDAT", pos);
                return -1;
            }
            idat = 1;
            if (feed_idat(d, p, clen, pos) != 0) return -1;
        } else if (strcmp(name, "IEND") == 0) {
            if (clen != 0) {
                set_err(d->err, d->errcap, "chunk IEND at byte %zu: length %u, expected 0",
                        pos, clen);
                return -1;
            }
            seen_iend = 1;
        } else if (!(type[0] & 0x20)) {
            /* Uppercase first letter: critical, and we cannot skip it. */
            set_err(d->err, d->errcap, "chunk %s at byte %zu: unknown critical chunk", name,
                    pos);
            return -1;
        }
        /* Ancillary chunks (tRNS, gAMA, text, ...) are skipped. Bytes after
         * IEND are ignored, as most decoders do. */
        pos += 12 + (size_t)clen;
    }
    if (!idat) {
        set_err(d->err, d->errcap, "no IDAT chunk");
        return -1;
    }
    if (!d->zdone) {
        set_err(d->err, d->errcap, "IDAT: zlib stream truncated (%zu of %zu bytes of image "
                "data)", (size_t)(d->zs.next_out - d->raw), d->expected);
        return -1;
    }

    for (int i = 0; i < d->npass; i++)
        if (unfilter_pass(d, i) != 0) return -1;
    pix = malloc((size_t)d->w * d->h * 3 * sizeof *pix);
    if (!pix) {
        set_err(d->err, d->errcap, "out of memory for a %ux%u image", d->w, d->h);
        return -1;
    }
    for (int i = 0; i < d->npass; i++)
        if (expand_pass(d, i, pix) != 0) {
            free(pix);
            return -1;
        }
    out->width = d->w;
    out->height = d->h;
    /* Palette entries are 8-bit whatever the index depth. */
    out->maxval = d->ctype == 3 ? 255u : (1u << d->depth) - 1;
    out->pixels = pix;
    return 0;
}

int png_read_rgb_mem(const uint8_t *buf, size_t len, png_rgb *out, char *err,
                     size_t errcap)
{
    png_dec *d;
    int rc;
    if (!out) {
        set_err(err, errcap, "png_read_rgb_mem: out is NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!buf) {
        set_err(err, errcap, "png_read_rgb_mem: buf is NULL");
        return -1;
    }
    d = calloc(1, sizeof *d);
    if (!d) {
        set_err(err, errcap, "out of memory");
        return -1;
    }
    d->err = err;
    d->errcap = errcap;
    rc = decode(d, buf, len, out);
    if (d->zinit) inflateEnd(&d->zs);
    free(d->raw);
    free(d);
    if (rc != 0) memset(out, 0, sizeof *out);
    return rc;
}

int png_read_rgb(const char *path, png_rgb *out, char *err, size_t errcap)
{
    FILE *f;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;
    if (!out) {
        set_err(err, errcap, "png_read_rgb: out is NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!path) {
        set_err(err, errcap, "png_read_rgb: path is NULL");
        return -1;
    }
    f = fopen(path, "rb");
    if (!f) {
        set_err(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* Read to EOF with a growing buffer: works for pipes as well as files. */
    for (;;) {
        size_t n;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            uint8_t *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                set_err(err, errcap, "%s: out of memory reading the file", path);
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        set_err(err, errcap, "%s: read error: %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    rc = png_read_rgb_mem(buf, len, out, err, errcap);
    free(buf);
    if (rc != 0) prefix_path(err, errcap, path);
    return rc;
}

void png_free(png_rgb *img)
{
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
}

/* ---- writer --------------------------------------------------------------- */

typedef struct png_enc {
    FILE *f;
    int ok;
} png_enc;

static void put_chunk(png_enc *e, const char *type, const uint8_t *data, uint32_t len)
{
    uint8_t hdr[8], crc[4];
    uLong c;
    if (!e->ok) return;
    wr_be32(hdr, len);
    memcpy(hdr + 4, type, 4);
    c = crc32(0L, Z_NULL, 0);
    c = crc32(c, (const Bytef *)type, 4);
    if (len) c = crc32(c, data, len);
    wr_be32(crc, (uint32_t)c);
    e->ok = fwrite(hdr, 1, 8, e->f) == 8 && (len == 0 || fwrite(data, 1, len, e->f) == len) &&
            fwrite(crc, 1, 4, e->f) == 4;
}

/* Filter one row with type ft into dst (dst[0] = ft); returns the sum of
 * |signed byte| that libpng's heuristic minimises. */
static unsigned long filter_row(uint8_t *dst, const uint8_t *cur, const uint8_t *prev,
                                size_t rb, int ft)
{
    unsigned long sum = 0;
    dst[0] = (uint8_t)ft;
    for (size_t i = 0; i < rb; i++) {
        int a = i >= 3 ? cur[i - 3] : 0, b = prev ? prev[i] : 0;
        int c = prev && i >= 3 ? prev[i - 3] : 0, pred;
        uint8_t v;
        switch (ft) {
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) >> 1; break;
        case 4: pred = paeth(a, b, c); break;
        default: pred = 0; break;
        }
        v = (uint8_t)(cur[i] - pred);
        dst[i + 1] = v;
        sum += v < 128 ? v : 256u - v;
    }
    return sum;
}

/* Runs deflate with flush and writes full IDAT chunks as the buffer fills. */
static int deflate_out(png_enc *e, z_stream *zs, uint8_t *obuf, int flush)
{
    for (;;) {
        int r = deflate(zs, flush);
        if (r == Z_STREAM_ERROR) return -1;
        if (zs->avail_out == 0 || (r == Z_STREAM_END && zs->avail_out < PNG_IDAT_SIZE)) {
            put_chunk(e, "IDAT", obuf, (uint32_t)(PNG_IDAT_SIZE - zs->avail_out));
            zs->next_out = obuf;
            zs->avail_out = PNG_IDAT_SIZE;
            if (!e->ok) return -1;
        }
        if (r == Z_STREAM_END) return 0;
        /* Input consumed and deflate had room left: it wants more input. */
        if (flush == Z_NO_FLUSH && zs->avail_in == 0 && zs->avail_out != 0) return 0;
    }
}

int png_write_rgb8(const char *path, const uint8_t *rgb, uint32_t width,
                   uint32_t height, char *err, size_t errcap)
{
    png_enc e = {NULL, 1};
    z_stream zs;
    uint8_t ihdr[13], *best = NULL, *trial = NULL, *obuf = NULL;
    size_t rb;
    int zok = 0, rc = -1;

    if (!path || !rgb || width == 0 || height == 0 || width > PNG_MAX_CHUNK ||
        height > PNG_MAX_CHUNK) {
        set_err(err, errcap, "png_write_rgb8: bad arguments (%ux%u)", width, height);
        return -1;
    }
    if ((uint64_t)width * height > PNG_MAX_PIXELS ||
        (uint64_t)width * height > SIZE_MAX / 3) {
        set_err(err, errcap, "png_write_rgb8: image %ux%u is too large", width, height);
        return -1;
    }
    rb = (size_t)width * 3;
    best = malloc(rb + 1);
    trial = malloc(rb + 1);
    obuf = malloc(PNG_IDAT_SIZE);
    memset(&zs, 0, sizeof zs);
    if (!best || !trial || !obuf) {
        set_err(err, errcap, "out of memory");
        goto done;
    }
    if (deflateInit(&zs, 6) != Z_OK) {
        set_err(err, errcap, "zlib: deflateInit failed");
        goto done;
    }
    zok = 1;
    e.f = fopen(path, "wb");
    if (!e.f) {
        set_err(err, errcap, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    errno = 0;
    e.ok = fwrite(png_sig, 1, 8, e.f) == 8;
    wr_be32(ihdr, width);
    wr_be32(ihdr + 4, height);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    put_chunk(&e, "IHDR", ihdr, 13);
    zs.next_out = obuf;
    zs.avail_out = PNG_IDAT_SIZE;
    for (uint32_t y = 0; y < height && e.ok; y++) {
        const uint8_t *cur = rgb + (size_t)y * rb;
        const uint8_t *prev = y ? cur - rb : NULL;
        unsigned long bestsum = filter_row(best, cur, prev, rb, 0);
        /* Pick the filter with the smallest sum of |residual|: cheap and
         * usually within a few percent of trying them all with zlib. */
        for (int ft = 1; ft <= 4; ft++) {
            unsigned long s = filter_row(trial, cur, prev, rb, ft);
            if (s < bestsum) {
                uint8_t *t = best;
                best = trial;
                trial = t;
                bestsum = s;
            }
        }
        zs.next_in = best;
        zs.avail_in = (uInt)(rb + 1); /* rb+1 <= 3*2^30+1 < UINT_MAX */
        if (deflate_out(&e, &zs, obuf, Z_NO_FLUSH) != 0) break;
    }
    if (e.ok && deflate_out(&e, &zs, obuf, Z_FINISH) != 0) e.ok = 0;
    put_chunk(&e, "IEND", NULL, 0);
    if (!e.ok) {
        set_err(err, errcap, "%s: write failed: %s", path,
                errno ? strerror(errno) : "deflate error");
        fclose(e.f);
        remove_partial(path);
        goto done;
    }
    if (fclose(e.f) != 0) {
        set_err(err, errcap, "%s: write failed: %s", path, strerror(errno));
        remove_partial(path);
        goto done;
    }
    rc = 0;
done:
    if (zok) deflateEnd(&zs);
    free(best);
    free(trial);
    free(obuf);
    return rc;
}
