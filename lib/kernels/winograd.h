/*
 * winograd.h - the transforms of Winograd's F(4x4, 3x3) (Lavin & Gray 2015,
 * interpolation points 0, 1, -1, 2, -2, infinity): a 3x3 convolution
 * computed on 6x6 input tiles as 36 independent channel products, 4x fewer
 * multiplications than the direct form. The products themselves run on the
 * GEMM microkernels; only the transforms live here.
 */
#ifndef SDXLVAE_KERNELS_WINOGRAD_H
#define SDXLVAE_KERNELS_WINOGRAD_H

#include <stddef.h>

#define VAE_HIDDEN __attribute__((visibility("hidden")))

/* The transforms over n <= 64 tiles at once, tile index innermost:
 * d[e * ld + t] (e = 6 * row + col) -> v[xi * vs + t], and
 * m[xi * ms + t] -> y[e * ld + t] (e = 4 * row + col). Every ISA's twin gives
 * the same bits (no FMA contraction). */
typedef void (*vae_wg_input_fn)(size_t n, const float *d, size_t ld, float *v, size_t vs);
typedef void (*vae_wg_output_fn)(size_t n, const float *m, size_t ms, float *y, size_t ld);
/* The same for n <= 64 consecutive tiles of one tile row, straight from and
 * to the image rows they cover (input: 6 rows, columns lo .. hi-1 of the
 * 4n + 2 the tiles span, the rest zero; output: 4 rows of 4n, plus bias,
 * stored or added). Bit-identical to the forms above. */
#define VAE_WG_DECL(isa)                                                                    \
    VAE_HIDDEN void vae_f32_winograd_f4x3_input_tiles__##isa(size_t n, const float *d,      \
                                                             size_t ld, float *v, size_t vs); \
    VAE_HIDDEN void vae_f32_winograd_f4x3_output_tiles__##isa(size_t n, const float *m,     \
                                                              size_t ms, float *y, size_t ld); \
    VAE_HIDDEN void vae_f32_winograd_f4x3_weight_tiles__##isa(size_t n, const float *g,     \
                                                              size_t ld, float *u, size_t us); \
    VAE_HIDDEN void vae_f32_winograd_f4x3_input_rows__##isa(                                   \
        size_t n, const float *const *rows, size_t lo, size_t hi, float *v, size_t vs);        \
    VAE_HIDDEN void vae_f32_winograd_f4x3_output_rows__##isa(                                  \
        size_t n, const float *m, size_t ms, float bias, float *const *rows, int accumulate);
VAE_WG_DECL(scalar)
VAE_WG_DECL(avx2_fma)
VAE_WG_DECL(avx512)
VAE_WG_DECL(neon)

#endif
