/* fuzz_config.c - libFuzzer harness for config.json: vae_arch_from_config
 * reads a file, so the input is written to a memfd and read back through
 * /proc/self/fd/N, both as a config the caller named (implicit 0) and as one
 * merely found beside the weights (implicit 1).
 *
 * On success the architecture must be one the rest of the loader can trust:
 * every field inside the documented range. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/model.h"

#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "fuzz_config: broken promise: %s (line %d)\n", #c, \
                    __LINE__);                                                   \
            abort();                                                             \
        }                                                                        \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("config.json", MFD_CLOEXEC);
    if (fd < 0) {
        perror("fuzz_config: memfd_create");
        abort();
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

static void check_arch(const vae_arch *a)
{
    CHECK(a->levels >= 0 && a->levels <= VAE_MAX_LEVELS);
    for (int i = 0; i < a->levels; i++) CHECK(a->ch[i] >= 1 && a->ch[i] <= 65536);
    CHECK(a->layers_per_block >= 0 && a->layers_per_block <= 64);
    CHECK(a->latent_channels >= 0 && a->latent_channels <= 4096);
    CHECK(a->groups >= 1 && a->groups <= 65536);
    CHECK(a->in_channels == 3 && a->out_channels == 3);
    CHECK(isfinite(a->scale) && a->scale != 0.0f);
    CHECK(isfinite(a->shift));
    CHECK(isfinite(a->eps) && a->eps > 0.0f);
    CHECK(a->use_quant_conv == 0 || a->use_quant_conv == 1);
    CHECK(a->use_post_quant_conv == 0 || a->use_post_quant_conv == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    for (int implicit = 0; implicit <= 1; implicit++) {
        vae_arch a;
        vae_error err = {0, ""};
        vae_arch_defaults(&a);
        int32_t rc = vae_arch_from_config(path, &a, implicit, &err);
        if (rc == VAE_OK) {
            check_arch(&a);
        } else if (rc == VAE_ERR_NOT_OURS) {
            CHECK(implicit);
        } else {
            CHECK(rc < 0 && err.code == rc && err.msg[0] != '\0');
            CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        }
    }
    return 0;
}
