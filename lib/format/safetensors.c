/* safetensors.c - see safetensors.h. Format: an 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets}}, then the
 * data section that the offsets index. */
#include "format/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is not a VAE (SDXL's is ~25 KB). */
#define ST_MAX_HEADER (64u << 20)

const char *st_dtype_name(int32_t dtype)
{
    switch (dtype) {
    case ST_F32: return "F32";
    case ST_F16: return "F16";
    case ST_BF16: return "BF16";
    default: return "non-float";
    }
}

/* Every dtype of the format has a size, so every tensor's byte count can be
 * checked; only F32, F16 and BF16 are ever converted (a full checkpoint
 * carries I64 position ids and the like that the VAE never reads). */
static int parse_dtype(const char *s, int32_t *dtype, uint64_t *elsize)
{
    static const struct { const char *name; int32_t dtype; uint64_t size; } table[] = {
        {"F32", ST_F32, 4},   {"F16", ST_F16, 2},   {"BF16", ST_BF16, 2},
        {"F64", ST_OTHER, 8}, {"I64", ST_OTHER, 8}, {"U64", ST_OTHER, 8},
        {"I32", ST_OTHER, 4}, {"U32", ST_OTHER, 4}, {"I16", ST_OTHER, 2},
        {"U16", ST_OTHER, 2}, {"I8", ST_OTHER, 1},  {"U8", ST_OTHER, 1},
        {"BOOL", ST_OTHER, 1}, {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(s, table[i].name) == 0) {
            *dtype = table[i].dtype;
            *elsize = table[i].size;
            return 1;
        }
    return 0;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

void st_close(st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->map) munmap(f->map, f->map_size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static int32_t parse_header(st_file *f, const uint8_t *buf, size_t len,
                            const char *label, vae_error *err)
{
    if (len < 8)
        return vae_fail(err, VAE_ERR_FORMAT,
                        "%s: %zu bytes is too short for a safetensors file (needs an 8-byte header length)",
                        label, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > len - 8)
        return vae_fail(err, VAE_ERR_FORMAT,
                        "%s: header length %llu at byte 0 does not fit the file of %zu bytes",
                        label, (unsigned long long)hlen, len);
    const char *json = (const char *)buf + 8;
    if (json[0] != '{')
        return vae_fail(err, VAE_ERR_FORMAT, "%s: header at byte 8 is not a JSON object", label);

    /* the end pointer, not cJSON_GetErrorPtr(): that one is a global that
     * concurrent loads would race on */
    const char *ep = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &ep, 0);
    if (!root) {
        long at = ep ? (long)(ep - json) + 8 : 8;
        if (at < 8 || at > (long)(hlen + 8)) at = 8;
        return vae_fail(err, VAE_ERR_FORMAT, "%s: malformed JSON header near byte %ld", label, at);
    }
    int32_t rc = VAE_OK;
    if (!cJSON_IsObject(root)) {
        rc = vae_fail(err, VAE_ERR_FORMAT, "%s: header is not a JSON object", label);
        goto out;
    }
    f->base = buf + 8 + hlen;
    f->data_size = len - 8 - hlen;

    size_t n = 0;
    for (cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) n++;
    f->tensors = vae_calloc_n(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) { rc = vae_fail(err, VAE_ERR_NO_MEMORY, "%s: out of memory for %zu tensors", label, n); goto out; }

    for (cJSON *e = root->child; e; e = e->next) {
        const char *name = e->string;
        if (strcmp(name, "__metadata__") == 0) continue;
        st_tensor *t = &f->tensors[f->n_tensors];
        if (!cJSON_IsObject(e)) {
            rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensor '%s': entry is not an object", label, name);
            goto out;
        }
        t->name = vae_strdup(name);
        if (!t->name) { rc = vae_fail(err, VAE_ERR_NO_MEMORY, "%s: out of memory", label); goto out; }
        f->n_tensors++;

        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        uint64_t elsize = 0;
        if (!cJSON_IsString(dt)) {
            rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensor '%s': missing dtype", label, name);
            goto out;
        }
        snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
        if (!parse_dtype(dt->valuestring, &t->dtype, &elsize)) {
            rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"",
                          label, name, dt->valuestring);
            goto out;
        }
        if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > ST_MAX_DIMS) {
            rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensor '%s': shape is not an array of at most %d sizes",
                          label, name, ST_MAX_DIMS);
            goto out;
        }
        uint64_t count = 1;
        for (const cJSON *d = sh->child; d; d = d->next) {
            uint64_t v;
            if (!json_u64(d, &v) || v > INT64_MAX) {
                rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a size",
                              label, name, t->ndim);
                goto out;
            }
            if (!vae_mul_ok(count, v, &count)) {
                rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensor '%s': shape overflows", label, name);
                goto out;
            }
            t->shape[t->ndim++] = (int64_t)v;
        }
        t->count = count;
        uint64_t o0, o1;
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
            !json_u64(cJSON_GetArrayItem(of, 0), &o0) || !json_u64(cJSON_GetArrayItem(of, 1), &o1)) {
            rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensor '%s': data_offsets is not [begin, end]",
                          label, name);
            goto out;
        }
        if (o0 > o1 || o1 > f->data_size) {
            rc = vae_fail(err, VAE_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu, %llu] out of range: the data section has %llu bytes (file byte %llu)",
                          label, name, (unsigned long long)o0, (unsigned long long)o1,
                          (unsigned long long)f->data_size, (unsigned long long)(8 + hlen + o0));
            goto out;
        }
        uint64_t need;
        if (!vae_mul_ok(count, elsize, &need) || need != o1 - o0) {
            rc = vae_fail(err, VAE_ERR_FORMAT,
                          "%s: tensor '%s': %llu bytes at data_offsets [%llu, %llu] but shape and %s need %llu",
                          label, name, (unsigned long long)(o1 - o0), (unsigned long long)o0,
                          (unsigned long long)o1, dt->valuestring, (unsigned long long)need);
            goto out;
        }
        t->offset = o0;
        t->nbytes = need;
        t->data = f->base + o0;
    }

    /* Names are unique in valid JSON objects, but cJSON keeps duplicates:
     * a duplicate would make lookups ambiguous, so reject it. Overlapping
     * data is forbidden by the format and would hint at a crafted file. */
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_tensor_name);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensor '%s' appears twice in the header",
                          label, f->tensors[i].name);
            goto out;
        }
    if (f->n_tensors > 1) {
        st_tensor **byoff = vae_malloc(f->n_tensors * sizeof *byoff);
        if (!byoff) { rc = vae_fail(err, VAE_ERR_NO_MEMORY, "%s: out of memory", label); goto out; }
        for (size_t i = 0; i < f->n_tensors; i++) byoff[i] = &f->tensors[i];
        qsort(byoff, f->n_tensors, sizeof *byoff, cmp_tensor_offset);
        /* Against the furthest end so far, not just the previous tensor's:
         * an empty tensor in between must not hide an overlap. */
        const st_tensor *far = NULL;
        for (size_t i = 0; i < f->n_tensors && rc == VAE_OK; i++) {
            const st_tensor *t = byoff[i];
            if (!t->nbytes) continue;
            if (far && far->offset + far->nbytes > t->offset)
                rc = vae_fail(err, VAE_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section",
                              label, far->name, t->name);
            if (!far || t->offset + t->nbytes > far->offset + far->nbytes) far = t;
        }
        free(byoff);
    }
    /* The format has no holes: the tensors tile the data section exactly.
     * A file longer than its tensors is truncated-then-appended or not a
     * safetensors file at all. */
    if (rc == VAE_OK) {
        uint64_t covered = 0;
        for (size_t i = 0; i < f->n_tensors; i++) covered += f->tensors[i].nbytes;
        if (covered != f->data_size)
            rc = vae_fail(err, VAE_ERR_FORMAT,
                          "%s: the tensors cover %llu of the %llu bytes after the header (holes or trailing data)",
                          label, (unsigned long long)covered, (unsigned long long)f->data_size);
    }
out:
    cJSON_Delete(root);
    return rc;
}

int32_t st_open_mem(const uint8_t *buf, size_t len, const char *label, st_file *f,
                    vae_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = vae_strdup(label ? label : "<memory>");
    if (!f->path) return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory");
    int32_t rc = parse_header(f, buf, len, f->path, err);
    if (rc != VAE_OK) st_close(f);
    return rc;
}

int32_t st_open(const char *path, st_file *f, vae_error *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vae_fail(err, VAE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vae_fail(err, VAE_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vae_fail(err, VAE_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size < 8 || (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return vae_fail(err, VAE_ERR_FORMAT, "%s: %lld bytes is too short for a safetensors file",
                        path, (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size;
    /* A private read-only mapping: the weights are converted to fp32 at load,
     * so the mapping only lives during vae_load. */
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return vae_fail(err, VAE_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    int32_t rc = st_open_mem(map, len, path, f, err);
    if (rc != VAE_OK) {
        munmap(map, len);
        return rc;
    }
    f->map = map;
    f->map_size = len;
    return VAE_OK;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}
