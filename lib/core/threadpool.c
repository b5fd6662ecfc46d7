/* threadpool.c - see threadpool.h. */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct vae_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    unsigned long generation;    /* bumped per job: workers wait for a change */
    int stop;
    int busy;                    /* workers still in the current job */
    /* the current job */
    vae_pool_fn fn;
    void *arg;
    size_t n_items;
    atomic_size_t next;
};

typedef struct worker_arg {
    vae_pool *pool;
    int id;
} worker_arg;

static void drain(vae_pool *p, int id)
{
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->n_items) break;
        p->fn(p->arg, i, id);
    }
}

static void *worker_main(void *varg)
{
    worker_arg *wa = varg;
    vae_pool *p = wa->pool;
    int id = wa->id;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->wake, &p->lock);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        drain(p, id);
        pthread_mutex_lock(&p->lock);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int vae_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

vae_pool *vae_pool_create(int n_threads)
{
    if (n_threads < 1) n_threads = 1;
    vae_pool *p = vae_calloc_n(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = 1;
    atomic_init(&p->next, 0);
    if (pthread_mutex_init(&p->lock, NULL) != 0) { free(p); return NULL; }
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    if (n_threads > 1) {
        p->workers = vae_calloc_n((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) { vae_pool_destroy(p); return NULL; }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = vae_malloc(sizeof *wa);
            if (!wa) break;
            wa->pool = p;
            wa->id = i;
            if (pthread_create(&p->workers[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                break;
            }
            p->n_threads++;
        }
        /* Fewer threads than asked is not an error: the work still gets done. */
    }
    return p;
}

int vae_pool_threads(const vae_pool *p)
{
    return p->n_threads;
}

void vae_pool_run(vae_pool *p, size_t n_items, vae_pool_fn fn, void *arg)
{
    if (n_items == 0) return;
    if (p->n_threads == 1 || n_items == 1) {
        for (size_t i = 0; i < n_items; i++) fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->n_items = n_items;
    atomic_store(&p->next, 0);
    p->busy = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    drain(p, 0);
    pthread_mutex_lock(&p->lock);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void vae_pool_destroy(vae_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->workers[i], NULL);
    free(p->workers);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
