/*
 * threadpool.h - a fork/join pool: the ops split each layer into independent
 * items and every thread (the caller included) takes items until none are
 * left. Items write disjoint outputs, so results do not depend on which
 * thread ran what: output is bit-identical for every thread count.
 */
#ifndef SDXLVAE_CORE_THREADPOOL_H
#define SDXLVAE_CORE_THREADPOOL_H

#include <stddef.h>

#include "core/common.h"

typedef struct vae_pool vae_pool;
typedef void (*vae_pool_fn)(void *arg, size_t item, int thread);

/* n_threads >= 1 (1 = run everything on the caller). NULL on failure. */
VAE_HIDDEN vae_pool *vae_pool_create(int n_threads);
VAE_HIDDEN int vae_pool_threads(const vae_pool *p);
/* Runs fn(arg, i, thread) for i in [0, n_items); returns when all are done. */
VAE_HIDDEN void vae_pool_run(vae_pool *p, size_t n_items, vae_pool_fn fn, void *arg);
VAE_HIDDEN void vae_pool_destroy(vae_pool *p);
/* The CPUs this process may run on (sched_getaffinity), at least 1. */
VAE_HIDDEN int vae_cpu_count(void);

#endif
