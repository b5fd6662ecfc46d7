/* testutil.h - small helpers shared by the Check suites. */
#ifndef SDXLVAE_TESTUTIL_H
#define SDXLVAE_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ../shared (CI has it; a user's clone does not). NULL when absent. */
static inline const char *tu_shared_dir(void)
{
    const char *d = getenv("SDXLVAE_SHARED");
    struct stat st;
    if (!d || !*d) d = "../shared";
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return d;
}

/* The project's own fixtures (test/fixtures). */
static inline const char *tu_fixtures_dir(void)
{
    const char *d = getenv("SDXLVAE_FIXTURES");
    return (d && *d) ? d : "test/fixtures";
}

/* max|a-b| / max|b|: the parity measure used everywhere in this project. */
static inline double tu_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > num || d != d) num = d != d ? INFINITY : d;
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return den > 0 ? num / den : num;
}

#endif
