/*
 * bench.c - how fast libsdxlvae encodes and decodes, against this machine's
 * FMA peak and, with --peer and --ort, against PyTorch and ONNX Runtime on
 * the same weights.
 *
 *   bench [-m MODEL] [-n RUNS] [-t THREADS] [--sizes 256,512] [--big]
 *         [--only encode|decode] [-v] [--peer] [--ort] [--json FILE]
 *         [--python PATH] [--peer-script PATH] [--node PATH] [--ort-dir DIR]
 *
 * Without -m the full-size SDXL VAE shape with random weights is used:
 * build/bench/sdxl-random, written once by build/bin/gen_vae --seed 1 and
 * reused after that. Each (work, size) runs in its own forked process that
 * loads the model, runs one profiled warm-up (which gives the FLOP count and
 * the per-layer-kind breakdown of -v), then RUNS timed calls of the public
 * vae_encode / vae_decode, and reports back through a pipe; the parent takes
 * the child's peak RSS from wait4(). Sizes are image sides: decode 256 means
 * a 32 x 32 latent decoded to a 256 x 256 image. With --ort, ONNX Runtime
 * (onnxruntime-node) times the same model too: test/bench/export_onnx.py
 * exports it (cached in build/bench/onnx/) and test/bench/ort_bench.mjs runs
 * it. See docs/performance.md.
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "fma-peak.h"
#include "layers.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "ops/ops.h"
#include "sdxlvae.h"

#define MAX_SIZES 8
#define EXIT_NO_TORCH 3 /* torch_bench.py: PyTorch cannot be imported */
#define EXIT_NO_ORT 3   /* ort_bench.mjs: onnxruntime-node cannot be loaded */

enum { W_ENCODE, W_DECODE };
static const char *const work_names[] = {"encode", "decode"};

typedef struct options {
    const char *model;
    int runs;
    int threads;
    int sizes[MAX_SIZES];
    int n_sizes;
    int only; /* -1: both, else W_* */
    int verbose;
    int peer;
    const char *json;
    const char *python;
    const char *script;
    /* memory mode (issue #4): a budget or a tile side makes the runs go
     * through the tiled executor when needed; compare also decodes untiled
     * (after the peak is read) for the error against it */
    uint64_t max_memory;
    int tile;
    int compare;
    int no_warmup;
    int half_weights;
    int ort;                 /* --ort: ONNX Runtime as a second peer */
    const char *node;        /* node executable (NULL: not found) */
    const char *ort_dir;     /* folder whose node_modules/ has onnxruntime-node */
    const char *onnx_dir;    /* where export_onnx.py writes the .onnx files */
    const char *export_script, *ort_script;
    int layers;              /* --layers: the convolution kernels alone */
} options;

/* What a child sends back: a fixed-size record (same binary on both ends). */
typedef struct child_out {
    int32_t status; /* VAE_OK or a VAE_ERR_* code */
    int32_t skipped; /* the model has no encoder (or no decoder) */
    char err[VAE_ERRMSG_MAX];
    double load_s;
    double prof_wall_s; /* wall time of the profiled warm-up */
    vae_profile prof;
    double flops_analytic;
    uint64_t params;
    int32_t weight_dtype;
    int32_t threads;
    char family[32];
    char isa[16];
    int64_t run_rss_kib; /* peak RSS during warm-up and runs (after the load); -1: unknown */
    uint64_t nonfinite;  /* non-finite values in the last output */
    vae_memory_estimate est; /* memory mode: what the library planned */
    double rel_err;      /* memory mode with compare: against untiled; -1: not run */
    int32_t n;
    double times[MAX_RUNS];
} child_out;

typedef struct work_rec {
    int work, size;
    int ok;
    child_out out;
    double median, min, flops;
    long peak_rss_kib; /* wait4: the whole child, load included */
    cJSON *peer;       /* torch_bench.py's result for this work, or NULL */
    double peer_median;
    cJSON *ort;        /* ort_bench.mjs's result for this work, or NULL */
    double ort_median;
} work_rec;

/* ---- small helpers ---------------------------------------------------------- */

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* Reads fd to EOF into a NUL-terminated malloc'd buffer; *len its length. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            free(buf);
            return NULL;
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* The folder of this executable, e.g. /src/build/bin. */
static void exe_dir(char *buf, size_t cap)
{
    ssize_t k = readlink("/proc/self/exe", buf, cap - 1);
    if (k <= 0) {
        snprintf(buf, cap, ".");
        return;
    }
    buf[k] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
}

/* Runs argv (argv[0] a path); with capture, its stdout comes back in *out.
 * Returns the exit status, 128+signal when killed, -1 when it did not start. */
static int run_cmd(char *const argv[], char **out)
{
    int p[2] = {-1, -1};
    if (out && pipe(p) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        if (out) {
            close(p[0]);
            close(p[1]);
        }
        return -1;
    }
    if (pid == 0) {
        if (out) {
            dup2(p[1], STDOUT_FILENO);
            close(p[0]);
            close(p[1]);
        }
        execv(argv[0], argv);
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (out) {
        close(p[1]);
        *out = read_all(p[0], NULL);
        close(p[0]);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

/* "model name" of /proc/cpuinfo, or "unknown CPU". */
static void cpu_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *c = strchr(line, ':');
        if (!c) break;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = '\0';
        snprintf(buf, cap, "%s", c);
        break;
    }
    fclose(f);
}

/* Resets the kernel's peak-RSS mark of this process (Linux >= 4.0). */
static int reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* VmHWM of /proc/self/status in KiB, -1 when unknown. */
static int64_t read_hwm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lld kB", &v) == 1) break;
    fclose(f);
    return v;
}

/* ---- FLOPs from the architecture (a check on the profile's count) ------------ */

static double conv_flops(double cin, double cout, int k, double px)
{
    return 2.0 * cin * cout * k * k * px;
}

static double resnet_flops(double cin, double cout, double px)
{
    return conv_flops(cin, cout, 3, px) + conv_flops(cout, cout, 3, px) +
           (cin != cout ? conv_flops(cin, cout, 1, px) : 0.0);
}

static double mid_flops(double c, double px)
{
    return 2.0 * resnet_flops(c, c, px) + 8.0 * c * c * px + 4.0 * px * px * c;
}

/* Nominal FLOPs (2 per multiply-add, attention matmuls included, the same
 * convention as lib/ops) of an encode of h x w pixels or a decode of an
 * h x w latent. */
static double analytic_flops(const vae_arch *a, int work, int h, int w)
{
    int L = a->levels;
    double f = 0.0;
    if (work == W_ENCODE) {
        double px = (double)h * w;
        f += conv_flops(a->in_channels, a->ch[0], 3, px);
        double cin = a->ch[0];
        for (int l = 0; l < L; l++) {
            for (int j = 0; j < a->layers_per_block; j++) {
                f += resnet_flops(cin, a->ch[l], px);
                cin = a->ch[l];
            }
            if (l != L - 1) {
                h /= 2;
                w /= 2;
                px = (double)h * w;
                f += conv_flops(cin, cin, 3, px);
            }
        }
        f += mid_flops(cin, px);
        f += conv_flops(cin, 2.0 * a->latent_channels, 3, px);
        if (a->use_quant_conv)
            f += conv_flops(2.0 * a->latent_channels, 2.0 * a->latent_channels, 1, px);
    } else {
        double px = (double)h * w, cin = a->ch[L - 1];
        if (a->use_post_quant_conv) f += conv_flops(a->latent_channels, a->latent_channels, 1, px);
        f += conv_flops(a->latent_channels, cin, 3, px);
        f += mid_flops(cin, px);
        for (int l = L - 1; l >= 0; l--) {
            for (int j = 0; j < a->layers_per_block + 1; j++) {
                f += resnet_flops(cin, a->ch[l], px);
                cin = a->ch[l];
            }
            if (l != 0) {
                px *= 4.0;
                f += conv_flops(cin, cin, 3, px);
            }
        }
        f += conv_flops(cin, a->out_channels, 3, px);
    }
    return f;
}

/* ---- the FMA peak ------------------------------------------------------------ */

typedef float (*fma_fn)(uint64_t iters);

typedef struct fma_arg {
    fma_fn fn;
    uint64_t iters;
    pthread_barrier_t *bar;
    float sink;
    double cpu_s; /* CPU time of this thread's loop */
} fma_arg;

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *fma_thread(void *p)
{
    fma_arg *a = p;
    pthread_barrier_wait(a->bar);
    double t0 = thread_cpu_now();
    a->sink = a->fn(a->iters);
    a->cpu_s = thread_cpu_now() - t0;
    return NULL;
}

/*
 * GFLOP/s of fn on `threads` threads at once, best of 3 rounds of ~0.2 s.
 * Each thread's rate is its FLOPs over its own CPU time, and the peak is the
 * sum of the rates: time a thread spends descheduled (other processes on a
 * shared machine) does not lower the peak, which is the hardware's.
 */
static double measure_peak(fma_fn fn, double flops_per_iter, int threads)
{
    const uint64_t probe = 1u << 20;
    volatile float sink = 0.0f;
    double t0 = vae_now();
    sink += fn(probe);
    double dt = vae_now() - t0;
    uint64_t iters = dt > 0 ? (uint64_t)(0.2 / dt * (double)probe) : probe * 64;
    if (iters < probe) iters = probe;
    fma_arg *args = calloc((size_t)threads, sizeof *args);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    double best = 0.0;
    if (!args || !tid) goto out;
    for (int round = 0; round < 3; round++) {
        pthread_barrier_t bar;
        if (pthread_barrier_init(&bar, NULL, (unsigned)threads + 1) != 0) break;
        int started = 0;
        for (int i = 0; i < threads; i++) {
            args[i] = (fma_arg){fn, iters, &bar, 0.0f, 0.0};
            if (pthread_create(&tid[i], NULL, fma_thread, &args[i]) != 0) break;
            started++;
        }
        if (started != threads) {
            /* cannot happen short of resource exhaustion; the started
             * threads are blocked on the barrier for good, so give up */
            fprintf(stderr, "bench: cannot start %d threads for the FMA peak\n", threads);
            exit(1);
        }
        pthread_barrier_wait(&bar);
        for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
        pthread_barrier_destroy(&bar);
        double g = 0;
        for (int i = 0; i < threads; i++) {
            sink += args[i].sink;
            if (args[i].cpu_s > 0) g += (double)iters * flops_per_iter / args[i].cpu_s / 1e9;
        }
        if (g > best) best = g;
    }
out:
    free(args);
    free(tid);
    (void)sink;
    return best;
}

typedef struct peaks {
    double avx2, avx512; /* GFLOP/s; 0 = not measured */
    double used;         /* the one % of peak refers to */
    int threads;         /* measured on this many threads */
    const char *used_name;
    const char *note;
} peaks;

static void measure_peaks(int threads, const char *isa, peaks *pk)
{
    memset(pk, 0, sizeof *pk);
    pk->threads = threads;
    pk->used_name = "none";
    pk->note = "";
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        pk->avx2 = measure_peak(bench_fma_avx2, BENCH_FMA_AVX2_FLOPS_PER_ITER, threads);
    if (__builtin_cpu_supports("avx512f"))
        pk->avx512 = measure_peak(bench_fma_avx512, BENCH_FMA_AVX512_FLOPS_PER_ITER, threads);
    if (strncmp(isa, "avx512", 6) == 0 && pk->avx512 > 0) {
        pk->used = pk->avx512;
        pk->used_name = "AVX-512";
    } else if (pk->avx2 > 0) {
        pk->used = pk->avx2;
        pk->used_name = "AVX2";
        if (strcmp(isa, "avx2-fma") != 0)
            pk->note = " (the kernels are not AVX2; % of peak is against the AVX2 peak)";
    }
#else
    (void)threads;
    (void)isa;
    pk->note = " (no FMA peak measurement for this architecture)";
#endif
}

/* ---- one (work, size) in a child process ------------------------------------- */

static void child_fail(child_out *r, int32_t code, const char *msg)
{
    r->status = code ? code : VAE_ERR_INTERNAL;
    snprintf(r->err, sizeof r->err, "%s", msg);
}

static void child_run(const options *o, int work, int size, int threads, child_out *r)
{
    vae_load_options lo;
    vae_model *m = NULL;
    float *in = NULL, *out = NULL, *mom = NULL;
    memset(r, 0, sizeof *r);
    r->run_rss_kib = -1;
    snprintf(r->isa, sizeof r->isa, "%s", vae_kernels()->isa);

    vae_load_options_init(&lo, sizeof lo);
    lo.n_threads = threads;
    /* only the half the work needs: a decode-only user loads no encoder */
    lo.flags = work == W_ENCODE ? VAE_LOAD_NO_DECODER : VAE_LOAD_NO_ENCODER;
    if (o->half_weights) lo.flags |= VAE_LOAD_HALF_WEIGHTS;
    r->rel_err = -1;
    int memory_mode = o->max_memory || o->tile || o->compare || o->no_warmup;
    double t0 = vae_now();
    int32_t rc = vae_load(o->model, &lo, &m);
    if (rc != VAE_OK) {
        child_fail(r, rc, vae_last_error(NULL));
        return;
    }
    r->load_s = vae_now() - t0;
    vae_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    vae_get_info(m, &info);
    r->params = info.parameter_count;
    r->weight_dtype = info.weight_dtype;
    snprintf(r->family, sizeof r->family, "%s", info.family);
    if ((work == W_ENCODE && !info.has_encoder) || (work == W_DECODE && !info.has_decoder)) {
        r->skipped = 1;
        snprintf(r->err, sizeof r->err, "the model has no %s weights",
                 work == W_ENCODE ? "encoder" : "decoder");
        goto out;
    }
    int32_t f = vae_downsample_factor(m), C = vae_latent_channels(m);
    if (size % f) {
        char msg[128];
        snprintf(msg, sizeof msg, "size %d is not a multiple of the downsample factor %d", size, f);
        child_fail(r, VAE_ERR_INVALID_ARGUMENT, msg);
        goto out;
    }
    int32_t lh = size / f;
    size_t img = (size_t)3 * (size_t)size * (size_t)size, lat = (size_t)C * (size_t)lh * (size_t)lh;
    size_t n_in = work == W_ENCODE ? img : lat, n_out = work == W_ENCODE ? lat : img;
    in = malloc(n_in * sizeof *in);
    out = malloc(n_out * sizeof *out);
    mom = malloc(2 * lat * sizeof *mom);
    if (!in || !out || !mom) {
        child_fail(r, VAE_ERR_NO_MEMORY, "out of memory for the inputs");
        goto out;
    }
    uint64_t seed = 0x5D1A7E00u + (uint64_t)size * 2u + (uint64_t)work;
    for (size_t i = 0; i < n_in; i++) {
        if (work == W_ENCODE) {
            in[i] = uniform_pm1(&seed); /* an image in [-1, 1] */
        } else { /* a roughly standard normal raw latent (Irwin-Hall) */
            float s = 0;
            for (int k = 0; k < 4; k++) s += uniform_pm1(&seed);
            in[i] = s * 0.8660254f;
        }
    }
    r->flops_analytic = analytic_flops(&m->arch, work, work == W_ENCODE ? size : lh,
                                       work == W_ENCODE ? size : lh);
    r->run_rss_kib = reset_peak_rss() == 0 ? 0 : -1;

    vae_run_options ro;
    vae_run_options_init(&ro, sizeof ro);
    ro.flags = VAE_FLAG_RAW_LATENT;
    ro.n_threads = threads;
    ro.max_memory = o->max_memory;
    ro.tile = o->tile;
    if (memory_mode) {
        r->est.size = sizeof r->est;
        if ((rc = vae_estimate_memory(m, work == W_ENCODE ? VAE_STAGE_ENCODE : VAE_STAGE_DECODE, size,
                                      size, &ro, &r->est)) != VAE_OK) {
            child_fail(r, rc, vae_last_error(m));
            goto out;
        }
        /* the untiled internal warm-up would hold what the budget forbids:
         * warm up through the API, or (-v) through the tiled executor with
         * the profile on, or not at all */
        r->threads = threads;
        if (o->verbose && !o->no_warmup) {
            vae_tiled_plan_t plan;
            vae_ctx ctx;
            vae_error e = {0, ""};
            int dec = work == W_DECODE;
            uint64_t budget = r->est.tiled ? r->est.budget_bytes : UINT64_MAX;
            if (vae_tiled_plan(m, dec, dec ? lh : size, dec ? lh : size, budget, o->tile, 0,
                               threads, &plan) != VAE_OK || !plan.fits ||
                vae_ctx_init(&ctx, threads, &e) != VAE_OK) {
                child_fail(r, VAE_ERR_INTERNAL, "cannot plan the profiled tiled run");
                goto out;
            }
            ctx.prof = &r->prof;
            t0 = vae_now();
            rc = vae_run_tiled(m, &ctx, dec, in, dec ? lh : size, dec ? lh : size,
                               dec ? out : mom, &plan, 0, &e);
            r->prof_wall_s = vae_now() - t0;
            vae_ctx_free(&ctx);
            if (rc != VAE_OK) {
                child_fail(r, rc, e.msg);
                goto out;
            }
        } else if (!o->no_warmup) {
            rc = work == W_ENCODE ? vae_encode(m, in, 1, size, size, out, n_out, &ro)
                                  : vae_decode(m, in, 1, lh, lh, out, n_out, &ro);
            if (rc != VAE_OK) {
                child_fail(r, rc, vae_last_error(m));
                goto out;
            }
        }
        goto timed;
    }

    /* warm-up: the internal path, profiled (FLOPs and the -v breakdown) */
    vae_ctx ctx;
    vae_error e = {0, ""};
    if ((rc = vae_ctx_init(&ctx, threads, &e)) != VAE_OK) {
        child_fail(r, rc, e.msg);
        goto out;
    }
    r->threads = ctx.n_threads;
    ctx.prof = &r->prof;
    t0 = vae_now();
    rc = work == W_ENCODE ? vae_run_encoder(m, &ctx, in, size, size, mom, &e)
                          : vae_run_decoder(m, &ctx, in, lh, lh, out, &e);
    r->prof_wall_s = vae_now() - t0;
    vae_ctx_free(&ctx);
    if (rc != VAE_OK) {
        child_fail(r, rc, e.msg);
        goto out;
    }

timed:
    /* the timed runs: the public API, as an application calls it */
    for (int i = 0; i < o->runs; i++) {
        t0 = vae_now();
        rc = work == W_ENCODE ? vae_encode(m, in, 1, size, size, out, n_out, &ro)
                              : vae_decode(m, in, 1, lh, lh, out, n_out, &ro);
        r->times[i] = vae_now() - t0;
        if (rc != VAE_OK) {
            child_fail(r, rc, vae_last_error(m));
            goto out;
        }
        r->n = i + 1;
    }
    for (size_t i = 0; i < n_out; i++)
        if (!isfinite(out[i])) r->nonfinite++;
    if (r->run_rss_kib == 0) r->run_rss_kib = read_hwm_kib();
    if (o->compare) {
        /* after the peak was read: the untiled answer, for the error */
        float *ref = malloc(n_out * sizeof *ref);
        vae_run_options u;
        vae_run_options_init(&u, sizeof u);
        u.flags = VAE_FLAG_RAW_LATENT;
        u.n_threads = threads;
        u.max_memory = UINT64_MAX;
        if (!ref) {
            child_fail(r, VAE_ERR_NO_MEMORY, "out of memory for the comparison");
            goto out;
        }
        rc = work == W_ENCODE ? vae_encode(m, in, 1, size, size, ref, n_out, &u)
                              : vae_decode(m, in, 1, lh, lh, ref, n_out, &u);
        if (rc != VAE_OK) {
            free(ref);
            child_fail(r, rc, vae_last_error(m));
            goto out;
        }
        double num = 0, den = 0;
        for (size_t i = 0; i < n_out; i++) {
            double d = fabs((double)out[i] - (double)ref[i]);
            if (d > num) num = d;
            if (fabs((double)ref[i]) > den) den = fabs((double)ref[i]);
        }
        r->rel_err = den > 0 ? num / den : num;
        free(ref);
    }
out:
    free(in);
    free(out);
    free(mom);
    vae_free(m);
}

/* Forks, runs child_run there, and fills rec from its report and rusage. */
static void run_work(const options *o, int threads, work_rec *rec)
{
    int p[2];
    memset(&rec->out, 0, sizeof rec->out);
    rec->ok = 0;
    if (pipe(p) != 0) {
        snprintf(rec->out.err, sizeof rec->out.err, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(rec->out.err, sizeof rec->out.err, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        child_out *r = malloc(sizeof *r);
        if (!r) _exit(2);
        child_run(o, rec->work, rec->size, threads, r);
        int bad = write_all(p[1], r, sizeof *r) != 0;
        close(p[1]);
        fflush(NULL);
        _exit(bad ? 2 : 0);
    }
    close(p[1]);
    size_t len = 0;
    char *buf = read_all(p[0], &len);
    close(p[0]);
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR) break;
    rec->peak_rss_kib = ru.ru_maxrss;
    if (buf && len == sizeof rec->out) {
        memcpy(&rec->out, buf, sizeof rec->out);
        rec->ok = rec->out.status == VAE_OK && !rec->out.skipped && rec->out.n == o->runs;
    } else if (WIFSIGNALED(st)) {
        snprintf(rec->out.err, sizeof rec->out.err, "the child died of signal %d (%s)",
                 WTERMSIG(st), strsignal(WTERMSIG(st)));
    } else {
        snprintf(rec->out.err, sizeof rec->out.err, "the child exited with status %d and no report",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    free(buf);
    if (rec->ok) {
        rec->median = median_of(rec->out.times, rec->out.n);
        rec->min = min_of(rec->out.times, rec->out.n);
        rec->flops = 0;
        for (int k = 0; k < VAE_PROF_KINDS; k++) rec->flops += rec->out.prof.flops[k];
        if (o->max_memory || o->tile || o->compare || o->no_warmup)
            rec->flops = rec->out.flops_analytic; /* memory mode: nominal, untiled */
    }
}

/* ---- the PyTorch peer --------------------------------------------------------- */

typedef struct peer_state {
    int enabled;
    cJSON *env; /* torch version, MKLDNN, BLAS: from the first good report */
} peer_state;

static double json_num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(j) ? j->valuedouble : dflt;
}

static const char *json_str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) ? j->valuestring : dflt;
}

static void run_peer(const options *o, int threads, peer_state *ps, work_rec *rec)
{
    char n_s[16], t_s[16], size_s[16];
    snprintf(n_s, sizeof n_s, "%d", o->runs);
    snprintf(t_s, sizeof t_s, "%d", threads);
    snprintf(size_s, sizeof size_s, "%d", rec->size);
    char *argv[] = {(char *)o->python, (char *)o->script, "-m", (char *)o->model, "-n", n_s, "-t",
                    t_s, "--sizes", size_s, "--only", (char *)work_names[rec->work], NULL};
    char *text = NULL;
    int st = run_cmd(argv, &text);
    if (st == EXIT_NO_TORCH || st == 127 || st < 0) {
        printf("peer: PyTorch not available (%s %s exited with %d); going on without it\n",
               o->python, o->script, st);
        ps->enabled = 0;
        free(text);
        return;
    }
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *results = doc ? cJSON_GetObjectItemCaseSensitive(doc, "results") : NULL;
    cJSON *res = cJSON_IsArray(results) ? cJSON_GetArrayItem(results, 0) : NULL;
    if (st != 0 || !res || cJSON_GetObjectItemCaseSensitive(res, "error")) {
        fprintf(stderr, "bench: peer: torch_bench.py failed for %s %d (exit status %d)%s%s\n",
                work_names[rec->work], rec->size, st, res ? ": " : "",
                res ? json_str(res, "error", "") : "");
        cJSON_Delete(doc);
        return;
    }
    if (!ps->env) {
        ps->env = cJSON_DetachItemFromObjectCaseSensitive(doc, "env");
    }
    rec->peer = cJSON_DetachItemFromArray((cJSON *)results, 0);
    rec->peer_median = json_num(rec->peer, "median_s", 0);
    cJSON_Delete(doc);
}

/* ---- the ONNX Runtime peer ---------------------------------------------------- */

typedef struct ort_state {
    int enabled;
    cJSON *env; /* ONNX Runtime and Node versions: from the first good report */
} ort_state;

/* Exports the model for this (work, size) with export_onnx.py (a no-op when
 * build/bench/onnx/ has it already), then times it with ort_bench.mjs. */
static void run_ort(const options *o, int threads, ort_state *os_, work_rec *rec)
{
    char n_s[16], t_s[16], size_s[16], onnx[PATH_MAX + 64];
    snprintf(n_s, sizeof n_s, "%d", o->runs);
    snprintf(t_s, sizeof t_s, "%d", threads);
    snprintf(size_s, sizeof size_s, "%d", rec->size);
    snprintf(onnx, sizeof onnx, "%s/%s-%d.onnx", o->onnx_dir, work_names[rec->work], rec->size);
    char *exp_argv[] = {(char *)o->python, (char *)o->export_script, "-m", (char *)o->model,
                        "-o", (char *)o->onnx_dir, "--sizes", size_s, "--only",
                        (char *)work_names[rec->work], "-t", t_s, NULL};
    int st = run_cmd(exp_argv, NULL);
    if (st == EXIT_NO_TORCH || st == 127 || st < 0) {
        printf("peer: ONNX Runtime skipped: the export needs PyTorch (%s %s exited with %d); "
               "going on without it\n",
               o->python, o->export_script, st);
        os_->enabled = 0;
        return;
    }
    if (st != 0) {
        fprintf(stderr, "bench: ort: export_onnx.py failed for %s %d (exit status %d)\n",
                work_names[rec->work], rec->size, st);
        return;
    }
    char *argv[] = {(char *)o->node, (char *)o->ort_script, onnx,  "-n", n_s, "-t", t_s,
                    "--ort-dir",     (char *)o->ort_dir,    NULL};
    char *text = NULL;
    st = run_cmd(argv, &text);
    if (st == EXIT_NO_ORT || st == 127 || st < 0) {
        printf("peer: ONNX Runtime skipped: onnxruntime-node is not installed in %s (`make "
               "bench-ort-deps` installs it; %s exited with %d); going on without it\n",
               o->ort_dir, o->ort_script, st);
        os_->enabled = 0;
        free(text);
        return;
    }
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (st != 0 || !cJSON_IsObject(doc) || cJSON_GetObjectItemCaseSensitive(doc, "error")) {
        fprintf(stderr, "bench: ort: ort_bench.mjs failed for %s %d (exit status %d)%s%s\n",
                work_names[rec->work], rec->size, st, doc ? ": " : "",
                doc ? json_str(doc, "error", "") : "");
        cJSON_Delete(doc);
        return;
    }
    if (!os_->env) os_->env = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(doc, "env"), 1);
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "env");
    rec->ort = doc;
    rec->ort_median = json_num(doc, "median_s", 0);
}

/* ---- output -------------------------------------------------------------------- */

static double mib(double kib) { return kib / 1024.0; }

static void print_table(const options *o, const peaks *pk, const work_rec *recs, int n_recs,
                        int peer, int ort)
{
    printf("\n%-7s %5s %9s %9s %8s %8s %6s %8s", "work", "size", "median s", "min s", "TFLOP",
           "GFLOP/s", "%peak", "RSS MiB");
    if (peer) printf(" | %9s %8s %7s", "torch s", "torch MiB", "ratio");
    if (ort) printf(" | %9s %8s %7s", "ORT s", "ORT MiB", "ratio");
    printf("\n");
    for (int i = 0; i < n_recs; i++) {
        const work_rec *r = &recs[i];
        printf("%-7s %5d ", work_names[r->work], r->size);
        if (!r->ok) {
            printf("%s: %s\n", r->out.skipped ? "skipped" : "FAILED", r->out.err);
            continue;
        }
        double g = r->flops / r->median / 1e9;
        printf("%9.3f %9.3f %8.4f %8.1f ", r->median, r->min, r->flops / 1e12, g);
        if (pk->used > 0) printf("%5.1f%%", 100.0 * g / pk->used);
        else printf("%6s", "-");
        printf(" %8.0f", mib((double)r->peak_rss_kib));
        if (peer) {
            if (r->peer && r->peer_median > 0)
                printf(" | %9.3f %9.0f %6.2fx", r->peer_median,
                       mib(json_num(r->peer, "peak_rss_kib", 0)), r->peer_median / r->median);
            else
                printf(" | %9s %9s %7s", "-", "-", "-");
        }
        if (ort) {
            if (r->ort && r->ort_median > 0)
                printf(" | %9.3f %8.0f %6.2fx", r->ort_median,
                       mib(json_num(r->ort, "peak_rss_kib", 0)), r->ort_median / r->median);
            else
                printf(" | %9s %8s %7s", "-", "-", "-");
        }
        printf("\n");
    }
    (void)o;
}

static void print_breakdown(const work_rec *r)
{
    const child_out *c = &r->out;
    printf("\n%s %dx%d: by layer kind (the profiled warm-up: %.3f s wall, %d threads)\n",
           work_names[r->work], r->size, r->size, c->prof_wall_s, c->threads);
    printf("  %-20s %9s %7s %9s %7s\n", "kind", "seconds", "share", "GFLOP/s", "calls");
    double sum = 0;
    for (int k = 0; k < VAE_PROF_KINDS; k++) {
        sum += c->prof.seconds[k];
        if (!c->prof.calls[k]) continue;
        printf("  %-20s %9.4f %6.1f%% ", vae_prof_name(k), c->prof.seconds[k],
               100.0 * c->prof.seconds[k] / c->prof_wall_s);
        if (c->prof.flops[k] > 0 && c->prof.seconds[k] > 0)
            printf("%9.1f", c->prof.flops[k] / c->prof.seconds[k] / 1e9);
        else
            printf("%9s", "-");
        printf(" %7llu\n", (unsigned long long)c->prof.calls[k]);
    }
    double other = c->prof_wall_s - sum;
    printf("  %-20s %9.4f %6.1f%%\n", "other (glue)", other, 100.0 * other / c->prof_wall_s);
    double rel = r->flops > 0 ? fabs(r->flops - c->flops_analytic) / r->flops : 1.0;
    printf("  FLOPs: %.4f TFLOP counted by the ops, %.4f TFLOP from the architecture%s\n",
           r->flops / 1e12, c->flops_analytic / 1e12, rel > 1e-9 ? "  (MISMATCH)" : "");
    printf("  load %.2f s; peak RSS %.0f MiB (whole process), ", c->load_s,
           mib((double)r->peak_rss_kib));
    if (c->run_rss_kib > 0) printf("%.0f MiB", mib((double)c->run_rss_kib));
    else printf("unknown");
    printf(" during the runs; runs:");
    for (int i = 0; i < c->n; i++) printf(" %.3f", c->times[i]);
    printf(" s\n");
    if (r->peer) {
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(r->peer, "conv_impl");
        printf("  torch: load %.2f s; peak RSS %.0f MiB, %.0f MiB during the runs; runs:",
               json_num(r->peer, "load_s", 0), mib(json_num(r->peer, "peak_rss_kib", 0)),
               mib(json_num(r->peer, "run_rss_kib", 0)));
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->peer, "times");
        const cJSON *x;
        cJSON_ArrayForEach(x, t) printf(" %.3f", x->valuedouble);
        printf(" s\n");
        if (cJSON_IsObject(ci) && ci->child) {
            printf("  torch convolutions ran as:");
            cJSON_ArrayForEach(x, ci) printf(" %s x%d", x->string, x->valueint);
            printf("\n");
        }
    }
    if (r->ort) {
        printf("  ORT: load %.2f s; peak RSS %.0f MiB, %.0f MiB during the runs; runs:",
               json_num(r->ort, "load_s", 0), mib(json_num(r->ort, "peak_rss_kib", 0)),
               mib(json_num(r->ort, "run_rss_kib", 0)));
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->ort, "times");
        const cJSON *x;
        cJSON_ArrayForEach(x, t) printf(" %.3f", x->valuedouble);
        printf(" s\n");
    }
}

static int write_json(const options *o, int threads, double load1, const char *cpu,
                      const char *isa, const peaks *pk, const work_rec *recs, int n_recs,
                      const peer_state *ps, const ort_state *ors)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tool", "sdxlvae bench");
    cJSON_AddStringToObject(root, "library_version", vae_version_string());
    cJSON_AddStringToObject(root, "model", o->model);
    cJSON_AddStringToObject(root, "cpu", cpu);
    cJSON_AddStringToObject(root, "isa", isa);
    cJSON_AddNumberToObject(root, "threads", threads);
    cJSON_AddNumberToObject(root, "runs", o->runs);
    if (load1 >= 0) cJSON_AddNumberToObject(root, "load_average_1min", load1);
    cJSON *jp = cJSON_AddObjectToObject(root, "fma_peak_gflops");
    if (pk->avx2 > 0) cJSON_AddNumberToObject(jp, "avx2", pk->avx2);
    if (pk->avx512 > 0) cJSON_AddNumberToObject(jp, "avx512", pk->avx512);
    cJSON_AddStringToObject(jp, "used", pk->used_name);
    cJSON_AddNumberToObject(jp, "threads", pk->threads);
    if (ps->env) cJSON_AddItemToObject(root, "peer_env", cJSON_Duplicate(ps->env, 1));
    if (ors->env) cJSON_AddItemToObject(root, "ort_env", cJSON_Duplicate(ors->env, 1));
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    for (int i = 0; i < n_recs; i++) {
        const work_rec *r = &recs[i];
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "work", work_names[r->work]);
        cJSON_AddNumberToObject(w, "size", r->size);
        if (!r->ok) {
            cJSON_AddStringToObject(w, r->out.skipped ? "skipped" : "error", r->out.err);
            cJSON_AddItemToArray(arr, w);
            continue;
        }
        const child_out *c = &r->out;
        cJSON_AddItemToObject(w, "times_s", cJSON_CreateDoubleArray(c->times, c->n));
        cJSON_AddNumberToObject(w, "median_s", r->median);
        cJSON_AddNumberToObject(w, "min_s", r->min);
        cJSON_AddNumberToObject(w, "flops", r->flops);
        cJSON_AddNumberToObject(w, "flops_analytic", c->flops_analytic);
        cJSON_AddNumberToObject(w, "gflops", r->flops / r->median / 1e9);
        if (pk->used > 0)
            cJSON_AddNumberToObject(w, "pct_peak", 100.0 * r->flops / r->median / 1e9 / pk->used);
        cJSON_AddNumberToObject(w, "peak_rss_kib", (double)r->peak_rss_kib);
        cJSON_AddNumberToObject(w, "run_rss_kib", (double)c->run_rss_kib);
        cJSON_AddNumberToObject(w, "load_s", c->load_s);
        cJSON_AddNumberToObject(w, "threads", c->threads);
        cJSON_AddNumberToObject(w, "nonfinite_outputs", (double)c->nonfinite);
        cJSON *prof = cJSON_AddObjectToObject(w, "profile");
        cJSON_AddNumberToObject(prof, "wall_s", c->prof_wall_s);
        for (int k = 0; k < VAE_PROF_KINDS; k++) {
            if (!c->prof.calls[k]) continue;
            cJSON *pk2 = cJSON_AddObjectToObject(prof, vae_prof_name(k));
            cJSON_AddNumberToObject(pk2, "seconds", c->prof.seconds[k]);
            cJSON_AddNumberToObject(pk2, "flops", c->prof.flops[k]);
            cJSON_AddNumberToObject(pk2, "calls", (double)c->prof.calls[k]);
        }
        if (r->peer) {
            cJSON_AddItemToObject(w, "torch", cJSON_Duplicate(r->peer, 1));
            if (r->peer_median > 0)
                cJSON_AddNumberToObject(w, "ratio_torch_over_ours", r->peer_median / r->median);
        }
        if (r->ort) {
            cJSON_AddItemToObject(w, "onnxruntime", cJSON_Duplicate(r->ort, 1));
            if (r->ort_median > 0)
                cJSON_AddNumberToObject(w, "ratio_ort_over_ours", r->ort_median / r->median);
        }
        cJSON_AddItemToArray(arr, w);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) return -1;
    FILE *f = fopen(o->json, "w");
    int rc = -1;
    if (f) {
        rc = fputs(s, f) >= 0 && fputc('\n', f) != EOF ? 0 : -1;
        if (fclose(f) != 0) rc = -1;
    }
    if (rc != 0) fprintf(stderr, "bench: cannot write %s: %s\n", o->json, strerror(errno));
    free(s);
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench [-m MODEL] [-n RUNS] [-t THREADS] [--sizes 256,512] [--big]\n"
            "             [--only encode|decode] [-v] [--peer] [--ort] [--json FILE]\n"
            "             [--python PATH] [--peer-script PATH] [--node PATH] [--ort-dir DIR]\n"
            "       bench --layers [-n RUNS] [-t THREADS]\n"
            "  -m MODEL        a .safetensors file or model folder (default: full-size SDXL\n"
            "                  shape with random weights, generated once into build/bench/)\n"
            "  -n RUNS         timed runs after one warm-up (default 3)\n"
            "  -t THREADS      threads (default 0: every CPU this process may use)\n"
            "  --sizes LIST    image sides, comma separated (default 256,512)\n"
            "  --big           adds 1024\n"
            "  --only WORK     encode or decode (default both)\n"
            "  -v              per-layer-kind breakdown\n"
            "  --peer          also time PyTorch on the same weights (test/bench/torch_bench.py)\n"
            "  --ort           also time ONNX Runtime (onnxruntime-node) on the same weights,\n"
            "                  exported to ONNX by test/bench/export_onnx.py (needs PyTorch)\n"
            "  --json FILE     machine-readable results\n"
            "  --python PATH   interpreter for the peer (default /usr/bin/python3)\n"
            "  --peer-script PATH  torch_bench.py (default: found from this executable)\n"
            "  --max-memory SIZE   working-memory budget of each call (e.g. 900M, 2G):\n"
            "                  tiles when the untiled run would need more\n"
            "  --tile N        force tiling with N-pixel tiles\n"
            "  --compare       also run untiled (after the peak RSS is read) and print the error\n"
            "  --no-warmup     no warm-up run (slow sizes)\n"
            "  --half-weights  load with VAE_LOAD_HALF_WEIGHTS\n"
            "  --node PATH     node for --ort (default: the first on PATH)\n"
            "  --ort-dir DIR   folder whose node_modules/ has onnxruntime-node (default:\n"
            "                  build/ort, where `make bench-ort-deps` installs it)\n"
            "  --layers        only the 3x3 convolution kernels (direct and Winograd) on the\n"
            "                  SDXL layer shapes, against the FMA peak; no model needed\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int add_size(options *o, int s)
{
    for (int i = 0; i < o->n_sizes; i++)
        if (o->sizes[i] == s) return 0;
    if (o->n_sizes == MAX_SIZES) return -1;
    o->sizes[o->n_sizes++] = s;
    return 0;
}

static int parse_sizes(options *o, const char *arg)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    o->n_sizes = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int s;
        if (parse_int(t, 8, 16384, &s) != 0 || add_size(o, s) != 0) return -1;
    }
    return o->n_sizes ? 0 : -1;
}

/* The default model: generated once, complete when config.json (written
 * after the weights) is there. */
static int default_model(const char *bindir, char *path, size_t cap)
{
    char weights[PATH_MAX + 32], config[PATH_MAX + 32], gen[PATH_MAX + 16];
    snprintf(path, cap, "%s/../bench/sdxl-random", bindir);
    char *real = realpath(bindir, NULL);
    if (real) {
        char *slash = strrchr(real, '/');
        if (slash) *slash = '\0';
        snprintf(path, cap, "%s/bench/sdxl-random", real);
        free(real);
    }
    snprintf(weights, sizeof weights, "%s/model.safetensors", path);
    snprintf(config, sizeof config, "%s/config.json", path);
    if (is_file(weights) && is_file(config)) return 0;
    snprintf(gen, sizeof gen, "%s/gen_vae", bindir);
    fprintf(stderr, "bench: generating the random-weight SDXL VAE into %s (once)\n", path);
    char *argv[] = {gen, "--seed", "1", path, NULL};
    int st = run_cmd(argv, NULL);
    if (st != 0 || !is_file(weights) || !is_file(config)) {
        fprintf(stderr, "bench: %s failed (status %d); build it with `make tools`\n", gen, st);
        return -1;
    }
    return 0;
}

/* The first executable NAME on $PATH, into buf; NULL when there is none. */
static const char *find_in_path(const char *name, char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && (size_t)snprintf(buf, cap, "%.*s/%s", (int)len, path, name) < cap &&
            is_file(buf) && access(buf, X_OK) == 0)
            return buf;
        path += len;
        if (*path == ':') path++;
    }
    return NULL;
}

/* test/bench/NAME of this source tree, found from this executable (or the
 * working directory), as an absolute path when it exists. */
static void bench_file(const char *bindir, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/../../test/bench/%s", bindir, name);
    if (!is_file(buf)) snprintf(buf, cap, "test/bench/%s", name);
    char *real = realpath(buf, NULL);
    if (real) {
        snprintf(buf, cap, "%s", real);
        free(real);
    }
}

/* REL under the build folder (the parent of this executable's bin/). */
static void build_file(const char *bindir, const char *rel, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/../%s", bindir, rel);
    char *real = realpath(bindir, NULL);
    char *slash = real ? strrchr(real, '/') : NULL;
    if (slash) {
        *slash = '\0';
        snprintf(buf, cap, "%s/%s", real, rel);
    }
    free(real);
}

int main(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    o.runs = 3;
    o.only = -1;
    o.python = "/usr/bin/python3";
    o.sizes[0] = 256;
    o.sizes[1] = 512;
    o.n_sizes = 2;
    int big = 0;
    enum { OPT_SIZES = 256, OPT_BIG, OPT_ONLY, OPT_PEER, OPT_JSON, OPT_PYTHON, OPT_SCRIPT,
           OPT_MAXMEM, OPT_TILE, OPT_COMPARE, OPT_NOWARM, OPT_HALF,
           OPT_ORT, OPT_NODE, OPT_ORT_DIR, OPT_LAYERS };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},   {"runs", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'}, {"sizes", required_argument, NULL, OPT_SIZES},
        {"big", no_argument, NULL, OPT_BIG},       {"only", required_argument, NULL, OPT_ONLY},
        {"verbose", no_argument, NULL, 'v'},       {"peer", no_argument, NULL, OPT_PEER},
        {"json", required_argument, NULL, OPT_JSON},
        {"python", required_argument, NULL, OPT_PYTHON},
        {"peer-script", required_argument, NULL, OPT_SCRIPT},
        {"max-memory", required_argument, NULL, OPT_MAXMEM},
        {"tile", required_argument, NULL, OPT_TILE},
        {"compare", no_argument, NULL, OPT_COMPARE},
        {"no-warmup", no_argument, NULL, OPT_NOWARM},
        {"half-weights", no_argument, NULL, OPT_HALF},
        {"ort", no_argument, NULL, OPT_ORT},
        {"node", required_argument, NULL, OPT_NODE},
        {"ort-dir", required_argument, NULL, OPT_ORT_DIR},
        {"layers", no_argument, NULL, OPT_LAYERS},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:n:t:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'n':
            if (parse_int(optarg, 1, MAX_RUNS, &o.runs) != 0) {
                fprintf(stderr, "bench: -n wants 1..%d runs, not '%s'\n", MAX_RUNS, optarg);
                return 2;
            }
            break;
        case 't':
            if (parse_int(optarg, 0, 1024, &o.threads) != 0) {
                fprintf(stderr, "bench: -t wants 0..1024 threads, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_SIZES:
            if (parse_sizes(&o, optarg) != 0) {
                fprintf(stderr, "bench: --sizes wants up to %d sides 8..16384, e.g. 256,512\n",
                        MAX_SIZES);
                return 2;
            }
            break;
        case OPT_BIG: big = 1; break;
        case OPT_ONLY:
            if (!strcmp(optarg, "encode")) o.only = W_ENCODE;
            else if (!strcmp(optarg, "decode")) o.only = W_DECODE;
            else {
                fprintf(stderr, "bench: --only wants encode or decode, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'v': o.verbose = 1; break;
        case OPT_PEER: o.peer = 1; break;
        case OPT_JSON: o.json = optarg; break;
        case OPT_PYTHON: o.python = optarg; break;
        case OPT_SCRIPT: o.script = optarg; break;
        case OPT_MAXMEM: {
            char *end;
            double v = strtod(optarg, &end);
            double mult = *end == 'K' || *end == 'k' ? 1024.0
                        : *end == 'M' || *end == 'm' ? 1048576.0
                        : *end == 'G' || *end == 'g' ? 1073741824.0 : 1.0;
            if (*end && mult > 1.0) end++;
            if (end == optarg || *end || !(v > 0) || v * mult > 1.8e19) {
                fprintf(stderr, "bench: --max-memory wants bytes like 900M or 2G, not '%s'\n", optarg);
                return 2;
            }
            o.max_memory = (uint64_t)(v * mult);
            break;
        }
        case OPT_TILE:
            if (parse_int(optarg, 8, 1 << 20, &o.tile) != 0 || o.tile % 8) {
                fprintf(stderr, "bench: --tile wants a multiple of 8 image pixels, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_COMPARE: o.compare = 1; break;
        case OPT_NOWARM: o.no_warmup = 1; break;
        case OPT_HALF: o.half_weights = 1; break;
        case OPT_ORT: o.ort = 1; break;
        case OPT_NODE: o.node = optarg; break;
        case OPT_ORT_DIR: o.ort_dir = optarg; break;
        case OPT_LAYERS: o.layers = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (big && add_size(&o, 1024) != 0) {
        fprintf(stderr, "bench: too many sizes\n");
        return 2;
    }

    /* line by line, so that stdout and the progress on stderr interleave in
     * order when both go to one file */
    setvbuf(stdout, NULL, _IOLBF, 0);
    char bindir[PATH_MAX], model_buf[PATH_MAX + 64], script_buf[PATH_MAX + 64];
    exe_dir(bindir, sizeof bindir);
    if (!o.model && !o.layers) {
        if (default_model(bindir, model_buf, sizeof model_buf) != 0) return 1;
        o.model = model_buf;
    }
    if (o.peer && !o.script) {
        snprintf(script_buf, sizeof script_buf, "%s/../../test/bench/torch_bench.py", bindir);
        if (!is_file(script_buf)) snprintf(script_buf, sizeof script_buf, "test/bench/torch_bench.py");
        char *real = realpath(script_buf, NULL);
        if (real) {
            snprintf(script_buf, sizeof script_buf, "%s", real);
            free(real);
        }
        o.script = script_buf;
    }
    /* --ort: the scripts beside torch_bench.py, node from PATH, onnxruntime-node
     * and the exported files under the build folder (beside bin/) */
    char export_buf[PATH_MAX + 64], ort_script_buf[PATH_MAX + 64], node_buf[PATH_MAX + 16];
    char ort_dir_buf[PATH_MAX + 16], onnx_dir_buf[PATH_MAX + 16];
    int ort_ready = 0;
    if (o.ort) {
        bench_file(bindir, "export_onnx.py", export_buf, sizeof export_buf);
        bench_file(bindir, "ort_bench.mjs", ort_script_buf, sizeof ort_script_buf);
        o.export_script = export_buf;
        o.ort_script = ort_script_buf;
        if (!o.node) o.node = find_in_path("node", node_buf, sizeof node_buf);
        else if (!is_file(o.node) || access(o.node, X_OK) != 0) o.node = NULL;
        if (!o.ort_dir) {
            build_file(bindir, "ort", ort_dir_buf, sizeof ort_dir_buf);
            o.ort_dir = ort_dir_buf;
        }
        build_file(bindir, "bench/onnx", onnx_dir_buf, sizeof onnx_dir_buf);
        o.onnx_dir = onnx_dir_buf;
        ort_ready = o.node != NULL;
    }

    int threads = o.threads ? o.threads : vae_cpu_count();
    const char *isa = vae_kernels()->isa;
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    printf("sdxlvae bench: libsdxlvae %s, kernels %s, %d thread%s, %s\n", vae_version_string(), isa,
           threads, threads == 1 ? "" : "s", cpu);
    if (!o.layers) printf("model: %s\n", o.model);
    if (o.ort && !ort_ready)
        printf("peer: ONNX Runtime skipped: no node executable (Debian: apt-get install nodejs; "
               "bench takes the first on PATH, or --node PATH)\n");

    double load1 = -1;
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf", &load1) != 1) load1 = -1;
        fclose(lf);
    }
    if (load1 >= 0.5)
        printf("warning: the load average is %.2f on %d CPUs: other processes are running and "
               "the times will show it\n",
               load1, vae_cpu_count());

    /* the peak first: no threads may be alive when the children fork. More
     * threads than CPUs cannot add to it. */
    int peak_threads = threads < vae_cpu_count() ? threads : vae_cpu_count();
    peaks pk;
    measure_peaks(peak_threads, isa, &pk);
    if (pk.avx2 > 0 || pk.avx512 > 0) {
        printf("FMA peak on %d thread%s:", peak_threads, peak_threads == 1 ? "" : "s");
        if (pk.avx2 > 0) printf(" AVX2 %.1f GFLOP/s", pk.avx2);
        if (pk.avx512 > 0) printf("%s AVX-512 %.1f GFLOP/s", pk.avx2 > 0 ? "," : "", pk.avx512);
        printf("; %%peak is against %s%s\n", pk.used_name, pk.note);
    } else {
        printf("FMA peak: not measured%s\n", pk.note);
    }
    if (o.layers) return bench_layers(o.runs, threads, pk.used) != 0;

    work_rec recs[2 * MAX_SIZES];
    int n_recs = 0;
    for (int s = 0; s < o.n_sizes; s++)
        for (int w = W_ENCODE; w <= W_DECODE; w++) {
            if (o.only >= 0 && w != o.only) continue;
            memset(&recs[n_recs], 0, sizeof recs[n_recs]);
            recs[n_recs].work = w;
            recs[n_recs].size = o.sizes[s];
            n_recs++;
        }

    peer_state ps = {o.peer, NULL};
    ort_state ors = {ort_ready, NULL};
    int failed = 0, params_shown = 0;
    for (int i = 0; i < n_recs; i++) {
        work_rec *r = &recs[i];
        fprintf(stderr, "[%d/%d] %s %dx%d: ours ...\n", i + 1, n_recs, work_names[r->work],
                r->size, r->size);
        run_work(&o, threads, r);
        if (!params_shown && r->out.params) {
            static const char *const dts[] = {"F32", "F16", "BF16", "mixed"};
            printf("model: %llu parameters, %s weights, %s\n", (unsigned long long)r->out.params,
                   r->out.weight_dtype >= 0 && r->out.weight_dtype <= 3 ? dts[r->out.weight_dtype]
                                                                        : "?",
                   r->out.family);
            params_shown = 1;
        }
        if (!r->ok) {
            if (!r->out.skipped) failed = 1;
            fprintf(stderr, "[%d/%d] %s %d: %s: %s\n", i + 1, n_recs, work_names[r->work], r->size,
                    r->out.skipped ? "skipped" : "FAILED", r->out.err);
            continue;
        }
        if (strcmp(r->out.isa, isa) != 0)
            fprintf(stderr, "bench: warning: the child ran %s kernels, not %s\n", r->out.isa, isa);
        fprintf(stderr, "[%d/%d] %s %dx%d: median %.3f s, %.1f GFLOP/s\n", i + 1, n_recs,
                work_names[r->work], r->size, r->size, r->median, r->flops / r->median / 1e9);
        if (o.max_memory || o.tile || o.compare || o.no_warmup) {
            const vae_memory_estimate *e = &r->out.est;
            printf("memory %s %dx%d: budget %.0f MiB; estimate untiled %.0f MiB, tiled %.0f MiB "
                   "(%s, tile %d, work x%.2f), weights %.0f MiB; peak RSS %.0f MiB whole process, "
                   "%.0f MiB during the runs; runs:",
                   work_names[r->work], r->size, r->size, (double)e->budget_bytes / 1048576.0,
                   (double)e->untiled_bytes / 1048576.0, (double)e->tiled_bytes / 1048576.0,
                   e->tiled ? "tiled" : "untiled", e->tile, e->work_ratio,
                   (double)e->weights_bytes / 1048576.0, mib((double)r->peak_rss_kib),
                   mib((double)r->out.run_rss_kib));
            for (int k = 0; k < r->out.n; k++) printf(" %.1f", r->out.times[k]);
            printf(" s");
            if (r->out.rel_err >= 0) printf("; rel err vs untiled %.3g", r->out.rel_err);
            printf("\n");
        }
        if (r->out.nonfinite)
            fprintf(stderr, "bench: warning: %llu non-finite outputs (random weights?)\n",
                    (unsigned long long)r->out.nonfinite);
        if (ps.enabled) {
            fprintf(stderr, "[%d/%d] %s %dx%d: torch ...\n", i + 1, n_recs, work_names[r->work],
                    r->size, r->size);
            run_peer(&o, threads, &ps, r);
        }
        if (ors.enabled) {
            fprintf(stderr, "[%d/%d] %s %dx%d: ONNX Runtime ...\n", i + 1, n_recs,
                    work_names[r->work], r->size, r->size);
            run_ort(&o, threads, &ors, r);
        }
    }

    if (o.peer && ps.env) {
        const cJSON *blas = cJSON_GetObjectItemCaseSensitive(ps.env, "blas");
        const cJSON *mk = cJSON_GetObjectItemCaseSensitive(ps.env, "mkldnn_available");
        printf("peer: PyTorch %s, %d threads, MKLDNN %s, BLAS %s\n",
               json_str(ps.env, "torch_version", "?"), (int)json_num(ps.env, "threads", 0),
               cJSON_IsTrue(mk) ? "available" : "not available",
               json_str(blas, "name", "unknown"));
    }
    if (o.ort && ors.env) {
        const cJSON *first = NULL;
        for (int i = 0; i < n_recs && !first; i++) first = recs[i].ort;
        printf("peer: ONNX Runtime %s (onnxruntime-node, Node %s), CPU provider, %d intra-op "
               "thread%s, 1 inter-op, graph optimization all, spinning %s, ONNX opset %d "
               "(exported by torch)\n",
               json_str(ors.env, "ort_version", "?"), json_str(ors.env, "node_version", "?"),
               (int)json_num(first, "threads", 0), json_num(first, "threads", 0) == 1 ? "" : "s",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(first, "allow_spinning")) ? "on"
                                                                                       : "off",
               (int)json_num(first, "opset", 0));
    }
    print_table(&o, &pk, recs, n_recs, o.peer && (ps.env != NULL), o.ort && (ors.env != NULL));
    if (o.peer && ps.env) printf("ratio = torch median / ours median (above 1: libsdxlvae is faster)\n");
    if (o.ort && ors.env) {
        printf("ORT ratio = ONNX Runtime median / ours median (above 1: libsdxlvae is faster)\n");
        printf("ONNX Runtime vs PyTorch on the same input, max|ort-torch|/max|torch|:");
        for (int i = 0; i < n_recs; i++) {
            const cJSON *e = recs[i].ort ? cJSON_GetObjectItemCaseSensitive(recs[i].ort,
                                                                            "max_rel_err_vs_torch")
                                         : NULL;
            if (!e) continue;
            if (cJSON_IsNumber(e))
                printf(" %s %d %.1e%s", work_names[recs[i].work], recs[i].size, e->valuedouble,
                       e->valuedouble <= 1e-4 ? "" : " (MISMATCH)");
            else
                printf(" %s %d ?", work_names[recs[i].work], recs[i].size);
        }
        printf("\n");
    }
    if (o.verbose)
        for (int i = 0; i < n_recs; i++)
            if (recs[i].ok) print_breakdown(&recs[i]);
    if (o.json && write_json(&o, threads, load1, cpu, isa, &pk, recs, n_recs, &ps, &ors) != 0)
        failed = 1;
    for (int i = 0; i < n_recs; i++) {
        cJSON_Delete(recs[i].peer);
        cJSON_Delete(recs[i].ort);
    }
    cJSON_Delete(ps.env);
    cJSON_Delete(ors.env);
    return failed ? 1 : 0;
}
