/* names.c - the three tensor namings of released VAE files, and the key
 * prefix of full checkpoints ("first_stage_model." in SD/SDXL .safetensors,
 * "vae." in some merges). Everything else in the loader speaks ldm levels:
 * level 0 is the full-resolution one, in the encoder and the decoder alike
 * (diffusers numbers decoder blocks the other way round). */
#include "model/model.h"

#include <stdio.h>
#include <string.h>

static const char *side(int dec) { return dec ? "decoder" : "encoder"; }

void vae_name_resnet(const vae_names *nm, char *buf, size_t cap, int dec, int level, int j)
{
    if (nm->naming == VAE_NAMING_LDM)
        snprintf(buf, cap, "%s%s.%s.%d.block.%d", nm->prefix, side(dec), dec ? "up" : "down",
                 level, j);
    else if (dec)
        snprintf(buf, cap, "%sdecoder.up_blocks.%d.resnets.%d", nm->prefix,
                 nm->levels - 1 - level, j);
    else
        snprintf(buf, cap, "%sencoder.down_blocks.%d.resnets.%d", nm->prefix, level, j);
}

void vae_name_mid_resnet(const vae_names *nm, char *buf, size_t cap, int dec, int which)
{
    if (nm->naming == VAE_NAMING_LDM)
        snprintf(buf, cap, "%s%s.mid.block_%d", nm->prefix, side(dec), which + 1);
    else
        snprintf(buf, cap, "%s%s.mid_block.resnets.%d", nm->prefix, side(dec), which);
}

void vae_name_sample(const vae_names *nm, char *buf, size_t cap, int dec, int level)
{
    if (nm->naming == VAE_NAMING_LDM)
        snprintf(buf, cap, "%s%s.%s.%d.%s.conv", nm->prefix, side(dec), dec ? "up" : "down",
                 level, dec ? "upsample" : "downsample");
    else if (dec)
        snprintf(buf, cap, "%sdecoder.up_blocks.%d.upsamplers.0.conv", nm->prefix,
                 nm->levels - 1 - level);
    else
        snprintf(buf, cap, "%sencoder.down_blocks.%d.downsamplers.0.conv", nm->prefix, level);
}

/* part: "norm", "q", "k", "v", "proj" */
void vae_name_attn(const vae_names *nm, char *buf, size_t cap, int dec, const char *part)
{
    static const char *const parts[] = {"norm", "q", "k", "v", "proj"};
    static const char *const ldm[] = {"norm", "q", "k", "v", "proj_out"};
    static const char *const dif[] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
    static const char *const leg[] = {"group_norm", "query", "key", "value", "proj_attn"};
    size_t i = 0;
    while (i < 4 && strcmp(parts[i], part) != 0) i++;
    if (nm->naming == VAE_NAMING_LDM)
        snprintf(buf, cap, "%s%s.mid.attn_1.%s", nm->prefix, side(dec), ldm[i]);
    else
        snprintf(buf, cap, "%s%s.mid_block.attentions.0.%s", nm->prefix, side(dec),
                 nm->naming == VAE_NAMING_LEGACY ? leg[i] : dif[i]);
}

/* part: "conv_in", "norm_out", "conv_out", "quant_conv", "post_quant_conv" */
void vae_name_top(const vae_names *nm, char *buf, size_t cap, int dec, const char *part)
{
    if (strcmp(part, "quant_conv") == 0 || strcmp(part, "post_quant_conv") == 0)
        snprintf(buf, cap, "%s%s", nm->prefix, part);
    else if (strcmp(part, "norm_out") == 0 && nm->naming != VAE_NAMING_LDM)
        snprintf(buf, cap, "%s%s.conv_norm_out", nm->prefix, side(dec));
    else
        snprintf(buf, cap, "%s%s.%s", nm->prefix, side(dec), part);
}

const char *vae_name_resnet_part(const vae_names *nm, const char *part)
{
    if (strcmp(part, "shortcut") == 0)
        return nm->naming == VAE_NAMING_LDM ? "nin_shortcut" : "conv_shortcut";
    return part;
}

static int ends_with(const char *s, const char *suffix, size_t *prefix_len)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    if (ls < lx || strcmp(s + ls - lx, suffix) != 0) return 0;
    *prefix_len = ls - lx;
    return 1;
}

int32_t vae_detect_naming(const st_file *f, char *prefix, size_t prefix_cap, int32_t *naming,
                          vae_error *err)
{
    /* The prefix is whatever stands before a conv_in every VAE has. */
    size_t plen = 0;
    int found = 0;
    for (size_t i = 0; i < f->n_tensors && !found; i++) {
        const char *n = f->tensors[i].name;
        if (ends_with(n, "decoder.conv_in.weight", &plen) ||
            ends_with(n, "encoder.conv_in.weight", &plen)) {
            /* skip the UNet's and others' conv_in: only accept known prefixes */
            if (plen == 0 || (plen == 18 && strncmp(n, "first_stage_model.", 18) == 0) ||
                (plen == 4 && strncmp(n, "vae.", 4) == 0))
                found = 1;
        }
    }
    if (!found)
        return vae_fail(err, VAE_ERR_MODEL,
                        "%s: no VAE found: neither 'encoder.conv_in.weight' nor 'decoder.conv_in.weight' "
                        "(with an optional 'first_stage_model.' or 'vae.' prefix) is in its %zu tensors",
                        f->path, f->n_tensors);
    if (plen + 1 > prefix_cap) return vae_fail(err, VAE_ERR_INTERNAL, "prefix too long");
    /* copy the prefix from a tensor that has it */
    for (size_t i = 0; i < f->n_tensors; i++) {
        size_t pl;
        const char *n = f->tensors[i].name;
        if ((ends_with(n, "decoder.conv_in.weight", &pl) || ends_with(n, "encoder.conv_in.weight", &pl)) &&
            pl == plen) {
            memcpy(prefix, n, plen);
            break;
        }
    }
    prefix[plen] = '\0';

    int dif = 0, leg = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const char *n = f->tensors[i].name;
        if (strncmp(n, prefix, plen) != 0) continue;
        if (strstr(n + plen, "mid_block.") || strstr(n + plen, "down_blocks.") ||
            strstr(n + plen, "up_blocks."))
            dif = 1;
        if (strstr(n + plen, "attentions.0.query."))
            leg = 1;
    }
    *naming = leg ? VAE_NAMING_LEGACY : dif ? VAE_NAMING_DIFFUSERS : VAE_NAMING_LDM;
    return VAE_OK;
}
