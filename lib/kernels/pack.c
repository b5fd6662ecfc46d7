/*
 * pack.c - lays A and B out as the GEMM microkernels read them (kernels.h):
 * A in panels of MR rows stored k-major, B in panels of NR columns stored
 * k-major, both zero padded so a kernel can always compute a full tile.
 */
#include "kernels/kernels.h"

#include <string.h>

void vae_pack_a(size_t mr_tile, size_t m, size_t kc,
                const float *a, size_t lda, float *packed)
{
    for (size_t i0 = 0; i0 < m; i0 += mr_tile) {
        const size_t rows = m - i0 < mr_tile ? m - i0 : mr_tile;
        const float *ap = a + i0 * lda;
        /* Row-major reads (one row at a time, contiguous in k), strided
         * writes: the source is the bigger, colder stream. */
        for (size_t r = 0; r < rows; r++) {
            const float *src = ap + r * lda;
            float *dst = packed + r;
            for (size_t k = 0; k < kc; k++) dst[k * mr_tile] = src[k];
        }
        for (size_t r = rows; r < mr_tile; r++) {
            float *dst = packed + r;
            for (size_t k = 0; k < kc; k++) dst[k * mr_tile] = 0.0f;
        }
        packed += kc * mr_tile;
    }
}

void vae_pack_b(size_t nr_tile, size_t kc, size_t n,
                const float *b, size_t ldb, float *packed)
{
    for (size_t j0 = 0; j0 < n; j0 += nr_tile) {
        const size_t cols = n - j0 < nr_tile ? n - j0 : nr_tile;
        for (size_t k = 0; k < kc; k++) {
            float *dst = packed + k * nr_tile;
            memcpy(dst, b + k * ldb + j0, cols * sizeof *dst);
            for (size_t j = cols; j < nr_tile; j++) dst[j] = 0.0f;
        }
        packed += kc * nr_tile;
    }
}
