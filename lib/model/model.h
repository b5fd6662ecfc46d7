/*
 * model.h - the AutoencoderKL of Stable Diffusion as data: its architecture
 * (from config.json or inferred from tensor shapes) and its weights, loaded
 * into fp32 and packed for the kernels, or kept in 16 bits
 * (VAE_LOAD_HALF_WEIGHTS) and widened per call.
 */
#ifndef SDXLVAE_MODEL_H
#define SDXLVAE_MODEL_H

#include <pthread.h>
#include <stdint.h>

#include "core/common.h"
#include "format/safetensors.h"
#include "ops/ops.h"

/* Tensor naming schemes found in released files. */
#define VAE_NAMING_LDM 0            /* sgm / original: encoder.down.0.block.0 */
#define VAE_NAMING_DIFFUSERS 1      /* encoder.down_blocks.0.resnets.0, to_q   */
#define VAE_NAMING_LEGACY 2         /* diffusers with query/key/value/proj_attn */

typedef struct vae_arch {
    int32_t levels;
    int32_t ch[VAE_MAX_LEVELS];     /* block_out_channels */
    int32_t layers_per_block;
    int32_t latent_channels;
    int32_t in_channels, out_channels;
    int32_t groups;
    float eps;
    float scale, shift;
    int32_t use_quant_conv, use_post_quant_conv;
    int32_t has_encoder, has_decoder;
} vae_arch;

typedef struct vae_resnet {
    vae_norm norm1, norm2;
    vae_conv conv1, conv2;
    vae_conv shortcut;              /* 1x1, only when in != out channels */
    int has_shortcut;
} vae_resnet;

typedef struct vae_attn {
    vae_norm norm;
    vae_conv q, k, v, proj;         /* 1x1 convolutions (linear layers) */
} vae_attn;

typedef struct vae_level {
    vae_resnet *res;
    int32_t n_res;
    vae_conv sample;                /* Downsample (encoder) / Upsample conv */
    int has_sample;
} vae_level;

typedef struct vae_coder {
    vae_conv conv_in;
    vae_level levels[VAE_MAX_LEVELS]; /* index = ldm level: 0 is full size */
    vae_resnet mid1, mid2;
    vae_attn attn;
    vae_norm norm_out;
    vae_conv conv_out;
} vae_coder;

struct vae_model {
    vae_arch arch;
    vae_coder enc, dec;
    vae_conv quant_conv, post_quant_conv;
    int32_t naming;
    int32_t weight_dtype;           /* VAE_DTYPE_* */
    uint64_t n_params;
    uint64_t weight_bytes;          /* vae_model_weight_bytes() */
    int32_t n_threads;              /* default for calls */
    /* The kernels the weights were packed for (their MR): every call on this
     * model runs with them, whatever vae_kernels() returns by then. */
    const vae_kernel_table *kt;
    char *path;                     /* the weights file */
    /* The last error on this handle, guarded: the model is shared. */
    pthread_mutex_t err_lock;
    vae_error last_err;
};

/* config.json -> arch (fields absent from the file keep their value). With
 * implicit (found beside the weights, not named by the caller), a config of
 * another class returns VAE_ERR_NOT_OURS instead of an error. */
#define VAE_ERR_NOT_OURS 1
VAE_HIDDEN int32_t vae_arch_from_config(const char *config_path, vae_arch *arch, int implicit,
                                        vae_error *err);
/* Fills what shapes tell (levels, channels, layers, latent channels, quant
 * convs) into arch, and checks it against a config-given arch when
 * from_config is set. */
VAE_HIDDEN int32_t vae_arch_infer(const st_file *f, const char *prefix, int32_t naming,
                                  vae_arch *arch, int from_config, vae_error *err);
VAE_HIDDEN void vae_arch_defaults(vae_arch *arch);

/* Naming: finds the key prefix ("", "first_stage_model.", "vae.") and the
 * scheme. */
VAE_HIDDEN int32_t vae_detect_naming(const st_file *f, char *prefix, size_t prefix_cap,
                                     int32_t *naming, vae_error *err);

/* Names of tensors, in the scheme of the file. `side` is "encoder" or
 * "decoder"; `level` is the ldm level (0 = full size). All write a name
 * without the ".weight"/".bias" suffix into buf. */
typedef struct vae_names {
    const char *prefix;
    int32_t naming;
    int32_t levels;
} vae_names;
VAE_HIDDEN void vae_name_resnet(const vae_names *nm, char *buf, size_t cap, int dec,
                                int level, int j);
VAE_HIDDEN void vae_name_mid_resnet(const vae_names *nm, char *buf, size_t cap, int dec,
                                    int which);
VAE_HIDDEN void vae_name_sample(const vae_names *nm, char *buf, size_t cap, int dec,
                                int level);
VAE_HIDDEN void vae_name_attn(const vae_names *nm, char *buf, size_t cap, int dec,
                              const char *part);
VAE_HIDDEN void vae_name_top(const vae_names *nm, char *buf, size_t cap, int dec,
                             const char *part);
/* Resnet sub-layer names: "norm1", "conv1", "norm2", "conv2", "shortcut". */
VAE_HIDDEN const char *vae_name_resnet_part(const vae_names *nm, const char *part);

/* The whole load: file -> arch -> weights. */
VAE_HIDDEN int32_t vae_model_load(const char *path, const char *config_path, uint32_t flags,
                                  struct vae_model **out, vae_error *err);
VAE_HIDDEN void vae_model_free(struct vae_model *m);
/* Bytes the model's weights take in memory: every array allocated at load
 * for weights, biases, norms and packed copies (as vae_alloc rounds them),
 * 16-bit with VAE_LOAD_HALF_WEIGHTS; not the handle's small structs. */
VAE_HIDDEN uint64_t vae_model_weight_bytes(const struct vae_model *m);

/* The graph. Single image; x is 3 x h x w. */
VAE_HIDDEN int32_t vae_run_encoder(const struct vae_model *m, vae_ctx *ctx, const float *x,
                                   int32_t h, int32_t w, float *moments, vae_error *err);
VAE_HIDDEN int32_t vae_run_decoder(const struct vae_model *m, vae_ctx *ctx, const float *z,
                                   int32_t h, int32_t w, float *img, vae_error *err);

/* Tiled execution (tiled.c): a plan of checkpoints and a tile side that fits
 * a memory budget, and its run. */
#define VAE_MAX_UNITS 256
typedef struct vae_tiled_plan_t {
    int fits;                 /* 0: no plan within the budget */
    int32_t tile;             /* image pixels */
    int n_ckpt;               /* segments; ckpt[0..n_ckpt] are stored points */
    int ckpt[VAE_MAX_UNITS + 1];
    unsigned char flash[VAE_MAX_UNITS + 1]; /* by segment start: attention in flash form */
    double cost, base_cost;   /* multiply-adds: this plan, untiled */
    uint64_t bytes;           /* its peak working memory */
    uint64_t min_bytes;       /* the least any plan needs (with force_tile, with that tile) */
    int32_t min_tile;         /* ... and its tile side */
} vae_tiled_plan_t;
VAE_HIDDEN int32_t vae_tiled_plan(const struct vae_model *m, int dec, int32_t h, int32_t w,
                                  uint64_t budget, int32_t force_tile, int circular,
                                  int n_threads, vae_tiled_plan_t *plan);
VAE_HIDDEN int32_t vae_run_tiled(const struct vae_model *m, vae_ctx *ctx, int dec, const float *in,
                                 int32_t h, int32_t w, float *out, const vae_tiled_plan_t *plan,
                                 int circular, vae_error *err);
VAE_HIDDEN uint64_t vae_untiled_bytes(const struct vae_model *m, int dec, int32_t h, int32_t w,
                                     int n_threads);
/* Floats of the largest activation of an untiled pass (autoencoder.c). */
VAE_HIDDEN uint64_t vae_largest_activation(const vae_arch *a, int dec, int32_t h, int32_t w);

/* Progress: the cost (nominal multiply-adds) of one image through the encoder
 * (dec = 0, h x w image pixels) or the decoder (dec = 1, latent pixels), the
 * unit of ctx->progress_done and progress_total. */
VAE_HIDDEN double vae_graph_cost(const struct vae_model *m, int dec, int32_t h, int32_t w);
/* Calls ctx->progress with progress_done / progress_total (never 1.0) when
 * there is a callback; VAE_ERR_CANCELLED when it returns non-zero. */
VAE_HIDDEN int32_t vae_progress_report(vae_ctx *ctx, vae_error *err);

#endif
