/*
 * common.h - what every internal file of libsdxlvae shares: error records,
 * overflow-checked arithmetic, aligned allocation.
 */
#ifndef SDXLVAE_CORE_COMMON_H
#define SDXLVAE_CORE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "sdxlvae.h"

#define VAE_HIDDEN __attribute__((visibility("hidden")))
#define VAE_ERRMSG_MAX 512

/* Where a failing function writes what went wrong; the API copies it to the
 * handle and to the calling thread. */
typedef struct vae_error {
    int32_t code;
    char msg[VAE_ERRMSG_MAX];
} vae_error;

/* Records code and a printf-style message in err (may be NULL); returns code
 * so that callers can write `return vae_fail(err, VAE_ERR_..., "...")`. */
VAE_HIDDEN int32_t vae_fail(vae_error *err, int32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Overflow-checked size arithmetic: return 0 on overflow, 1 otherwise. */
static inline int vae_mul_ok(uint64_t a, uint64_t b, uint64_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}
static inline int vae_add_ok(uint64_t a, uint64_t b, uint64_t *r)
{
    return !__builtin_add_overflow(a, b, r);
}

/* 64-byte aligned allocation (cache line and any SIMD width); free with
 * vae_free_aligned. Returns NULL on failure or when n == 0 overflows. */
VAE_HIDDEN void *vae_alloc(size_t nbytes);
/* The bytes vae_alloc(nbytes) actually takes: rounded up to 64. */
static inline uint64_t vae_alloc_footprint(uint64_t nbytes)
{
    return nbytes == 0 ? 64 : (nbytes + 63) & ~(uint64_t)63;
}
VAE_HIDDEN void *vae_calloc(size_t nbytes);
VAE_HIDDEN void vae_free_aligned(void *p);

/* Floats, with the byte count checked for overflow. */
VAE_HIDDEN float *vae_alloc_floats(uint64_t n);

/* Every other allocation of the library goes through these (free() frees
 * them), so that the test hook below reaches every allocation site. */
VAE_HIDDEN void *vae_malloc(size_t nbytes);
VAE_HIDDEN void *vae_calloc_n(size_t count, size_t size);
VAE_HIDDEN char *vae_strdup(const char *s);

/* Test hook (allocation-failure injection): the n-th allocation from now
 * fails (n >= 1; 0 switches it off). vae_test_alloc_count() counts the
 * allocations since the last vae_test_fail_alloc() call. */
VAE_HIDDEN void vae_test_fail_alloc(long n);
VAE_HIDDEN long vae_test_alloc_count(void);

#endif
