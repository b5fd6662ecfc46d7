/* fuzz_loader.c - libFuzzer harness for the whole model loader: bytes in,
 * a handle or an error out (vae_load), then, for a handle of a small model,
 * one decode and one encode.
 *
 * Input layout:
 *   bytes 0..3  little-endian word W: bits 0..19 the length L of the
 *               config.json part (0 = no config.json), bit 31 set = pass it
 *               as vae_load_options.config_path (a config the caller named)
 *               instead of leaving it beside the weights to be found
 *   L bytes     config.json (shortened if the input ends first)
 *   the rest    model.safetensors
 * An input shorter than 4 bytes is all safetensors, without a config.
 *
 * Both files live in a private temporary directory (under /dev/shm when it
 * is there) made once per process and removed at exit, or by the next run. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sdxlvae.h"

#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "fuzz_loader: broken promise: %s (line %d)\n", #c, \
                    __LINE__);                                                   \
            abort();                                                             \
        }                                                                        \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encode/decode only models this small (parameters x pixels of the
 * smallest image): keeps every execution in the milliseconds. */
#define MAX_PARAMS 2000000ull
#define MAX_WORK 20000000ull

static char dir[256], st_path[300], cfg_path[300];

static void cleanup(void)
{
    unlink(st_path);
    unlink(cfg_path);
    rmdir(dir);
}

/* libFuzzer leaves by _Exit after a crash or a timed run, so atexit alone
 * would leave the folders behind: each is named after its process, and the
 * folders of processes that are gone are removed at start. */
#define DIR_PREFIX "sdxlvae-fuzz-loader."

static void remove_stale(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *e;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        char *end;
        if (strncmp(e->d_name, DIR_PREFIX, strlen(DIR_PREFIX)) != 0) continue;
        long pid = strtol(e->d_name + strlen(DIR_PREFIX), &end, 10);
        if (pid <= 0 || *end != '.') continue;
        /* signal 0 only asks whether the process exists */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s/model.safetensors", base, e->d_name);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s/config.json", base, e->d_name);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", base, e->d_name);
        rmdir(p);
    }
    closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    remove_stale(base);
    snprintf(dir, sizeof dir, "%s/" DIR_PREFIX "%ld.XXXXXX", base, (long)getpid());
    if (!mkdtemp(dir)) {
        perror("fuzz_loader: mkdtemp");
        abort();
    }
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    atexit(cleanup);
    return 0;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) abort();
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

static void run_model(vae_model *m)
{
    vae_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    CHECK(vae_get_info(m, &info) == VAE_OK);
    int32_t f = vae_downsample_factor(m), C = vae_latent_channels(m);
    CHECK(info.levels >= 1 && info.levels <= VAE_MAX_LEVELS);
    CHECK(f == info.downsample_factor && f >= 1 && f == (1 << (info.levels - 1)));
    CHECK(C == info.latent_channels && C >= 1);
    CHECK(info.has_encoder || info.has_decoder);
    if (info.parameter_count > MAX_PARAMS ||
        info.parameter_count * (uint64_t)f * (uint64_t)f > MAX_WORK)
        return;

    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.n_threads = 1;
    if (info.has_decoder) {
        /* a 1 x 2 latent: odd sides on purpose */
        uint64_t nimg = 0;
        CHECK(vae_decoded_size(m, 1, 1, 2, &nimg) == VAE_OK);
        CHECK(nimg == 3ull * (uint64_t)f * 2ull * (uint64_t)f);
        float *lat = malloc((size_t)C * 2 * sizeof *lat);
        float *img = malloc((size_t)nimg * sizeof *img);
        if (lat && img) {
            for (int32_t i = 0; i < 2 * C; i++) lat[i] = (float)(i % 7) * 0.25f - 0.75f;
            int32_t rc = vae_decode(m, lat, 1, 1, 2, img, nimg, &ro);
            CHECK(rc == VAE_OK || rc == VAE_ERR_NO_MEMORY);
        }
        free(lat);
        free(img);
    } else {
        float z = 0.0f, img[3];
        CHECK(vae_decode(m, &z, 1, 1, 1, img, 3, &ro) == VAE_ERR_UNSUPPORTED);
    }
    if (info.has_encoder) {
        uint64_t nlat = 0;
        CHECK(vae_encoded_size(m, 1, f, f, &nlat) == VAE_OK);
        CHECK(nlat == (uint64_t)C);
        size_t npix = (size_t)3 * (size_t)f * (size_t)f;
        float *img = malloc(npix * sizeof *img);
        float *lat = malloc((size_t)nlat * 2 * sizeof *lat);
        if (img && lat) {
            for (size_t i = 0; i < npix; i++) img[i] = (float)(i % 11) / 5.0f - 1.0f;
            int32_t rc = vae_encode(m, img, 1, f, f, lat, nlat, &ro);
            CHECK(rc == VAE_OK || rc == VAE_ERR_NO_MEMORY);
            rc = vae_encode_moments(m, img, 1, f, f, lat, 2 * nlat, &ro);
            CHECK(rc == VAE_OK || rc == VAE_ERR_NO_MEMORY);
        }
        free(img);
        free(lat);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t w = 0;
    size_t clen = 0;
    int named = 0;
    if (size >= 4) {
        w = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
            (uint32_t)data[3] << 24;
        data += 4;
        size -= 4;
        clen = w & 0xfffffu;
        named = (w >> 31) & 1;
        if (clen > size) clen = size;
    }
    if (clen) write_file(cfg_path, data, clen);
    else unlink(cfg_path);
    write_file(st_path, data + clen, size - clen);

    vae_load_options lo;
    vae_load_options_init(&lo, sizeof lo);
    lo.n_threads = 1;
    if (clen && named) lo.config_path = cfg_path;
    vae_model *m = (vae_model *)1;
    /* the folder when the config is to be found, the file when it is named */
    int32_t rc = vae_load(lo.config_path ? st_path : dir, &lo, &m);
    if (rc != VAE_OK) {
        CHECK(rc < 0 && m == NULL);
        CHECK(vae_last_error(NULL)[0] != '\0');
        return 0;
    }
    CHECK(m != NULL);
    run_model(m);
    vae_free(m);
    return 0;
}
