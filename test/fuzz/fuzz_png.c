/* fuzz_png.c - libFuzzer harness for the PNG reader of the examples and the
 * CLI (png_read_rgb_mem): every colour type, bit depth, Adam7, chunk order
 * and zlib stream. Built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, the
 * reader skips chunk CRCs so that mutations get past them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/png.h"

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "fuzz_png: broken promise: %s (line %d)\n", #c, \
                    __LINE__);                                                \
            abort();                                                          \
        }                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    png_rgb img;
    char err[256];
    err[0] = '\0';
    int rc = png_read_rgb_mem(data, size, &img, err, sizeof err);
    if (rc != 0) {
        CHECK(rc == -1 && img.pixels == NULL && img.width == 0 && img.height == 0);
        CHECK(err[0] != '\0');
        png_free(&img);
        return 0;
    }
    CHECK(img.pixels != NULL && img.width >= 1 && img.height >= 1);
    CHECK(img.maxval == 1 || img.maxval == 3 || img.maxval == 15 || img.maxval == 255 ||
          img.maxval == 65535);
    CHECK((uint64_t)img.width * img.height <= (1ull << 30));
    size_t n = (size_t)img.width * img.height * 3;
    /* every sample written (MSan would say more; ASan checks the bounds)
     * and within maxval */
    for (size_t i = 0; i < n; i++) CHECK(img.pixels[i] <= img.maxval);
    png_free(&img);
    CHECK(img.pixels == NULL);
    png_free(&img);
    return 0;
}
