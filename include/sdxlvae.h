/*
 * sdxlvae.h - the public API of libsdxlvae.
 *
 * libsdxlvae runs the variational autoencoder of Stable Diffusion XL (and of
 * every VAE with the same architecture: SD1.x, SD2.x, SDXL with 4 latent
 * channels, SD3 and Flux.1 with 16) on the CPU, in plain C.
 *
 * Conventions that hold for every function below:
 *  - Every function that can fail returns an int32_t status: VAE_OK (0) or a
 *    negative VAE_ERR_* code. vae_strerror() names the code; vae_last_error()
 *    says what went wrong and where (file, tensor, byte offset, argument).
 *  - Tensors are float32, contiguous, NCHW (batch, channel, row, column).
 *    Images have 3 channels with values in [-1, 1]. Latents have
 *    vae_latent_channels() channels and sides 1/vae_downsample_factor() of the
 *    image's.
 *  - Output buffers are allocated by the caller; the vae_*_size() queries say
 *    how many floats they need. The library never keeps a pointer the caller
 *    passed in after the call returns.
 *  - Options are passed by pointer to a struct whose first member is its own
 *    size. Fill it with the matching *_init() function first; a NULL pointer
 *    means "all defaults". New fields are only ever appended.
 *  - A loaded model (vae_model) is immutable: any number of threads may call
 *    vae_encode()/vae_decode() on the same handle at the same time.
 *
 * ABI promise (see docs/abi.md): within SONAME libsdxlvae.so.1 no exported
 * function changes its signature or meaning and no struct field moves.
 */
#ifndef SDXLVAE_H
#define SDXLVAE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(SDXLVAE_BUILD)
#define VAE_API __declspec(dllexport)
#elif defined(_WIN32)
#define VAE_API __declspec(dllimport)
#elif defined(__GNUC__)
#define VAE_API __attribute__((visibility("default")))
#else
#define VAE_API
#endif

/* ---- Versions ----------------------------------------------------------- */

/* The release. The Makefile reads these three lines to name the library. */
#define VAE_VERSION_MAJOR 0
#define VAE_VERSION_MINOR 2
#define VAE_VERSION_PATCH 0
/* The ABI generation: the N of the SONAME libsdxlvae.so.N. */
#define VAE_ABI_VERSION 1

#define VAE_VERSION_NUMBER \
    (VAE_VERSION_MAJOR * 10000 + VAE_VERSION_MINOR * 100 + VAE_VERSION_PATCH)

/* The release of the library actually loaded, as VAE_VERSION_NUMBER. */
VAE_API uint32_t vae_version_number(void);
/* The same as a static string, e.g. "0.1.0". */
VAE_API const char *vae_version_string(void);
/* The ABI generation of the library actually loaded (VAE_ABI_VERSION). */
VAE_API uint32_t vae_abi_version(void);

/* ---- Status codes -------------------------------------------------------- */

#define VAE_OK 0
#define VAE_ERR_INVALID_ARGUMENT (-1) /* a NULL pointer, bad size or value    */
#define VAE_ERR_IO (-2)               /* a file could not be opened or read   */
#define VAE_ERR_FORMAT (-3)           /* a file is malformed                  */
#define VAE_ERR_UNSUPPORTED (-4)      /* well-formed, but not something we run */
#define VAE_ERR_MODEL (-5)            /* tensors missing or of the wrong shape */
#define VAE_ERR_NO_MEMORY (-6)        /* an allocation failed                 */
#define VAE_ERR_BUFFER_TOO_SMALL (-7) /* the output buffer capacity is short  */
#define VAE_ERR_INTERNAL (-8)         /* a bug: please report it              */
#define VAE_ERR_CANCELLED (-9)        /* the progress callback asked to stop  */

/* A static English name for a status code; never NULL. */
VAE_API const char *vae_strerror(int32_t status);

/* ---- Loading ------------------------------------------------------------- */

typedef struct vae_model vae_model;

/* Bits of vae_load_options.flags (0.2.0; 0.1.0 required 0). */
/* Skip the encoder's weights: a decode-only handle, on which vae_encode and
 * vae_encode_moments return VAE_ERR_UNSUPPORTED. */
#define VAE_LOAD_NO_ENCODER (1u << 0)
/* Skip the decoder's weights: an encode-only handle. */
#define VAE_LOAD_NO_DECODER (1u << 1)
/* Keep the weights in 16 bits in memory, half of fp32: F16 and BF16 files as
 * stored (exact), F32 files rounded to F16 (which adds rounding error:
 * docs/api.md gives it; a tensor with a value beyond the F16 range stays
 * F32). Compute stays fp32: each layer's weights are widened when it runs. */
#define VAE_LOAD_HALF_WEIGHTS (1u << 2)

typedef struct vae_load_options {
    uint32_t size;      /* sizeof(vae_load_options): set by the init function */
    uint32_t flags;     /* VAE_LOAD_* bits                                    */
    int32_t n_threads;  /* default thread count for calls on this handle;
                           0 = every CPU this process may run on; values
                           above 1024 are capped                              */
    int32_t reserved;   /* must be 0                                          */
    const char *config_path; /* a config.json to use instead of the one found
                                beside the weights; NULL = look for it        */
} vae_load_options;

/*
 * Fills the caller's struct with the defaults: call it as
 * vae_load_options_init(&opts, sizeof opts). size is the size of the struct
 * as the caller's header declares it, so a program built against an older
 * (smaller) or newer (larger) header is never written past its struct. Every
 * default is zero except size, and fields added in future versions will
 * default to zero too.
 */
VAE_API void vae_load_options_init(vae_load_options *opts, uint32_t size);

/*
 * Loads a VAE.
 *
 * path is a .safetensors file (a config.json in the same folder is used when
 * present, unless its _class_name names another model than AutoencoderKL),
 * or a folder in the diffusers layout (config.json plus
 * diffusion_pytorch_model.safetensors, directly or in its vae/ subfolder).
 * Both the original (ldm) tensor names and the diffusers names load, with or
 * without a "first_stage_model." or "vae." prefix, so the VAE of a full
 * checkpoint loads too. The weights the VAE reads may be F32, F16 or BF16
 * (other tensors of the file may have any dtype); compute is fp32.
 * Without a config.json the architecture is inferred from the tensor shapes,
 * with SDXL defaults for what shapes cannot tell (scaling factor 0.13025,
 * 32 groups). docs/formats.md has the details.
 *
 * On success *out receives a handle to free with vae_free(). On failure *out
 * is set to NULL and vae_last_error(NULL) on the same thread says why.
 */
VAE_API int32_t vae_load(const char *path, const vae_load_options *opts,
                         vae_model **out);

/* Frees a model; NULL is allowed. No call on the handle may be running. */
VAE_API void vae_free(vae_model *model);

/* ---- Queries ------------------------------------------------------------- */

/* Channels of a latent: 4 (SD1.x/2.x/SDXL) or 16 (SD3/Flux.1). */
VAE_API int32_t vae_latent_channels(const vae_model *model);
/* Image side / latent side: 8 for every released model. */
VAE_API int32_t vae_downsample_factor(const vae_model *model);
/* The latent scaling: scaled = (raw - shift) * scale. */
VAE_API float vae_scaling_factor(const vae_model *model);
VAE_API float vae_shift_factor(const vae_model *model);

/* Weight storage types reported by vae_model_info.weight_dtype. */
#define VAE_DTYPE_F32 0
#define VAE_DTYPE_F16 1
#define VAE_DTYPE_BF16 2
#define VAE_DTYPE_MIXED 3

#define VAE_MAX_LEVELS 8

typedef struct vae_model_info {
    uint32_t size;                /* sizeof(vae_model_info): set by caller */
    int32_t latent_channels;
    int32_t levels;               /* entries used in block_out_channels   */
    int32_t block_out_channels[VAE_MAX_LEVELS];
    int32_t layers_per_block;     /* resnets per encoder level            */
    int32_t norm_num_groups;
    int32_t downsample_factor;
    int32_t has_quant_conv;       /* 0 or 1 */
    int32_t has_post_quant_conv;  /* 0 or 1 */
    int32_t weight_dtype;         /* VAE_DTYPE_* as stored in the file     */
    int32_t has_encoder;          /* 0 for a decoder-only file             */
    int32_t has_decoder;
    float scaling_factor;
    float shift_factor;
    float norm_eps;
    uint64_t parameter_count;
    char family[32];              /* "SDXL", "SD1.x/SD2.x", "SD3/Flux.1", ... */
    char naming[16];              /* "ldm", "diffusers" or "legacy" (old diffusers attention names) */
} vae_model_info;

/* Fills the fields of *info that fit in info->size (set it to
 * sizeof(vae_model_info) first); bytes past what this library knows are left
 * untouched, and info->size is set to the number of bytes filled. */
VAE_API int32_t vae_get_info(const vae_model *model, vae_model_info *info);

/* ---- Running ------------------------------------------------------------- */

/* Bits of vae_run_options.flags. */
/* Latents are raw VAE space instead of the scaled space diffusion models use. */
#define VAE_FLAG_RAW_LATENT (1u << 0)
/* vae_encode draws a sample of the posterior (seeded) instead of its mean. */
#define VAE_FLAG_SAMPLE (1u << 1)
/* Every convolution in its direct form. By default the stride-1 3x3 ones
 * with at least 16 input and 16 output channels (every resnet conv and
 * every Upsample's; not those on the RGB side or on a 4-channel latent) use
 * Winograd's F(4x4, 3x3): its channel products take a quarter of the direct
 * form's multiply-adds, with slightly more rounding. Both forms stay far
 * inside the 1e-4 parity bound (docs/api.md, "Convolution algorithm"). */
#define VAE_FLAG_DIRECT_CONV (1u << 2)
/* (0.2.0) Run tiled even when the untiled estimate fits max_memory, with
 * the tile side in vae_run_options.tile (0 = the largest that fits). Tiled
 * output equals untiled output up to rounding (<= 1e-4 relative): GroupNorm
 * statistics are taken over the whole image and convolutions read their
 * neighbours' real pixels. */
#define VAE_FLAG_TILED (1u << 3)
/* (0.2.0) Wrap-around padding: every convolution reads the opposite edge
 * instead of zeros, so a decoded image tiles seamlessly (textures). Runs on
 * the tiled executor (one tile when the budget allows). */
#define VAE_FLAG_CIRCULAR (1u << 4)

/* Stages reported to a progress callback. */
#define VAE_STAGE_ENCODE 1  /* vae_encode, vae_encode_moments */
#define VAE_STAGE_DECODE 2  /* vae_decode */

/*
 * A progress callback (vae_run_options.progress). It is called on the thread
 * that made the run call, never on a worker: once with fraction 0 before any
 * work, after every layer of the network, and, on success, a last time with
 * exactly 1.0. fraction never decreases over one call and covers the whole
 * batch (all n images). Return 0 to go on; any other value cancels the call,
 * which then returns VAE_ERR_CANCELLED (the return value of the last call,
 * with 1.0, is ignored: the work is done). The callback must not free the
 * handle; it may call the library on other work.
 */
typedef int32_t (*vae_progress_fn)(void *user, float fraction, int32_t stage);

typedef struct vae_run_options {
    uint32_t size;      /* sizeof(vae_run_options): set by the init function */
    uint32_t flags;     /* VAE_FLAG_* bits                                    */
    int32_t n_threads;  /* 0 = the handle's default                           */
    int32_t reserved;   /* must be 0                                          */
    uint64_t seed;      /* with VAE_FLAG_SAMPLE: the noise seed               */
    vae_progress_fn progress; /* NULL = no progress reports               */
    void *progress_user;      /* passed to progress as its first argument */
    /* 0.2.0 */
    uint64_t max_memory;  /* bytes of working memory one call may use: its
                             activations and scratch, not the model's weights
                             nor the caller's buffers (vae_estimate_memory
                             reports all three). When an untiled run would
                             need more, the call runs tiled, in the way that
                             costs least within it. 0 = half the physical memory
                             (or of a container's cgroup limit, if lower). */
    int32_t tile;         /* tile side in image pixels, a multiple of
                             vae_downsample_factor(): run tiled with this
                             tile. 0 = tile only when needed (see flags)      */
    int32_t reserved2;    /* must be 0                                        */
} vae_run_options;

/* Fills the caller's struct with the defaults (posterior mean, scaled
 * latents, the handle's thread count, Winograd on, no progress callback):
 * vae_run_options_init(&opts, sizeof opts). As for vae_load_options_init,
 * size is the caller's struct size and every default is zero. */
VAE_API void vae_run_options_init(vae_run_options *opts, uint32_t size);

/* Floats needed for the latent of an n x 3 x height x width image. */
VAE_API int32_t vae_encoded_size(const vae_model *model, int32_t n,
                                 int32_t height, int32_t width,
                                 uint64_t *n_floats);
/* Floats needed for the image of an n x C x lheight x lwidth latent. */
VAE_API int32_t vae_decoded_size(const vae_model *model, int32_t n,
                                 int32_t lheight, int32_t lwidth,
                                 uint64_t *n_floats);

/*
 * Encodes n images (n x 3 x height x width, values in [-1, 1]) into latents
 * (n x C x height/f x width/f, f = vae_downsample_factor()). height and width
 * must be multiples of f. latent_capacity is the number of floats latent can
 * hold. The latent is the posterior mean, or a sample with VAE_FLAG_SAMPLE,
 * scaled unless VAE_FLAG_RAW_LATENT.
 */
VAE_API int32_t vae_encode(const vae_model *model, const float *image,
                           int32_t n, int32_t height, int32_t width,
                           float *latent, uint64_t latent_capacity,
                           const vae_run_options *opts);

/*
 * Like vae_encode, but writes the raw moments: n x 2C x height/f x width/f,
 * the first C channels the posterior mean, the last C the log-variance (not
 * clamped). Needs twice the capacity of vae_encoded_size(). Moments are
 * always raw: VAE_FLAG_RAW_LATENT and VAE_FLAG_SAMPLE do not apply to them.
 */
VAE_API int32_t vae_encode_moments(const vae_model *model, const float *image,
                                   int32_t n, int32_t height, int32_t width,
                                   float *moments, uint64_t moments_capacity,
                                   const vae_run_options *opts);

/*
 * Decodes n latents (n x C x lheight x lwidth; scaled unless
 * VAE_FLAG_RAW_LATENT) into images (n x 3 x lheight*f x lwidth*f). The image
 * is the raw decoder output: values are near [-1, 1] but not clamped.
 */
VAE_API int32_t vae_decode(const vae_model *model, const float *latent,
                           int32_t n, int32_t lheight, int32_t lwidth,
                           float *image, uint64_t image_capacity,
                           const vae_run_options *opts);

/* ---- Memory ---------------------------------------------------------------- */

typedef struct vae_memory_estimate {
    uint32_t size;          /* sizeof(vae_memory_estimate): set by the caller */
    int32_t fits;           /* 1: a call with these options fits the budget;
                               0: it would fail with VAE_ERR_NO_MEMORY        */
    int32_t tiled;          /* 1: it would run tiled                          */
    int32_t tile;           /* ... with this tile side (image pixels); 0 when
                               untiled. With fits = 0, the tile of the least
                               demanding plan (tiled_bytes is its need)       */
    uint64_t budget_bytes;  /* the budget the options resolve to              */
    uint64_t untiled_bytes; /* working memory of an untiled call              */
    uint64_t tiled_bytes;   /* working memory of the tiled call these options
                               would make; when they would run untiled (or
                               nothing fits), the least any tiled call needs */
    uint64_t weights_bytes; /* the handle's weights (already allocated)       */
    uint64_t io_bytes;      /* the caller's input and output of one image     */
    double work_ratio;      /* arithmetic of that call / of an untiled call:
                               tiles recompute their borders, and GroupNorm
                               statistics over the whole image take extra
                               passes when the budget is small               */
} vae_memory_estimate;

/*
 * Says, before any work, how much memory an encode (stage VAE_STAGE_ENCODE)
 * or a decode (VAE_STAGE_DECODE) of one height x width image (image pixels
 * for both stages) takes with opts (NULL = defaults), untiled and tiled, and
 * which of the two vae_encode / vae_decode would run. Batches run one image
 * at a time: n images need the same working memory as one.
 */
VAE_API int32_t vae_estimate_memory(const vae_model *model, int32_t stage,
                                    int32_t height, int32_t width,
                                    const vae_run_options *opts,
                                    vae_memory_estimate *est);

/* For the three run functions above: when opts->progress cancels a call, it
 * returns VAE_ERR_CANCELLED having freed everything it allocated; the handle
 * stays usable and the output buffer's contents are unspecified. */

/* ---- Errors -------------------------------------------------------------- */

/*
 * The message of the most recent failed call: on the handle when model is not
 * NULL, otherwise of the calling thread (this includes failed vae_load calls).
 * A successful call does not clear it.
 * The pointer is to a thread-local copy, valid until the calling thread's next
 * call into the library. Returns "" when nothing failed.
 */
VAE_API const char *vae_last_error(const vae_model *model);

/*
 * The same message copied into buf (always NUL-terminated when cap > 0).
 * Returns the length of the whole message, as snprintf does.
 */
VAE_API uint64_t vae_copy_last_error(const vae_model *model, char *buf,
                                     uint64_t cap);

/* ---- Constants as functions ------------------------------------------------ */

/*
 * Every constant above has a function twin named after it in lower case
 * (libsodium's habit), so that bindings (ctypes, cgo, Rust, C#) never need
 * to parse this header: VAE_FLAG_SAMPLE is vae_flag_sample(). The values
 * never change within one ABI. vae_version_number() and vae_abi_version()
 * above are the twins of VAE_VERSION_NUMBER and VAE_ABI_VERSION. The *_size()
 * functions return sizeof the public structs as this library knows them.
 */
VAE_API int32_t vae_ok(void);
VAE_API int32_t vae_err_invalid_argument(void);
VAE_API int32_t vae_err_io(void);
VAE_API int32_t vae_err_format(void);
VAE_API int32_t vae_err_unsupported(void);
VAE_API int32_t vae_err_model(void);
VAE_API int32_t vae_err_no_memory(void);
VAE_API int32_t vae_err_buffer_too_small(void);
VAE_API int32_t vae_err_internal(void);
VAE_API int32_t vae_err_cancelled(void);
VAE_API uint32_t vae_flag_raw_latent(void);
VAE_API uint32_t vae_flag_sample(void);
VAE_API uint32_t vae_flag_direct_conv(void);
VAE_API int32_t vae_dtype_f32(void);
VAE_API int32_t vae_dtype_f16(void);
VAE_API int32_t vae_dtype_bf16(void);
VAE_API int32_t vae_dtype_mixed(void);
VAE_API int32_t vae_max_levels(void);
VAE_API int32_t vae_stage_encode(void);
VAE_API int32_t vae_stage_decode(void);
VAE_API uint32_t vae_load_options_size(void);
VAE_API uint32_t vae_run_options_size(void);
VAE_API uint32_t vae_model_info_size(void);
/* 0.2.0 */
VAE_API uint32_t vae_load_no_encoder(void);
VAE_API uint32_t vae_load_no_decoder(void);
VAE_API uint32_t vae_load_half_weights(void);
VAE_API uint32_t vae_flag_tiled(void);
VAE_API uint32_t vae_flag_circular(void);
VAE_API uint32_t vae_memory_estimate_size(void);

/* ---- One entry point for dlopen -------------------------------------------- */

/*
 * Every public function as a pointer, in a table that only grows at its end
 * (new members in the order their functions are added). A program that
 * dlopen()s "libsdxlvae.so.1" needs to look up one symbol, vae_get_api.
 *
 * A newer library may return a table larger than the vae_api the caller was
 * compiled with, an older one a smaller table: use a member only when
 * offsetof(vae_api, member) + sizeof(void (*)(void)) <= api->size.
 */
typedef struct vae_api {
    uint32_t size;           /* bytes of this table in the loaded library */
    uint32_t abi_major;      /* VAE_ABI_VERSION of the loaded library      */
    uint32_t version_number; /* vae_version_number() of the loaded library */
    uint32_t reserved;       /* 0                                          */
    /* Release 0.1.0 (version node SDXLVAE_1.0): every function of this
     * header but vae_get_api, in the order declared above. Functions added
     * by later releases are appended after the last member. */
    uint32_t (*vae_version_number)(void);
    const char *(*vae_version_string)(void);
    uint32_t (*vae_abi_version)(void);
    const char *(*vae_strerror)(int32_t status);
    void (*vae_load_options_init)(vae_load_options *opts, uint32_t size);
    int32_t (*vae_load)(const char *path, const vae_load_options *opts, vae_model **out);
    void (*vae_free)(vae_model *model);
    int32_t (*vae_latent_channels)(const vae_model *model);
    int32_t (*vae_downsample_factor)(const vae_model *model);
    float (*vae_scaling_factor)(const vae_model *model);
    float (*vae_shift_factor)(const vae_model *model);
    int32_t (*vae_get_info)(const vae_model *model, vae_model_info *info);
    void (*vae_run_options_init)(vae_run_options *opts, uint32_t size);
    int32_t (*vae_encoded_size)(const vae_model *model, int32_t n, int32_t height,
                                int32_t width, uint64_t *n_floats);
    int32_t (*vae_decoded_size)(const vae_model *model, int32_t n, int32_t lheight,
                                int32_t lwidth, uint64_t *n_floats);
    int32_t (*vae_encode)(const vae_model *model, const float *image, int32_t n,
                          int32_t height, int32_t width, float *latent,
                          uint64_t latent_capacity, const vae_run_options *opts);
    int32_t (*vae_encode_moments)(const vae_model *model, const float *image, int32_t n,
                                  int32_t height, int32_t width, float *moments,
                                  uint64_t moments_capacity, const vae_run_options *opts);
    int32_t (*vae_decode)(const vae_model *model, const float *latent, int32_t n,
                          int32_t lheight, int32_t lwidth, float *image,
                          uint64_t image_capacity, const vae_run_options *opts);
    const char *(*vae_last_error)(const vae_model *model);
    uint64_t (*vae_copy_last_error)(const vae_model *model, char *buf, uint64_t cap);
    /* the constants' function twins */
    int32_t (*vae_ok)(void);
    int32_t (*vae_err_invalid_argument)(void);
    int32_t (*vae_err_io)(void);
    int32_t (*vae_err_format)(void);
    int32_t (*vae_err_unsupported)(void);
    int32_t (*vae_err_model)(void);
    int32_t (*vae_err_no_memory)(void);
    int32_t (*vae_err_buffer_too_small)(void);
    int32_t (*vae_err_internal)(void);
    int32_t (*vae_err_cancelled)(void);
    uint32_t (*vae_flag_raw_latent)(void);
    uint32_t (*vae_flag_sample)(void);
    uint32_t (*vae_flag_direct_conv)(void);
    int32_t (*vae_dtype_f32)(void);
    int32_t (*vae_dtype_f16)(void);
    int32_t (*vae_dtype_bf16)(void);
    int32_t (*vae_dtype_mixed)(void);
    int32_t (*vae_max_levels)(void);
    int32_t (*vae_stage_encode)(void);
    int32_t (*vae_stage_decode)(void);
    uint32_t (*vae_load_options_size)(void);
    uint32_t (*vae_run_options_size)(void);
    uint32_t (*vae_model_info_size)(void);
    /* Release 0.2.0 (version node SDXLVAE_1.1) */
    int32_t (*vae_estimate_memory)(const vae_model *model, int32_t stage, int32_t height,
                                   int32_t width, const vae_run_options *opts,
                                   vae_memory_estimate *est);
    uint32_t (*vae_load_no_encoder)(void);
    uint32_t (*vae_load_no_decoder)(void);
    uint32_t (*vae_load_half_weights)(void);
    uint32_t (*vae_flag_tiled)(void);
    uint32_t (*vae_flag_circular)(void);
    uint32_t (*vae_memory_estimate_size)(void);
} vae_api;

/*
 * The table of the loaded library for ABI generation abi_major (pass
 * VAE_ABI_VERSION), or NULL when this library does not implement that
 * generation. The table is static and read-only: never free it. Thread-safe.
 */
VAE_API const vae_api *vae_get_api(uint32_t abi_major);

#ifdef __cplusplus
}
#endif

#endif /* SDXLVAE_H */
