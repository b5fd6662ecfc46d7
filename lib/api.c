/* api.c - the public functions: argument checks, options read up to their
 * declared size (libbpf's habit), error recording, batching and latent
 * scaling around the graph in model/autoencoder.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/threadpool.h"
#include "model/model.h"
#include "sdxlvae.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static _Thread_local char tls_err[VAE_ERRMSG_MAX];
static _Thread_local char tls_copy[VAE_ERRMSG_MAX];

uint32_t vae_version_number(void) { return VAE_VERSION_NUMBER; }
const char *vae_version_string(void)
{
    return STR(VAE_VERSION_MAJOR) "." STR(VAE_VERSION_MINOR) "." STR(VAE_VERSION_PATCH);
}
uint32_t vae_abi_version(void) { return VAE_ABI_VERSION; }

const char *vae_strerror(int32_t status)
{
    switch (status) {
    case VAE_OK: return "success";
    case VAE_ERR_INVALID_ARGUMENT: return "invalid argument";
    case VAE_ERR_IO: return "input/output error";
    case VAE_ERR_FORMAT: return "malformed file";
    case VAE_ERR_UNSUPPORTED: return "unsupported model or file feature";
    case VAE_ERR_MODEL: return "model tensors missing or inconsistent";
    case VAE_ERR_NO_MEMORY: return "out of memory";
    case VAE_ERR_BUFFER_TOO_SMALL: return "output buffer too small";
    case VAE_ERR_INTERNAL: return "internal error";
    case VAE_ERR_CANCELLED: return "cancelled";
    default: return "unknown status code";
    }
}

/* Records a failure for the calling thread and, when there is one, the handle. */
static int32_t report(const vae_model *cm, const vae_error *e)
{
    snprintf(tls_err, sizeof tls_err, "%s", e->msg);
    if (cm) {
        vae_model *m = (vae_model *)cm; /* only the error slot is written, under its lock */
        pthread_mutex_lock(&m->err_lock);
        m->last_err = *e;
        pthread_mutex_unlock(&m->err_lock);
    }
    return e->code;
}

static int32_t fail(const vae_model *m, int32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int32_t fail(const vae_model *m, int32_t code, const char *fmt, ...)
{
    vae_error e;
    va_list ap;
    va_start(ap, fmt);
    e.code = code;
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return report(m, &e);
}

const char *vae_last_error(const vae_model *cm)
{
    if (!cm) return tls_err;
    vae_model *m = (vae_model *)cm;
    pthread_mutex_lock(&m->err_lock);
    snprintf(tls_copy, sizeof tls_copy, "%s", m->last_err.msg);
    pthread_mutex_unlock(&m->err_lock);
    return tls_copy;
}

uint64_t vae_copy_last_error(const vae_model *cm, char *buf, uint64_t cap)
{
    const char *msg = vae_last_error(cm);
    size_t len = strlen(msg);
    if (buf && cap > 0) {
        size_t n = len < cap - 1 ? len : (size_t)(cap - 1);
        memcpy(buf, msg, n);
        buf[n] = '\0';
    }
    return len;
}

/* The caller says how big its struct is: a program built against another
 * version of the header has a struct of another size, and writing ours
 * would overrun it. All defaults are zero, so zeroing the caller's size
 * is right for every version. */
void vae_load_options_init(vae_load_options *o, uint32_t size)
{
    if (!o || size < sizeof(uint32_t)) return;
    memset(o, 0, size);
    o->size = size;
}

void vae_run_options_init(vae_run_options *o, uint32_t size)
{
    if (!o || size < sizeof(uint32_t)) return;
    memset(o, 0, size);
    o->size = size;
}

/* Copies a caller's options struct of any version into ours: fields past the
 * caller's size keep their defaults; a larger struct from a newer header is
 * accepted only when its unknown tail is zero. */
static int copy_opts(void *dst, size_t dst_size, const void *src, const char *what,
                     const vae_model *m, int32_t *rc)
{
    uint32_t sz;
    memcpy(&sz, src, sizeof sz);
    if (sz < sizeof(uint32_t)) {
        *rc = fail(m, VAE_ERR_INVALID_ARGUMENT,
                   "%s->size is %u: call %s_init() first", what, sz, what);
        return 0;
    }
    if (sz > dst_size) {
        const unsigned char *p = src;
        for (size_t i = dst_size; i < sz; i++)
            if (p[i]) {
                *rc = fail(m, VAE_ERR_INVALID_ARGUMENT,
                           "%s has non-zero byte %zu past the %zu this library knows", what, i,
                           dst_size);
                return 0;
            }
        sz = (uint32_t)dst_size;
    }
    memcpy(dst, src, sz);
    ((uint32_t *)dst)[0] = (uint32_t)dst_size;
    return 1;
}

static int resolve_threads(int32_t want)
{
    if (want > 0) return want > 1024 ? 1024 : want;
    return vae_cpu_count();
}

int32_t vae_load(const char *path, const vae_load_options *opts, vae_model **out)
{
    vae_load_options o;
    int32_t rc;
    vae_load_options_init(&o, sizeof o);
    if (out) *out = NULL;
    if (!out) return fail(NULL, VAE_ERR_INVALID_ARGUMENT, "vae_load: out is NULL");
    if (!path) return fail(NULL, VAE_ERR_INVALID_ARGUMENT, "vae_load: path is NULL");
    if (opts && !copy_opts(&o, sizeof o, opts, "vae_load_options", NULL, &rc)) return rc;
    if (o.n_threads < 0)
        return fail(NULL, VAE_ERR_INVALID_ARGUMENT, "vae_load: n_threads is %d (must be >= 0)",
                    o.n_threads);
    const uint32_t known = VAE_LOAD_NO_ENCODER | VAE_LOAD_NO_DECODER | VAE_LOAD_HALF_WEIGHTS;
    if (o.flags & ~known)
        return fail(NULL, VAE_ERR_INVALID_ARGUMENT, "vae_load: unknown flags 0x%x", o.flags & ~known);
    if ((o.flags & VAE_LOAD_NO_ENCODER) && (o.flags & VAE_LOAD_NO_DECODER))
        return fail(NULL, VAE_ERR_INVALID_ARGUMENT,
                    "vae_load: VAE_LOAD_NO_ENCODER and VAE_LOAD_NO_DECODER leave nothing to load");
    if (o.reserved)
        return fail(NULL, VAE_ERR_INVALID_ARGUMENT, "vae_load: reserved must be 0");
    vae_error e = {0, ""};
    vae_model *m;
    rc = vae_model_load(path, o.config_path, o.flags, &m, &e);
    if (rc != VAE_OK) return report(NULL, &e);
    m->n_threads = o.n_threads;
    *out = m;
    return VAE_OK;
}

void vae_free(vae_model *m)
{
    vae_model_free(m);
}

int32_t vae_latent_channels(const vae_model *m) { return m ? m->arch.latent_channels : 0; }
int32_t vae_downsample_factor(const vae_model *m)
{
    return m ? (int32_t)1 << (m->arch.levels - 1) : 0;
}
float vae_scaling_factor(const vae_model *m) { return m ? m->arch.scale : 0.0f; }
float vae_shift_factor(const vae_model *m) { return m ? m->arch.shift : 0.0f; }

static const char *family(const vae_arch *a)
{
    if (a->latent_channels == 16) return "SD3/Flux.1";
    if (a->latent_channels == 4 && fabsf(a->scale - 0.13025f) < 1e-6f) return "SDXL";
    if (a->latent_channels == 4 && fabsf(a->scale - 0.18215f) < 1e-6f) return "SD1.x/SD2.x";
    return "AutoencoderKL";
}

int32_t vae_get_info(const vae_model *m, vae_model_info *info)
{
    if (!m || !info) return fail(m, VAE_ERR_INVALID_ARGUMENT, "vae_get_info: NULL argument");
    uint32_t sz = info->size;
    if (sz < sizeof(uint32_t))
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "vae_get_info: info->size is %u: set it to sizeof(vae_model_info)", sz);
    vae_model_info full;
    memset(&full, 0, sizeof full);
    const vae_arch *a = &m->arch;
    full.size = sz < sizeof full ? sz : (uint32_t)sizeof full;
    full.latent_channels = a->latent_channels;
    full.levels = a->levels;
    for (int i = 0; i < a->levels; i++) full.block_out_channels[i] = a->ch[i];
    full.layers_per_block = a->layers_per_block;
    full.norm_num_groups = a->groups;
    full.downsample_factor = vae_downsample_factor(m);
    full.has_quant_conv = a->has_encoder && a->use_quant_conv;
    full.has_post_quant_conv = a->has_decoder && a->use_post_quant_conv;
    full.weight_dtype = m->weight_dtype;
    full.has_encoder = a->has_encoder;
    full.has_decoder = a->has_decoder;
    full.scaling_factor = a->scale;
    full.shift_factor = a->shift;
    full.norm_eps = a->eps;
    full.parameter_count = m->n_params;
    snprintf(full.family, sizeof full.family, "%s", family(a));
    static const char *const namings[] = {"ldm", "diffusers", "legacy"};
    snprintf(full.naming, sizeof full.naming, "%s", namings[m->naming]);
    memcpy(info, &full, full.size);
    return VAE_OK;
}

/* Checks n x c x h x w and returns the float count, or 0 with an error. */
static int32_t check_dims(const vae_model *m, const char *fn, int32_t n, int32_t h, int32_t w,
                          int32_t mult, uint64_t c, uint64_t *count)
{
    if (n < 1) return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: batch size n = %d (must be >= 1)", fn, n);
    if (h < 1 || w < 1)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: size %d x %d (height and width must be >= 1)", fn,
                    h, w);
    if (h % mult || w % mult)
        return fail(m, VAE_ERR_INVALID_ARGUMENT,
                    "%s: image size %d x %d is not a multiple of %d (pad or crop it)", fn, h, w, mult);
    uint64_t r;
    if (!vae_mul_ok((uint64_t)n, c, &r) || !vae_mul_ok(r, (uint64_t)h, &r) ||
        !vae_mul_ok(r, (uint64_t)w, &r) || r > (UINT64_MAX >> 8))
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: %d x %llu x %d x %d is too large", fn, n,
                    (unsigned long long)c, h, w);
    *count = r;
    return VAE_OK;
}

int32_t vae_encoded_size(const vae_model *m, int32_t n, int32_t h, int32_t w, uint64_t *nf)
{
    if (!m || !nf) return fail(m, VAE_ERR_INVALID_ARGUMENT, "vae_encoded_size: NULL argument");
    int32_t f = vae_downsample_factor(m);
    uint64_t img;
    int32_t rc = check_dims(m, "vae_encoded_size", n, h, w, f, 3, &img);
    if (rc != VAE_OK) return rc;
    *nf = (uint64_t)n * (uint64_t)m->arch.latent_channels * (uint64_t)(h / f) * (uint64_t)(w / f);
    return VAE_OK;
}

int32_t vae_decoded_size(const vae_model *m, int32_t n, int32_t lh, int32_t lw, uint64_t *nf)
{
    if (!m || !nf) return fail(m, VAE_ERR_INVALID_ARGUMENT, "vae_decoded_size: NULL argument");
    int32_t f = vae_downsample_factor(m);
    uint64_t lat;
    int32_t rc = check_dims(m, "vae_decoded_size", n, lh, lw, 1, (uint64_t)m->arch.latent_channels, &lat);
    if (rc != VAE_OK) return rc;
    if (lh > INT32_MAX / f || lw > INT32_MAX / f)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "vae_decoded_size: latent %d x %d is too large", lh, lw);
    return check_dims(m, "vae_decoded_size", n, lh * f, lw * f, 1, 3, nf);
}

/* splitmix64 + Box-Muller: a reproducible standard normal per element. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static int32_t get_run_opts(const vae_model *m, const vae_run_options *opts, vae_run_options *o,
                            const char *fn)
{
    int32_t rc;
    vae_run_options_init(o, sizeof *o);
    if (opts && !copy_opts(o, sizeof *o, opts, "vae_run_options", m, &rc)) return rc;
    if (o->n_threads < 0)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: n_threads is %d (must be >= 0)", fn, o->n_threads);
    const uint32_t known = VAE_FLAG_RAW_LATENT | VAE_FLAG_SAMPLE | VAE_FLAG_DIRECT_CONV |
                           VAE_FLAG_TILED | VAE_FLAG_CIRCULAR;
    if (o->flags & ~known)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn, o->flags & ~known);
    if (o->reserved || o->reserved2)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: reserved must be 0", fn);
    int32_t f = vae_downsample_factor(m);
    if (o->tile < 0 || o->tile % f != 0)
        return fail(m, VAE_ERR_INVALID_ARGUMENT,
                    "%s: tile is %d (must be 0 or a positive multiple of %d)", fn, o->tile, f);
    return VAE_OK;
}

/* ---- Memory: untiled or tiled, decided before any work ---------------------- */

/* A container's memory limit (cgroup v2, then v1), or UINT64_MAX. */
static uint64_t cgroup_limit(void)
{
    static const char *const files[] = {"/sys/fs/cgroup/memory.max",
                                        "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f) continue;
        unsigned long long v = 0;
        int ok = fscanf(f, "%llu", &v) == 1; /* "max" does not parse: no limit */
        fclose(f);
        if (ok && v > 0) return (uint64_t)v;
    }
    return UINT64_MAX;
}

/* Half of what this process may use: the physical memory, or the
 * container's limit when that is lower (a container sees the host's). */
static uint64_t default_budget(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    uint64_t phys = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : (uint64_t)8 << 30;
    uint64_t lim = cgroup_limit();
    return (lim < phys ? lim : phys) / 2;
}

typedef struct run_plan {
    uint64_t budget, untiled, extra;
    int tiled, circular;
    vae_tiled_plan_t tp;   /* when tiled, or (estimate) the automatic tiling */
} run_plan;

/* dec: h x w are latent pixels, else image pixels. extra: what the API
 * itself allocates besides the graph (the unscaled latent, the moments). */
static int32_t decide(const vae_model *m, const vae_run_options *o, int dec, int32_t h, int32_t w,
                      int n_threads, uint64_t extra, int for_estimate, run_plan *p, const char *fn)
{
    memset(p, 0, sizeof *p);
    p->budget = o->max_memory ? o->max_memory : default_budget();
    p->extra = extra;
    p->circular = (o->flags & VAE_FLAG_CIRCULAR) != 0;
    p->untiled = vae_untiled_bytes(m, dec, h, w, n_threads);
    if (p->untiled != UINT64_MAX) p->untiled += extra;
    const int forced = p->circular || o->tile > 0 || (o->flags & VAE_FLAG_TILED);
    p->tiled = forced || p->untiled > p->budget;
    if (!p->tiled && !for_estimate) return VAE_OK;
    uint64_t room = p->budget > extra ? p->budget - extra : 0;
    int32_t rc = vae_tiled_plan(m, dec, h, w, p->tiled ? room : UINT64_MAX, o->tile, p->circular,
                                n_threads, &p->tp);
    if (rc == VAE_ERR_NO_MEMORY) return fail(m, rc, "%s: out of memory planning the tiles", fn);
    if (rc != VAE_OK) return fail(m, rc, "%s: the network has too many layers to tile", fn);
    if (p->tiled && !p->tp.fits && !for_estimate) {
        uint64_t need = p->tp.min_bytes + extra;
        /* a small image may need less untiled than in any tiling */
        if (!forced && p->untiled < need) need = p->untiled;
        return fail(m, VAE_ERR_NO_MEMORY,
                    "%s: max_memory is %llu bytes; this %s needs at least %llu (%.0f MiB)%s", fn,
                    (unsigned long long)p->budget, dec ? "decode" : "encode",
                    (unsigned long long)need, (double)need / 1048576.0,
                    o->tile > 0 ? " with this tile side" : "");
    }
    return VAE_OK;
}

/* A run call's failure; the graph does not know which function it runs
 * for, so a cancellation gets the function's name here. */
static int32_t report_run(const vae_model *m, vae_error *e, const char *fn)
{
    if (e->code == VAE_ERR_CANCELLED) {
        char msg[sizeof e->msg];
        memcpy(msg, e->msg, sizeof msg);
        snprintf(e->msg, sizeof e->msg, "%s: %s", fn, msg);
    }
    return report(m, e);
}

/* Progress of one run call: the graph reports after every layer (see
 * model/autoencoder.c); this reports 0 before the work starts. */
static int32_t progress_begin(vae_ctx *ctx, const vae_run_options *o, int32_t stage,
                              double total, vae_error *e)
{
    ctx->progress = o->progress;
    ctx->progress_user = o->progress_user;
    ctx->progress_stage = stage;
    ctx->progress_done = 0;
    ctx->progress_total = total;
    return vae_progress_report(ctx, e);
}

/* The last report, 1.0, once the output is complete; its answer is ignored. */
static void progress_end(const vae_run_options *o, int32_t stage)
{
    if (o->progress) (void)o->progress(o->progress_user, 1.0f, stage);
}

/* mode 0: moments, 1: latent (mean or sample) */
static int32_t encode_common(const vae_model *m, const float *image, int32_t n, int32_t h,
                             int32_t w, float *out, uint64_t cap, const vae_run_options *opts,
                             int want_moments, const char *fn)
{
    if (!m) return fail(NULL, VAE_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    if (!image || !out) return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !image ? "image" : "output buffer");
    if (!m->arch.has_encoder)
        return fail(m, VAE_ERR_UNSUPPORTED, "%s: %s has no encoder weights", fn, m->path);
    vae_run_options o;
    int32_t rc = get_run_opts(m, opts, &o, fn);
    if (rc != VAE_OK) return rc;
    uint64_t need;
    if ((rc = vae_encoded_size(m, n, h, w, &need)) != VAE_OK) return rc;
    if (want_moments) need *= 2;
    if (cap < need)
        return fail(m, VAE_ERR_BUFFER_TOO_SMALL, "%s: the output holds %llu floats, %llu needed", fn,
                    (unsigned long long)cap, (unsigned long long)need);
    int32_t f = vae_downsample_factor(m), C = m->arch.latent_channels;
    size_t lhw = (size_t)(h / f) * (size_t)(w / f), img = (size_t)3 * (size_t)h * (size_t)w;
    vae_ctx ctx;
    vae_error e = {0, ""};
    float *mom = NULL;
    if ((rc = vae_ctx_init(&ctx, resolve_threads(o.n_threads ? o.n_threads : m->n_threads), &e)) != VAE_OK)
        return report(m, &e);
    ctx.winograd = !(o.flags & VAE_FLAG_DIRECT_CONV);
    run_plan plan;
    if ((rc = decide(m, &o, 0, h, w, ctx.n_threads,
                     want_moments ? 0 : (uint64_t)2 * (uint64_t)C * lhw * sizeof(float), 0, &plan,
                     fn)) != VAE_OK) {
        vae_ctx_free(&ctx);
        return rc;
    }
    if (!want_moments && !(mom = vae_alloc_floats((uint64_t)2 * (uint64_t)C * lhw))) {
        rc = vae_fail(&e, VAE_ERR_NO_MEMORY, "%s: out of memory", fn);
        goto out;
    }
    if (o.progress &&
        (rc = progress_begin(&ctx, &o, VAE_STAGE_ENCODE,
                             n * (plan.tiled ? plan.tp.cost : vae_graph_cost(m, 0, h, w)), &e)) !=
            VAE_OK)
        goto out;
    for (int32_t i = 0; i < n; i++) {
        float *dst = want_moments ? out + (size_t)i * 2 * (size_t)C * lhw : mom;
        rc = plan.tiled ? vae_run_tiled(m, &ctx, 0, image + (size_t)i * img, h, w, dst, &plan.tp,
                                        plan.circular, &e)
                        : vae_run_encoder(m, &ctx, image + (size_t)i * img, h, w, dst, &e);
        if (rc != VAE_OK) goto out;
        if (want_moments) continue;
        float *lat = out + (size_t)i * (size_t)C * lhw;
        uint64_t seed = o.seed ^ (0xA0761D6478BD642Full * (uint64_t)(i + 1));
        for (size_t k = 0; k < (size_t)C * lhw; k++) {
            float z = mom[k];
            if (o.flags & VAE_FLAG_SAMPLE) {
                float lv = mom[(size_t)C * lhw + k];
                lv = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
                double u1 = uniform01(&seed), u2 = uniform01(&seed);
                double g = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
                z = (float)(z + exp(0.5 * lv) * g);
            }
            if (!(o.flags & VAE_FLAG_RAW_LATENT)) z = (z - m->arch.shift) * m->arch.scale;
            lat[k] = z;
        }
    }
    progress_end(&o, VAE_STAGE_ENCODE);
out:
    vae_free_aligned(mom);
    vae_ctx_free(&ctx);
    return rc == VAE_OK ? VAE_OK : report_run(m, &e, fn);
}

int32_t vae_encode(const vae_model *m, const float *image, int32_t n, int32_t h, int32_t w,
                   float *latent, uint64_t cap, const vae_run_options *opts)
{
    return encode_common(m, image, n, h, w, latent, cap, opts, 0, "vae_encode");
}

int32_t vae_encode_moments(const vae_model *m, const float *image, int32_t n, int32_t h, int32_t w,
                           float *moments, uint64_t cap, const vae_run_options *opts)
{
    return encode_common(m, image, n, h, w, moments, cap, opts, 1, "vae_encode_moments");
}

int32_t vae_decode(const vae_model *m, const float *latent, int32_t n, int32_t lh, int32_t lw,
                   float *image, uint64_t cap, const vae_run_options *opts)
{
    const char *fn = "vae_decode";
    if (!m) return fail(NULL, VAE_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    if (!latent || !image)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !latent ? "latent" : "image");
    if (!m->arch.has_decoder)
        return fail(m, VAE_ERR_UNSUPPORTED, "%s: %s has no decoder weights", fn, m->path);
    vae_run_options o;
    int32_t rc = get_run_opts(m, opts, &o, fn);
    if (rc != VAE_OK) return rc;
    if (o.flags & VAE_FLAG_SAMPLE)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: VAE_FLAG_SAMPLE only applies to encoding", fn);
    uint64_t need;
    if ((rc = vae_decoded_size(m, n, lh, lw, &need)) != VAE_OK) return rc;
    if (cap < need)
        return fail(m, VAE_ERR_BUFFER_TOO_SMALL, "%s: the image buffer holds %llu floats, %llu needed", fn,
                    (unsigned long long)cap, (unsigned long long)need);
    int32_t f = vae_downsample_factor(m), C = m->arch.latent_channels;
    size_t lsz = (size_t)C * (size_t)lh * (size_t)lw;
    size_t isz = (size_t)3 * (size_t)lh * (size_t)f * (size_t)lw * (size_t)f;
    vae_ctx ctx;
    vae_error e = {0, ""};
    float *z = NULL;
    if ((rc = vae_ctx_init(&ctx, resolve_threads(o.n_threads ? o.n_threads : m->n_threads), &e)) != VAE_OK)
        return report(m, &e);
    ctx.winograd = !(o.flags & VAE_FLAG_DIRECT_CONV);
    run_plan plan;
    if ((rc = decide(m, &o, 1, lh, lw, ctx.n_threads, lsz * sizeof(float), 0, &plan, fn)) != VAE_OK) {
        vae_ctx_free(&ctx);
        return rc;
    }
    if (!(z = vae_alloc_floats(lsz))) {
        rc = vae_fail(&e, VAE_ERR_NO_MEMORY, "%s: out of memory", fn);
        goto out;
    }
    if (o.progress &&
        (rc = progress_begin(&ctx, &o, VAE_STAGE_DECODE,
                             n * (plan.tiled ? plan.tp.cost : vae_graph_cost(m, 1, lh, lw)), &e)) !=
            VAE_OK)
        goto out;
    for (int32_t i = 0; i < n; i++) {
        const float *src = latent + (size_t)i * lsz;
        for (size_t k = 0; k < lsz; k++)
            z[k] = (o.flags & VAE_FLAG_RAW_LATENT) ? src[k] : src[k] / m->arch.scale + m->arch.shift;
        float *dst = image + (size_t)i * isz;
        rc = plan.tiled ? vae_run_tiled(m, &ctx, 1, z, lh, lw, dst, &plan.tp, plan.circular, &e)
                        : vae_run_decoder(m, &ctx, z, lh, lw, dst, &e);
        if (rc != VAE_OK) goto out;
    }
    progress_end(&o, VAE_STAGE_DECODE);
out:
    vae_free_aligned(z);
    vae_ctx_free(&ctx);
    return rc == VAE_OK ? VAE_OK : report_run(m, &e, fn);
}

/* ---- Constants as functions (libsodium's habit: bindings parse no header) --- */

/* gcc folds twins that return the same value into one body, leaving the
 * debug info of only one of them; abidiff (make check-abi) needs each. */
#if defined(__GNUC__) && !defined(__clang__)
#define TWIN __attribute__((noipa))
#else
#define TWIN
#endif

TWIN int32_t vae_ok(void) { return VAE_OK; }
TWIN int32_t vae_err_invalid_argument(void) { return VAE_ERR_INVALID_ARGUMENT; }
TWIN int32_t vae_err_io(void) { return VAE_ERR_IO; }
TWIN int32_t vae_err_format(void) { return VAE_ERR_FORMAT; }
TWIN int32_t vae_err_unsupported(void) { return VAE_ERR_UNSUPPORTED; }
TWIN int32_t vae_err_model(void) { return VAE_ERR_MODEL; }
TWIN int32_t vae_err_no_memory(void) { return VAE_ERR_NO_MEMORY; }
TWIN int32_t vae_err_buffer_too_small(void) { return VAE_ERR_BUFFER_TOO_SMALL; }
TWIN int32_t vae_err_internal(void) { return VAE_ERR_INTERNAL; }
TWIN int32_t vae_err_cancelled(void) { return VAE_ERR_CANCELLED; }
TWIN uint32_t vae_flag_raw_latent(void) { return VAE_FLAG_RAW_LATENT; }
TWIN uint32_t vae_flag_sample(void) { return VAE_FLAG_SAMPLE; }
TWIN uint32_t vae_flag_direct_conv(void) { return VAE_FLAG_DIRECT_CONV; }
TWIN int32_t vae_dtype_f32(void) { return VAE_DTYPE_F32; }
TWIN int32_t vae_dtype_f16(void) { return VAE_DTYPE_F16; }
TWIN int32_t vae_dtype_bf16(void) { return VAE_DTYPE_BF16; }
TWIN int32_t vae_dtype_mixed(void) { return VAE_DTYPE_MIXED; }
TWIN int32_t vae_max_levels(void) { return VAE_MAX_LEVELS; }
TWIN int32_t vae_stage_encode(void) { return VAE_STAGE_ENCODE; }
TWIN int32_t vae_stage_decode(void) { return VAE_STAGE_DECODE; }
TWIN uint32_t vae_load_options_size(void) { return (uint32_t)sizeof(vae_load_options); }
TWIN uint32_t vae_run_options_size(void) { return (uint32_t)sizeof(vae_run_options); }
TWIN uint32_t vae_model_info_size(void) { return (uint32_t)sizeof(vae_model_info); }
TWIN uint32_t vae_load_no_encoder(void) { return VAE_LOAD_NO_ENCODER; }
TWIN uint32_t vae_load_no_decoder(void) { return VAE_LOAD_NO_DECODER; }
TWIN uint32_t vae_load_half_weights(void) { return VAE_LOAD_HALF_WEIGHTS; }
TWIN uint32_t vae_flag_tiled(void) { return VAE_FLAG_TILED; }
TWIN uint32_t vae_flag_circular(void) { return VAE_FLAG_CIRCULAR; }
TWIN uint32_t vae_memory_estimate_size(void) { return (uint32_t)sizeof(vae_memory_estimate); }

/* ---- The function table ------------------------------------------------------ */

static const vae_api api_v1 = {
    .size = sizeof(vae_api),
    .abi_major = VAE_ABI_VERSION,
    .version_number = VAE_VERSION_NUMBER,
    .reserved = 0,
    .vae_version_number = vae_version_number,
    .vae_version_string = vae_version_string,
    .vae_abi_version = vae_abi_version,
    .vae_strerror = vae_strerror,
    .vae_load_options_init = vae_load_options_init,
    .vae_load = vae_load,
    .vae_free = vae_free,
    .vae_latent_channels = vae_latent_channels,
    .vae_downsample_factor = vae_downsample_factor,
    .vae_scaling_factor = vae_scaling_factor,
    .vae_shift_factor = vae_shift_factor,
    .vae_get_info = vae_get_info,
    .vae_run_options_init = vae_run_options_init,
    .vae_encoded_size = vae_encoded_size,
    .vae_decoded_size = vae_decoded_size,
    .vae_encode = vae_encode,
    .vae_encode_moments = vae_encode_moments,
    .vae_decode = vae_decode,
    .vae_last_error = vae_last_error,
    .vae_copy_last_error = vae_copy_last_error,
    .vae_ok = vae_ok,
    .vae_err_invalid_argument = vae_err_invalid_argument,
    .vae_err_io = vae_err_io,
    .vae_err_format = vae_err_format,
    .vae_err_unsupported = vae_err_unsupported,
    .vae_err_model = vae_err_model,
    .vae_err_no_memory = vae_err_no_memory,
    .vae_err_buffer_too_small = vae_err_buffer_too_small,
    .vae_err_internal = vae_err_internal,
    .vae_err_cancelled = vae_err_cancelled,
    .vae_flag_raw_latent = vae_flag_raw_latent,
    .vae_flag_sample = vae_flag_sample,
    .vae_flag_direct_conv = vae_flag_direct_conv,
    .vae_dtype_f32 = vae_dtype_f32,
    .vae_dtype_f16 = vae_dtype_f16,
    .vae_dtype_bf16 = vae_dtype_bf16,
    .vae_dtype_mixed = vae_dtype_mixed,
    .vae_max_levels = vae_max_levels,
    .vae_stage_encode = vae_stage_encode,
    .vae_stage_decode = vae_stage_decode,
    .vae_load_options_size = vae_load_options_size,
    .vae_run_options_size = vae_run_options_size,
    .vae_model_info_size = vae_model_info_size,
    .vae_estimate_memory = vae_estimate_memory,
    .vae_load_no_encoder = vae_load_no_encoder,
    .vae_load_no_decoder = vae_load_no_decoder,
    .vae_load_half_weights = vae_load_half_weights,
    .vae_flag_tiled = vae_flag_tiled,
    .vae_flag_circular = vae_flag_circular,
    .vae_memory_estimate_size = vae_memory_estimate_size,
};

const vae_api *vae_get_api(uint32_t abi_major)
{
    return abi_major == VAE_ABI_VERSION ? &api_v1 : NULL;
}

int32_t vae_estimate_memory(const vae_model *m, int32_t stage, int32_t h, int32_t w,
                            const vae_run_options *opts, vae_memory_estimate *est)
{
    const char *fn = "vae_estimate_memory";
    if (!m || !est)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !m ? "model" : "est");
    uint32_t sz = est->size;
    if (sz < sizeof(uint32_t))
        return fail(m, VAE_ERR_INVALID_ARGUMENT,
                    "%s: est->size is %u: set it to sizeof(vae_memory_estimate)", fn, sz);
    if (stage != VAE_STAGE_ENCODE && stage != VAE_STAGE_DECODE)
        return fail(m, VAE_ERR_INVALID_ARGUMENT, "%s: stage is %d (VAE_STAGE_ENCODE or _DECODE)", fn,
                    stage);
    int dec = stage == VAE_STAGE_DECODE;
    if (dec ? !m->arch.has_decoder : !m->arch.has_encoder)
        return fail(m, VAE_ERR_UNSUPPORTED, "%s: %s has no %s weights", fn, m->path,
                    dec ? "decoder" : "encoder");
    vae_run_options o;
    int32_t rc = get_run_opts(m, opts, &o, fn);
    if (rc != VAE_OK) return rc;
    int32_t f = vae_downsample_factor(m), C = m->arch.latent_channels;
    uint64_t img;
    if ((rc = check_dims(m, fn, 1, h, w, f, 3, &img)) != VAE_OK) return rc;
    uint64_t lat = (uint64_t)C * (uint64_t)(h / f) * (uint64_t)(w / f);
    run_plan p;
    int nt = resolve_threads(o.n_threads ? o.n_threads : m->n_threads);
    if ((rc = decide(m, &o, dec, dec ? h / f : h, dec ? w / f : w, nt,
                     (dec ? lat : 2 * lat) * sizeof(float), 1, &p, fn)) != VAE_OK)
        return rc;
    vae_memory_estimate full;
    memset(&full, 0, sizeof full);
    full.size = sz < sizeof full ? sz : (uint32_t)sizeof full;
    full.tiled = p.tiled;
    /* when nothing fits: the tile of the least demanding plan */
    full.tile = !p.tiled ? 0 : p.tp.fits ? p.tp.tile : p.tp.min_tile;
    full.fits = p.tiled ? p.tp.fits : 1;
    full.budget_bytes = p.budget;
    full.untiled_bytes = p.untiled;
    /* untiled: the least any tiling needs, what a smaller budget could go to */
    full.tiled_bytes = (p.tiled && p.tp.fits ? p.tp.bytes : p.tp.min_bytes) + p.extra;
    full.weights_bytes = vae_model_weight_bytes(m);
    full.io_bytes = (img + lat) * sizeof(float);
    full.work_ratio = p.tiled && p.tp.base_cost > 0 ? p.tp.cost / p.tp.base_cost : 1.0;
    memcpy(est, &full, full.size);
    return VAE_OK;
}
