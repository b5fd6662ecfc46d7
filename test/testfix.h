/* testfix.h - the fixture folders (../shared/fixtures, test/fixtures) and
 * their files, for the Check suites that run whole models: test_parity,
 * test_tiled, test_load_flags. Include after check.h, common/npy.h and
 * sdxlvae.h. */
#ifndef SDXLVAE_TESTFIX_H
#define SDXLVAE_TESTFIX_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fixture {
    char dir[1024];
} fixture;

static fixture fixtures[32];
static int n_fixtures;

/* Every folder of root holding a model.safetensors, in name order. */
static inline void add_fixtures(const char *root)
{
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *e;
    char names[32][256];
    int n = 0;
    while ((e = readdir(d)) && n < 32) {
        if (e->d_name[0] == '.') continue;
        char probe[1400];
        snprintf(probe, sizeof probe, "%s/%s/model.safetensors", root, e->d_name);
        if (access(probe, R_OK) != 0) continue;
        snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n && n_fixtures < 32; i++)
        snprintf(fixtures[n_fixtures++].dir, sizeof fixtures[0].dir, "%s/%s", root, names[i]);
}

/* dir/name, a 4-d .npy, or the test fails. */
static inline npy_array load_npy(const char *dir, const char *name)
{
    char path[1400], err[256];
    npy_array a;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ck_assert_msg(npy_read(path, &a, err, sizeof err) == 0, "%s: %s", path, err);
    ck_assert_int_eq(a.ndim, 4);
    return a;
}

/* The model of dir with default options but the thread count. */
static inline vae_model *load_model(const char *dir, int threads)
{
    vae_model *m = NULL;
    vae_load_options lo;
    vae_load_options_init(&lo, sizeof lo);
    lo.n_threads = threads;
    int32_t rc = vae_load(dir, &lo, &m);
    ck_assert_msg(rc == VAE_OK, "vae_load(%s): %s: %s", dir, vae_strerror(rc), vae_last_error(NULL));
    return m;
}

#endif
