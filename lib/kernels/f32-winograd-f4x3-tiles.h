/*
 * f32-winograd-f4x3-tiles.h - the F(4x4, 3x3) input and output transforms
 * over n tiles at once, tile index innermost, so that every line below is a
 * loop over contiguous floats that the compiler turns into vector code of
 * the file's ISA. Included by f32-winograd-f4x3-{scalar,avx2-fma,avx512,
 * neon}.c, which name the functions; the arithmetic is identical in all of
 * them (no contraction into FMAs: -ffp-contract=off below keeps results
 * bit-identical across ISAs). Loops marked [vec] must vectorise
 * (test/test_vectorised.sh).
 *
 * Layouts: d[e * ld + t] is element e = 6 * row + col of tile t's 6x6 input;
 * v[xi * vs + t] its transform; m[xi * ms + t] a product; y[e * ld + t]
 * element e = 4 * row + col of tile t's 4x4 output. n <= WG_MAX_TILES.
 */
#include <stddef.h>

#define WG_MAX_TILES 64

#ifdef __clang__
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("tree-vectorize", "fp-contract=off")
#endif

/* Outputs never overlap inputs or each other (restrict lets the compiler
 * vectorize without runtime alias checks, which it gives up on past 10). */
static inline void wg_bt6(size_t n, const float *restrict x0, const float *restrict x1,
                          const float *restrict x2, const float *restrict x3,
                          const float *restrict x4, const float *restrict x5,
                          float *restrict y0, float *restrict y1, float *restrict y2,
                          float *restrict y3, float *restrict y4, float *restrict y5)
{
    for (size_t t = 0; t < n; t++) { /* [vec] */
        float a0 = x0[t], a1 = x1[t], a2 = x2[t], a3 = x3[t], a4 = x4[t], a5 = x5[t];
        y0[t] = 4.0f * a0 - 5.0f * a2 + a4;
        y1[t] = -4.0f * a1 - 4.0f * a2 + a3 + a4;
        y2[t] = 4.0f * a1 - 4.0f * a2 - a3 + a4;
        y3[t] = -2.0f * a1 - a2 + 2.0f * a3 + a4;
        y4[t] = 2.0f * a1 - a2 - 2.0f * a3 + a4;
        y5[t] = 4.0f * a1 - 5.0f * a3 + a5;
    }
}

static inline void wg_at4(size_t n, const float *restrict x0, const float *restrict x1,
                          const float *restrict x2, const float *restrict x3,
                          const float *restrict x4, const float *restrict x5,
                          float *restrict y0, float *restrict y1, float *restrict y2,
                          float *restrict y3)
{
    for (size_t t = 0; t < n; t++) { /* [vec] */
        float p12 = x1[t] + x2[t], m12 = x1[t] - x2[t], p34 = x3[t] + x4[t], m34 = x3[t] - x4[t];
        y0[t] = x0[t] + p12 + p34;
        y1[t] = m12 + 2.0f * m34;
        y2[t] = p12 + 4.0f * p34;
        y3[t] = m12 + 8.0f * m34 + x5[t];
    }
}

static inline void wg_g6(size_t n, const float *restrict x0, const float *restrict x1,
                         const float *restrict x2, float *restrict y0, float *restrict y1,
                         float *restrict y2, float *restrict y3, float *restrict y4,
                         float *restrict y5)
{
    for (size_t t = 0; t < n; t++) { /* [vec] */
        float a0 = x0[t], a1 = x1[t], a2 = x2[t];
        y0[t] = a0 * (1.0f / 4.0f);
        y1[t] = (a0 + a1 + a2) * (-1.0f / 6.0f);
        y2[t] = (a0 - a1 + a2) * (-1.0f / 6.0f);
        y3[t] = a0 * (1.0f / 24.0f) + a1 * (1.0f / 12.0f) + a2 * (1.0f / 6.0f);
        y4[t] = a0 * (1.0f / 24.0f) - a1 * (1.0f / 12.0f) + a2 * (1.0f / 6.0f);
        y5[t] = a2;
    }
}

/* U = G g G^T for n kernels: g[e * ld + t] (e = 3 * row + col < 9) ->
 * u[xi * us + t]. */
void WG_WEIGHT_NAME(size_t n, const float *g, size_t ld, float *u, size_t us)
{
    float tmp[18 * WG_MAX_TILES];
    const size_t L = WG_MAX_TILES;
    /* columns: tmp (6x3) = G g */
    for (size_t c = 0; c < 3; c++)
        wg_g6(n, g + c * ld, g + (3 + c) * ld, g + (6 + c) * ld, tmp + c * L, tmp + (3 + c) * L,
              tmp + (6 + c) * L, tmp + (9 + c) * L, tmp + (12 + c) * L, tmp + (15 + c) * L);
    /* rows: u (6x6) = tmp G^T */
    for (size_t r = 0; r < 6; r++) {
        const float *x = tmp + 3 * r * L;
        float *y = u + 6 * r * us;
        wg_g6(n, x, x + L, x + 2 * L, y, y + us, y + 2 * us, y + 3 * us, y + 4 * us, y + 5 * us);
    }
}

void WG_INPUT_NAME(size_t n, const float *d, size_t ld, float *v, size_t vs)
{
    float tmp[36 * WG_MAX_TILES];
    const size_t L = WG_MAX_TILES;
    /* columns: tmp = B^T d */
    for (size_t c = 0; c < 6; c++)
        wg_bt6(n, d + (0 + c) * ld, d + (6 + c) * ld, d + (12 + c) * ld, d + (18 + c) * ld,
               d + (24 + c) * ld, d + (30 + c) * ld, tmp + (0 + c) * L, tmp + (6 + c) * L,
               tmp + (12 + c) * L, tmp + (18 + c) * L, tmp + (24 + c) * L, tmp + (30 + c) * L);
    /* rows: v = tmp B */
    for (size_t r = 0; r < 6; r++) {
        const float *x = tmp + 6 * r * L;
        float *y = v + 6 * r * vs;
        wg_bt6(n, x, x + L, x + 2 * L, x + 3 * L, x + 4 * L, x + 5 * L, y, y + vs, y + 2 * vs,
               y + 3 * vs, y + 4 * vs, y + 5 * vs);
    }
}

/* The input transform of n consecutive tiles of one tile row, read straight
 * from the image: column x (x < 4n + 2) of row r of the first tile's 6x6
 * window is rows[r][x - lo] for lo <= x < hi, and zero (the image's
 * padding) outside. The same arithmetic as WG_INPUT_NAME in the same order,
 * so the same bits; but the column step (B^T d) runs once per image column
 * instead of once per tile column, since neighbouring tiles overlap by 2,
 * and no 6x6 gather comes first. */
void WG_INPUT_ROWS_NAME(size_t n, const float *const *rows, size_t lo, size_t hi, float *v,
                        size_t vs)
{
    float t[6][4 * WG_MAX_TILES + 4];
    float p[4][WG_MAX_TILES + 1];
    const size_t span = 4 * n + 2;
    /* B^T of zero columns is +0.0f in every row, as the padded form gives */
    for (size_t r = 0; r < 6; r++) {
        for (size_t x = 0; x < lo; x++) t[r][x] = 0.0f;
        for (size_t x = hi; x < span; x++) t[r][x] = 0.0f;
    }
    wg_bt6(hi - lo, rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], t[0] + lo, t[1] + lo,
           t[2] + lo, t[3] + lo, t[4] + lo, t[5] + lo);
    for (size_t r = 0; r < 6; r++) {
        const float *x = t[r];
        /* tile q's columns 0..5 are x[4q + c]: four phases, and columns 4
         * and 5 are phases 0 and 1 of tile q + 1 */
        for (size_t q = 0; q < n; q++) { /* [vec] */
            p[0][q] = x[4 * q];
            p[1][q] = x[4 * q + 1];
            p[2][q] = x[4 * q + 2];
            p[3][q] = x[4 * q + 3];
        }
        p[0][n] = x[4 * n];
        p[1][n] = x[4 * n + 1];
        float *y = v + 6 * r * vs;
        wg_bt6(n, p[0], p[1], p[2], p[3], p[0] + 1, p[1] + 1, y, y + vs, y + 2 * vs, y + 3 * vs,
               y + 4 * vs, y + 5 * vs);
    }
}

void WG_OUTPUT_NAME(size_t n, const float *m, size_t ms, float *y, size_t ld)
{
    float tmp[24 * WG_MAX_TILES];
    const size_t L = WG_MAX_TILES;
    /* columns: tmp (4x6) = A^T m */
    for (size_t c = 0; c < 6; c++)
        wg_at4(n, m + (0 + c) * ms, m + (6 + c) * ms, m + (12 + c) * ms, m + (18 + c) * ms,
               m + (24 + c) * ms, m + (30 + c) * ms, tmp + (0 + c) * L, tmp + (6 + c) * L,
               tmp + (12 + c) * L, tmp + (18 + c) * L);
    /* rows: y (4x4) = tmp A */
    for (size_t r = 0; r < 4; r++) {
        const float *x = tmp + 6 * r * L;
        float *o = y + 4 * r * ld;
        wg_at4(n, x, x + L, x + 2 * L, x + 3 * L, x + 4 * L, x + 5 * L, o, o + ld, o + 2 * ld,
               o + 3 * ld);
    }
}

/* The output transform of n consecutive whole tiles of one tile row, plus
 * bias, stored (or, with accumulate, added: o += y + bias) into the 4 image
 * rows they cover, rows[r][4q + c] for tile q. WG_OUTPUT_NAME's bits; the
 * stores are contiguous instead of 4-float pieces. */
void WG_OUTPUT_ROWS_NAME(size_t n, const float *m, size_t ms, float bias, float *const *rows,
                         int accumulate)
{
    float y[16 * WG_MAX_TILES];
    const size_t L = WG_MAX_TILES;
    WG_OUTPUT_NAME(n, m, ms, y, L);
    for (size_t r = 0; r < 4; r++) {
        const float *y0 = y + 4 * r * L, *y1 = y0 + L, *y2 = y1 + L, *y3 = y2 + L;
        float *o = rows[r];
        if (accumulate) {
            for (size_t q = 0; q < n; q++) { /* [vec] */
                o[4 * q] += y0[q] + bias;
                o[4 * q + 1] += y1[q] + bias;
                o[4 * q + 2] += y2[q] + bias;
                o[4 * q + 3] += y3[q] + bias;
            }
        } else {
            for (size_t q = 0; q < n; q++) { /* [vec] */
                o[4 * q] = y0[q] + bias;
                o[4 * q + 1] = y1[q] + bias;
                o[4 * q + 2] = y2[q] + bias;
                o[4 * q + 3] = y3[q] + bias;
            }
        }
    }
}
