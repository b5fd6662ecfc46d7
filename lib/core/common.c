/* common.c - errors and allocation shared by the whole library. */
#include "core/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int32_t vae_fail(vae_error *err, int32_t code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void *vae_alloc(size_t nbytes)
{
    void *p = NULL;
    if (nbytes == 0) nbytes = 64;
    /* Round up so aligned_alloc's size rule holds. */
    if (nbytes > SIZE_MAX - 63) return NULL;
    nbytes = (nbytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, nbytes) != 0) return NULL;
    return p;
}

void *vae_calloc(size_t nbytes)
{
    void *p = vae_alloc(nbytes);
    if (p) memset(p, 0, nbytes);
    return p;
}

void vae_free_aligned(void *p)
{
    free(p);
}

float *vae_alloc_floats(uint64_t n)
{
    uint64_t bytes;
    if (!vae_mul_ok(n, sizeof(float), &bytes) || bytes > SIZE_MAX) return NULL;
    return vae_alloc((size_t)bytes);
}
