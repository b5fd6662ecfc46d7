/*
 * kernels.h - the arithmetic of libsdxlvae: one function per (kernel, ISA).
 *
 * Naming follows XNNPACK: vae_<dtype>_<op>_ukernel_<tile>__<isa>, one file
 * per kernel and ISA (lib/kernels/f32-gemm-6x16-avx2-fma.c, ...). Every SIMD
 * kernel has a scalar twin that is its reference in test/test_kernels.c.
 *
 * The ops (lib/ops/) never call a kernel by name: they go through the table
 * returned by vae_kernels(), filled once from cpuid (lib/kernels/dispatch.c).
 */
#ifndef SDXLVAE_KERNELS_H
#define SDXLVAE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define VAE_HIDDEN __attribute__((visibility("hidden")))

/*
 * GEMM microkernel:  C[0:mr, 0:nr] (+)= A[0:mr, 0:kc] * B[0:kc, 0:nr]
 *
 *  a   packed A panel: kc groups of MR floats; group k holds A[0..MR-1][k].
 *      Rows >= mr are zero padded by the packer.
 *  b   packed B panel: kc groups of NR floats; group k holds B[k][0..NR-1].
 *      Columns >= nr are zero padded by the packer.
 *  c   row-major output, row stride ldc floats; only mr x nr is touched.
 *  accumulate  0: C = A*B, 1: C += A*B.
 *
 * 1 <= mr <= MR, 1 <= nr <= NR, kc >= 1. The summation order over k is fixed
 * (k = 0, 1, ...), so results do not depend on how work is split over threads.
 */
typedef void (*vae_gemm_ukernel_fn)(size_t mr, size_t nr, size_t kc,
                                    const float *a, const float *b, float *c,
                                    size_t ldc, int accumulate);

/*
 * im2col of one B panel of a convolution whose every tap, for the panel's
 * pixels, reads one run of the input plane (stride-1 taps of a panel inside
 * one image row, the padding at either end):
 *
 *   row kq (0 <= kq < kc) is tap t = (t0 + kq) % taps of channel
 *   c = (t0 + kq) / taps;  dst[kq * nr + i] = in[c * plane + run[t].off + i - run[t].lo]
 *   for run[t].lo <= i < run[t].hi, and 0 elsewhere in [0, nr).
 *
 * Nothing outside the runs is read (the SIMD kernels use masked loads, which
 * do not touch masked-out lanes). 0 <= lo <= hi <= nr; off is unused when
 * lo == hi (a tap on a padding row).
 */
typedef struct vae_tap_run {
    int64_t off;       /* offset in the plane of the run's first element */
    int32_t lo, hi;    /* pixels [lo, hi) of the panel read the run */
} vae_tap_run;
/*
 * The same for taps that read every other float (the Downsample's stride 2):
 *
 *   dst[kq * nr + i] = in[c * plane + run[t].off + 2 * (i - run[t].lo)]
 *
 * for lo <= i < hi, 0 elsewhere; nothing outside [off, off + 2 (hi - lo) - 1)
 * is read (the floats between the ones taken lie inside it).
 */
/* For the SIMD kernels, which load whole vectors from pixel 0 of a row with
 * lanes outside the run masked off: where pixel 0 would read, step * lo
 * floats before the run's first element of channel c, possibly before the
 * plane, hence an integer (never dereferenced outside the run). */
static inline uintptr_t vae_tap_run_base(const float *in, size_t c, size_t plane,
                                         const vae_tap_run *r, size_t step)
{
    return r->hi > r->lo
               ? (uintptr_t)(in + c * plane + r->off) - step * (size_t)r->lo * sizeof(float)
               : (uintptr_t)in;
}
typedef void (*vae_im2col_ukernel_fn)(size_t kc, size_t nr, size_t taps, size_t t0,
                                      const float *in, size_t plane, const vae_tap_run *run,
                                      float *dst);

/* Half-precision to fp32 conversion (weights are stored as F16 or BF16). */
typedef void (*vae_cvt_ukernel_fn)(size_t n, const uint16_t *src, float *dst);

typedef struct vae_kernel_table {
    const char *isa;            /* "scalar", "avx2-fma", "avx512", "neon" */
    size_t gemm_mr, gemm_nr;    /* tile of .gemm */
    vae_gemm_ukernel_fn gemm;
    vae_im2col_ukernel_fn im2col;   /* packs B panels of NR columns */
    vae_im2col_ukernel_fn im2col_s2; /* the same from stride-2 taps */
    vae_cvt_ukernel_fn f16_to_f32;
    vae_cvt_ukernel_fn bf16_to_f32;
    /* Winograd F(4x4, 3x3) transforms over many tiles (winograd.h) */
    void (*wg_input)(size_t n, const float *d, size_t ld, float *v, size_t vs);
    void (*wg_output)(size_t n, const float *m, size_t ms, float *y, size_t ld);
    void (*wg_weight)(size_t n, const float *g, size_t ld, float *u, size_t us);
    void (*wg_input_rows)(size_t n, const float *const *rows, size_t lo, size_t hi, float *v,
                          size_t vs);
    void (*wg_output_rows)(size_t n, const float *m, size_t ms, float bias, float *const *rows,
                           int accumulate);
    /* GroupNorm: sum of x, sum of (x - mean)^2 (in double), and
     * y = (x - mean) * a + b (then SiLU) */
    double (*sum)(size_t n, const float *x);
    double (*sqdev)(size_t n, const float *x, double mean);
    void (*norm_silu)(size_t n, const float *x, float *y, float mean, float a, float b, int silu);
    /* x = softmax(x) over one row of n */
    void (*softmax)(size_t n, float *x);
} vae_kernel_table;

/* ISA levels for vae_kernels_set_max_isa(). The tables' GEMM tiles are 6x16,
 * and 12x32 for AVX-512. Weights are packed once, at load, for the table's
 * MR, so a model keeps the table it was loaded with (vae_model.kt). */
#define VAE_ISA_SCALAR 0
#define VAE_ISA_AVX2_FMA 1
#define VAE_ISA_NEON 2
#define VAE_ISA_AVX512 3 /* AVX-512F/VL (+ the AVX2 level's FMA, F16C) */
#define VAE_ISA_BEST 99

/* The kernels for this CPU; chosen once, thread-safe. Never NULL. */
VAE_HIDDEN const vae_kernel_table *vae_kernels(void);
/* The scalar table (the reference for tests). */
VAE_HIDDEN const vae_kernel_table *vae_kernels_scalar(void);
/* Test hook (libwebp's habit): cap the ISA so every path can be tested.
 * The environment variable SDXLVAE_ISA=scalar does the same at first use;
 * SDXLVAE_ISA=avx2 (or avx2-fma) caps at VAE_ISA_AVX2_FMA on x86-64. */
VAE_HIDDEN void vae_kernels_set_max_isa(int isa);
/* 1 when this build has the table of level isa (VAE_ISA_SCALAR, _AVX2_FMA,
 * _AVX512, _NEON) and this CPU and OS can run it, whatever the caps; else 0.
 * For tests: which kernels they can call. */
VAE_HIDDEN int vae_kernels_cpu_supports(int isa);

/* Packing helpers, shared by every ISA (they depend only on MR/NR). */
/* Packs rows [0, m) of row-major A (row stride lda) columns [k0, k0+kc)
 * into ceil(m/MR) panels of kc*MR floats each, zero padded. */
VAE_HIDDEN void vae_pack_a(size_t mr_tile, size_t m, size_t kc,
                           const float *a, size_t lda, float *packed);
/* Packs rows [0, kc) of row-major B (row stride ldb) columns [0, n) into
 * ceil(n/NR) panels of kc*NR floats, zero padded. */
VAE_HIDDEN void vae_pack_b(size_t nr_tile, size_t kc, size_t n,
                           const float *b, size_t ldb, float *packed);

/* ---- the kernels themselves (called through the table) ---- */
VAE_HIDDEN void vae_f32_gemm_ukernel_6x16__scalar(size_t mr, size_t nr, size_t kc,
                                                  const float *a, const float *b,
                                                  float *c, size_t ldc, int acc);
VAE_HIDDEN void vae_f32_gemm_ukernel_6x16__avx2_fma(size_t mr, size_t nr, size_t kc,
                                                    const float *a, const float *b,
                                                    float *c, size_t ldc, int acc);
VAE_HIDDEN void vae_f32_gemm_ukernel_12x32__scalar(size_t mr, size_t nr, size_t kc,
                                                   const float *a, const float *b,
                                                   float *c, size_t ldc, int acc);
/* x86-64 with AVX-512F/VL (lib/kernels/f32-gemm-12x32-avx512.c). */
VAE_HIDDEN void vae_f32_gemm_ukernel_12x32__avx512(size_t mr, size_t nr, size_t kc,
                                                   const float *a, const float *b,
                                                   float *c, size_t ldc, int acc);
/* lib/kernels/f32-im2col-{scalar,avx2,avx512}.c and f32-im2col-s2-*.c;
 * NEON uses the scalar ones. */
#define VAE_IM2COL_DECL(isa)                                                                \
    VAE_HIDDEN void vae_f32_im2col_ukernel__##isa(size_t kc, size_t nr, size_t taps,        \
                                                   size_t t0, const float *in, size_t plane, \
                                                   const vae_tap_run *run, float *dst);     \
    VAE_HIDDEN void vae_f32_im2col_s2_ukernel__##isa(size_t kc, size_t nr, size_t taps,     \
                                                      size_t t0, const float *in, size_t plane, \
                                                      const vae_tap_run *run, float *dst);
VAE_IM2COL_DECL(scalar)
VAE_IM2COL_DECL(avx2)
VAE_IM2COL_DECL(avx512)
/* aarch64 only (lib/kernels/f32-gemm-6x16-neon.c). */
VAE_HIDDEN void vae_f32_gemm_ukernel_6x16__neon(size_t mr, size_t nr, size_t kc,
                                                const float *a, const float *b,
                                                float *c, size_t ldc, int acc);
VAE_HIDDEN void vae_f16_f32_cvt_ukernel__scalar(size_t n, const uint16_t *src, float *dst);
VAE_HIDDEN void vae_f16_f32_cvt_ukernel__f16c(size_t n, const uint16_t *src, float *dst);
/* aarch64 only, as are the _neon kernels below (files named *-neon.c). */
VAE_HIDDEN void vae_f16_f32_cvt_ukernel__neon(size_t n, const uint16_t *src, float *dst);
VAE_HIDDEN void vae_bf16_f32_cvt_ukernel__scalar(size_t n, const uint16_t *src, float *dst);
/* fp32 to IEEE binary16, round to nearest even: the loader's, for
 * VAE_LOAD_HALF_WEIGHTS (not in the table: it runs once per weight). */
VAE_HIDDEN void vae_f32_f16_cvt_ukernel__scalar(size_t n, const float *src, uint16_t *dst);

#define VAE_GN_DECL(isa)                                                                   \
    VAE_HIDDEN double vae_f32_sum_ukernel__##isa(size_t n, const float *x);               \
    VAE_HIDDEN double vae_f32_sqdev_ukernel__##isa(size_t n, const float *x, double mean); \
    VAE_HIDDEN void vae_f32_norm_silu_ukernel__##isa(size_t n, const float *x, float *y,  \
                                                     float mean, float a, float b, int silu);
#define VAE_SOFTMAX_DECL(isa) VAE_HIDDEN void vae_f32_softmax_ukernel__##isa(size_t n, float *x);
VAE_SOFTMAX_DECL(scalar)
VAE_SOFTMAX_DECL(avx2_fma)
VAE_SOFTMAX_DECL(avx512)
VAE_SOFTMAX_DECL(neon)
VAE_GN_DECL(scalar)
VAE_GN_DECL(avx2_fma)
VAE_GN_DECL(avx512)
VAE_GN_DECL(neon)

#endif
