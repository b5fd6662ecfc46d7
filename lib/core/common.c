/* common.c - errors and allocation shared by the whole library. */
#include "core/common.h"

#include <stdarg.h>
#include <stdatomic.h>
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

static atomic_long fail_at;   /* 0: off; else allocations left until one fails */
static atomic_long alloc_count;

void vae_test_fail_alloc(long n)
{
    atomic_store(&alloc_count, 0);
    atomic_store(&fail_at, n);
}

long vae_test_alloc_count(void)
{
    return atomic_load(&alloc_count);
}

/* 1 when this allocation is the one the test hook makes fail. */
static int injected_failure(void)
{
    atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    if (atomic_load_explicit(&fail_at, memory_order_relaxed) == 0) return 0;
    return atomic_fetch_sub(&fail_at, 1) == 1;
}

void *vae_malloc(size_t nbytes)
{
    if (injected_failure()) return NULL;
    return malloc(nbytes ? nbytes : 1);
}

void *vae_calloc_n(size_t count, size_t size)
{
    if (injected_failure()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

char *vae_strdup(const char *s)
{
    if (injected_failure()) return NULL;
    return strdup(s);
}

void *vae_alloc(size_t nbytes)
{
    void *p = NULL;
    if (injected_failure()) return NULL;
    /* Round up so aligned_alloc's size rule holds. */
    if (nbytes > SIZE_MAX - 63) return NULL;
    nbytes = (size_t)vae_alloc_footprint(nbytes);
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
