/* config.c - the architecture of a VAE: from a diffusers config.json, or
 * inferred from the tensor shapes when there is none (the shapes give
 * everything but the group count, the eps and the latent scaling, for which
 * the SDXL values are the default). */
#include "model/model.h"

#include <cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIG_BYTES (1u << 20)

void vae_arch_defaults(vae_arch *a)
{
    memset(a, 0, sizeof *a);
    a->in_channels = 3;
    a->out_channels = 3;
    a->groups = 32;
    a->eps = 1e-6f;
    a->scale = 0.13025f;
    a->shift = 0.0f;
    a->use_quant_conv = 1;
    a->use_post_quant_conv = 1;
}

static int get_int(const cJSON *root, const char *key, int32_t lo, int32_t hi, int32_t *out,
                   const char *path, vae_error *err, int32_t *rc)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || floor(j->valuedouble) != j->valuedouble || j->valuedouble < lo ||
        j->valuedouble > hi) {
        *rc = vae_fail(err, VAE_ERR_FORMAT, "%s: \"%s\" must be an integer in [%d, %d]", path, key,
                       lo, hi);
        return -1;
    }
    *out = (int32_t)j->valuedouble;
    return 1;
}

static int get_float(const cJSON *root, const char *key, float *out, const char *path,
                     vae_error *err, int32_t *rc)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 0;
    /* Beyond FLT_MAX the conversion below would give an infinity (or be
     * undefined): a finite JSON number that no float holds is refused too. */
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || fabs(j->valuedouble) > FLT_MAX) {
        *rc = vae_fail(err, VAE_ERR_FORMAT, "%s: \"%s\" must be a finite number (a float32)",
                       path, key);
        return -1;
    }
    *out = (float)j->valuedouble;
    return 1;
}

static int get_bool(const cJSON *root, const char *key, int32_t *out, const char *path,
                    vae_error *err, int32_t *rc)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsBool(j)) {
        *rc = vae_fail(err, VAE_ERR_FORMAT, "%s: \"%s\" must be true or false", path, key);
        return -1;
    }
    *out = cJSON_IsTrue(j);
    return 1;
}

int32_t vae_arch_from_config(const char *path, vae_arch *a, int implicit, vae_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return vae_fail(err, VAE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = vae_malloc(MAX_CONFIG_BYTES + 1);
    if (!buf) {
        fclose(fp);
        return vae_fail(err, VAE_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    size_t len = fread(buf, 1, MAX_CONFIG_BYTES + 1, fp);
    int rd_err = ferror(fp);
    fclose(fp);
    if (rd_err) {
        free(buf);
        return vae_fail(err, VAE_ERR_IO, "%s: read error", path);
    }
    if (len > MAX_CONFIG_BYTES) {
        free(buf);
        return vae_fail(err, VAE_ERR_FORMAT, "%s: larger than %u bytes: not a VAE config", path,
                        MAX_CONFIG_BYTES);
    }
    const char *ep = NULL; /* not cJSON_GetErrorPtr(): a global, racy */
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &ep, 0);
    if (!root) {
        long at = (ep && ep >= buf && ep <= buf + len) ? (long)(ep - buf) : 0;
        free(buf);
        return vae_fail(err, VAE_ERR_FORMAT, "%s: malformed JSON near byte %ld", path, at);
    }
    free(buf);
    int32_t rc = VAE_OK;
    if (!cJSON_IsObject(root)) {
        rc = vae_fail(err, VAE_ERR_FORMAT, "%s: not a JSON object", path);
        goto out;
    }
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    if (cJSON_IsString(cls) && strcmp(cls->valuestring, "AutoencoderKL") != 0) {
        if (implicit) {
            rc = VAE_ERR_NOT_OURS;
            goto out;
        }
        rc = vae_fail(err, VAE_ERR_UNSUPPORTED,
                      "%s: _class_name is \"%s\"; only AutoencoderKL is supported", path,
                      cls->valuestring);
        goto out;
    }
    const cJSON *boc = cJSON_GetObjectItemCaseSensitive(root, "block_out_channels");
    if (boc) {
        int n = cJSON_GetArraySize(boc);
        if (!cJSON_IsArray(boc) || n < 1 || n > VAE_MAX_LEVELS) {
            rc = vae_fail(err, VAE_ERR_FORMAT,
                          "%s: \"block_out_channels\" must be an array of 1 to %d sizes", path,
                          VAE_MAX_LEVELS);
            goto out;
        }
        a->levels = n;
        int i = 0;
        for (const cJSON *e = boc->child; e; e = e->next, i++) {
            if (!cJSON_IsNumber(e) || floor(e->valuedouble) != e->valuedouble ||
                e->valuedouble < 1 || e->valuedouble > 65536) {
                rc = vae_fail(err, VAE_ERR_FORMAT,
                              "%s: \"block_out_channels\"[%d] must be an integer in [1, 65536]",
                              path, i);
                goto out;
            }
            a->ch[i] = (int32_t)e->valuedouble;
        }
    }
    if (get_int(root, "layers_per_block", 1, 64, &a->layers_per_block, path, err, &rc) < 0 ||
        get_int(root, "latent_channels", 1, 4096, &a->latent_channels, path, err, &rc) < 0 ||
        get_int(root, "norm_num_groups", 1, 65536, &a->groups, path, err, &rc) < 0 ||
        get_int(root, "in_channels", 1, 64, &a->in_channels, path, err, &rc) < 0 ||
        get_int(root, "out_channels", 1, 64, &a->out_channels, path, err, &rc) < 0 ||
        get_float(root, "scaling_factor", &a->scale, path, err, &rc) < 0 ||
        get_float(root, "shift_factor", &a->shift, path, err, &rc) < 0 ||
        get_bool(root, "use_quant_conv", &a->use_quant_conv, path, err, &rc) < 0 ||
        get_bool(root, "use_post_quant_conv", &a->use_post_quant_conv, path, err, &rc) < 0)
        goto out;
    if (a->in_channels != 3 || a->out_channels != 3) {
        rc = vae_fail(err, VAE_ERR_UNSUPPORTED,
                      "%s: in_channels %d / out_channels %d: only RGB images (3 channels) are supported",
                      path, a->in_channels, a->out_channels);
        goto out;
    }
    if (a->scale == 0.0f) {
        rc = vae_fail(err, VAE_ERR_FORMAT, "%s: \"scaling_factor\" must not be 0", path);
        goto out;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "act_fn");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu") != 0) {
        rc = vae_fail(err, VAE_ERR_UNSUPPORTED, "%s: act_fn \"%s\" is not supported (only silu)",
                      path, act->valuestring);
        goto out;
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* Shape of a tensor named base + suffix, or NULL. */
static const st_tensor *find2(const st_file *f, const char *base, const char *suffix)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    return st_find(f, name);
}

int32_t vae_arch_infer(const st_file *f, const char *prefix, int32_t naming, vae_arch *a,
                       int from_config, vae_error *err)
{
    char name[512];
    vae_names nm = {prefix, naming, 0};
    const st_tensor *t;

    snprintf(name, sizeof name, "%sencoder.conv_in.weight", prefix);
    a->has_encoder = st_find(f, name) != NULL;
    snprintf(name, sizeof name, "%sdecoder.conv_in.weight", prefix);
    a->has_decoder = st_find(f, name) != NULL;

    /* Levels: count resnet 0 of each level, encoder first. */
    int32_t levels = 0, dec = a->has_encoder ? 0 : 1;
    for (int32_t l = 0; l < VAE_MAX_LEVELS + 1; l++) {
        nm.levels = VAE_MAX_LEVELS + 1; /* ldm numbering for the encoder is direct */
        if (dec && naming != VAE_NAMING_LDM) {
            /* diffusers numbers decoder blocks top-down: probe up_blocks.l */
            snprintf(name, sizeof name, "%sdecoder.up_blocks.%d.resnets.0", prefix, l);
        } else {
            vae_name_resnet(&nm, name, sizeof name, dec, l, 0);
        }
        if (!find2(f, name, ".conv1.weight")) break;
        levels++;
    }
    if (levels < 1 || levels > VAE_MAX_LEVELS)
        return vae_fail(err, VAE_ERR_MODEL, "%s: found %d resolution levels (expected 1 to %d)",
                        f->path, levels, VAE_MAX_LEVELS);
    if (from_config && a->levels && a->levels != levels)
        return vae_fail(err, VAE_ERR_MODEL,
                        "%s: config.json has %d block_out_channels but the weights have %d levels",
                        f->path, a->levels, levels);
    nm.levels = levels;

    int32_t ch[VAE_MAX_LEVELS];
    for (int32_t l = 0; l < levels; l++) {
        vae_name_resnet(&nm, name, sizeof name, dec, l, 0);
        t = find2(f, name, ".conv1.weight");
        if (!t || t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > 65536)
            return vae_fail(err, VAE_ERR_MODEL, "%s: tensor '%s.conv1.weight' is missing or not 4-d",
                            f->path, name);
        ch[l] = (int32_t)t->shape[0];
        if (from_config && a->levels && ch[l] != a->ch[l])
            return vae_fail(err, VAE_ERR_MODEL,
                            "%s: config.json says block_out_channels[%d] = %d but '%s.conv1.weight' has %d output channels",
                            f->path, l, a->ch[l], name, ch[l]);
    }
    /* Resnets per level: encoder level 0 has layers_per_block, decoder
     * levels one more. */
    int32_t nres = 0;
    for (int32_t j = 0; j < 65; j++) {
        vae_name_resnet(&nm, name, sizeof name, dec, 0, j);
        if (!find2(f, name, ".conv1.weight")) break;
        nres++;
    }
    int32_t lpb = dec ? nres - 1 : nres;
    if (lpb < 1)
        return vae_fail(err, VAE_ERR_MODEL, "%s: level 0 of the %s has %d resnets", f->path,
                        dec ? "decoder" : "encoder", nres);
    if (from_config && a->layers_per_block && a->layers_per_block != lpb)
        return vae_fail(err, VAE_ERR_MODEL,
                        "%s: config.json says layers_per_block = %d but the weights have %d",
                        f->path, a->layers_per_block, lpb);

    int32_t latent;
    if (a->has_decoder) {
        snprintf(name, sizeof name, "%sdecoder.conv_in.weight", prefix);
        t = st_find(f, name);
        if (!t || t->ndim != 4 || t->shape[1] < 1 || t->shape[1] > 4096)
            return vae_fail(err, VAE_ERR_MODEL, "%s: '%s' is not a 4-d convolution weight", f->path, name);
        latent = (int32_t)t->shape[1];
    } else {
        snprintf(name, sizeof name, "%sencoder.conv_out.weight", prefix);
        t = st_find(f, name);
        if (!t || t->ndim != 4 || t->shape[0] < 2 || t->shape[0] > 8192 || t->shape[0] % 2)
            return vae_fail(err, VAE_ERR_MODEL, "%s: '%s' is missing or has an odd channel count",
                            f->path, name);
        latent = (int32_t)t->shape[0] / 2;
    }
    if (from_config && a->latent_channels && a->latent_channels != latent)
        return vae_fail(err, VAE_ERR_MODEL,
                        "%s: config.json says latent_channels = %d but the weights have %d",
                        f->path, a->latent_channels, latent);

    snprintf(name, sizeof name, "%squant_conv.weight", prefix);
    int32_t qc = st_find(f, name) != NULL;
    snprintf(name, sizeof name, "%spost_quant_conv.weight", prefix);
    int32_t pqc = st_find(f, name) != NULL;
    if (!from_config) {
        a->use_quant_conv = qc;
        a->use_post_quant_conv = pqc;
    } else {
        /* Only the halves present in the file matter. */
        if (a->has_encoder && a->use_quant_conv != qc)
            return vae_fail(err, VAE_ERR_MODEL, "%s: config.json says use_quant_conv = %s but the weights %s it",
                            f->path, a->use_quant_conv ? "true" : "false", qc ? "have" : "lack");
        if (a->has_decoder && a->use_post_quant_conv != pqc)
            return vae_fail(err, VAE_ERR_MODEL,
                            "%s: config.json says use_post_quant_conv = %s but the weights %s it",
                            f->path, a->use_post_quant_conv ? "true" : "false", pqc ? "have" : "lack");
    }
    a->levels = levels;
    memcpy(a->ch, ch, sizeof ch);
    a->layers_per_block = lpb;
    a->latent_channels = latent;
    for (int32_t l = 0; l < levels; l++)
        if (ch[l] % a->groups != 0)
            return vae_fail(err, VAE_ERR_MODEL,
                            "%s: %d channels at level %d are not divisible into %d groups%s", f->path,
                            ch[l], l, a->groups, from_config ? "" : " (the default without config.json)");
    return VAE_OK;
}
