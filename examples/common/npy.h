/* npy.h - reading and writing NumPy .npy files of float32 tensors (for the
 * CLI, the examples and the tests; not part of libsdxlvae). */
#ifndef SDXLVAE_EXAMPLES_NPY_H
#define SDXLVAE_EXAMPLES_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef struct npy_array {
    float *data;                  /* malloc'ed, C order; free with npy_free */
    int32_t ndim;
    int64_t shape[NPY_MAX_DIMS];
    uint64_t count;               /* product of shape */
} npy_array;

/* Reads a .npy file (format 1.0/2.0/3.0, C order, dtype <f4, <f8 or <f2,
 * converted to float32). Returns 0, or -1 with a one-line reason in err.
 * A 0-d array has ndim 0 and count 1; data is never NULL on success. On
 * failure *out is zeroed, so npy_free(out) is always safe. err may be NULL. */
int npy_read(const char *path, npy_array *out, char *err, size_t errcap);
/* The same from memory (fuzzing, tests). */
int npy_read_mem(const uint8_t *buf, size_t len, npy_array *out, char *err,
                 size_t errcap);
/* Writes a float32 C-order .npy (format 1.0) straight to path (no temp
 * file; a partial regular file is removed on failure). ndim 0..8, shape
 * non-negative. Returns 0, or -1 with err. */
int npy_write(const char *path, const float *data, int32_t ndim,
              const int64_t *shape, char *err, size_t errcap);
/* Frees the data; accepts NULL and an already freed array. */
void npy_free(npy_array *a);

#endif
