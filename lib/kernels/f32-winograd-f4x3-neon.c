/* f32-winograd-f4x3-neon.c - the n-tile F(4x4, 3x3) transforms in 4-wide
 * vectors: the shared source (f32-winograd-f4x3-tiles.h) built for aarch64
 * Advanced SIMD (the baseline: no flags); bit-identical to the scalar twin.
 * On any other target it compiles to nothing. */
#include "kernels/winograd.h"

#if defined(__aarch64__)
#define WG_INPUT_NAME vae_f32_winograd_f4x3_input_tiles__neon
#define WG_WEIGHT_NAME vae_f32_winograd_f4x3_weight_tiles__neon
#define WG_OUTPUT_NAME vae_f32_winograd_f4x3_output_tiles__neon
#define WG_INPUT_ROWS_NAME vae_f32_winograd_f4x3_input_rows__neon
#define WG_OUTPUT_ROWS_NAME vae_f32_winograd_f4x3_output_rows__neon
#include "kernels/f32-winograd-f4x3-tiles.h"
#endif
