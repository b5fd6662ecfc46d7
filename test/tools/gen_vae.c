/* gen_vae.c - writes a random-weight Stable Diffusion VAE (AutoencoderKL).
 *
 *   gen_vae [--channels 128,256,512,512] [--layers 2] [--latent 4] [--groups 32]
 *           [--dtype f32|f16|bf16] [--naming ldm|diffusers|legacy]
 *           [--no-quant-conv] [--scale 0.13025] [--shift 0] [--seed N] OUTDIR
 *
 * Writes OUTDIR/model.safetensors (keys sorted, data contiguous in key order,
 * header padded to 8 bytes) and OUTDIR/config.json (diffusers style).  The
 * defaults are the SDXL VAE's shape, 83,653,863 parameters.
 *
 * The values are seeded per tensor from --seed and the tensor's original (ldm)
 * name, so the same seed gives the same model whatever the naming, and the
 * same model up to rounding whatever the dtype.  Uniform values with the
 * standard deviations that keep activations O(1): conv and linear weights
 * 1/sqrt(fan_in), biases 0.1, GroupNorm scale 1 +- 0.2, shift 0.2.
 *
 * Needs nothing but libc (no libm): it is a test tool for `make demo` and the
 * benchmarks, also built on its own with `cc -std=c11 gen_vae.c`.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_LEVELS 16
#define NAME_CAP 160

enum init_kind { INIT_WEIGHT, INIT_BIAS, INIT_NORM_SCALE, INIT_NORM_SHIFT };
enum naming { NAMING_LDM, NAMING_DIFFUSERS, NAMING_LEGACY };
enum dtype { DT_F32, DT_F16, DT_BF16 };

typedef struct tensor {
    char name[NAME_CAP];    /* as written */
    char canon[NAME_CAP];   /* ldm name: seeds the values */
    int ndim;
    int64_t shape[4];
    int64_t count;
    int64_t fan_in;
    enum init_kind init;
    uint64_t offset;
} tensor;

typedef struct model {
    tensor *t;
    size_t n, cap;
    enum naming naming;
    int failed;
} model;

typedef struct options {
    int channels[MAX_LEVELS];
    int levels;
    int layers;
    int latent;
    int groups;
    enum dtype dtype;
    enum naming naming;
    int quant_conv;
    double scale;
    double shift;
    uint64_t seed;
    const char *outdir;
} options;

static const char *const dtype_names[] = {"F32", "F16", "BF16"};
static const size_t dtype_size[] = {4, 2, 2};

/* ---- names --------------------------------------------------------------- */

static void fmt(char *dst, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void fmt(char *dst, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(dst, NAME_CAP, f, ap);
    va_end(ap);
    if (n < 0 || n >= NAME_CAP) {
        fprintf(stderr, "gen_vae: tensor name too long\n");
        exit(2);
    }
}

static void add(model *m, const char *canon, const char *name, enum init_kind init,
                int ndim, const int64_t *shape, int64_t fan_in)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 256;
        tensor *t = realloc(m->t, cap * sizeof *t);
        if (!t) {
            fprintf(stderr, "gen_vae: out of memory\n");
            exit(1);
        }
        m->t = t;
        m->cap = cap;
    }
    tensor *t = &m->t[m->n++];
    memset(t, 0, sizeof *t);
    fmt(t->name, "%s", name);
    fmt(t->canon, "%s", canon);
    t->ndim = ndim;
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->count *= shape[i];
    }
    t->fan_in = fan_in;
    t->init = init;
}

/* A convolution (k x k) or, for linear = 1, a [cout, cin] linear layer. */
static void add_conv(model *m, const char *canon, const char *name, int cout, int cin,
                     int k, int linear)
{
    char c[NAME_CAP], n[NAME_CAP];
    int64_t wshape[4] = {cout, cin, k, k};
    int64_t bshape[1] = {cout};
    fmt(c, "%s.weight", canon);
    fmt(n, "%s.weight", name);
    add(m, c, n, INIT_WEIGHT, linear ? 2 : 4, wshape, (int64_t)cin * k * k);
    fmt(c, "%s.bias", canon);
    fmt(n, "%s.bias", name);
    add(m, c, n, INIT_BIAS, 1, bshape, 0);
}

static void add_norm(model *m, const char *canon, const char *name, int ch)
{
    char c[NAME_CAP], n[NAME_CAP];
    int64_t shape[1] = {ch};
    fmt(c, "%s.weight", canon);
    fmt(n, "%s.weight", name);
    add(m, c, n, INIT_NORM_SCALE, 1, shape, 0);
    fmt(c, "%s.bias", canon);
    fmt(n, "%s.bias", name);
    add(m, c, n, INIT_NORM_SHIFT, 1, shape, 0);
}

static void add_resnet(model *m, const char *canon, const char *name, int cin, int cout)
{
    char c[NAME_CAP], n[NAME_CAP];
    fmt(c, "%s.norm1", canon);
    fmt(n, "%s.norm1", name);
    add_norm(m, c, n, cin);
    fmt(c, "%s.conv1", canon);
    fmt(n, "%s.conv1", name);
    add_conv(m, c, n, cout, cin, 3, 0);
    fmt(c, "%s.norm2", canon);
    fmt(n, "%s.norm2", name);
    add_norm(m, c, n, cout);
    fmt(c, "%s.conv2", canon);
    fmt(n, "%s.conv2", name);
    add_conv(m, c, n, cout, cout, 3, 0);
    if (cin != cout) {
        fmt(c, "%s.nin_shortcut", canon);
        fmt(n, m->naming == NAMING_LDM ? "%s.nin_shortcut" : "%s.conv_shortcut", name);
        add_conv(m, c, n, cout, cin, 1, 0);
    }
}

/* encoder.mid / decoder.mid: block_1, attn_1, block_2. */
static void add_mid(model *m, const char *half, int ch)
{
    static const char *const ldm_attn[] = {"q", "k", "v", "proj_out"};
    static const char *const diff_attn[] = {"to_q", "to_k", "to_v", "to_out.0"};
    static const char *const legacy_attn[] = {"query", "key", "value", "proj_attn"};
    char c[NAME_CAP], n[NAME_CAP];
    int ldm = m->naming == NAMING_LDM;
    const char *const *attn = ldm ? ldm_attn
                            : m->naming == NAMING_DIFFUSERS ? diff_attn : legacy_attn;

    fmt(c, "%s.mid.block_1", half);
    fmt(n, ldm ? "%s.mid.block_1" : "%s.mid_block.resnets.0", half);
    add_resnet(m, c, n, ch, ch);

    fmt(c, "%s.mid.attn_1.norm", half);
    fmt(n, ldm ? "%s.mid.attn_1.norm" : "%s.mid_block.attentions.0.group_norm", half);
    add_norm(m, c, n, ch);
    for (int i = 0; i < 4; i++) {
        fmt(c, "%s.mid.attn_1.%s", half, ldm_attn[i]);
        fmt(n, ldm ? "%s.mid.attn_1.%s" : "%s.mid_block.attentions.0.%s", half, attn[i]);
        add_conv(m, c, n, ch, ch, 1, !ldm);
    }

    fmt(c, "%s.mid.block_2", half);
    fmt(n, ldm ? "%s.mid.block_2" : "%s.mid_block.resnets.1", half);
    add_resnet(m, c, n, ch, ch);
}

static void build(model *m, const options *o)
{
    char c[NAME_CAP], n[NAME_CAP];
    int ldm = m->naming == NAMING_LDM;
    int L = o->levels, top = o->channels[L - 1];

    /* encoder */
    add_conv(m, "encoder.conv_in", "encoder.conv_in", o->channels[0], 3, 3, 0);
    int cin = o->channels[0];
    for (int i = 0; i < L; i++) {
        int cout = o->channels[i];
        for (int j = 0; j < o->layers; j++) {
            fmt(c, "encoder.down.%d.block.%d", i, j);
            fmt(n, ldm ? "encoder.down.%d.block.%d" : "encoder.down_blocks.%d.resnets.%d", i, j);
            add_resnet(m, c, n, cin, cout);
            cin = cout;
        }
        if (i != L - 1) {
            fmt(c, "encoder.down.%d.downsample.conv", i);
            fmt(n, ldm ? "encoder.down.%d.downsample.conv"
                       : "encoder.down_blocks.%d.downsamplers.0.conv", i);
            add_conv(m, c, n, cout, cout, 3, 0);
        }
    }
    add_mid(m, "encoder", top);
    add_norm(m, "encoder.norm_out", ldm ? "encoder.norm_out" : "encoder.conv_norm_out", top);
    add_conv(m, "encoder.conv_out", "encoder.conv_out", 2 * o->latent, top, 3, 0);

    if (o->quant_conv) {
        add_conv(m, "quant_conv", "quant_conv", 2 * o->latent, 2 * o->latent, 1, 0);
        add_conv(m, "post_quant_conv", "post_quant_conv", o->latent, o->latent, 1, 0);
    }

    /* decoder: ldm level i is diffusers up_blocks[L-1-i]; level L-1 runs first */
    add_conv(m, "decoder.conv_in", "decoder.conv_in", top, o->latent, 3, 0);
    add_mid(m, "decoder", top);
    cin = top;
    for (int i = L - 1; i >= 0; i--) {
        int cout = o->channels[i];
        for (int j = 0; j < o->layers + 1; j++) {
            fmt(c, "decoder.up.%d.block.%d", i, j);
            if (ldm)
                fmt(n, "decoder.up.%d.block.%d", i, j);
            else
                fmt(n, "decoder.up_blocks.%d.resnets.%d", L - 1 - i, j);
            add_resnet(m, c, n, cin, cout);
            cin = cout;
        }
        if (i != 0) {
            fmt(c, "decoder.up.%d.upsample.conv", i);
            if (ldm)
                fmt(n, "decoder.up.%d.upsample.conv", i);
            else
                fmt(n, "decoder.up_blocks.%d.upsamplers.0.conv", L - 1 - i);
            add_conv(m, c, n, cout, cout, 3, 0);
        }
    }
    add_norm(m, "decoder.norm_out", ldm ? "decoder.norm_out" : "decoder.conv_norm_out",
             o->channels[0]);
    add_conv(m, "decoder.conv_out", "decoder.conv_out", 3, o->channels[0], 3, 0);
}

/* ---- random numbers -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t next_u64(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static uint64_t fnv1a64(const char *str)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)str; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

static double sqrt_pos(double x) /* x > 0; Newton, no libm */
{
    double r = x > 1 ? x : 1;
    for (int i = 0; i < 200; i++) {
        double nr = 0.5 * (r + x / r);
        if (nr >= r)
            break;
        r = nr;
    }
    return r;
}

/* count values for t: uniform with the standard deviation of its kind */
static void fill(const tensor *t, uint64_t seed, float *out)
{
    uint64_t sm = seed ^ fnv1a64(t->canon), s[4];
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&sm);
    double std = 0.1, mean = 0.0;
    switch (t->init) {
    case INIT_WEIGHT: std = 1.0 / sqrt_pos((double)t->fan_in); break;
    case INIT_BIAS: std = 0.1; break;
    case INIT_NORM_SCALE: std = 0.2; mean = 1.0; break;
    case INIT_NORM_SHIFT: std = 0.2; break;
    }
    /* uniform on [-a, a) has standard deviation a / sqrt(3) */
    double a = std * 1.7320508075688772;
    double k = 2.0 * a / 16777216.0; /* 24 random bits -> [-a, a) */
    for (int64_t i = 0; i < t->count; i++)
        out[i] = (float)(mean - a + k * (double)(next_u64(s) >> 40));
}

/* ---- float conversion (round to nearest even) ------------------------------ */

static uint32_t f32_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
        return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static uint16_t f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (ax >= 0x477ff000u) /* >= 65520 (and inf) -> inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal half (or zero) */
        if (ax <= 0x33000000u) /* <= 2^-25: rounds to zero */
            return (uint16_t)sign;
        uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - (ax >> 23); /* 14 .. 24 */
        uint32_t r = mant >> shift, rem = mant & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ax - 0x38000000u; /* exponent bias 127 -> 15 */
    r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | r);
}

/* ---- output ---------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *f, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, f);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, f, ap);
        va_end(ap);
        if (n < 0) {
            fprintf(stderr, "gen_vae: formatting failed\n");
            exit(1);
        }
        if (b->p && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "gen_vae: out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
}

/* The shortest %g that reads back as the same double. */
static void sb_double(sbuf *b, double v)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    sb_printf(b, "%s", tmp); /* finite, so %g is valid JSON */
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const tensor *)a)->name, ((const tensor *)b)->name);
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            buf[i] = saved;
        }
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* Writes dir/name through a temporary file: head alone (config.json) or, with
 * m, a safetensors file: length, header head, then every tensor's data. */
static int write_file_atomic(const char *dir, const char *name, const sbuf *head,
                             const model *m, const options *o)
{
    char path[4096], tmp[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "gen_vae: cannot create %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    int ok = 1;
    if (m) { /* safetensors: the header's length, 8 bytes little-endian */
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (unsigned char)((uint64_t)head->len >> (8 * i));
        ok = fwrite(le, 1, 8, f) == 8;
    }
    ok = ok && fwrite(head->p, 1, head->len, f) == head->len;
    if (m) {
        int64_t maxc = 0;
        for (size_t i = 0; i < m->n; i++)
            if (m->t[i].count > maxc)
                maxc = m->t[i].count;
        float *vals = malloc((size_t)maxc * sizeof *vals);
        unsigned char *bytes = malloc((size_t)maxc * 4);
        if (!vals || !bytes) {
            fprintf(stderr, "gen_vae: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; ok && i < m->n; i++) {
            const tensor *t = &m->t[i];
            size_t cnt = (size_t)t->count, nb;
            fill(t, o->seed, vals);
            if (o->dtype == DT_F32) {
                for (size_t j = 0; j < cnt; j++) { /* little-endian, whatever the host */
                    uint32_t x = f32_bits(vals[j]);
                    bytes[4 * j] = (unsigned char)x;
                    bytes[4 * j + 1] = (unsigned char)(x >> 8);
                    bytes[4 * j + 2] = (unsigned char)(x >> 16);
                    bytes[4 * j + 3] = (unsigned char)(x >> 24);
                }
                nb = 4 * cnt;
            } else {
                for (size_t j = 0; j < cnt; j++) {
                    uint16_t h = o->dtype == DT_F16 ? f32_to_f16(vals[j]) : f32_to_bf16(vals[j]);
                    bytes[2 * j] = (unsigned char)h;
                    bytes[2 * j + 1] = (unsigned char)(h >> 8);
                }
                nb = 2 * cnt;
            }
            ok = fwrite(bytes, 1, nb, f) == nb;
        }
        free(vals);
        free(bytes);
    }
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "gen_vae: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* The safetensors JSON header, padded with spaces so that the data (after the
 * 8-byte length) starts on an 8-byte boundary.  Sets every tensor's offset. */
static sbuf st_header(model *m, const options *o)
{
    sbuf j = {0};
    uint64_t off = 0;
    sb_printf(&j, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < m->n; i++) {
        tensor *t = &m->t[i];
        uint64_t nb = (uint64_t)t->count * dtype_size[o->dtype];
        t->offset = off;
        sb_printf(&j, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, dtype_names[o->dtype]);
        for (int d = 0; d < t->ndim; d++)
            sb_printf(&j, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_printf(&j, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + nb));
        off += nb;
    }
    sb_printf(&j, "}");
    while ((8 + j.len) % 8)
        sb_printf(&j, " ");
    return j;
}

static sbuf config_json(const options *o)
{
    sbuf b = {0};
    sb_printf(&b, "{\n  \"_class_name\": \"AutoencoderKL\",\n  \"act_fn\": \"silu\",\n"
                  "  \"block_out_channels\": [");
    for (int i = 0; i < o->levels; i++)
        sb_printf(&b, "%s%d", i ? ", " : "", o->channels[i]);
    sb_printf(&b, "],\n  \"down_block_types\": [");
    for (int i = 0; i < o->levels; i++)
        sb_printf(&b, "%s\"DownEncoderBlock2D\"", i ? ", " : "");
    sb_printf(&b, "],\n  \"up_block_types\": [");
    for (int i = 0; i < o->levels; i++)
        sb_printf(&b, "%s\"UpDecoderBlock2D\"", i ? ", " : "");
    sb_printf(&b, "],\n  \"force_upcast\": true,\n  \"in_channels\": 3,\n"
                  "  \"latent_channels\": %d,\n  \"layers_per_block\": %d,\n"
                  "  \"norm_num_groups\": %d,\n  \"out_channels\": 3,\n"
                  "  \"sample_size\": 1024,\n  \"scaling_factor\": ",
              o->latent, o->layers, o->groups);
    sb_double(&b, o->scale);
    if (o->shift != 0.0) {
        sb_printf(&b, ",\n  \"shift_factor\": ");
        sb_double(&b, o->shift);
    }
    sb_printf(&b, ",\n  \"use_quant_conv\": %s,\n  \"use_post_quant_conv\": %s\n}\n",
              o->quant_conv ? "true" : "false", o->quant_conv ? "true" : "false");
    return b;
}

/* ---- command line ------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gen_vae [options] OUTDIR\n"
            "Writes OUTDIR/model.safetensors and OUTDIR/config.json: an AutoencoderKL\n"
            "with random weights (defaults: the SDXL VAE's shape, 83,653,863 parameters).\n"
            "  --channels LIST   block_out_channels (default 128,256,512,512)\n"
            "  --layers N        resnets per encoder level (decoder: N+1) (default 2)\n"
            "  --latent N        latent channels (default 4)\n"
            "  --groups N        GroupNorm groups (default 32)\n"
            "  --dtype T         f32, f16 or bf16 (default f32)\n"
            "  --naming S        ldm (original), diffusers or legacy (old diffusers\n"
            "                    attention names) (default ldm)\n"
            "  --no-quant-conv   no quant_conv / post_quant_conv (as the Flux VAE)\n"
            "  --scale X         scaling_factor in config.json (default 0.13025)\n"
            "  --shift X         shift_factor in config.json, 0 = none (default 0)\n"
            "  --seed N          random seed (default 0)\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v - v != 0) /* NaN and inf: not JSON */
        return -1;
    *out = v;
    return 0;
}

static int parse_channels(const char *s, options *o)
{
    o->levels = 0;
    for (const char *p = s;; p++) {
        char tok[16];
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len >= sizeof tok || o->levels == MAX_LEVELS)
            return -1;
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (parse_int(tok, 1, 1 << 16, &o->channels[o->levels]))
            return -1;
        o->levels++;
        if (!end)
            return 0;
        p = end;
    }
}

static int parse_args(int argc, char **argv, options *o)
{
    static const int sdxl[] = {128, 256, 512, 512};
    memset(o, 0, sizeof *o);
    memcpy(o->channels, sdxl, sizeof sdxl);
    o->levels = 4;
    o->layers = 2;
    o->latent = 4;
    o->groups = 32;
    o->dtype = DT_F32;
    o->naming = NAMING_LDM;
    o->quant_conv = 1;
    o->scale = 0.13025;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char opt[64];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--no-quant-conv")) {
            o->quant_conv = 0;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (o->outdir) {
                fprintf(stderr, "gen_vae: more than one OUTDIR\n");
                return -1;
            }
            o->outdir = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof opt) {
            fprintf(stderr, "gen_vae: unknown option %s\n", a);
            return -1;
        }
        memcpy(opt, a, len);
        opt[len] = '\0';
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            fprintf(stderr, "gen_vae: %s needs a value\n", opt);
            return -1;
        }
        int bad = 0;
        if (!strcmp(opt, "--channels"))
            bad = parse_channels(v, o);
        else if (!strcmp(opt, "--layers"))
            bad = parse_int(v, 1, 64, &o->layers);
        else if (!strcmp(opt, "--latent"))
            bad = parse_int(v, 1, 1 << 12, &o->latent);
        else if (!strcmp(opt, "--groups"))
            bad = parse_int(v, 1, 1 << 16, &o->groups);
        else if (!strcmp(opt, "--scale"))
            bad = parse_double(v, &o->scale);
        else if (!strcmp(opt, "--shift"))
            bad = parse_double(v, &o->shift);
        else if (!strcmp(opt, "--seed")) {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 0);
            bad = errno || end == v || *end || *v == '-';
        } else if (!strcmp(opt, "--dtype")) {
            if (!strcmp(v, "f32") || !strcmp(v, "F32"))
                o->dtype = DT_F32;
            else if (!strcmp(v, "f16") || !strcmp(v, "F16"))
                o->dtype = DT_F16;
            else if (!strcmp(v, "bf16") || !strcmp(v, "BF16"))
                o->dtype = DT_BF16;
            else
                bad = 1;
        } else if (!strcmp(opt, "--naming")) {
            if (!strcmp(v, "ldm") || !strcmp(v, "original"))
                o->naming = NAMING_LDM;
            else if (!strcmp(v, "diffusers"))
                o->naming = NAMING_DIFFUSERS;
            else if (!strcmp(v, "legacy"))
                o->naming = NAMING_LEGACY;
            else
                bad = 1;
        } else {
            fprintf(stderr, "gen_vae: unknown option %s\n", opt);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "gen_vae: bad value for %s: '%s'\n", opt, v);
            return -1;
        }
    }
    if (!o->outdir) {
        fprintf(stderr, "gen_vae: no OUTDIR given\n");
        return -1;
    }
    for (int i = 0; i < o->levels; i++)
        if (o->channels[i] % o->groups) {
            fprintf(stderr, "gen_vae: %d channels do not split into %d groups\n",
                    o->channels[i], o->groups);
            return -1;
        }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const naming_names[] = {"ldm", "diffusers", "legacy"};
    options o;
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    model m = {0};
    m.naming = o.naming;
    build(&m, &o);
    qsort(m.t, m.n, sizeof *m.t, cmp_name);
    for (size_t i = 1; i < m.n; i++)
        if (!strcmp(m.t[i - 1].name, m.t[i].name)) {
            fprintf(stderr, "gen_vae: duplicate tensor %s\n", m.t[i].name);
            return 1;
        }
    int64_t params = 0;
    for (size_t i = 0; i < m.n; i++)
        params += m.t[i].count;

    if (mkdir_p(o.outdir) != 0) {
        fprintf(stderr, "gen_vae: cannot create directory %s: %s\n", o.outdir, strerror(errno));
        return 1;
    }
    sbuf head = st_header(&m, &o);
    sbuf cfg = config_json(&o);
    uint64_t bytes = 8 + head.len + (uint64_t)params * dtype_size[o.dtype];
    int rc = write_file_atomic(o.outdir, "model.safetensors", &head, &m, &o) ||
             write_file_atomic(o.outdir, "config.json", &cfg, NULL, &o);
    if (rc == 0)
        printf("gen_vae: %s: %zu tensors, %lld parameters, %s, %s names, %llu bytes\n",
               o.outdir, m.n, (long long)params, dtype_names[o.dtype], naming_names[o.naming],
               (unsigned long long)bytes);
    free(head.p);
    free(cfg.p);
    free(m.t);
    return rc ? 1 : 0;
}
