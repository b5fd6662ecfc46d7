/* f32-winograd-f4x3-scalar.c - the F(4x4, 3x3) transforms (winograd.h).
 * Each is a 1-D transform applied to the rows, then to the columns. They
 * cost well under 1% of a layer's GEMM work, so they stay scalar. */
#include "kernels/winograd.h"

/* B^T (6x6) applied to a vector of 6 */
static void bt6(const float *x, size_t sx, float *y, size_t sy)
{
    float x0 = x[0], x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx], x4 = x[4 * sx], x5 = x[5 * sx];
    y[0] = 4.0f * x0 - 5.0f * x2 + x4;
    y[sy] = -4.0f * x1 - 4.0f * x2 + x3 + x4;
    y[2 * sy] = 4.0f * x1 - 4.0f * x2 - x3 + x4;
    y[3 * sy] = -2.0f * x1 - x2 + 2.0f * x3 + x4;
    y[4 * sy] = 2.0f * x1 - x2 - 2.0f * x3 + x4;
    y[5 * sy] = 4.0f * x1 - 5.0f * x3 + x5;
}

void vae_f32_winograd_f4x3_input__scalar(const float *d, size_t ld, float *v, size_t vstride)
{
    float t[36], r[36];
    for (int i = 0; i < 6; i++) bt6(d + i, ld, t + i, 6);     /* columns: t = B^T d */
    for (int i = 0; i < 6; i++) bt6(t + 6 * i, 1, r + 6 * i, 1); /* rows: r = t B */
    for (int xi = 0; xi < 36; xi++) v[(size_t)xi * vstride] = r[xi];
}

/* G (6x3) applied to a vector of 3 */
static void g6(const float *x, size_t sx, float *y, size_t sy)
{
    float x0 = x[0], x1 = x[sx], x2 = x[2 * sx];
    y[0] = x0 * (1.0f / 4.0f);
    y[sy] = (x0 + x1 + x2) * (-1.0f / 6.0f);
    y[2 * sy] = (x0 - x1 + x2) * (-1.0f / 6.0f);
    y[3 * sy] = x0 * (1.0f / 24.0f) + x1 * (1.0f / 12.0f) + x2 * (1.0f / 6.0f);
    y[4 * sy] = x0 * (1.0f / 24.0f) - x1 * (1.0f / 12.0f) + x2 * (1.0f / 6.0f);
    y[5 * sy] = x2;
}

void vae_f32_winograd_f4x3_weight__scalar(const float *g, float *u, size_t ustride)
{
    float t[18], r[36];
    for (int i = 0; i < 3; i++) g6(g + i, 3, t + i, 3);       /* t (6x3) = G g */
    for (int i = 0; i < 6; i++) g6(t + 3 * i, 1, r + 6 * i, 1); /* r (6x6) = t G^T */
    for (int xi = 0; xi < 36; xi++) u[(size_t)xi * ustride] = r[xi];
}

/* A^T (4x6) applied to a vector of 6 */
static void at4(const float *x, size_t sx, float *y, size_t sy)
{
    float x0 = x[0], x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx], x4 = x[4 * sx], x5 = x[5 * sx];
    float p12 = x1 + x2, m12 = x1 - x2, p34 = x3 + x4, m34 = x3 - x4;
    y[0] = x0 + p12 + p34;
    y[sy] = m12 + 2.0f * m34;
    y[2 * sy] = p12 + 4.0f * p34;
    y[3 * sy] = m12 + 8.0f * m34 + x5;
}

void vae_f32_winograd_f4x3_output__scalar(const float *m, size_t mstride, float *y)
{
    float d[36], t[24];
    for (int xi = 0; xi < 36; xi++) d[xi] = m[(size_t)xi * mstride];
    for (int i = 0; i < 6; i++) at4(d + i, 6, t + i, 6);      /* t (4x6) = A^T d */
    for (int i = 0; i < 4; i++) at4(t + 6 * i, 1, y + 4 * i, 1); /* y (4x4) = t A */
}

/* The n-tile forms (winograd.h), from the shared source. */
#define WG_INPUT_NAME vae_f32_winograd_f4x3_input_tiles__scalar
#define WG_WEIGHT_NAME vae_f32_winograd_f4x3_weight_tiles__scalar
#define WG_OUTPUT_NAME vae_f32_winograd_f4x3_output_tiles__scalar
#include "kernels/f32-winograd-f4x3-tiles.h"
