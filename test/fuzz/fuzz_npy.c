/* fuzz_npy.c - libFuzzer harness for the .npy reader of the examples and
 * the CLI: npy_read_mem on the input, and npy_read on the same bytes through
 * a memfd (the file reader parses the header from a partial buffer and reads
 * the data in chunks: it must agree with the memory reader exactly). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/npy.h"

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "fuzz_npy: broken promise: %s (line %d)\n", #c, \
                    __LINE__);                                                \
            abort();                                                          \
        }                                                                     \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("fuzz.npy", MFD_CLOEXEC);
    if (fd < 0) {
        perror("fuzz_npy: memfd_create");
        abort();
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

/* "On failure *out is zeroed" */
static int all_zero(const npy_array *a)
{
    static const npy_array zero;
    return a->data == NULL && a->ndim == 0 && a->count == 0 &&
           memcmp(a->shape, zero.shape, sizeof zero.shape) == 0;
}

static void check_ok(const npy_array *a)
{
    uint64_t n = 1;
    CHECK(a->data != NULL);
    CHECK(a->ndim >= 0 && a->ndim <= NPY_MAX_DIMS);
    for (int32_t i = 0; i < a->ndim; i++) {
        CHECK(a->shape[i] >= 0);
        n *= (uint64_t)a->shape[i];
    }
    CHECK(n == a->count);
    if (a->count) {
        volatile float s = a->data[0];
        s += a->data[a->count - 1];
        (void)s;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npy_array a, b;
    char err[256], errf[256];
    err[0] = errf[0] = '\0';
    int rc = npy_read_mem(data, size, &a, err, sizeof err);
    if (rc == 0) {
        check_ok(&a);
    } else {
        CHECK(rc == -1 && all_zero(&a) && err[0] != '\0');
    }

    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    int rcf = npy_read(path, &b, errf, sizeof errf);
    if (rcf != rc) {
        fprintf(stderr, "fuzz_npy: npy_read_mem says %d (%s), npy_read says %d (%s)\n", rc,
                rc ? err : "ok", rcf, rcf ? errf : "ok");
        abort();
    }
    if (rc == 0) {
        check_ok(&b);
        CHECK(a.ndim == b.ndim && a.count == b.count);
        CHECK(memcmp(a.shape, b.shape, (size_t)a.ndim * sizeof a.shape[0]) == 0);
        CHECK(memcmp(a.data, b.data, (size_t)a.count * sizeof *a.data) == 0);
    } else {
        CHECK(all_zero(&b) && errf[0] != '\0');
    }
    npy_free(&a);
    npy_free(&b);
    npy_free(&a); /* documented: an already freed array is fine */
    /* err may be NULL */
    rc = npy_read_mem(data, size, &a, NULL, 0);
    npy_free(&a);
    return 0;
}
