/*
 * bench-util.h - what bench.c and layers.c share: medians and minima of
 * timed runs, and reproducible random inputs.
 */
#ifndef SDXLVAE_BENCH_UTIL_H
#define SDXLVAE_BENCH_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 1000 /* -n's bound */

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* n <= MAX_RUNS; v is left as it is */
static inline double median_of(const double *v, int n)
{
    double s[MAX_RUNS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* n >= 1 */
static inline double min_of(const double *v, int n)
{
    double m = HUGE_VAL;
    for (int i = 0; i < n; i++)
        if (v[i] < m) m = v[i];
    return m;
}

/* splitmix64: reproducible inputs. */
static inline uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static inline float uniform_pm1(uint64_t *s)
{
    return (float)((double)(mix(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

#endif
