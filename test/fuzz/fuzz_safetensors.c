/* fuzz_safetensors.c - libFuzzer harness for the safetensors reader: the
 * 8-byte header length, the JSON header and the tensor table (dtype, shape,
 * data_offsets, overlap and tiling checks).
 *
 * Input: the bytes of a .safetensors file. Besides "no crash, no leak", it
 * checks what st_open_mem promises on success: every tensor lies inside the
 * data section, its byte count is shape x dtype size, names are sorted and
 * unique (st_find finds each), no two tensors overlap and together they tile
 * the data section. A broken promise aborts, which libFuzzer reports. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/safetensors.h"

#define CHECK(c)                                                                    \
    do {                                                                            \
        if (!(c)) {                                                                 \
            fprintf(stderr, "fuzz_safetensors: broken promise: %s (line %d)\n", #c, \
                    __LINE__);                                                      \
            abort();                                                                \
        }                                                                           \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t elsize(const st_tensor *t)
{
    static const struct { const char *name; uint64_t size; } table[] = {
        {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"U64", 8},
        {"I32", 4}, {"U32", 4}, {"I16", 2}, {"U16", 2}, {"I8", 1}, {"U8", 1},
        {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(t->dtype_name, table[i].name) == 0) return table[i].size;
    return 0;
}

static int cmp_off(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file f;
    vae_error err = {0, ""};
    int32_t rc = st_open_mem(data, size, "fuzz.safetensors", &f, &err);
    if (rc != VAE_OK) {
        CHECK(rc < 0 && err.code == rc && err.msg[0] != '\0');
        CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        CHECK(f.n_tensors == 0 && f.tensors == NULL && f.path == NULL);
        st_close(&f); /* documented as safe after a failure */
        return 0;
    }
    CHECK(size >= 8 && f.base >= data + 8 && f.base <= data + size);
    CHECK(f.data_size == (uint64_t)(data + size - f.base));

    uint64_t covered = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        uint64_t es = elsize(t), count = 1;
        CHECK(t->name != NULL && es != 0);
        CHECK(t->dtype >= ST_F32 && t->dtype <= ST_OTHER);
        CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] >= 0);
            count *= (uint64_t)t->shape[d]; /* cannot wrap: checked by the reader */
        }
        CHECK(count == t->count);
        CHECK(t->nbytes == t->count * es);
        CHECK(t->offset <= f.data_size && t->nbytes <= f.data_size - t->offset);
        CHECK(t->data == f.base + t->offset);
        if (t->nbytes) {
            /* touch the first and the last byte: ASan knows the buffer */
            volatile uint8_t s = t->data[0];
            s ^= t->data[t->nbytes - 1];
            (void)s;
        }
        if (i) CHECK(strcmp(f.tensors[i - 1].name, t->name) < 0);
        CHECK(st_find(&f, t->name) == t);
        covered += t->nbytes;
    }
    CHECK(covered == f.data_size);

    /* No two tensors share a byte: sorted by offset, each non-empty tensor
     * starts at or after the furthest end seen so far. */
    if (f.n_tensors > 1) {
        const st_tensor **by = malloc(f.n_tensors * sizeof *by);
        if (by) {
            for (size_t i = 0; i < f.n_tensors; i++) by[i] = &f.tensors[i];
            qsort(by, f.n_tensors, sizeof *by, cmp_off);
            uint64_t end = 0;
            for (size_t i = 0; i < f.n_tensors; i++) {
                if (!by[i]->nbytes) continue;
                if (by[i]->offset < end) {
                    fprintf(stderr, "fuzz_safetensors: '%s' overlaps an earlier tensor\n",
                            by[i]->name);
                    abort();
                }
                end = by[i]->offset + by[i]->nbytes;
            }
            free(by);
        }
    }

    static const char *const names[] = {
        "", "__metadata__", "encoder.conv_in.weight", "decoder.conv_in.weight",
        "first_stage_model.decoder.conv_in.weight", "vae.encoder.conv_in.bias",
        "\xff", "a",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const st_tensor *t = st_find(&f, names[i]);
        CHECK(!t || strcmp(t->name, names[i]) == 0);
    }
    st_close(&f);
    CHECK(f.tensors == NULL && f.n_tensors == 0);
    return 0;
}
