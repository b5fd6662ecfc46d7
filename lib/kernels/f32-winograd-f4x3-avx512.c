/* f32-winograd-f4x3-avx512.c - the n-tile F(4x4, 3x3) transforms in 16-wide
 * vectors: the shared source (f32-winograd-f4x3-tiles.h) built with
 * -mavx512f; bit-identical to the scalar twin. */
#include "kernels/winograd.h"

#define WG_INPUT_NAME vae_f32_winograd_f4x3_input_tiles__avx512
#define WG_WEIGHT_NAME vae_f32_winograd_f4x3_weight_tiles__avx512
#define WG_OUTPUT_NAME vae_f32_winograd_f4x3_output_tiles__avx512
#define WG_INPUT_ROWS_NAME vae_f32_winograd_f4x3_input_rows__avx512
#define WG_OUTPUT_ROWS_NAME vae_f32_winograd_f4x3_output_rows__avx512
#include "kernels/f32-winograd-f4x3-tiles.h"
