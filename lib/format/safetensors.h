/*
 * safetensors.h - a validating reader of the safetensors format: the file is
 * memory-mapped, the JSON header parsed with cJSON, and every dtype, shape
 * and offset checked against the file before any tensor is handed out.
 */
#ifndef SDXLVAE_FORMAT_SAFETENSORS_H
#define SDXLVAE_FORMAT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

#define ST_F32 0
#define ST_F16 1
#define ST_BF16 2
#define ST_OTHER 3  /* a valid dtype the VAE never converts (I64, F64, ...) */
#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    int32_t dtype;               /* ST_* */
    char dtype_name[12];         /* as in the file: "F32", "I64", ... */
    int32_t ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t count;              /* elements */
    uint64_t offset;             /* from the start of the data section */
    uint64_t nbytes;
    const uint8_t *data;         /* inside the mapping */
} st_tensor;

typedef struct st_file {
    char *path;                  /* for messages */
    void *map;                   /* NULL when reading from a caller's buffer */
    size_t map_size;
    const uint8_t *base;         /* start of the data section */
    uint64_t data_size;
    st_tensor *tensors;          /* sorted by name */
    size_t n_tensors;
} st_file;

/* Maps and validates path. On failure *f is left empty (st_close is safe). */
VAE_HIDDEN int32_t st_open(const char *path, st_file *f, vae_error *err);
/* Validates an in-memory image of a file (no copy: buf must outlive f). */
VAE_HIDDEN int32_t st_open_mem(const uint8_t *buf, size_t len, const char *label,
                               st_file *f, vae_error *err);
VAE_HIDDEN void st_close(st_file *f);
/* Exact-name lookup (binary search); NULL when absent. */
VAE_HIDDEN const st_tensor *st_find(const st_file *f, const char *name);
VAE_HIDDEN const char *st_dtype_name(int32_t dtype);

#endif
