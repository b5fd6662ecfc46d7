/*
 * ops.h - the layers of the VAE on single-image CHW fp32 tensors: shape
 * logic, splitting the work over threads, and the choice of kernel. The
 * arithmetic itself is in lib/kernels/.
 */
#ifndef SDXLVAE_OPS_H
#define SDXLVAE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "core/threadpool.h"
#include "kernels/kernels.h"

/* A matrix packed once for the GEMM microkernel (A side): K is cut into
 * blocks of VAE_GEMM_KC; block kb holds ceil(M/MR) panels of kc*MR floats. */
typedef struct vae_packed {
    size_t m, k, mr;
    float *data;
} vae_packed;

/* How many floats vae_pack_weights needs for an m x k matrix. */
VAE_HIDDEN uint64_t vae_packed_floats(size_t m, size_t k, size_t mr);
/* Packs row-major a (m x k) into p->data (allocated here). */
VAE_HIDDEN int32_t vae_packed_init(vae_packed *p, size_t m, size_t k, size_t mr,
                                   const float *a);
VAE_HIDDEN void vae_packed_free(vae_packed *p);
/* The same into a caller's buffer of vae_packed_floats() floats (not owned). */
VAE_HIDDEN void vae_packed_fill(vae_packed *p, size_t m, size_t k, size_t mr, const float *a,
                                float *buf);

typedef struct vae_conv {
    int32_t cout, cin, ksize;       /* ksize 1 or 3 */
    float *bias;                    /* cout */
    vae_packed w;                   /* cout x (cin*ksize*ksize) */
    /* For an Upsample's conv: the 3x3 kernel folded into four 2x2 kernels,
     * one per output pixel parity (see conv2d.c); w is then unused. */
    vae_packed sub[4];
    int has_sub;
    /* For stride-1 3x3 convs: the weights as stored (cout x cin x 3 x 3),
     * which the Winograd path transforms per call; w is then unused. */
    float *w_raw;
    /* With VAE_LOAD_HALF_WEIGHTS, every conv: the weights as stored
     * (cout x cin x k x k) in 16 bits, w16_dtype VAE_DTYPE_F16 or _BF16.
     * Each call widens them and then runs as if w_raw or w held them (see
     * vae_conv2d); w and w_raw are then unused. */
    uint16_t *w16;
    int32_t w16_dtype;
} vae_conv;

/* Prepares cv (cout, cin set, ksize 3) to run VAE_CONV_UP2 as four 2x2
 * convolutions on the low-resolution input: 16 instead of 36
 * multiply-adds per input pixel and channel pair. w is cout x cin x 3 x 3. */
VAE_HIDDEN int32_t vae_conv_prepare_upsample(vae_conv *cv, const float *w, size_t mr);
VAE_HIDDEN void vae_conv_free(vae_conv *cv);

typedef struct vae_norm {
    int32_t c;
    float *gamma, *beta;
} vae_norm;

/* Where the time goes, by kind of layer (the benchmark's -v). FLOPs are
 * nominal: 2 per multiply-add of the direct algorithm, whatever algorithm
 * ran, so GFLOP/s compare across implementations. */
#define VAE_PROF_CONV3X3 0      /* stride-1 3x3 convolutions */
#define VAE_PROF_CONV_UP 1      /* nearest-2x upsample + 3x3 convolution */
#define VAE_PROF_CONV_DOWN 2    /* stride-2 3x3 convolution (Downsample) */
#define VAE_PROF_CONV1X1 3      /* 1x1 convolutions (shortcuts, quant convs) */
#define VAE_PROF_NORM 4         /* GroupNorm (+ SiLU) */
#define VAE_PROF_ATTN 5         /* the whole mid-block attention */
#define VAE_PROF_KINDS 6
typedef struct vae_profile {
    double seconds[VAE_PROF_KINDS];
    double flops[VAE_PROF_KINDS];
    uint64_t calls[VAE_PROF_KINDS];
} vae_profile;
VAE_HIDDEN const char *vae_prof_name(int kind);
VAE_HIDDEN double vae_now(void);

/* Per-call execution state: kernels, threads, scratch. Not shared between
 * concurrent calls, so the model itself stays immutable. */
typedef struct vae_ctx {
    const vae_kernel_table *kt;
    vae_pool *pool;
    int n_threads;
    float **scratch;                /* one B-packing buffer per thread */
    vae_profile *prof;              /* NULL unless profiling */
    int winograd;                   /* 0: direct convolutions only */
    /* Winograd buffers, kept for the whole call and grown as needed: a
     * fresh allocation per layer costs page faults on every touch. */
    float *wg_u;
    uint64_t wg_u_cap;
    float **wg_v, **wg_m;
    uint64_t wg_v_cap, wg_m_cap;
    /* Per thread: the output of one N chunk of a direct conv, cout rows of
     * up to VAE_GEMM_NC, summed over the K blocks there and written out once.
     * The output's own rows lie a power of two apart (h * w floats): 12 of
     * them fall in one L1 set, and a 512-channel chunk of 128 pixels in 1/32
     * of the L2's sets, so summing in place went to L3 for every K block. */
    float **chunk;
    uint64_t chunk_cap;
    /* 16-bit weights widened for the layer that runs, and packed when that
     * layer wants them packed: the model holds only the 16-bit copy. */
    float *wide, *wide_packed;
    uint64_t wide_cap, wide_packed_cap;
    /* Progress of the whole API call (model/autoencoder.c reports after
     * every layer): work is counted in nominal multiply-adds; done and total
     * span all the images of a batch. Zero from vae_ctx_init: no reports. */
    vae_progress_fn progress;
    void *progress_user;
    int32_t progress_stage;         /* VAE_STAGE_* */
    int progress_count_only;        /* 1: walk the graph adding up its cost,
                                       computing nothing */
    double progress_done, progress_total;
} vae_ctx;

/* Returns a buffer of at least n floats kept in *buf (capacity *cap),
 * growing it when needed; NULL when out of memory. */
VAE_HIDDEN float *vae_ctx_buffer(float **buf, uint64_t *cap, uint64_t n);
/* The same for one buffer per thread, bufs[0 .. ctx->n_threads), which
 * share the capacity *cap. VAE_OK or VAE_ERR_NO_MEMORY (then *cap is 0). */
VAE_HIDDEN int32_t vae_ctx_thread_buffers(const vae_ctx *ctx, float **bufs, uint64_t *cap,
                                          uint64_t n);

static inline void vae_prof_add(vae_ctx *ctx, int kind, double t0, double flops)
{
    if (!ctx->prof) return;
    ctx->prof->seconds[kind] += vae_now() - t0;
    ctx->prof->flops[kind] += flops;
    ctx->prof->calls[kind]++;
}

VAE_HIDDEN int32_t vae_ctx_init(vae_ctx *ctx, int n_threads, vae_error *err);
VAE_HIDDEN void vae_ctx_free(vae_ctx *ctx);

/* How a 3x3 convolution reads its input. */
#define VAE_CONV_SAME 0       /* stride 1, pad 1: out = in size            */
#define VAE_CONV_DOWN2 1      /* stride 2, pad (0,1,0,1): Downsample       */
#define VAE_CONV_UP2 2        /* nearest 2x upsample then SAME: Upsample   */

/*
 * out (cout x oh x ow) = conv(in) + bias, or, with accumulate, out += that
 * (a fused residual add). in is cin x h x w. 1x1 convs take mode SAME.
 */
VAE_HIDDEN int32_t vae_conv2d(vae_ctx *ctx, const vae_conv *cv, int mode, const float *in,
                              int32_t h, int32_t w, float *out, int accumulate,
                              vae_error *err);

/* The Winograd F(4x4, 3x3) path of vae_conv2d (winograd.c): stride 1,
 * pad 1, on in (h x w), or with up2 on its nearest-2x upsampling (2h x 2w,
 * never stored: the gather reads the input at half the coordinates). */
VAE_HIDDEN int32_t vae_conv3x3_winograd(vae_ctx *ctx, const vae_conv *cv, const float *w_raw,
                                        const float *in, int32_t h, int32_t w, int up2,
                                        float *out, int accumulate, vae_error *err);

/* GroupNorm's mean and 1/sqrt(var + eps) of the n floats of one group (the
 * statistics every form of GroupNorm uses). */
VAE_HIDDEN void vae_group_stats(const vae_kernel_table *kt, const float *x, size_t n, float eps,
                                double *mean, double *rstd);

/* out = GroupNorm(in) (then SiLU when silu). in and out may alias. */
VAE_HIDDEN void vae_groupnorm(vae_ctx *ctx, const vae_norm *nm, int32_t groups, float eps,
                              const float *in, int32_t h, int32_t w, float *out, int silu);

/* x += proj(attention(norm(x))): the mid-block single-head self-attention. */
VAE_HIDDEN int32_t vae_attention(vae_ctx *ctx, const vae_norm *nm, int32_t groups, float eps,
                                 const vae_conv *q, const vae_conv *k, const vae_conv *v,
                                 const vae_conv *proj, float *x, int32_t h, int32_t w,
                                 vae_error *err);
/* What vae_attention allocates for c channels and n positions with the
 * kernel tile mr x nr, in floats: seven C x N tensors (the padded K and V^T
 * among them) and each thread's score rows, packed rows and outputs. */
VAE_HIDDEN uint64_t vae_attention_floats(int32_t c, uint64_t n, int n_threads, size_t mr,
                                         size_t nr);

/* The same in about 3 C x N tensors (x, packed K, packed V^T) instead of 8:
 * the tiled executor's form (model/tiled.c). _floats gives its working
 * memory besides x, in floats. */
VAE_HIDDEN int32_t vae_attention_lean(vae_ctx *ctx, const vae_norm *nm, int32_t groups, float eps,
                                      const vae_conv *q, const vae_conv *k, const vae_conv *v,
                                      const vae_conv *proj, float *x, int32_t h, int32_t w,
                                      vae_error *err);
VAE_HIDDEN uint64_t vae_attention_lean_floats(int32_t c, uint64_t n, int n_threads, size_t nr);
/* With x and the output only (out = x + attention; they must not alias): K
 * and V are recomputed block by block for each chunk of queries, with a
 * running softmax. For budgets below the lean form's. */
VAE_HIDDEN int32_t vae_attention_flash(vae_ctx *ctx, const vae_norm *nm, int32_t groups, float eps,
                                       const vae_conv *q, const vae_conv *k, const vae_conv *v,
                                       const vae_conv *proj, const float *x, float *out, int32_t h,
                                       int32_t w, vae_error *err);
VAE_HIDDEN uint64_t vae_attention_flash_floats(int32_t c, int n_threads, size_t nr);

/* GroupNorm in pieces, for tiled execution: statistics gathered tile by tile
 * (acc holds count, mean, M2 per group, merged with Chan's update so the
 * result does not depend on the tiling beyond rounding), then applied with
 * the whole image's mean and 1/std. */
VAE_HIDDEN void vae_groupnorm_accumulate(vae_ctx *ctx, int32_t c, int32_t groups, const float *in,
                                         int32_t h, int32_t w, int32_t y0, int32_t y1, int32_t x0,
                                         int32_t x1, double *acc);
/* acc (3 x groups) -> mean (groups), rstd (groups) */
VAE_HIDDEN void vae_groupnorm_finish(const double *acc, int32_t groups, float eps, double *mean,
                                     double *rstd);
VAE_HIDDEN void vae_groupnorm_apply(vae_ctx *ctx, const vae_norm *nm, int32_t groups,
                                    const double *mean, const double *rstd, const float *in,
                                    int32_t h, int32_t w, float *out, int silu);

/* C (m x n, ldc) (+)= A (m x k, lda) * B (k x n, ldb): a plain GEMM over the
 * same microkernels, packing both sides on the fly. */
VAE_HIDDEN int32_t vae_gemm(vae_ctx *ctx, size_t m, size_t n, size_t k, const float *a,
                            size_t lda, const float *b, size_t ldb, float *c, size_t ldc,
                            int accumulate, vae_error *err);

/* Packs B[k0:k0+kc, n0:n0+nc] of some source into ceil(nc/nr) panels of
 * kc x nr floats (zero padded): im2col for convolutions, a plain copy for
 * matrices. */
typedef void (*vae_bpack_fn)(const void *src, size_t k0, size_t kc, size_t n0, size_t nc,
                             size_t nr, float *dst);

/* One column block of C = A * B (+ C): the serial core of every driver.
 * c points at column n0 of C (row stride ldc); bbuf holds
 * VAE_GEMM_KC * round_up(nc, NR) floats. */
VAE_HIDDEN void vae_gemm_chunk(const vae_kernel_table *kt, const vae_packed *a, size_t n0,
                               size_t nc, vae_bpack_fn pack, const void *bsrc, float *c,
                               size_t ldc, int accumulate, float *bbuf);

/* Packs all of row-major B (k x n, row stride ldb) for vae_gemm_prepacked:
 * K block k0 starts at dst + k0 * npad (npad = n rounded up to NR), as
 * ceil(n / NR) panels of kc x NR. dst holds k * npad floats. */
VAE_HIDDEN void vae_pack_b_all(const vae_kernel_table *kt, size_t k, size_t n, const float *b,
                               size_t ldb, float *dst);
/* C (m x n, row stride ldc) (+)= A * B with both sides packed: a by
 * vae_packed_*, b by vae_pack_b_all (for the same k and n). */
VAE_HIDDEN void vae_gemm_prepacked(const vae_kernel_table *kt, const vae_packed *a,
                                   const float *b, size_t n, float *c, size_t ldc, int accumulate);

/* Row-major matrix as a B source for vae_gemm_chunk. */
typedef struct vae_matrix {
    const float *p;
    size_t ld;
} vae_matrix;
VAE_HIDDEN void vae_bpack_matrix(const void *src, size_t k0, size_t kc, size_t n0,
                                 size_t nc, size_t nr, float *dst);

/* K-block and N-block of the GEMM drivers (floats): B blocks of KC x NC
 * stay in L2, A panels of KC x MR in L1. VAE_GEMM_NC is the widest N chunk
 * (it sizes the buffers); the convolutions take chunks of half that where
 * a wide chunk would leave too few per thread (conv2d.c). */
#define VAE_GEMM_KC 256
#define VAE_GEMM_NC 256
_Static_assert(VAE_GEMM_NC % 128 == 0, "N chunks, and half chunks, are whole panels for every NR up to 64");

#endif
