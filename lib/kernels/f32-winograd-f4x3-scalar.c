/* f32-winograd-f4x3-scalar.c - the F(4x4, 3x3) transforms over n tiles
 * (winograd.h) from the shared source, built without ISA flags: the
 * reference the SIMD twins are compared with (bit for bit). */
#include "kernels/winograd.h"

/* The n-tile forms (winograd.h), from the shared source. */
#define WG_INPUT_NAME vae_f32_winograd_f4x3_input_tiles__scalar
#define WG_WEIGHT_NAME vae_f32_winograd_f4x3_weight_tiles__scalar
#define WG_OUTPUT_NAME vae_f32_winograd_f4x3_output_tiles__scalar
#define WG_INPUT_ROWS_NAME vae_f32_winograd_f4x3_input_rows__scalar
#define WG_OUTPUT_ROWS_NAME vae_f32_winograd_f4x3_output_rows__scalar
#include "kernels/f32-winograd-f4x3-tiles.h"
