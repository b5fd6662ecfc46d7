/* png.h - a small PNG reader (every colour type, bit depth and interlacing
 * of the PNG spec) and an 8-bit RGB writer, on zlib. For the CLI, the
 * examples and the tests; not part of libsdxlvae. */
#ifndef SDXLVAE_EXAMPLES_PNG_H
#define SDXLVAE_EXAMPLES_PNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct png_rgb {
    uint32_t width, height;
    uint32_t maxval;   /* 255 for 8-bit sources (and palettes), 65535 for
                          16-bit, (1<<depth)-1 for 1/2/4-bit gray */
    uint16_t *pixels;  /* width*height*3 samples R,G,B row-major; malloc'ed */
} png_rgb;

/* Decodes any valid PNG to RGB: palette expanded, gray replicated, alpha and
 * tRNS ignored, 16-bit kept at full precision. Checks CRCs, sizes (overflow)
 * and chunk order. Returns 0, or -1 with a one-line reason in err.
 * Images over 2^30 pixels are refused. On failure *out is zeroed (pixels
 * NULL), so png_free(out) is always safe. err may be NULL. */
int png_read_rgb(const char *path, png_rgb *out, char *err, size_t errcap);
int png_read_rgb_mem(const uint8_t *buf, size_t len, png_rgb *out, char *err,
                     size_t errcap);
/* Writes 8-bit RGB, non-interlaced, straight to path (no temp file; a
 * partial regular file is removed on failure). rgb is width*height*3 bytes,
 * row-major. Returns 0, or -1 with err. */
int png_write_rgb8(const char *path, const uint8_t *rgb, uint32_t width,
                   uint32_t height, char *err, size_t errcap);
/* Frees the pixels; accepts NULL and an already freed image. */
void png_free(png_rgb *img);

#endif
