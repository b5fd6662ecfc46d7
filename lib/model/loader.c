/* loader.c - from a path to a ready vae_model: find the files, read the
 * architecture, check every tensor's presence, dtype and shape against it,
 * convert to fp32 and pack the convolution weights for the GEMM kernels
 * (or, with VAE_LOAD_HALF_WEIGHTS, keep the convolution weights in 16
 * bits, unpacked). */
#include "model/model.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct loader {
    st_file f;
    vae_names nm;
    vae_arch *arch;
    const vae_kernel_table *kt;
    uint64_t n_params;
    int seen_dtype[3];
    int half;              /* VAE_LOAD_HALF_WEIGHTS */
    uint64_t bytes;        /* what the kept weight arrays take: vae_model_weight_bytes */
    vae_error *err;
} loader;

/* Adds an array of nbytes the model keeps to the weight total, as vae_alloc
 * rounds it. */
static void kept(loader *L, uint64_t nbytes)
{
    L->bytes += vae_alloc_footprint(nbytes);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* path -> (weights file, config.json or "") */
static int32_t resolve_paths(const char *path, char *weights, char *config, vae_error *err)
{
    static const char *const names[] = {"diffusion_pytorch_model.safetensors", "model.safetensors",
                                        "vae/diffusion_pytorch_model.safetensors"};
    config[0] = '\0';
    if (is_dir(path)) {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            if (snprintf(weights, PATH_MAX, "%s/%s", path, names[i]) >= PATH_MAX) break;
            if (is_file(weights)) {
                /* config.json sits beside the weights file */
                const char *dir = i == 2 ? "/vae" : "";
                snprintf(config, PATH_MAX, "%s%s/config.json", path, dir);
                if (!is_file(config)) config[0] = '\0';
                return VAE_OK;
            }
        }
        return vae_fail(err, VAE_ERR_IO,
                        "%s: a folder without diffusion_pytorch_model.safetensors, model.safetensors "
                        "or vae/diffusion_pytorch_model.safetensors",
                        path);
    }
    if (strlen(path) >= PATH_MAX) return vae_fail(err, VAE_ERR_INVALID_ARGUMENT, "path too long");
    strcpy(weights, path);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    if (dlen + sizeof "config.json" <= PATH_MAX) {
        memcpy(config, path, dlen);
        strcpy(config + dlen, "config.json");
        if (!is_file(config)) config[0] = '\0';
    }
    return VAE_OK;
}

/* Finds name, checks its dtype and its shape against want (ndim entries; a
 * 2-d [o, i] is accepted for a want of [o, i, 1, 1]: diffusers stores the
 * attention projections as linear layers). */
static int32_t find(loader *L, const char *name, int ndim, const int64_t *want,
                    const st_tensor **out)
{
    const st_tensor *t = st_find(&L->f, name);
    *out = NULL;
    if (!t) return vae_fail(L->err, VAE_ERR_MODEL, "%s: tensor '%s' is missing", L->f.path, name);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return vae_fail(L->err, VAE_ERR_UNSUPPORTED,
                        "%s: tensor '%s' is %s; weights must be F32, F16 or BF16",
                        L->f.path, name, t->dtype_name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok && ndim == 4 && want[2] == 1 && want[3] == 1 && t->ndim == 2)
        ok = t->shape[0] == want[0] && t->shape[1] == want[1];
    if (!ok) {
        char got[128] = "", exp[128] = "";
        size_t gl = 0, el = 0;
        for (int i = 0; i < t->ndim && gl < sizeof got; i++)
            gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        for (int i = 0; i < ndim && el < sizeof exp; i++)
            el += (size_t)snprintf(exp + el, sizeof exp - el, "%s%lld", i ? ", " : "", (long long)want[i]);
        return vae_fail(L->err, VAE_ERR_MODEL, "%s: tensor '%s' has shape [%s], expected [%s]",
                        L->f.path, name, got, exp);
    }
    *out = t;
    return VAE_OK;
}

/* A tensor the model keeps: for vae_get_info's dtype and parameter count. */
static void note(loader *L, const st_tensor *t)
{
    L->seen_dtype[t->dtype] = 1;
    L->n_params += t->count;
}

/* Finds base+suffix (checked by find()), converts it to a new fp32 array. */
static int32_t take(loader *L, const char *base, const char *suffix, int ndim,
                    const int64_t *want, float **out)
{
    char name[512];
    const st_tensor *t;
    int32_t rc;
    snprintf(name, sizeof name, "%s%s", base, suffix);
    *out = NULL;
    if ((rc = find(L, name, ndim, want, &t)) != VAE_OK) return rc;
    float *d = vae_alloc_floats(t->count);
    if (!d) return vae_fail(L->err, VAE_ERR_NO_MEMORY, "%s: out of memory for '%s'", L->f.path, name);
    /* The mapping may be unaligned for 2- and 4-byte loads; the kernels
     * take it through memcpy-safe paths. */
    if (t->dtype == ST_F32) {
        memcpy(d, t->data, t->nbytes);
    } else {
        uint16_t *tmp = vae_malloc(t->nbytes ? t->nbytes : 1);
        if (!tmp) {
            vae_free_aligned(d);
            return vae_fail(L->err, VAE_ERR_NO_MEMORY, "%s: out of memory for '%s'", L->f.path, name);
        }
        memcpy(tmp, t->data, t->nbytes);
        if (t->dtype == ST_F16) L->kt->f16_to_f32(t->count, tmp, d);
        else L->kt->bf16_to_f32(t->count, tmp, d);
        free(tmp);
    }
    note(L, t);
    *out = d;
    return VAE_OK;
}

/* F32 values from here up (in magnitude) would round to an infinite F16. */
#define F16_OVERFLOW 65520.0f

/*
 * The weights of base (checked by find()) as a new 16-bit array for
 * VAE_LOAD_HALF_WEIGHTS: F16 and BF16 exactly as stored, F32 rounded to F16
 * (to nearest even). An F32 tensor with a finite value beyond the F16 range
 * is not rounded: *out stays NULL and the caller keeps it in fp32. That
 * costs memory, never correctness; released VAEs have weights of a few
 * units at most.
 */
static int32_t take16(loader *L, const char *base, int ndim, const int64_t *want,
                      uint16_t **out, int32_t *dtype)
{
    char name[512];
    const st_tensor *t;
    int32_t rc;
    snprintf(name, sizeof name, "%s.weight", base);
    *out = NULL;
    if ((rc = find(L, name, ndim, want, &t)) != VAE_OK) return rc;
    uint16_t *d = vae_alloc(t->count ? t->count * sizeof *d : 1);
    if (!d) return vae_fail(L->err, VAE_ERR_NO_MEMORY, "%s: out of memory for '%s'", L->f.path, name);
    if (t->dtype != ST_F32) {
        memcpy(d, t->data, t->nbytes); /* the mapping may be unaligned for 2-byte loads */
        *dtype = t->dtype == ST_F16 ? VAE_DTYPE_F16 : VAE_DTYPE_BF16;
    } else {
        /* through an aligned block: the mapping may be unaligned for floats */
        float blk[1024];
        for (uint64_t i = 0; i < t->count; i += 1024) {
            size_t n = t->count - i < 1024 ? (size_t)(t->count - i) : 1024;
            memcpy(blk, t->data + i * sizeof(float), n * sizeof(float));
            for (size_t j = 0; j < n; j++)
                if (fabsf(blk[j]) >= F16_OVERFLOW && fabsf(blk[j]) <= FLT_MAX) {
                    vae_free_aligned(d);
                    return VAE_OK;
                }
            vae_f32_f16_cvt_ukernel__scalar(n, blk, d + i);
        }
        *dtype = VAE_DTYPE_F16;
    }
    note(L, t);
    *out = d;
    return VAE_OK;
}

static int32_t take_norm(loader *L, const char *base, int32_t c, vae_norm *n)
{
    int64_t s[1] = {c};
    int32_t rc;
    n->c = c;
    if ((rc = take(L, base, ".weight", 1, s, &n->gamma)) != VAE_OK) return rc;
    if ((rc = take(L, base, ".bias", 1, s, &n->beta)) != VAE_OK) return rc;
    kept(L, (uint64_t)c * sizeof(float));
    kept(L, (uint64_t)c * sizeof(float));
    return VAE_OK;
}

/* How a conv's weights are kept: packed for the GEMM kernels (1x1 and the
 * stride-2 Downsample), or as stored (every other 3x3, the Upsample's
 * included: Winograd transforms them per call, and the direct path packs or
 * folds them per call). Held once either way. With VAE_LOAD_HALF_WEIGHTS
 * every conv is kept as stored, in 16 bits, and widened (and packed where
 * the form says so) per call: packed 16-bit weights would save nothing
 * over widening into a buffer the call packs anyway. */
#define CONV_PACKED 0
#define CONV_RAW3X3 2

static int32_t take_conv_ex(loader *L, const char *base, int32_t cout, int32_t cin, int32_t k,
                            vae_conv *cv, int form);
static int32_t take_conv(loader *L, const char *base, int32_t cout, int32_t cin, int32_t k,
                         vae_conv *cv)
{
    return take_conv_ex(L, base, cout, cin, k, cv, k == 3 ? CONV_RAW3X3 : CONV_PACKED);
}

static int32_t take_conv_ex(loader *L, const char *base, int32_t cout, int32_t cin, int32_t k,
                            vae_conv *cv, int form)
{
    int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
    float *w = NULL;
    int32_t rc;
    const uint64_t count = (uint64_t)cout * (uint64_t)cin * (uint64_t)k * (uint64_t)k;
    cv->cout = cout;
    cv->cin = cin;
    cv->ksize = k;
    /* cv->w16 is the model's as soon as it is set: vae_model_free frees it */
    if (L->half && (rc = take16(L, base, 4, ws, &cv->w16, &cv->w16_dtype)) != VAE_OK) return rc;
    if (!cv->w16 && (rc = take(L, base, ".weight", 4, ws, &w)) != VAE_OK) return rc;
    if ((rc = take(L, base, ".bias", 1, bs, &cv->bias)) != VAE_OK) {
        vae_free_aligned(w);
        return rc;
    }
    kept(L, (uint64_t)cout * sizeof(float));
    if (cv->w16) {
        kept(L, count * sizeof(uint16_t));
        return VAE_OK;
    }
    if (form == CONV_RAW3X3) {
        cv->w_raw = w; /* kept as stored: Winograd transforms it per call */
        kept(L, count * sizeof(float));
        return VAE_OK;
    } else
        rc = vae_packed_init(&cv->w, (size_t)cout, (size_t)cin * (size_t)k * (size_t)k,
                             L->kt->gemm_mr, w);
    vae_free_aligned(w);
    if (rc != VAE_OK)
        return vae_fail(L->err, rc, "%s: out of memory packing '%s.weight'", L->f.path, base);
    kept(L, vae_packed_floats((size_t)cout, (size_t)cin * (size_t)k * (size_t)k, L->kt->gemm_mr) *
                sizeof(float));
    return VAE_OK;
}

static int32_t take_resnet(loader *L, const char *base, int32_t cin, int32_t cout, vae_resnet *r)
{
    char b[600];
    int32_t rc;
#define PART(p) (snprintf(b, sizeof b, "%s.%s", base, vae_name_resnet_part(&L->nm, p)), b)
    if ((rc = take_norm(L, PART("norm1"), cin, &r->norm1)) != VAE_OK) return rc;
    if ((rc = take_conv(L, PART("conv1"), cout, cin, 3, &r->conv1)) != VAE_OK) return rc;
    if ((rc = take_norm(L, PART("norm2"), cout, &r->norm2)) != VAE_OK) return rc;
    if ((rc = take_conv(L, PART("conv2"), cout, cout, 3, &r->conv2)) != VAE_OK) return rc;
    r->has_shortcut = cin != cout;
    if (r->has_shortcut && (rc = take_conv(L, PART("shortcut"), cout, cin, 1, &r->shortcut)) != VAE_OK)
        return rc;
#undef PART
    return VAE_OK;
}

static int32_t take_mid(loader *L, int dec, vae_coder *c)
{
    char b[512];
    int32_t ch = L->arch->ch[L->arch->levels - 1], rc;
    vae_name_mid_resnet(&L->nm, b, sizeof b, dec, 0);
    if ((rc = take_resnet(L, b, ch, ch, &c->mid1)) != VAE_OK) return rc;
    vae_name_attn(&L->nm, b, sizeof b, dec, "norm");
    if ((rc = take_norm(L, b, ch, &c->attn.norm)) != VAE_OK) return rc;
    static const char *const parts[] = {"q", "k", "v", "proj"};
    vae_conv *convs[] = {&c->attn.q, &c->attn.k, &c->attn.v, &c->attn.proj};
    for (int i = 0; i < 4; i++) {
        vae_name_attn(&L->nm, b, sizeof b, dec, parts[i]);
        if ((rc = take_conv(L, b, ch, ch, 1, convs[i])) != VAE_OK) return rc;
    }
    vae_name_mid_resnet(&L->nm, b, sizeof b, dec, 1);
    return take_resnet(L, b, ch, ch, &c->mid2);
}

static int32_t take_encoder(loader *L, vae_coder *e)
{
    const vae_arch *a = L->arch;
    char b[512];
    int32_t rc, cin;
    vae_name_top(&L->nm, b, sizeof b, 0, "conv_in");
    if ((rc = take_conv(L, b, a->ch[0], a->in_channels, 3, &e->conv_in)) != VAE_OK) return rc;
    cin = a->ch[0];
    for (int32_t l = 0; l < a->levels; l++) {
        vae_level *lv = &e->levels[l];
        lv->res = vae_calloc_n((size_t)a->layers_per_block, sizeof *lv->res);
        if (!lv->res) return vae_fail(L->err, VAE_ERR_NO_MEMORY, "out of memory");
        lv->n_res = a->layers_per_block;
        for (int32_t j = 0; j < lv->n_res; j++) {
            vae_name_resnet(&L->nm, b, sizeof b, 0, l, j);
            if ((rc = take_resnet(L, b, cin, a->ch[l], &lv->res[j])) != VAE_OK) return rc;
            cin = a->ch[l];
        }
        if (l != a->levels - 1) {
            lv->has_sample = 1;
            vae_name_sample(&L->nm, b, sizeof b, 0, l);
            if ((rc = take_conv_ex(L, b, cin, cin, 3, &lv->sample, CONV_PACKED)) != VAE_OK) return rc;
        }
    }
    if ((rc = take_mid(L, 0, e)) != VAE_OK) return rc;
    vae_name_top(&L->nm, b, sizeof b, 0, "norm_out");
    if ((rc = take_norm(L, b, cin, &e->norm_out)) != VAE_OK) return rc;
    vae_name_top(&L->nm, b, sizeof b, 0, "conv_out");
    return take_conv(L, b, 2 * a->latent_channels, cin, 3, &e->conv_out);
}

static int32_t take_decoder(loader *L, vae_coder *d)
{
    const vae_arch *a = L->arch;
    char b[512];
    int32_t rc, cin = a->ch[a->levels - 1];
    vae_name_top(&L->nm, b, sizeof b, 1, "conv_in");
    if ((rc = take_conv(L, b, cin, a->latent_channels, 3, &d->conv_in)) != VAE_OK) return rc;
    if ((rc = take_mid(L, 1, d)) != VAE_OK) return rc;
    for (int32_t l = a->levels - 1; l >= 0; l--) {
        vae_level *lv = &d->levels[l];
        lv->res = vae_calloc_n((size_t)a->layers_per_block + 1, sizeof *lv->res);
        if (!lv->res) return vae_fail(L->err, VAE_ERR_NO_MEMORY, "out of memory");
        lv->n_res = a->layers_per_block + 1;
        for (int32_t j = 0; j < lv->n_res; j++) {
            vae_name_resnet(&L->nm, b, sizeof b, 1, l, j);
            if ((rc = take_resnet(L, b, cin, a->ch[l], &lv->res[j])) != VAE_OK) return rc;
            cin = a->ch[l];
        }
        if (l != 0) {
            lv->has_sample = 1;
            vae_name_sample(&L->nm, b, sizeof b, 1, l);
            if ((rc = take_conv_ex(L, b, cin, cin, 3, &lv->sample, CONV_RAW3X3)) != VAE_OK) return rc;
        }
    }
    vae_name_top(&L->nm, b, sizeof b, 1, "norm_out");
    if ((rc = take_norm(L, b, cin, &d->norm_out)) != VAE_OK) return rc;
    vae_name_top(&L->nm, b, sizeof b, 1, "conv_out");
    return take_conv(L, b, a->out_channels, cin, 3, &d->conv_out);
}

static void free_conv(vae_conv *c)
{
    vae_conv_free(c);
}

static void free_norm(vae_norm *n)
{
    vae_free_aligned(n->gamma);
    vae_free_aligned(n->beta);
}

static void free_resnet(vae_resnet *r)
{
    free_norm(&r->norm1);
    free_norm(&r->norm2);
    free_conv(&r->conv1);
    free_conv(&r->conv2);
    free_conv(&r->shortcut);
}

static void free_coder(vae_coder *c)
{
    free_conv(&c->conv_in);
    for (int l = 0; l < VAE_MAX_LEVELS; l++) {
        for (int32_t j = 0; j < c->levels[l].n_res; j++) free_resnet(&c->levels[l].res[j]);
        free(c->levels[l].res);
        free_conv(&c->levels[l].sample);
    }
    free_resnet(&c->mid1);
    free_resnet(&c->mid2);
    free_norm(&c->attn.norm);
    free_conv(&c->attn.q);
    free_conv(&c->attn.k);
    free_conv(&c->attn.v);
    free_conv(&c->attn.proj);
    free_norm(&c->norm_out);
    free_conv(&c->conv_out);
}

uint64_t vae_model_weight_bytes(const struct vae_model *m)
{
    return m ? m->weight_bytes : 0;
}

void vae_model_free(struct vae_model *m)
{
    if (!m) return;
    free_coder(&m->enc);
    free_coder(&m->dec);
    free_conv(&m->quant_conv);
    free_conv(&m->post_quant_conv);
    free(m->path);
    pthread_mutex_destroy(&m->err_lock);
    free(m);
}

int32_t vae_model_load(const char *path, const char *config_path, uint32_t flags,
                       struct vae_model **out, vae_error *err)
{
    char weights[PATH_MAX], config[PATH_MAX], prefix[32];
    int32_t rc;
    *out = NULL;
    if ((rc = resolve_paths(path, weights, config, err)) != VAE_OK) return rc;
    if (config_path) {
        if (strlen(config_path) >= PATH_MAX)
            return vae_fail(err, VAE_ERR_INVALID_ARGUMENT, "config_path is too long");
        strcpy(config, config_path);
    }
    struct vae_model *m = vae_calloc_n(1, sizeof *m);
    if (!m) return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory");
    if (pthread_mutex_init(&m->err_lock, NULL) != 0) {
        free(m);
        return vae_fail(err, VAE_ERR_NO_MEMORY, "cannot create a mutex");
    }
    loader L;
    memset(&L, 0, sizeof L);
    L.err = err;
    L.half = (flags & VAE_LOAD_HALF_WEIGHTS) != 0;
    L.arch = &m->arch;
    L.kt = m->kt = vae_kernels();
    m->path = vae_strdup(weights);
    if (!m->path) { rc = vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory"); goto fail; }

    vae_arch_defaults(&m->arch);
    int from_config = config[0] != '\0';
    if (from_config) {
        /* A config.json merely found beside the weights may belong to
         * something else (a UNet's, in a checkpoint folder): then it is not
         * ours to read. One the caller named must be a VAE's. */
        rc = vae_arch_from_config(config, &m->arch, !config_path, err);
        if (rc == VAE_ERR_NOT_OURS) {
            vae_arch_defaults(&m->arch);
            from_config = 0;
        } else if (rc != VAE_OK) {
            goto fail;
        }
    }
    if ((rc = st_open(weights, &L.f, err)) != VAE_OK) goto fail;
    if ((rc = vae_detect_naming(&L.f, prefix, sizeof prefix, &m->naming, err)) != VAE_OK) goto fail;
    if ((rc = vae_arch_infer(&L.f, prefix, m->naming, &m->arch, from_config, err)) != VAE_OK) goto fail;
    /* a half the caller does not want is never read: its weights cost
     * neither memory nor load time */
    if (flags & VAE_LOAD_NO_ENCODER) m->arch.has_encoder = 0;
    if (flags & VAE_LOAD_NO_DECODER) m->arch.has_decoder = 0;
    if (!m->arch.has_encoder && !m->arch.has_decoder) {
        rc = vae_fail(err, VAE_ERR_UNSUPPORTED, "%s: the %s the options asked for is not in the file",
                      weights, (flags & VAE_LOAD_NO_ENCODER) ? "decoder" : "encoder");
        goto fail;
    }
    L.nm.prefix = prefix;
    L.nm.naming = m->naming;
    L.nm.levels = m->arch.levels;

    char b[512];
    if (m->arch.has_encoder) {
        if ((rc = take_encoder(&L, &m->enc)) != VAE_OK) goto fail;
        if (m->arch.use_quant_conv) {
            vae_name_top(&L.nm, b, sizeof b, 0, "quant_conv");
            int32_t c2 = 2 * m->arch.latent_channels;
            if ((rc = take_conv(&L, b, c2, c2, 1, &m->quant_conv)) != VAE_OK) goto fail;
        }
    }
    if (m->arch.has_decoder) {
        if ((rc = take_decoder(&L, &m->dec)) != VAE_OK) goto fail;
        if (m->arch.use_post_quant_conv) {
            vae_name_top(&L.nm, b, sizeof b, 1, "post_quant_conv");
            int32_t c = m->arch.latent_channels;
            if ((rc = take_conv(&L, b, c, c, 1, &m->post_quant_conv)) != VAE_OK) goto fail;
        }
    }
    int kinds = L.seen_dtype[0] + L.seen_dtype[1] + L.seen_dtype[2];
    m->weight_dtype = kinds > 1 ? VAE_DTYPE_MIXED
                    : L.seen_dtype[ST_F16] ? VAE_DTYPE_F16
                    : L.seen_dtype[ST_BF16] ? VAE_DTYPE_BF16 : VAE_DTYPE_F32;
    m->n_params = L.n_params;
    m->weight_bytes = L.bytes;
    st_close(&L.f);
    *out = m;
    return VAE_OK;
fail:
    st_close(&L.f);
    vae_model_free(m);
    return rc;
}
