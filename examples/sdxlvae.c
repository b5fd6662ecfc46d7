/*
 * sdxlvae - the command-line tool of libsdxlvae.
 *
 *   sdxlvae encode    -m MODEL [--raw] [--sample SEED] [--crop] [--threads N]
 *                     [MEMORY] [-f] IN OUT
 *   sdxlvae encode    -m MODEL [...] -o DIR IN...
 *   sdxlvae decode    -m MODEL [--raw] [--threads N] [MEMORY] [-f] IN OUT
 *   sdxlvae decode    -m MODEL [...] [--to png|npy] -o DIR IN...
 *   sdxlvae roundtrip -m MODEL [--crop] [--threads N] [MEMORY] [-f] IN.png OUT.png
 *   sdxlvae info      -m MODEL [--half-weights]
 *   sdxlvae convert   [-f] IN OUT
 *
 * MEMORY is any of --max-memory SIZE, --tile PIXELS, --circular and
 * --half-weights. decode loads the decoder only, encode the encoder only.
 *
 * Every command takes -v (timings of its stages on stderr; encode, decode and
 * roundtrip also print the library's memory estimate before each run call);
 * encode, decode and roundtrip draw a progress bar on stderr when it is a
 * terminal and the work takes more than a second, unless -q/--quiet.
 *
 * --max-memory SIZE bounds the whole process, not only the library's working
 * memory: the tool subtracts the weights, its own arrays and a 16 MiB
 * allowance for itself and gives the library the rest
 * (vae_run_options.max_memory), which then runs tiled when it must.
 *
 * Files are told apart by extension: .npy holds float32 NCHW tensors (images
 * in [-1, 1]), .png holds images (any PNG in, 8-bit RGB out).
 *
 * Batch mode (encode and decode with -o DIR): every positional is an input
 * file or a directory (its .png/.npy files, by name, not recursive); the
 * model is loaded once and each input is written to DIR/<stem>.<ext> as the
 * single-file command would write it. A failed file prints its line and the
 * run goes on.
 *
 * Exit status: 0 on success; 1 when something failed (in batch mode: any
 * file); 2 for a usage error. Every failure prints exactly one line
 * "sdxlvae: ..." on stderr (batch mode adds "N of M files failed"). No data
 * is lost: an existing output is refused unless -f/--force, an input is never
 * an output, and outputs are written to a temporary file beside OUT and moved
 * to OUT at the very end, so a failed run never leaves a partial file nor
 * touches an existing one.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "sdxlvae.h"
#include "common/npy.h"
#include "common/png.h"

#define EXIT_USAGE 2
#define MAX_THREADS 1024
#define ERRCAP 512

/* ---- Progress bar and timings -------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The bar of the library call running now (vae_run_options.progress). It
 * appears once the call has run for `delay` seconds, on stderr, and only
 * when stderr is a terminal; it is erased when the call ends. */
typedef struct progress_bar {
    int enabled;         /* stderr is a terminal and no --quiet */
    double delay;        /* seconds before the bar appears */
    const char *label;   /* "encoding", "decoding" */
    char item[48];       /* batch mode: " 3/10", the file's number */
    double start;
    int shown;           /* the bar is on the terminal's last line */
    int drawn_permille;  /* what is drawn, -1: nothing */
} progress_bar;

static progress_bar g_bar;
static int g_verbose;
static const char *g_timing_file;  /* batch mode: the input being worked on */

/* Erases the bar so that a message can take the line. */
static void bar_clear(void)
{
    if (g_bar.shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        g_bar.shown = 0;
    }
    g_bar.drawn_permille = -1;
}

static int32_t on_progress(void *user, float fraction, int32_t stage)
{
    progress_bar *b = user;
    (void)stage;
    double t = now_seconds() - b->start;
    if (t < b->delay)
        return 0;
    int permille = (int)(fraction * 1000.0f);
    if (permille == b->drawn_permille)
        return 0;
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    int full = permille * WIDTH / 1000;
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < full ? '#' : '.';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r%s%s [%s] %5.1f%% %6.1f s", b->label, b->item, bar,
            permille / 10.0, t);
    fflush(stderr);
    b->shown = 1;
    b->drawn_permille = permille;
    return 0;
}

static void bar_begin(const char *label)
{
    g_bar.label = label;
    g_bar.start = now_seconds();
    g_bar.drawn_permille = -1;
}

/* -v: "STAGE  SECONDS s" on stderr, for the stage that began at t0; in
 * batch mode the stages of one file end with "  FILE". */
static void timing(const char *stage, double t0)
{
    if (!g_verbose)
        return;
    bar_clear();
    if (g_timing_file != NULL)
        fprintf(stderr, "%-7s %8.3f s  %s\n", stage, now_seconds() - t0,
                g_timing_file);
    else
        fprintf(stderr, "%-7s %8.3f s\n", stage, now_seconds() - t0);
}

/* ---- Messages ------------------------------------------------------------ */

static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "sdxlvae: <message>" as exactly one line on stderr. */
static void errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) {
        fputs("sdxlvae: error\n", stderr);
        return;
    }
    char *buf = malloc((size_t)len + 1);
    if (buf == NULL) {
        fputs("sdxlvae: out of memory\n", stderr);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)len + 1, fmt, ap);
    va_end(ap);
    /* Messages from the library or the readers must not break the line. */
    for (char *p = buf; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    while (len > 0 && buf[len - 1] == ' ')
        buf[--len] = '\0';
    bar_clear();
    fprintf(stderr, "sdxlvae: %s\n", buf);
    free(buf);
}

/* Prints "subject: msg", or msg alone when it already names the subject. */
static void subject_error(const char *subject, const char *msg)
{
    if (subject != NULL && strstr(msg, subject) == NULL)
        errorf("%s: %s", subject, msg);
    else
        errorf("%s", msg);
}

/* The message of a failed library call: the handle's, else the thread's,
 * else the status name. Valid until the next call into the library. */
static const char *lib_message(const vae_model *model, int32_t status)
{
    const char *msg = model != NULL ? vae_last_error(model) : "";
    if (msg == NULL || *msg == '\0')
        msg = vae_last_error(NULL);
    if (msg == NULL || *msg == '\0')
        msg = vae_strerror(status);
    return msg;
}

/* Reports a failed library call, prefixed with `subject` when its message
 * does not say it. */
static void lib_error(const vae_model *model, int32_t status,
                      const char *subject)
{
    subject_error(subject, lib_message(model, status));
}

/* ---- Help ------------------------------------------------------------------ */

static const char USAGE_MAIN[] =
    "Usage: sdxlvae COMMAND [OPTIONS] ARGS...\n"
    "\n"
    "Runs the Stable Diffusion XL VAE (and every VAE of the same architecture:\n"
    "SD1.x, SD2.x, SD3, Flux.1) on the CPU.\n"
    "\n"
    "Commands:\n"
    "  encode     image (.png or .npy) -> latent (.npy)\n"
    "  decode     latent (.npy) -> image (.png or .npy)\n"
    "  roundtrip  encode and decode a PNG, print the PSNR\n"
    "  info       describe a model\n"
    "  convert    PNG <-> .npy\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help; 'sdxlvae COMMAND --help' for a command\n"
    "      --version  print the library version\n"
    "\n"
    "encode, decode and roundtrip show a progress bar on stderr when it is a\n"
    "terminal and the work takes more than a second (-q, --quiet: never); every\n"
    "command takes -v, --verbose to print the time of each stage on stderr.\n"
    "\n"
    "encode, decode and roundtrip take --max-memory SIZE (the most memory the\n"
    "whole process may use, e.g. 2G; the work is then done in tiles when it\n"
    "must), --tile PIXELS, --circular (seamless textures) and --half-weights\n"
    "(weights kept in 16 bits); see 'sdxlvae COMMAND --help'.\n"
    "\n"
    "encode and decode take many files at once with -o DIR (--output-dir):\n"
    "every file (or directory of files) named is an input, the model is loaded\n"
    "once and each result is written to DIR/<name>.npy (decode: .png, or .npy\n"
    "with --to npy).\n"
    "\n"
    "Files are told apart by their extension (case does not matter):\n"
    "  .npy  float32 NCHW tensor, any batch; images have 3 channels in [-1, 1]\n"
    "  .png  images: any PNG is read (v/maxval*2-1), 8-bit RGB is written\n"
    "\n"
    "No command replaces an existing output file unless given -f, --force, nor\n"
    "ever its input; outputs are written to a temporary file and renamed.\n"
    "\n"
    "Exit status: 0 on success, 1 on failure (with -o: of any file), 2 on a\n"
    "usage error.\n";

static const char USAGE_ENCODE[] =
    "Usage: sdxlvae encode -m MODEL [--raw] [--sample SEED] [--crop] [--threads N]\n"
    "                      [--max-memory SIZE] [--tile PIXELS] [--circular]\n"
    "                      [--half-weights] [-f] [-q] [-v] IN OUT\n"
    "       sdxlvae encode -m MODEL [OPTIONS] -o DIR IN...\n"
    "\n"
    "Encodes images into latents. IN is a .png or a .npy (N x 3 x H x W or\n"
    "3 x H x W, values in [-1, 1]); OUT is a .npy (N x C x H/8 x W/8). H and W\n"
    "must be multiples of the model's downsample factor (8). Only the\n"
    "encoder's weights are loaded.\n"
    "\n"
    "With -o DIR, every IN (one or more) is an input: a .png or .npy file, or a\n"
    "directory whose .png and .npy files are taken (sorted by name; not its\n"
    "subdirectories nor names starting with '.'). The model is loaded once;\n"
    "IN's latent goes to DIR/<IN's name without extension>.npy. Two inputs with\n"
    "the same name are refused. A file that fails is reported and skipped; the\n"
    "exit status is 1 when any failed.\n"
    "\n"
    "Options:\n"
    "  -m, --model MODEL  a .safetensors file or a diffusers folder\n"
    "      --raw          write raw latents (default: scaled, as diffusion\n"
    "                     models use them: (raw - shift) * scale)\n"
    "      --sample SEED  draw a sample of the posterior with this seed\n"
    "                     (a decimal uint64) instead of taking its mean\n"
    "      --crop         crop the right and bottom edges of an image whose\n"
    "                     sides are not multiples of 8 (default: an error)\n"
    "      --threads N    worker threads, 0..1024 (default 0: every CPU)\n"
    "  -o, --output-dir DIR\n"
    "                     batch mode: write into DIR (created when missing,\n"
    "                     if its parent exists)\n"
    "  -f, --force        replace existing output files (default: refuse)\n"
    "  -q, --quiet        no progress bar\n"
    "  -v, --verbose      print the time of each stage (load, read, encode,\n"
    "                     decode, write) and the memory estimate on stderr\n"
    "  -h, --help         show this help\n"
    "\n"
    "Memory:\n"
    "      --max-memory SIZE\n"
    "                     the most memory the whole process may use: bytes, or\n"
    "                     with a K, M, G or T suffix (powers of 1024), e.g.\n"
    "                     512M, 1.5G. The weights, the arrays of the file and\n"
    "                     16 MiB for the program count against it; the library\n"
    "                     gets the rest and works in tiles when the whole image\n"
    "                     does not fit. Fails, saying the minimum, when even the\n"
    "                     smallest tile does not fit. Default: the library's\n"
    "                     (half the physical memory for its working memory)\n"
    "      --tile PIXELS  work in tiles of PIXELS x PIXELS image pixels (a\n"
    "                     multiple of 8), even when the whole image fits. The\n"
    "                     result equals the untiled one up to rounding (1e-4)\n"
    "      --circular     wrap-around padding, for textures that tile\n"
    "                     seamlessly\n"
    "      --half-weights keep the weights in 16 bits: half the memory; exact\n"
    "                     for F16 and BF16 files, F32 weights are rounded\n";

static const char USAGE_DECODE[] =
    "Usage: sdxlvae decode -m MODEL [--raw] [--threads N] [--max-memory SIZE]\n"
    "                      [--tile PIXELS] [--circular] [--half-weights]\n"
    "                      [-f] [-q] [-v] IN OUT\n"
    "       sdxlvae decode -m MODEL [OPTIONS] [--to png|npy] -o DIR IN...\n"
    "\n"
    "Decodes latents into images. IN is a .npy (N x C x h x w or C x h x w);\n"
    "OUT is a .png (N must be 1) or a .npy (N x 3 x 8h x 8w, raw decoder\n"
    "output, not clamped). PNG output maps [-1, 1] to 0..255. Only the\n"
    "decoder's weights are loaded.\n"
    "\n"
    "With -o DIR, every IN (one or more) is an input: a .npy file, or a\n"
    "directory whose .npy files are taken (sorted by name; not its\n"
    "subdirectories nor names starting with '.'). The model is loaded once;\n"
    "IN's image goes to DIR/<IN's name without extension>.png (or .npy with\n"
    "--to npy). Two inputs with the same name are refused. A file that fails\n"
    "is reported and skipped; the exit status is 1 when any failed.\n"
    "\n"
    "Options:\n"
    "  -m, --model MODEL  a .safetensors file or a diffusers folder\n"
    "      --raw          IN holds raw latents (default: scaled)\n"
    "      --threads N    worker threads, 0..1024 (default 0: every CPU)\n"
    "  -o, --output-dir DIR\n"
    "                     batch mode: write into DIR (created when missing,\n"
    "                     if its parent exists)\n"
    "      --to png|npy   with -o: the format of the images (default png)\n"
    "  -f, --force        replace existing output files (default: refuse)\n"
    "  -q, --quiet        no progress bar\n"
    "  -v, --verbose      print the time of each stage (load, read, encode,\n"
    "                     decode, write) and the memory estimate on stderr\n"
    "  -h, --help         show this help\n"
    "\n"
    "Memory:\n"
    "      --max-memory SIZE\n"
    "                     the most memory the whole process may use: bytes, or\n"
    "                     with a K, M, G or T suffix (powers of 1024), e.g.\n"
    "                     512M, 1.5G. The weights, the arrays of the file and\n"
    "                     16 MiB for the program count against it; the library\n"
    "                     gets the rest and works in tiles when the whole image\n"
    "                     does not fit. Fails, saying the minimum, when even the\n"
    "                     smallest tile does not fit. Default: the library's\n"
    "                     (half the physical memory for its working memory)\n"
    "      --tile PIXELS  work in tiles of PIXELS x PIXELS image pixels (a\n"
    "                     multiple of 8), even when the whole image fits. The\n"
    "                     result equals the untiled one up to rounding (1e-4)\n"
    "      --circular     wrap-around padding: the image tiles seamlessly\n"
    "                     (textures)\n"
    "      --half-weights keep the weights in 16 bits: half the memory; exact\n"
    "                     for F16 and BF16 files, F32 weights are rounded\n";

static const char USAGE_ROUNDTRIP[] =
    "Usage: sdxlvae roundtrip -m MODEL [--crop] [--threads N] [--max-memory SIZE]\n"
    "                         [--tile PIXELS] [--circular] [--half-weights]\n"
    "                         [-f] [-q] [-v] IN.png OUT.png\n"
    "\n"
    "Encodes IN.png, decodes the latent into OUT.png and prints the PSNR of\n"
    "OUT against IN on 8-bit values, e.g. \"PSNR 31.42 dB\".\n"
    "\n"
    "Options:\n"
    "  -m, --model MODEL  a .safetensors file or a diffusers folder\n"
    "      --crop         crop the right and bottom edges of an image whose\n"
    "                     sides are not multiples of 8 (default: an error)\n"
    "      --threads N    worker threads, 0..1024 (default 0: every CPU)\n"
    "  -f, --force        replace OUT.png if it exists (default: refuse)\n"
    "  -q, --quiet        no progress bar\n"
    "  -v, --verbose      print the time of each stage (load, read, encode,\n"
    "                     decode, write) and the memory estimates on stderr\n"
    "  -h, --help         show this help\n"
    "\n"
    "Memory:\n"
    "      --max-memory SIZE\n"
    "                     the most memory the whole process may use: bytes, or\n"
    "                     with a K, M, G or T suffix (powers of 1024), e.g.\n"
    "                     512M, 1.5G. The weights, the arrays of the file and\n"
    "                     16 MiB for the program count against it; the library\n"
    "                     gets the rest and works in tiles when the whole image\n"
    "                     does not fit. Fails, saying the minimum, when even the\n"
    "                     smallest tile does not fit. Default: the library's\n"
    "                     (half the physical memory for its working memory)\n"
    "      --tile PIXELS  work in tiles of PIXELS x PIXELS image pixels (a\n"
    "                     multiple of 8), even when the whole image fits. The\n"
    "                     result equals the untiled one up to rounding (1e-4)\n"
    "      --circular     wrap-around padding, for textures that tile\n"
    "                     seamlessly\n"
    "      --half-weights keep the weights in 16 bits: half the memory; exact\n"
    "                     for F16 and BF16 files, F32 weights are rounded\n";

static const char USAGE_INFO[] =
    "Usage: sdxlvae info -m MODEL [--half-weights] [-v]\n"
    "\n"
    "Prints the model's family, tensor naming, architecture, weight type,\n"
    "parameter count, latent scaling and the memory its weights take once\n"
    "loaded as \"key: value\" lines.\n"
    "\n"
    "Options:\n"
    "  -m, --model MODEL  a .safetensors file or a diffusers folder\n"
    "      --half-weights load the weights in 16 bits (weights_memory shows\n"
    "                     what that saves)\n"
    "  -v, --verbose      print the time the load took on stderr\n"
    "  -h, --help         show this help\n";

static const char USAGE_CONVERT[] =
    "Usage: sdxlvae convert [-f] [-v] IN OUT\n"
    "\n"
    "Converts an image between PNG and .npy. PNG -> .npy gives float32\n"
    "1 x 3 x H x W in [-1, 1]; .npy (1 x 3 x H x W or 3 x H x W) -> PNG maps\n"
    "[-1, 1] to 0..255, clamped.\n"
    "\n"
    "Options:\n"
    "  -f, --force        replace OUT if it exists (default: refuse)\n"
    "  -v, --verbose      print the time of each stage (read, write) on stderr\n"
    "  -h, --help         show this help\n";

/* ---- Arguments --------------------------------------------------------- */

enum {
    OPT_MODEL = 1, OPT_RAW = 2, OPT_SAMPLE = 4, OPT_THREADS = 8, OPT_CROP = 16,
    OPT_QUIET = 32, OPT_VERBOSE = 64, OPT_FORCE = 128, OPT_OUTDIR = 256,
    OPT_TO = 512, OPT_MAXMEM = 1024, OPT_TILE = 2048, OPT_CIRCULAR = 4096,
    OPT_HALF = 8192
};

typedef struct cli_args {
    const char *verb;
    const char *model;
    const char **pos;     /* the positionals, in order (malloc'ed) */
    int npos;
    int raw;
    int sample;
    uint64_t seed;
    int32_t threads;
    int crop;
    int quiet;
    int verbose;
    int force;            /* -f: replace existing outputs */
    const char *outdir;   /* -o DIR: batch mode */
    int to;               /* --to: KIND_PNG or KIND_NPY, 0 when not given */
    uint64_t max_memory;  /* --max-memory in bytes; 0 when not given */
    const char *max_memory_arg;  /* ... as the user wrote it, for messages */
    int32_t tile;         /* --tile: tile side in image pixels; 0: not given */
    int circular;         /* --circular: VAE_FLAG_CIRCULAR */
    int half;             /* --half-weights: VAE_LOAD_HALF_WEIGHTS */
} cli_args;

typedef struct verb_desc {
    const char *name;
    unsigned opts;  /* OPT_* accepted */
    int npos;       /* positionals required (without -o) */
    const char *usage;
    int (*run)(const cli_args *);
} verb_desc;

/* File kinds, by extension. */
enum { KIND_OTHER, KIND_NPY, KIND_PNG };

/* Parses a decimal unsigned number no larger than max: digits only. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The largest tile side --tile takes: the largest multiple of 8 in int32_t. */
#define MAX_TILE (INT32_MAX / 8 * 8)

/* A size for --max-memory: whole bytes ("800000000"), or a number with a K,
 * M, G or T suffix in either case, powers of 1024 ("512M", "1.5g"), rounded
 * down to a whole byte. Returns 0; -1 when s is not such a size; -2 when it
 * is more than UINT64_MAX bytes; -3 for a fraction without a suffix. */
static int parse_size(const char *s, uint64_t *out)
{
    uint64_t ip = 0;
    const char *p = s, *frac = NULL;
    int nfrac = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (ip > (UINT64_MAX - d) / 10)
            return -2;
        ip = ip * 10 + d;
    }
    if (*p == '.') {
        frac = ++p;
        for (; *p >= '0' && *p <= '9'; p++)
            nfrac++;
        if (nfrac == 0)
            return -1;
    }
    int shift = 0;
    switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    case 't': case 'T': shift = 40; p++; break;
    default: break;
    }
    if (*p != '\0')
        return -1;
    if (frac != NULL && shift == 0)
        return -3;
    if (ip > (UINT64_MAX >> shift))
        return -2;
    uint64_t v = ip << shift;
    if (frac != NULL) {
        /* The fraction of one unit, in double: exact to far below a byte
         * for any size a machine has. */
        double f = 0.0, scale = 1.0;
        for (int i = 0; i < nfrac && i < 18; i++) {
            scale /= 10.0;
            f += (double)(frac[i] - '0') * scale;
        }
        uint64_t extra = (uint64_t)(f * (double)(UINT64_C(1) << shift));
        if (extra > UINT64_MAX - v)
            return -2;
        v += extra;
    }
    *out = v;
    return 0;
}

/* Matches "--name" or "--name=VALUE"; *inline_val gets VALUE or NULL. */
static int match_long(const char *arg, const char *name, const char **inline_val)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '\0') {
        *inline_val = NULL;
        return 1;
    }
    if (arg[n] == '=') {
        *inline_val = arg + n + 1;
        return 1;
    }
    return 0;
}

/* The value of an option: inline, or the next argument. */
static int option_value(const char *verb, const char *opt, const char *inline_val,
                        int argc, char **argv, int *i, const char **out)
{
    if (inline_val != NULL) {
        *out = inline_val;
        return 0;
    }
    if (*i + 1 >= argc) {
        errorf("%s: option '%s' needs a value (see 'sdxlvae %s --help')", verb,
               opt, verb);
        return -1;
    }
    *out = argv[++*i];
    return 0;
}

/* A flag of the verb (opt in v->opts) without a value: "-x" (when shrt is
 * not NULL) or "--long". Sets *flag, or *err after printing the error. */
static int match_flag(const verb_desc *v, unsigned opt, const char *arg,
                      const char *shrt, const char *lng, int *flag, int *err)
{
    const char *val = NULL;
    if (!(v->opts & opt))
        return 0;
    if (shrt != NULL && strcmp(arg, shrt) == 0) {
        *flag = 1;
        return 1;
    }
    if (!match_long(arg, lng, &val))
        return 0;
    if (val != NULL) {
        errorf("%s: option '%s' takes no value", v->name, lng);
        *err = 1;
    }
    *flag = 1;
    return 1;
}

/* An option of the verb with a non-empty value: "-xVALUE", "-x VALUE" (when
 * shrt is not NULL), "--long=VALUE" or "--long VALUE". Sets *out, or *err
 * after printing the error. */
static int match_valued(const verb_desc *v, unsigned opt, const char *arg,
                        const char *shrt, const char *lng, int argc,
                        char **argv, int *i, const char **out, int *err)
{
    const char *val = NULL, *name = lng;
    if (!(v->opts & opt))
        return 0;
    if (shrt != NULL && strncmp(arg, shrt, 2) == 0) {
        name = shrt;
        if (arg[2] != '\0')
            val = arg + 2;  /* -xVALUE */
    } else if (!match_long(arg, lng, &val)) {
        return 0;
    }
    if (option_value(v->name, name, val, argc, argv, i, out) != 0) {
        *err = 1;
    } else if (**out == '\0') {
        errorf("%s: option '%s' needs a non-empty value", v->name, name);
        *err = 1;
    }
    return 1;
}

/* Return values of parse_args besides 0. */
#define PARSE_EXIT_OK 1   /* help or version printed */
#define PARSE_USAGE 2     /* usage error printed */
#define PARSE_FAIL 3      /* out of memory */

/* Fills a from argv; a->pos is malloc'ed (free it whatever the result). */
static int parse_args(const verb_desc *v, int argc, char **argv, cli_args *a)
{
    int opts_done = 0, err = 0;
    memset(a, 0, sizeof *a);
    a->verb = v->name;
    a->pos = malloc((size_t)argc * sizeof *a->pos);
    if (a->pos == NULL) {
        errorf("out of memory");
        return PARSE_FAIL;
    }
    for (int i = 2; i < argc && !err; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        if (opts_done || arg[0] != '-' || arg[1] == '\0') {
            a->pos[a->npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            opts_done = 1;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(v->usage, stdout);
            return PARSE_EXIT_OK;
        } else if (strcmp(arg, "--version") == 0) {
            printf("sdxlvae %s\n", vae_version_string());
            return PARSE_EXIT_OK;
        } else if (match_valued(v, OPT_MODEL, arg, "-m", "--model", argc,
                                argv, &i, &a->model, &err) ||
                   match_valued(v, OPT_OUTDIR, arg, "-o", "--output-dir", argc,
                                argv, &i, &a->outdir, &err) ||
                   match_flag(v, OPT_RAW, arg, NULL, "--raw", &a->raw, &err) ||
                   match_flag(v, OPT_QUIET, arg, "-q", "--quiet", &a->quiet, &err) ||
                   match_flag(v, OPT_VERBOSE, arg, "-v", "--verbose", &a->verbose,
                              &err) ||
                   match_flag(v, OPT_FORCE, arg, "-f", "--force", &a->force, &err) ||
                   match_flag(v, OPT_CROP, arg, NULL, "--crop", &a->crop, &err) ||
                   match_flag(v, OPT_CIRCULAR, arg, NULL, "--circular",
                              &a->circular, &err) ||
                   match_flag(v, OPT_HALF, arg, NULL, "--half-weights", &a->half,
                              &err)) {
            /* matched: its field is set, or err (the error is printed) */
        } else if ((v->opts & OPT_TO) && match_long(arg, "--to", &val)) {
            const char *s;
            if (option_value(v->name, "--to", val, argc, argv, &i, &s) != 0)
                return PARSE_USAGE;
            if (strcmp(s, "png") == 0) {
                a->to = KIND_PNG;
            } else if (strcmp(s, "npy") == 0) {
                a->to = KIND_NPY;
            } else {
                errorf("%s: invalid --to value '%s' (png or npy)", v->name, s);
                return PARSE_USAGE;
            }
        } else if ((v->opts & OPT_SAMPLE) && match_long(arg, "--sample", &val)) {
            const char *s;
            if (option_value(v->name, "--sample", val, argc, argv, &i, &s) != 0)
                return PARSE_USAGE;
            if (parse_u64(s, UINT64_MAX, &a->seed) != 0) {
                errorf("%s: invalid --sample seed '%s' (a decimal number "
                       "0..18446744073709551615)", v->name, s);
                return PARSE_USAGE;
            }
            a->sample = 1;
        } else if ((v->opts & OPT_THREADS) && match_long(arg, "--threads", &val)) {
            const char *s;
            uint64_t n;
            if (option_value(v->name, "--threads", val, argc, argv, &i, &s) != 0)
                return PARSE_USAGE;
            if (parse_u64(s, MAX_THREADS, &n) != 0) {
                errorf("%s: invalid --threads value '%s' (a number 0..%d, 0 = "
                       "every CPU)", v->name, s, MAX_THREADS);
                return PARSE_USAGE;
            }
            a->threads = (int32_t)n;
        } else if ((v->opts & OPT_MAXMEM) && match_long(arg, "--max-memory", &val)) {
            const char *s;
            if (option_value(v->name, "--max-memory", val, argc, argv, &i, &s) != 0)
                return PARSE_USAGE;
            int r = parse_size(s, &a->max_memory);
            if (r == -2) {
                errorf("%s: --max-memory '%s' is too large (the most is "
                       "18446744073709551615 bytes, just under 16777216T)",
                       v->name, s);
                return PARSE_USAGE;
            }
            if (r == -3) {
                errorf("%s: --max-memory '%s' is not a whole number of bytes "
                       "(a fraction needs a K, M, G or T suffix, e.g. 1.5G)",
                       v->name, s);
                return PARSE_USAGE;
            }
            if (r != 0) {
                errorf("%s: invalid --max-memory value '%s' (a size in bytes, "
                       "e.g. 800000000, or with a K, M, G or T suffix for "
                       "powers of 1024, e.g. 512M or 1.5G)", v->name, s);
                return PARSE_USAGE;
            }
            if (a->max_memory == 0) {
                errorf("%s: --max-memory '%s' is zero bytes (give the most "
                       "memory the process may use, e.g. 2G)", v->name, s);
                return PARSE_USAGE;
            }
            a->max_memory_arg = s;
        } else if ((v->opts & OPT_TILE) && match_long(arg, "--tile", &val)) {
            const char *s;
            uint64_t n;
            if (option_value(v->name, "--tile", val, argc, argv, &i, &s) != 0)
                return PARSE_USAGE;
            if (parse_u64(s, MAX_TILE, &n) != 0) {
                errorf("%s: invalid --tile value '%s' (a tile side in pixels, "
                       "a multiple of 8 from 8 to %d, e.g. 512)", v->name, s,
                       MAX_TILE);
                return PARSE_USAGE;
            }
            if (n == 0) {
                errorf("%s: --tile 0: a tile side is a positive multiple of 8 "
                       "(leave --tile out to let the library choose)", v->name);
                return PARSE_USAGE;
            }
            if (n % 8 != 0) {
                unsigned long long lo = n / 8 * 8;
                if (lo == 0)
                    errorf("%s: --tile %s is not a multiple of 8 (e.g. 8)",
                           v->name, s);
                else
                    errorf("%s: --tile %s is not a multiple of 8 (e.g. %llu "
                           "or %llu)", v->name, s, lo, lo + 8);
                return PARSE_USAGE;
            }
            a->tile = (int32_t)n;
        } else {
            errorf("%s: unknown option '%s' (see 'sdxlvae %s --help')", v->name,
                   arg, v->name);
            return PARSE_USAGE;
        }
    }
    if (err)
        return PARSE_USAGE;
    if ((v->opts & OPT_MODEL) && a->model == NULL) {
        errorf("%s: missing -m MODEL (see 'sdxlvae %s --help')", v->name, v->name);
        return PARSE_USAGE;
    }
    if (a->to != 0 && a->outdir == NULL) {
        errorf("%s: --to needs -o DIR (without it, OUT's extension chooses the "
               "format)", v->name);
        return PARSE_USAGE;
    }
    if (a->outdir != NULL) {
        if (a->npos == 0) {
            errorf("%s: -o DIR needs at least one input (see 'sdxlvae %s "
                   "--help')", v->name, v->name);
            return PARSE_USAGE;
        }
        return 0;
    }
    if (a->npos > v->npos) {
        if (v->npos == 0)
            errorf("%s: unexpected argument '%s' (see 'sdxlvae %s --help')",
                   v->name, a->pos[0], v->name);
        else if (v->opts & OPT_OUTDIR)
            errorf("%s: too many arguments: '%s' (many inputs need -o DIR; see "
                   "'sdxlvae %s --help')", v->name, a->pos[v->npos], v->name);
        else
            errorf("%s: too many arguments: '%s' (see 'sdxlvae %s --help')",
                   v->name, a->pos[v->npos], v->name);
        return PARSE_USAGE;
    }
    if (a->npos < v->npos) {
        errorf("%s: expected %s, got %s (see 'sdxlvae %s --help')", v->name,
               v->npos == 2 ? "IN and OUT" : "a file",
               a->npos == 0 ? "none" : "only one", v->name);
        return PARSE_USAGE;
    }
    return 0;
}

/* ---- File kinds and paths ------------------------------------------------- */

static int file_kind(const char *path)
{
    size_t n = strlen(path);
    if (n > 4 && strcasecmp(path + n - 4, ".npy") == 0)
        return KIND_NPY;
    if (n > 4 && strcasecmp(path + n - 4, ".png") == 0)
        return KIND_PNG;
    return KIND_OTHER;
}

/* Whether a and b name the same existing file (or the same string). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return 1;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Refuses an OUT that is also IN (or the model): usage error. Holds with
 * --force too. */
static int check_distinct(const cli_args *a)
{
    if (same_file(a->pos[0], a->pos[1])) {
        errorf("%s: input and output are the same file: '%s'", a->verb,
               a->pos[1]);
        return -1;
    }
    if (a->model != NULL && same_file(a->model, a->pos[1])) {
        errorf("%s: output '%s' is the model file", a->verb, a->pos[1]);
        return -1;
    }
    return 0;
}

static int unknown_type(const char *verb, const char *path, const char *want)
{
    errorf("%s: '%s': unsupported file type (expected %s)", verb, path, want);
    return EXIT_USAGE;
}

static void refuse_existing(const char *path)
{
    errorf("%s: already exists (use -f or --force to replace it)", path);
}

/* Before any work: an OUT that is a directory is refused, and so is an OUT
 * that exists (whatever it is) unless --force. Prints the error. */
static int check_out_free(const cli_args *a, const char *out)
{
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        errorf("%s: is a directory", out);
        return -1;
    }
    if (!a->force && lstat(out, &st) == 0) {
        refuse_existing(out);
        return -1;
    }
    return 0;
}

/* ---- Output files: temporary beside OUT, moved to OUT at the end ---------- */

static char *volatile g_tmp_path;
static volatile sig_atomic_t g_tmp_live;

static void on_signal(int sig)
{
    if (g_tmp_live && g_tmp_path != NULL)
        unlink(g_tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signal_handlers(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    /* Over a file size limit, let write() fail (and clean up) instead. */
    signal(SIGXFSZ, SIG_IGN);
}

typedef struct out_file {
    const char *path;
    char *tmp;
    int force;  /* the end may replace an existing OUT */
} out_file;

/* Creates OUT.tmp.XXXXXX with the mode a new OUT would get. */
static int out_begin(out_file *o, const char *path, int force)
{
    static const char suffix[] = ".tmp.XXXXXX";
    size_t len = strlen(path);
    struct stat st;
    o->path = path;
    o->tmp = NULL;
    o->force = force;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        errorf("%s: is a directory", path);
        return -1;
    }
    o->tmp = malloc(len + sizeof suffix);
    if (o->tmp == NULL) {
        errorf("out of memory");
        return -1;
    }
    memcpy(o->tmp, path, len);
    memcpy(o->tmp + len, suffix, sizeof suffix);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        errorf("%s: cannot create a temporary file beside it: %s", path,
               strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    g_tmp_path = o->tmp;
    g_tmp_live = 1;
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || close(fd) != 0) {
        errorf("%s: %s", o->tmp, strerror(errno));
        g_tmp_live = 0;
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    return 0;
}

/* Removes the temporary file, if any (every failure path). */
static void out_abort(out_file *o)
{
    if (o->tmp == NULL)
        return;
    g_tmp_live = 0;
    unlink(o->tmp);
    g_tmp_path = NULL;
    free(o->tmp);
    o->tmp = NULL;
}

/* Moves the finished temporary file to OUT. With --force, rename() replaces
 * whatever is there; without, link() puts it there only if the name is
 * still free (atomically: an OUT created meanwhile is not replaced), with a
 * last look and rename() on file systems without hard links. */
static int out_commit(out_file *o)
{
    if (o->force) {
        if (rename(o->tmp, o->path) != 0) {
            errorf("%s: cannot replace it: %s", o->path, strerror(errno));
            out_abort(o);
            return -1;
        }
    } else if (link(o->tmp, o->path) == 0) {
        g_tmp_live = 0;
        unlink(o->tmp);
    } else if (errno == EEXIST) {
        refuse_existing(o->path);
        out_abort(o);
        return -1;
    } else {
        struct stat st;
        if (lstat(o->path, &st) == 0) {
            refuse_existing(o->path);
            out_abort(o);
            return -1;
        }
        if (rename(o->tmp, o->path) != 0) {
            errorf("%s: cannot create it: %s", o->path, strerror(errno));
            out_abort(o);
            return -1;
        }
    }
    g_tmp_live = 0;
    g_tmp_path = NULL;
    free(o->tmp);
    o->tmp = NULL;
    return 0;
}

/* ---- Tensors ------------------------------------------------------------- */

typedef struct tensor {
    float *data;
    int32_t n, c, h, w;
    npy_array npy;  /* owns data when has_npy */
    int has_npy;
} tensor;

static void tensor_free(tensor *t)
{
    if (t->has_npy)
        npy_free(&t->npy);
    else
        free(t->data);
    memset(t, 0, sizeof *t);
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    if (a != 0 && b > UINT64_MAX / a)
        return -1;
    *r = a * b;
    return 0;
}

/* n*c*h*w floats as a byte count that fits size_t, or -1. */
static int float_bytes(uint64_t n, uint64_t c, uint64_t h, uint64_t w,
                       uint64_t *count, size_t *bytes)
{
    uint64_t x;
    if (mul_u64(n, c, &x) != 0 || mul_u64(x, h, &x) != 0 ||
        mul_u64(x, w, &x) != 0 || x > SIZE_MAX / sizeof(float))
        return -1;
    *count = x;
    *bytes = (size_t)x * sizeof(float);
    return 0;
}

static float *alloc_floats(const char *what, uint64_t n, uint64_t c, uint64_t h,
                           uint64_t w, uint64_t *count)
{
    size_t bytes;
    if (float_bytes(n, c, h, w, count, &bytes) != 0) {
        errorf("%s: %llu x %llu x %llu x %llu floats is too large", what,
               (unsigned long long)n, (unsigned long long)c,
               (unsigned long long)h, (unsigned long long)w);
        return NULL;
    }
    float *p = malloc(bytes > 0 ? bytes : 1);
    if (p == NULL)
        errorf("%s: out of memory (%llu floats)", what, (unsigned long long)*count);
    return p;
}

/* Reads a PNG into a 1 x 3 x H x W tensor in [-1, 1]; keeps the source when
 * src is not NULL (for PSNR). */
static int read_png_tensor(const char *path, tensor *t, png_rgb *src)
{
    char err[ERRCAP] = "";
    png_rgb img;
    memset(&img, 0, sizeof img);
    if (png_read_rgb(path, &img, err, sizeof err) != 0) {
        subject_error(path, err[0] != '\0' ? err : "cannot read PNG");
        return -1;
    }
    if (img.width == 0 || img.height == 0 || img.width > INT32_MAX ||
        img.height > INT32_MAX || img.maxval == 0) {
        errorf("%s: unsupported image size %ux%u", path, (unsigned)img.width,
               (unsigned)img.height);
        png_free(&img);
        return -1;
    }
    uint64_t count;
    float *f = alloc_floats(path, 1, 3, img.height, img.width, &count);
    if (f == NULL) {
        png_free(&img);
        return -1;
    }
    size_t plane = (size_t)img.width * img.height;
    double inv = 1.0 / (double)img.maxval;
    for (size_t p = 0; p < plane; p++)
        for (size_t c = 0; c < 3; c++)
            f[c * plane + p] = (float)((double)img.pixels[p * 3 + c] * inv * 2.0 - 1.0);
    memset(t, 0, sizeof *t);
    t->data = f;
    t->n = 1;
    t->c = 3;
    t->h = (int32_t)img.height;
    t->w = (int32_t)img.width;
    if (src != NULL)
        *src = img;
    else
        png_free(&img);
    return 0;
}

/* Reads a .npy of shape N x C x H x W or C x H x W. */
static int read_npy_tensor(const char *path, tensor *t)
{
    char err[ERRCAP] = "";
    memset(t, 0, sizeof *t);
    if (npy_read(path, &t->npy, err, sizeof err) != 0) {
        subject_error(path, err[0] != '\0' ? err : "cannot read .npy");
        memset(t, 0, sizeof *t);
        return -1;
    }
    t->has_npy = 1;
    const npy_array *a = &t->npy;
    if (a->ndim != 3 && a->ndim != 4) {
        errorf("%s: expected a 4-D (N x C x H x W) or 3-D (C x H x W) array, "
               "got %d dimensions", path, (int)a->ndim);
        tensor_free(t);
        return -1;
    }
    int64_t d[4] = {1, 1, 1, 1};
    for (int i = 0; i < a->ndim; i++)
        d[4 - a->ndim + i] = a->shape[i];
    for (int i = 0; i < 4; i++) {
        if (d[i] <= 0 || d[i] > INT32_MAX) {
            errorf("%s: unsupported shape (dimension %d is %lld)", path, i,
                   (long long)d[i]);
            tensor_free(t);
            return -1;
        }
    }
    uint64_t count;
    size_t bytes;
    if (float_bytes((uint64_t)d[0], (uint64_t)d[1], (uint64_t)d[2],
                    (uint64_t)d[3], &count, &bytes) != 0 || count != a->count ||
        a->data == NULL) {
        errorf("%s: inconsistent array size", path);
        tensor_free(t);
        return -1;
    }
    t->data = a->data;
    t->n = (int32_t)d[0];
    t->c = (int32_t)d[1];
    t->h = (int32_t)d[2];
    t->w = (int32_t)d[3];
    return 0;
}

/* Reads an image (.png or .npy with 3 channels). */
static int read_image(const char *path, tensor *t)
{
    if (file_kind(path) == KIND_PNG)
        return read_png_tensor(path, t, NULL);
    if (read_npy_tensor(path, t) != 0)
        return -1;
    if (t->c != 3) {
        errorf("%s: an image needs 3 channels, this array has %d (shape "
               "%d x %d x %d x %d)", path, (int)t->c, (int)t->n, (int)t->c,
               (int)t->h, (int)t->w);
        tensor_free(t);
        return -1;
    }
    return 0;
}

/* [-1, 1] -> 0..255: round((x+1)/2*255) clamped, NaN -> 0. */
static uint8_t to_u8(float x)
{
    double y = ((double)x + 1.0) * 0.5 * 255.0;
    if (!(y >= 0.0))
        return 0;
    if (y >= 255.0)
        return 255;
    return (uint8_t)floor(y + 0.5);
}

/* Interleaved 8-bit RGB of image 0 of a 3-channel tensor. */
static uint8_t *to_rgb8(const tensor *t)
{
    size_t plane = (size_t)t->h * (size_t)t->w;  /* checked when allocated */
    uint8_t *rgb = malloc(plane * 3);
    if (rgb == NULL) {
        errorf("out of memory");
        return NULL;
    }
    for (size_t p = 0; p < plane; p++)
        for (size_t c = 0; c < 3; c++)
            rgb[p * 3 + c] = to_u8(t->data[c * plane + p]);
    return rgb;
}

/* A PNG can hold one image of three channels. */
static int check_png_out(const char *path, const tensor *t)
{
    if (t->n != 1) {
        errorf("%s: cannot write a batch of %d images to one PNG (write a "
               ".npy instead)", path, (int)t->n);
        return -1;
    }
    if (t->c != 3) {
        errorf("%s: a PNG needs 3 channels, got %d", path, (int)t->c);
        return -1;
    }
    return 0;
}

/* Writes t into the temporary file of o (format by o->path's extension) and
 * renames it over o->path. rgb, when not NULL, is the quantized PNG content.
 * On failure the temporary file is removed. */
static int write_output(out_file *o, const tensor *t, const uint8_t *rgb)
{
    char err[ERRCAP] = "";
    int rc;
    if (file_kind(o->path) == KIND_PNG) {
        uint8_t *own = NULL;
        if (rgb == NULL) {
            own = to_rgb8(t);
            if (own == NULL) {
                out_abort(o);
                return -1;
            }
            rgb = own;
        }
        rc = png_write_rgb8(o->tmp, rgb, (uint32_t)t->w, (uint32_t)t->h, err,
                            sizeof err);
        free(own);
    } else {
        int64_t shape[4] = {t->n, t->c, t->h, t->w};
        rc = npy_write(o->tmp, t->data, 4, shape, err, sizeof err);
    }
    if (rc != 0) {
        subject_error(o->path, err[0] != '\0' ? err : "write failed");
        out_abort(o);
        return -1;
    }
    return out_commit(o);
}

/* ---- The model ---------------------------------------------------------- */

/* What a command loads: decode needs only the decoder's weights and encode
 * only the encoder's, so the other half costs neither memory nor load time;
 * --half-weights keeps them in 16 bits. */
static uint32_t load_flags(const cli_args *a)
{
    uint32_t flags = 0;
    if (strcmp(a->verb, "decode") == 0)
        flags |= VAE_LOAD_NO_ENCODER;
    else if (strcmp(a->verb, "encode") == 0)
        flags |= VAE_LOAD_NO_DECODER;
    if (a->half)
        flags |= VAE_LOAD_HALF_WEIGHTS;
    return flags;
}

static int load_model(const cli_args *a, int32_t threads, vae_model **model)
{
    const char *path = a->model;
    vae_load_options lo;
    vae_load_options_init(&lo, sizeof lo);
    lo.n_threads = threads;
    lo.flags = load_flags(a);
    int32_t st = vae_load(path, &lo, model);
    if (st != VAE_OK) {
        *model = NULL;
        lib_error(NULL, st, path);
        return -1;
    }
    if (vae_downsample_factor(*model) <= 0 || vae_latent_channels(*model) <= 0) {
        errorf("%s: the model reports no downsample factor or latent channels",
               path);
        vae_free(*model);
        *model = NULL;
        return -1;
    }
    return 0;
}

static void run_options(const cli_args *a, vae_run_options *ro)
{
    vae_run_options_init(ro, sizeof *ro);
    ro->n_threads = a->threads;
    if (g_bar.enabled) {
        ro->progress = on_progress;
        ro->progress_user = &g_bar;
    }
    if (a->raw)
        ro->flags |= VAE_FLAG_RAW_LATENT;
    if (a->sample) {
        ro->flags |= VAE_FLAG_SAMPLE;
        ro->seed = a->seed;
    }
    if (a->circular)
        ro->flags |= VAE_FLAG_CIRCULAR;
    /* A tile side alone asks for tiling; max_memory is set per call, by
     * plan_memory. */
    ro->tile = a->tile;
}

/* ---- Memory ------------------------------------------------------------- */

/* What --max-memory leaves for the program itself: code, stacks, stdio, the
 * PNG codec's buffers, the allocator's slack. */
#define PROGRAM_BYTES (UINT64_C(16) << 20)

typedef struct human {
    char s[32];
} human;

/* A byte count for people: "900 B", "1.5 KiB", "335.0 MiB", "2.0 GiB". */
static human hbytes(uint64_t b)
{
    static const char units[] = "KMGTPE";
    human h;
    if (b < 1024) {
        snprintf(h.s, sizeof h.s, "%llu B", (unsigned long long)b);
        return h;
    }
    double v = (double)b / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    snprintf(h.s, sizeof h.s, "%.1f %ciB", v, units[u]);
    return h;
}

static uint64_t add_sat(uint64_t x, uint64_t y)
{
    return x > UINT64_MAX - y ? UINT64_MAX : x + y;
}

static int32_t estimate(const vae_model *m, int32_t stage, int32_t h, int32_t w,
                        const vae_run_options *ro, vae_memory_estimate *est)
{
    memset(est, 0, sizeof *est);
    est->size = sizeof *est;
    return vae_estimate_memory(m, stage, h, w, ro, est);
}

static void verbosef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* -v: one line on stderr; in batch mode it ends with "  FILE" as the
 * timings do. */
static void verbosef(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    if (!g_verbose)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    bar_clear();
    if (g_timing_file != NULL)
        fprintf(stderr, "%s  %s\n", line, g_timing_file);
    else
        fprintf(stderr, "%s\n", line);
}

static const char *stage_verb(int32_t stage)
{
    return stage == VAE_STAGE_ENCODE ? "encode" : "decode";
}

/* --max-memory cannot be met: says what the smallest run would take, from
 * the library's estimate with a budget of one byte (the smallest tile or,
 * with --tile, that tile). `fixed` is what is held besides working memory. */
static void memory_too_small(const vae_model *m, const cli_args *a,
                             const char *in, int32_t stage, int32_t h,
                             int32_t w, uint64_t held, uint64_t weights,
                             uint64_t fixed, const vae_run_options *ro)
{
    vae_run_options lo = *ro;
    vae_memory_estimate e;
    lo.max_memory = 1;
    if (estimate(m, stage, h, w, &lo, &e) != VAE_OK) {
        errorf("%s: --max-memory %s is too small to %s it: the weights (%s), "
               "the arrays (%s) and the program (%s) take %s before any "
               "working memory", in, a->max_memory_arg, stage_verb(stage),
               hbytes(weights).s, hbytes(held).s, hbytes(PROGRAM_BYTES).s,
               hbytes(fixed).s);
        return;
    }
    uint64_t work = e.tiled ? e.tiled_bytes : e.untiled_bytes;
    char how[48] = "untiled";
    /* a small image may need less untiled than in tiles: say the lesser,
     * unless tiles were asked for (--tile, --circular) */
    int forced = ro->tile > 0 || (ro->flags & (VAE_FLAG_TILED | VAE_FLAG_CIRCULAR));
    if (e.tiled && (forced || e.tiled_bytes < e.untiled_bytes))
        snprintf(how, sizeof how, "tile %d", (int)e.tile);
    else
        work = e.untiled_bytes;
    uint64_t need = add_sat(fixed, work);
    errorf("%s: --max-memory %s is too small to %s it: that needs at least "
           "%lluM (weights %s, arrays %s, program %s, working memory %s, %s)",
           in, a->max_memory_arg, stage_verb(stage),
           (unsigned long long)((need >> 20) + ((need & 0xfffff) != 0)),
           hbytes(weights).s, hbytes(held).s, hbytes(PROGRAM_BYTES).s,
           hbytes(work).s, how);
}

/* Before a run call on an h x w image (image pixels for both stages), while
 * the tool holds `held` bytes of arrays: with --max-memory, gives the
 * library what is left of it once the weights, those arrays and
 * PROGRAM_BYTES are taken away (ro->max_memory), and fails, saying the
 * minimum, when that is not enough even in tiles; with -v, prints the
 * estimate. Without --max-memory a failed estimate (a library without one)
 * is only reported with -v. Prints the error and returns -1 on failure. */
static int plan_memory(const vae_model *m, const cli_args *a, const char *in,
                       int32_t stage, int32_t h, int32_t w, uint64_t held,
                       vae_run_options *ro)
{
    static int unavailable_said;
    vae_memory_estimate est;
    if (a->max_memory == 0 && !g_verbose)
        return 0;
    int32_t st = estimate(m, stage, h, w, ro, &est);
    if (st == VAE_OK && a->max_memory != 0) {
        uint64_t weights = est.weights_bytes;
        uint64_t fixed = add_sat(add_sat(weights, held), PROGRAM_BYTES);
        if (fixed < a->max_memory) {
            ro->max_memory = a->max_memory - fixed;
            st = estimate(m, stage, h, w, ro, &est);
        }
        if (st == VAE_OK && (fixed >= a->max_memory || !est.fits)) {
            memory_too_small(m, a, in, stage, h, w, held, weights, fixed, ro);
            return -1;
        }
    }
    if (st != VAE_OK) {
        const char *msg = lib_message(m, st);
        if (a->max_memory != 0 && st == VAE_ERR_UNSUPPORTED) {
            errorf("%s: --max-memory needs the library's memory estimate: %s",
                   in, msg);
            return -1;
        }
        if (a->max_memory != 0) {
            subject_error(in, msg);
            return -1;
        }
        if (st != VAE_ERR_UNSUPPORTED) {
            verbosef("memory  estimate failed: %s", msg);
        } else if (!unavailable_said) {
            /* about the library, not the file: once, without its name */
            const char *file = g_timing_file;
            g_timing_file = NULL;
            verbosef("memory  estimate unavailable: %s", msg);
            g_timing_file = file;
            unavailable_said = 1;
        }
        return 0;
    }
    if (!g_verbose)
        return 0;
    uint64_t work = est.tiled ? est.tiled_bytes : est.untiled_bytes;
    uint64_t total = add_sat(add_sat(add_sat(est.weights_bytes, held),
                                     PROGRAM_BYTES), work);
    char how[160];
    if (est.tiled)
        snprintf(how, sizeof how, "tiled, tile %d, working memory %s "
                 "(untiled: %s), %.2fx the arithmetic", (int)est.tile,
                 hbytes(est.tiled_bytes).s, hbytes(est.untiled_bytes).s,
                 est.work_ratio);
    else
        snprintf(how, sizeof how, "untiled, working memory %s (tiled: %s)",
                 hbytes(est.untiled_bytes).s, hbytes(est.tiled_bytes).s);
    verbosef("memory  %s %dx%d: %s; weights %s, arrays %s, program %s: %s in "
             "all; budget %s%s", stage_verb(stage), (int)w, (int)h, how,
             hbytes(est.weights_bytes).s, hbytes(held).s,
             hbytes(PROGRAM_BYTES).s, hbytes(total).s,
             hbytes(est.budget_bytes).s,
             est.fits ? "" : ": does not fit");
    return 0;
}

/* A failed run call. A library that does not know a flag the options set
 * says "unknown flags 0x..": name the option that set it. */
static void run_error(const vae_model *m, int32_t st, const char *in,
                      const vae_run_options *ro)
{
    const char *version = vae_version_string();  /* static; msg is not */
    const char *msg = lib_message(m, st);
    if (st == VAE_ERR_INVALID_ARGUMENT && (ro->flags & VAE_FLAG_CIRCULAR) &&
        strstr(msg, "unknown flags") != NULL)
        errorf("%s: %s (--circular: this libsdxlvae %s cannot do it)", in, msg,
               version);
    else
        subject_error(in, msg);
}

/* --crop: keeps the top-left part of every image whose sides are multiples
 * of f. A no-op when they already are. */
static int crop_tensor(tensor *t, int32_t f, const char *in)
{
    int32_t h = t->h - t->h % f, w = t->w - t->w % f;
    if (h == t->h && w == t->w)
        return 0;
    if (h == 0 || w == 0) {
        errorf("%s: image is %dx%d (width x height); --crop needs both sides "
               ">= %d", in, (int)t->w, (int)t->h, (int)f);
        return -1;
    }
    /* rows shrink in place: every destination precedes its source */
    size_t dst = 0;
    for (int32_t p = 0; p < t->n * t->c; p++)
        for (int32_t y = 0; y < h; y++) {
            const float *row = t->data + ((size_t)p * (size_t)t->h + (size_t)y) * (size_t)t->w;
            memmove(t->data + dst, row, (size_t)w * sizeof(float));
            dst += (size_t)w;
        }
    t->h = h;
    t->w = w;
    return 0;
}

/* img -> lat (allocated), with its shape. `extra` is what the caller holds
 * besides img and lat during the call, in bytes (for --max-memory). */
static int do_encode(vae_model *m, const cli_args *a, const char *in,
                     const tensor *img, tensor *lat, uint64_t extra)
{
    int32_t f = vae_downsample_factor(m);
    if (img->h % f != 0 || img->w % f != 0) {
        errorf("%s: image is %dx%d (width x height); both sides must be "
               "multiples of %d", in, (int)img->w, (int)img->h, (int)f);
        return -1;
    }
    memset(lat, 0, sizeof *lat);
    lat->n = img->n;
    lat->c = vae_latent_channels(m);
    lat->h = img->h / f;
    lat->w = img->w / f;
    uint64_t count, need = 0;
    lat->data = alloc_floats(in, (uint64_t)lat->n, (uint64_t)lat->c,
                             (uint64_t)lat->h, (uint64_t)lat->w, &count);
    if (lat->data == NULL)
        return -1;
    int32_t st = vae_encoded_size(m, img->n, img->h, img->w, &need);
    if (st == VAE_OK && need > count) {
        errorf("%s: the library asks for %llu floats for the latent, expected "
               "%llu", in, (unsigned long long)need, (unsigned long long)count);
        tensor_free(lat);
        return -1;
    }
    vae_run_options ro;
    run_options(a, &ro);
    uint64_t held = add_sat(add_sat((uint64_t)img->n * 3 * (uint64_t)img->h *
                                        (uint64_t)img->w * sizeof(float),
                                    count * sizeof(float)), extra);
    if (st == VAE_OK && plan_memory(m, a, in, VAE_STAGE_ENCODE, img->h, img->w,
                                    held, &ro) != 0) {
        tensor_free(lat);
        return -1;
    }
    double t0 = now_seconds();
    bar_begin("encoding");
    if (st == VAE_OK)
        st = vae_encode(m, img->data, img->n, img->h, img->w, lat->data, count,
                        &ro);
    bar_clear();
    if (st != VAE_OK) {
        run_error(m, st, in, &ro);
        tensor_free(lat);
        return -1;
    }
    timing("encode", t0);
    return 0;
}

/* lat -> img (allocated), with its shape. `extra` is what the caller holds
 * besides lat and img during the call, in bytes (for --max-memory). */
static int do_decode(vae_model *m, const cli_args *a, const char *in,
                     const tensor *lat, tensor *img, uint64_t extra)
{
    int32_t f = vae_downsample_factor(m);
    if (lat->c != vae_latent_channels(m)) {
        errorf("%s: the latent has %d channels, the model's latents have %d",
               in, (int)lat->c, (int)vae_latent_channels(m));
        return -1;
    }
    if ((int64_t)lat->h * f > INT32_MAX || (int64_t)lat->w * f > INT32_MAX) {
        errorf("%s: latent of %dx%d decodes to an image too large", in,
               (int)lat->w, (int)lat->h);
        return -1;
    }
    memset(img, 0, sizeof *img);
    img->n = lat->n;
    img->c = 3;
    img->h = lat->h * f;
    img->w = lat->w * f;
    uint64_t count, need = 0;
    img->data = alloc_floats(in, (uint64_t)img->n, 3, (uint64_t)img->h,
                             (uint64_t)img->w, &count);
    if (img->data == NULL)
        return -1;
    int32_t st = vae_decoded_size(m, lat->n, lat->h, lat->w, &need);
    if (st == VAE_OK && need > count) {
        errorf("%s: the library asks for %llu floats for the image, expected "
               "%llu", in, (unsigned long long)need, (unsigned long long)count);
        tensor_free(img);
        return -1;
    }
    vae_run_options ro;
    run_options(a, &ro);
    uint64_t held = add_sat(add_sat((uint64_t)lat->n * (uint64_t)lat->c *
                                        (uint64_t)lat->h * (uint64_t)lat->w *
                                        sizeof(float),
                                    count * sizeof(float)), extra);
    if (st == VAE_OK && plan_memory(m, a, in, VAE_STAGE_DECODE, img->h, img->w,
                                    held, &ro) != 0) {
        tensor_free(img);
        return -1;
    }
    double t0 = now_seconds();
    bar_begin("decoding");
    if (st == VAE_OK)
        st = vae_decode(m, lat->data, lat->n, lat->h, lat->w, img->data, count,
                        &ro);
    bar_clear();
    if (st != VAE_OK) {
        run_error(m, st, in, &ro);
        tensor_free(img);
        return -1;
    }
    timing("decode", t0);
    return 0;
}

/* ---- Verbs --------------------------------------------------------------- */

/* encode and decode, on one file once the model is loaded (single-file and
 * batch mode alike): IN -> OUT, OUT via its temporary file. Prints the
 * error and returns -1 on failure, leaving nothing behind. */
typedef int (*file_fn)(vae_model *m, const cli_args *a, const char *in,
                       const char *out);

static int encode_file(vae_model *m, const cli_args *a, const char *in,
                       const char *out)
{
    int rc = -1;
    tensor img = {0}, lat = {0};
    out_file o = {0};
    double t = now_seconds();
    if (read_image(in, &img) != 0)
        goto done;
    timing("read", t);
    /* The temporary output exists before the long part, so an unwritable
     * OUT fails at once. */
    if (out_begin(&o, out, a->force) != 0)
        goto done;
    if (a->crop && crop_tensor(&img, vae_downsample_factor(m), in) != 0)
        goto done;
    if (do_encode(m, a, in, &img, &lat, 0) != 0)
        goto done;
    tensor_free(&img);  /* before writing: peak memory */
    t = now_seconds();
    if (write_output(&o, &lat, NULL) != 0)
        goto done;
    timing("write", t);
    rc = 0;
done:
    out_abort(&o);
    tensor_free(&lat);
    tensor_free(&img);
    return rc;
}

static int decode_file(vae_model *m, const cli_args *a, const char *in,
                       const char *out)
{
    int rc = -1;
    int ko = file_kind(out);
    tensor lat = {0}, img = {0};
    out_file o = {0};
    double t = now_seconds();
    if (read_npy_tensor(in, &lat) != 0)
        goto done;
    timing("read", t);
    if (ko == KIND_PNG && lat.n != 1) {
        errorf("%s: cannot write a batch of %d images to one PNG (%s)", out,
               (int)lat.n, a->outdir != NULL ? "use --to npy" :
               "write a .npy instead");
        goto done;
    }
    if (out_begin(&o, out, a->force) != 0)
        goto done;
    if (do_decode(m, a, in, &lat, &img, 0) != 0)
        goto done;
    tensor_free(&lat);
    if (ko == KIND_PNG && check_png_out(out, &img) != 0)
        goto done;
    t = now_seconds();
    if (write_output(&o, &img, NULL) != 0)
        goto done;
    timing("write", t);
    rc = 0;
done:
    out_abort(&o);
    tensor_free(&img);
    tensor_free(&lat);
    return rc;
}

/* Single-file encode or decode: IN and OUT are checked, the model loaded. */
static int run_single(const cli_args *a, file_fn fn)
{
    if (check_distinct(a) != 0)
        return EXIT_USAGE;
    if (check_out_free(a, a->pos[1]) != 0)
        return EXIT_FAILURE;
    vae_model *m = NULL;
    double t0 = now_seconds();
    if (load_model(a, a->threads, &m) != 0)
        return EXIT_FAILURE;
    timing("load", t0);
    int rc = fn(m, a, a->pos[0], a->pos[1]);
    if (rc == 0)
        timing("total", t0);
    vae_free(m);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- Batch mode: -o DIR ---------------------------------------------------- */

typedef struct job {
    char *in;   /* the input's path */
    char *out;  /* DIR/<stem>.<ext> */
} job;

typedef struct job_list {
    job *v;
    size_t n, cap;
} job_list;

static void jobs_free(job_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].in);
        free(l->v[i].out);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Appends a job for input `in` (taken over: freed on failure too). */
static int jobs_push(job_list *l, char *in)
{
    if (in == NULL) {
        errorf("out of memory");
        return -1;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        job *v = cap <= SIZE_MAX / sizeof *v ? realloc(l->v, cap * sizeof *v) : NULL;
        if (v == NULL) {
            free(in);
            errorf("out of memory");
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].in = in;
    l->v[l->n].out = NULL;
    l->n++;
    return 0;
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* "dir/name" or "dir/name.ext" (ext not NULL), without doubling a '/' that
 * ends dir. */
static char *path_join(const char *dir, const char *name, const char *ext)
{
    size_t dl = strlen(dir), nl = strlen(name), el = ext ? strlen(ext) : 0;
    int slash = dl > 0 && dir[dl - 1] != '/';
    char *p = malloc(dl + (size_t)slash + nl + (el ? el + 1 : 0) + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, dir, dl);
    if (slash)
        p[dl] = '/';
    memcpy(p + dl + (size_t)slash, name, nl);
    char *e = p + dl + (size_t)slash + nl;
    if (el) {
        *e++ = '.';
        memcpy(e, ext, el);
        e += el;
    }
    *e = '\0';
    return p;
}

static int cmp_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Whether the verb reads files of this kind. */
static int verb_reads(const cli_args *a, int kind)
{
    if (strcmp(a->verb, "encode") == 0)
        return kind == KIND_PNG || kind == KIND_NPY;
    return kind == KIND_NPY;
}

/* A named input that is not a directory: its type must be one the verb
 * reads (a usage error otherwise, as in single-file mode). */
static int check_input_type(const cli_args *a, const char *in)
{
    int k = file_kind(in);
    if (verb_reads(a, k))
        return 0;
    if (strcmp(a->verb, "decode") == 0 && k == KIND_PNG)
        errorf("decode: '%s': latents are .npy, not .png", in);
    else
        unknown_type(a->verb, in, verb_reads(a, KIND_PNG) ? ".png or .npy" :
                     ".npy");
    return -1;
}

/* Adds the files of directory `dir` the verb reads, sorted by name: not
 * subdirectories, not names starting with '.'. Returns 0, EXIT_USAGE when
 * it has none, EXIT_FAILURE when it cannot be read. */
static int add_dir(const cli_args *a, const char *dir, job_list *l)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        errorf("%s: cannot read the directory: %s", dir, strerror(errno));
        return EXIT_FAILURE;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        errno = 0;  /* readdir: NULL with errno set is an error */
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0) {
                errorf("%s: cannot read the directory: %s", dir, strerror(errno));
                rc = EXIT_FAILURE;
            }
            break;
        }
        if (e->d_name[0] == '.' || !verb_reads(a, file_kind(e->d_name)))
            continue;
        char *p = path_join(dir, e->d_name, NULL);
        struct stat st;
        /* Not subdirectories nor devices; a dangling link is kept (and
         * fails as a file that cannot be read). */
        if (p != NULL && stat(p, &st) == 0 && !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        if (p != NULL && n == cap) {
            size_t c2 = cap ? cap * 2 : 16;
            char **v = c2 <= SIZE_MAX / sizeof *v ? realloc(names, c2 * sizeof *v) : NULL;
            if (v == NULL) {
                free(p);
                p = NULL;
            } else {
                names = v;
                cap = c2;
            }
        }
        if (p == NULL) {
            errorf("out of memory");
            rc = EXIT_FAILURE;
            break;
        }
        names[n++] = p;
    }
    closedir(d);
    if (rc == 0 && n == 0) {
        errorf("%s: '%s' holds no %s files", a->verb, dir,
               verb_reads(a, KIND_PNG) ? ".png or .npy" : ".npy");
        rc = EXIT_USAGE;
    }
    if (rc == 0)
        qsort(names, n, sizeof *names, cmp_names);
    size_t i = 0;
    for (; rc == 0 && i < n; i++)
        if (jobs_push(l, names[i]) != 0)
            rc = EXIT_FAILURE;
    for (; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

typedef struct file_id {
    dev_t dev;
    ino_t ino;
    size_t job;  /* SIZE_MAX: the model */
} file_id;

static int cmp_ids(const void *x, const void *y)
{
    const file_id *p = x, *q = y;
    if (p->dev != q->dev)
        return p->dev < q->dev ? -1 : 1;
    if (p->ino != q->ino)
        return p->ino < q->ino ? -1 : 1;
    return 0;
}

static int cmp_outs(const void *x, const void *y)
{
    const job *p = *(const job *const *)x, *q = *(const job *const *)y;
    int c = strcmp(p->out, q->out);
    if (c != 0)
        return c;
    return p < q ? -1 : p > q;
}

/* Before any work: no two inputs write the same output, and no output is an
 * input or the model (even with --force). Usage errors. */
static int check_batch_outputs(const cli_args *a, job_list *l)
{
    int rc = 0;
    const job **by_out = malloc(l->n * sizeof *by_out);
    file_id *ids = malloc((l->n + 1) * sizeof *ids);
    if (by_out == NULL || ids == NULL) {
        errorf("out of memory");
        free(by_out);
        free(ids);
        return EXIT_FAILURE;
    }
    for (size_t i = 0; i < l->n; i++)
        by_out[i] = &l->v[i];
    qsort(by_out, l->n, sizeof *by_out, cmp_outs);
    for (size_t i = 1; i < l->n && rc == 0; i++)
        if (strcmp(by_out[i - 1]->out, by_out[i]->out) == 0) {
            errorf("%s: '%s' and '%s' would both be written to '%s' (inputs "
                   "need distinct names)", a->verb, by_out[i - 1]->in,
                   by_out[i]->in, by_out[i]->out);
            rc = EXIT_USAGE;
        }
    size_t n = 0;
    struct stat st;
    for (size_t i = 0; i < l->n && rc == 0; i++)
        if (stat(l->v[i].in, &st) == 0)
            ids[n++] = (file_id){st.st_dev, st.st_ino, i};
    if (stat(a->model, &st) == 0)
        ids[n++] = (file_id){st.st_dev, st.st_ino, SIZE_MAX};
    qsort(ids, n, sizeof *ids, cmp_ids);
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        if (stat(l->v[i].out, &st) != 0)
            continue;
        file_id key = {st.st_dev, st.st_ino, 0};
        const file_id *hit = bsearch(&key, ids, n, sizeof *ids, cmp_ids);
        if (hit == NULL)
            continue;
        if (hit->job == SIZE_MAX)
            errorf("%s: output '%s' is the model file", a->verb, l->v[i].out);
        else if (hit->job == i)
            errorf("%s: input and output are the same file: '%s'", a->verb,
                   l->v[i].out);
        else
            errorf("%s: the output of '%s', '%s', is the same file as the "
                   "input '%s'", a->verb, l->v[i].in, l->v[i].out,
                   l->v[hit->job].in);
        rc = EXIT_USAGE;
    }
    free(ids);
    free(by_out);
    return rc;
}

/* The output directory: kept when it exists, created (one level) when not.
 * *created tells which. */
static int make_outdir(const char *dir, int *created)
{
    struct stat st;
    *created = 0;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        errorf("%s: not a directory (-o needs one)", dir);
        return -1;
    }
    if (mkdir(dir, 0777) != 0) {
        errorf("%s: cannot create the output directory: %s%s", dir,
               strerror(errno), errno == ENOENT ? " (only the last part of "
               "the path is created)" : "");
        return -1;
    }
    *created = 1;
    return 0;
}

/* -o DIR: every positional is an input (file or directory). The model is
 * loaded once; a failed file is reported and the run goes on. */
static int run_batch(const cli_args *a, file_fn fn, const char *ext)
{
    job_list l = {0};
    int rc = 0;
    for (int i = 0; i < a->npos && rc == 0; i++) {
        struct stat st;
        const char *p = a->pos[i];
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rc = add_dir(a, p, &l);
        else if (check_input_type(a, p) != 0)
            rc = EXIT_USAGE;
        else if (jobs_push(&l, str_dup(p)) != 0)
            rc = EXIT_FAILURE;
    }
    /* Outputs: DIR/<the input's name without its extension>.<ext> */
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        const char *in = l.v[i].in, *base = strrchr(in, '/');
        base = base != NULL ? base + 1 : in;
        size_t stem = strlen(base) - 4;  /* ".npy" or ".png": file_kind */
        char *name = malloc(stem + 1);
        if (name != NULL) {
            memcpy(name, base, stem);
            name[stem] = '\0';
            l.v[i].out = path_join(a->outdir, name, ext);
        }
        free(name);
        if (l.v[i].out == NULL) {
            errorf("out of memory");
            rc = EXIT_FAILURE;
        } else if (stem == 0) {
            errorf("%s: '%s': no name before the extension", a->verb, in);
            rc = EXIT_USAGE;
        }
    }
    if (rc == 0)
        rc = check_batch_outputs(a, &l);
    int created = 0;
    if (rc == 0 && make_outdir(a->outdir, &created) != 0)
        rc = EXIT_FAILURE;
    vae_model *m = NULL;
    double t0 = now_seconds();
    if (rc == 0 && load_model(a, a->threads, &m) != 0)
        rc = EXIT_FAILURE;
    if (rc != 0) {
        if (created)
            rmdir(a->outdir);
        jobs_free(&l);
        return rc;
    }
    timing("load", t0);
    size_t failed = 0;
    for (size_t i = 0; i < l.n; i++) {
        g_timing_file = l.v[i].in;
        snprintf(g_bar.item, sizeof g_bar.item, " %zu/%zu", i + 1, l.n);
        if (check_out_free(a, l.v[i].out) != 0 ||
            fn(m, a, l.v[i].in, l.v[i].out) != 0)
            failed++;
    }
    g_timing_file = NULL;
    g_bar.item[0] = '\0';
    timing("total", t0);
    if (failed > 0 && l.n > 1)
        errorf("%zu of %zu files failed", failed, l.n);
    /* A directory made for nothing goes (rmdir: only when empty). */
    if (created && failed == l.n)
        rmdir(a->outdir);
    vae_free(m);
    jobs_free(&l);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int cmd_encode(const cli_args *a)
{
    if (a->outdir != NULL)
        return run_batch(a, encode_file, "npy");
    const char *in = a->pos[0], *out = a->pos[1];
    int ki = file_kind(in), ko = file_kind(out);
    if (ki == KIND_OTHER)
        return unknown_type(a->verb, in, ".png or .npy");
    if (ko == KIND_PNG) {
        errorf("encode: '%s': latents are .npy, not .png", out);
        return EXIT_USAGE;
    }
    if (ko != KIND_NPY)
        return unknown_type(a->verb, out, ".npy");
    return run_single(a, encode_file);
}

static int cmd_decode(const cli_args *a)
{
    if (a->outdir != NULL)
        return run_batch(a, decode_file, a->to == KIND_NPY ? "npy" : "png");
    const char *in = a->pos[0], *out = a->pos[1];
    int ki = file_kind(in), ko = file_kind(out);
    if (ki == KIND_PNG) {
        errorf("decode: '%s': latents are .npy, not .png", in);
        return EXIT_USAGE;
    }
    if (ki != KIND_NPY)
        return unknown_type(a->verb, in, ".npy");
    if (ko == KIND_OTHER)
        return unknown_type(a->verb, out, ".png or .npy");
    return run_single(a, decode_file);
}

static int cmd_roundtrip(const cli_args *a)
{
    const char *in = a->pos[0], *out = a->pos[1];
    if (file_kind(in) != KIND_PNG) {
        errorf("roundtrip: '%s': expected a .png input", in);
        return EXIT_USAGE;
    }
    if (file_kind(out) != KIND_PNG) {
        errorf("roundtrip: '%s': expected a .png output", out);
        return EXIT_USAGE;
    }
    if (check_distinct(a) != 0)
        return EXIT_USAGE;
    if (check_out_free(a, out) != 0)
        return EXIT_FAILURE;

    int rc = EXIT_FAILURE;
    vae_model *m = NULL;
    tensor img = {0}, lat = {0}, dec = {0};
    png_rgb src;
    uint8_t *rgb = NULL;
    out_file o = {0};
    memset(&src, 0, sizeof src);
    double t0 = now_seconds(), t;
    if (load_model(a, a->threads, &m) != 0)
        goto done;
    timing("load", t0);
    t = now_seconds();
    if (read_png_tensor(in, &img, &src) != 0)
        goto done;
    timing("read", t);
    if (out_begin(&o, out, a->force) != 0)
        goto done;
    if (a->crop && crop_tensor(&img, vae_downsample_factor(m), in) != 0)
        goto done;
    int32_t ch = img.h, cw = img.w;
    /* the source's pixels stay for the PSNR */
    uint64_t src_bytes = (uint64_t)src.width * src.height * 3 * sizeof *src.pixels;
    if (do_encode(m, a, in, &img, &lat, src_bytes) != 0)
        goto done;
    tensor_free(&img);
    if (do_decode(m, a, in, &lat, &dec, src_bytes) != 0)
        goto done;
    tensor_free(&lat);
    if (dec.h != ch || dec.w != cw) {
        errorf("%s: decoded image is %dx%d, expected %dx%d", in, (int)dec.w,
               (int)dec.h, (int)cw, (int)ch);
        goto done;
    }
    rgb = to_rgb8(&dec);
    if (rgb == NULL)
        goto done;
    /* PSNR on 8-bit values: a deeper source is first rounded to 8 bits. */
    size_t samples = (size_t)cw * (size_t)ch * 3;
    double sse = 0.0;
    for (size_t i = 0; i < samples; i++) {
        size_t px = i / 3, y = px / (size_t)cw, x = px % (size_t)cw;
        size_t si = (y * src.width + x) * 3 + i % 3;
        double ref = floor((double)src.pixels[si] * 255.0 / src.maxval + 0.5);
        double d = ref - (double)rgb[i];
        sse += d * d;
    }
    t = now_seconds();
    if (write_output(&o, &dec, rgb) != 0)
        goto done;
    timing("write", t);
    timing("total", t0);
    double mse = sse / (double)samples;
    if (mse == 0.0)
        printf("PSNR inf dB\n");
    else
        printf("PSNR %.2f dB\n", 10.0 * log10(255.0 * 255.0 / mse));
    rc = EXIT_SUCCESS;
done:
    out_abort(&o);
    free(rgb);
    png_free(&src);
    tensor_free(&dec);
    tensor_free(&lat);
    tensor_free(&img);
    vae_free(m);
    return rc;
}

static const char *dtype_name(int32_t dt)
{
    switch (dt) {
    case VAE_DTYPE_F32: return "F32";
    case VAE_DTYPE_F16: return "F16";
    case VAE_DTYPE_BF16: return "BF16";
    case VAE_DTYPE_MIXED: return "mixed";
    default: return "unknown";
    }
}

static const char *yes_no(int32_t v)
{
    return v ? "yes" : "no";
}

static int cmd_info(const cli_args *a)
{
    vae_model *m = NULL;
    vae_model_info info;
    double t0 = now_seconds();
    if (load_model(a, 0, &m) != 0)
        return EXIT_FAILURE;
    timing("load", t0);
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    int32_t st = vae_get_info(m, &info);
    if (st != VAE_OK) {
        lib_error(m, st, a->model);
        vae_free(m);
        return EXIT_FAILURE;
    }
    int levels = info.levels;
    if (levels < 0)
        levels = 0;
    if (levels > VAE_MAX_LEVELS)
        levels = VAE_MAX_LEVELS;
    info.family[sizeof info.family - 1] = '\0';
    info.naming[sizeof info.naming - 1] = '\0';
    printf("model: %s\n", a->model);
    printf("family: %s\n", info.family);
    printf("naming: %s\n", info.naming);
    printf("levels: %d\n", (int)info.levels);
    printf("block_out_channels: ");
    for (int i = 0; i < levels; i++)
        printf("%s%d", i ? "," : "", (int)info.block_out_channels[i]);
    printf("\n");
    printf("layers_per_block: %d\n", (int)info.layers_per_block);
    printf("latent_channels: %d\n", (int)info.latent_channels);
    printf("norm_num_groups: %d\n", (int)info.norm_num_groups);
    printf("norm_eps: %g\n", (double)info.norm_eps);
    printf("quant_conv: %s\n", yes_no(info.has_quant_conv));
    printf("post_quant_conv: %s\n", yes_no(info.has_post_quant_conv));
    printf("encoder: %s\n", yes_no(info.has_encoder));
    printf("decoder: %s\n", yes_no(info.has_decoder));
    printf("weight_dtype: %s\n", dtype_name(info.weight_dtype));
    printf("parameters: %llu\n", (unsigned long long)info.parameter_count);
    printf("scaling_factor: %g\n", (double)info.scaling_factor);
    printf("shift_factor: %g\n", (double)info.shift_factor);
    printf("downsample_factor: %d\n", (int)info.downsample_factor);
    /* What the loaded weights take: every estimate reports it, whatever the
     * stage and size asked about. */
    vae_memory_estimate est;
    int32_t f = info.downsample_factor > 0 ? info.downsample_factor : 8;
    st = estimate(m, info.has_decoder ? VAE_STAGE_DECODE : VAE_STAGE_ENCODE,
                  8 * f, 8 * f, NULL, &est);
    if (st == VAE_OK)
        printf("weights_memory: %llu (%s)\n",
               (unsigned long long)est.weights_bytes, hbytes(est.weights_bytes).s);
    else if (st == VAE_ERR_UNSUPPORTED)
        verbosef("memory  estimate unavailable: %s", lib_message(m, st));
    else
        verbosef("memory  estimate failed: %s", lib_message(m, st));
    vae_free(m);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        errorf("cannot write to standard output: %s", strerror(errno));
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}

static int cmd_convert(const cli_args *a)
{
    const char *in = a->pos[0], *out = a->pos[1];
    int ki = file_kind(in), ko = file_kind(out);
    if (ki == KIND_OTHER)
        return unknown_type(a->verb, in, ".png or .npy");
    if (ko == KIND_OTHER)
        return unknown_type(a->verb, out, ".png or .npy");
    if (ki == ko) {
        errorf("convert: converts between .png and .npy; '%s' and '%s' are "
               "both %s", in, out, ki == KIND_PNG ? ".png" : ".npy");
        return EXIT_USAGE;
    }
    if (check_distinct(a) != 0)
        return EXIT_USAGE;
    if (check_out_free(a, out) != 0)
        return EXIT_FAILURE;

    int rc = EXIT_FAILURE;
    tensor t = {0};
    out_file o = {0};
    double t0 = now_seconds(), tw;
    if (read_image(in, &t) != 0)
        goto done;
    timing("read", t0);
    if (ko == KIND_PNG && check_png_out(out, &t) != 0)
        goto done;
    tw = now_seconds();
    if (out_begin(&o, out, a->force) != 0 || write_output(&o, &t, NULL) != 0)
        goto done;
    timing("write", tw);
    timing("total", t0);
    rc = EXIT_SUCCESS;
done:
    out_abort(&o);
    tensor_free(&t);
    return rc;
}

/* ---- main ------------------------------------------------------------------ */

static const verb_desc VERBS[] = {
#define OPT_RUN (OPT_MODEL | OPT_THREADS | OPT_QUIET | OPT_VERBOSE | OPT_FORCE | \
                 OPT_MAXMEM | OPT_TILE | OPT_CIRCULAR | OPT_HALF)
    {"encode", OPT_RUN | OPT_RAW | OPT_SAMPLE | OPT_CROP | OPT_OUTDIR, 2,
     USAGE_ENCODE, cmd_encode},
    {"decode", OPT_RUN | OPT_RAW | OPT_OUTDIR | OPT_TO, 2, USAGE_DECODE,
     cmd_decode},
    {"roundtrip", OPT_RUN | OPT_CROP, 2, USAGE_ROUNDTRIP, cmd_roundtrip},
    {"info", OPT_MODEL | OPT_VERBOSE | OPT_HALF, 0, USAGE_INFO, cmd_info},
    {"convert", OPT_VERBOSE | OPT_FORCE, 2, USAGE_CONVERT, cmd_convert},
#undef OPT_RUN
};

static const verb_desc *find_verb(const char *name)
{
    for (size_t i = 0; i < sizeof VERBS / sizeof VERBS[0]; i++)
        if (strcmp(VERBS[i].name, name) == 0)
            return &VERBS[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        errorf("no command given (see 'sdxlvae --help')");
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(USAGE_MAIN, stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("sdxlvae %s\n", vae_version_string());
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "help") == 0) {
        const verb_desc *v = argc > 2 ? find_verb(argv[2]) : NULL;
        if (argc > 3) {
            errorf("help: too many arguments: '%s'", argv[3]);
            return EXIT_USAGE;
        }
        if (argc == 3 && v == NULL) {
            errorf("help: unknown command '%s' (see 'sdxlvae --help')", argv[2]);
            return EXIT_USAGE;
        }
        fputs(v != NULL ? v->usage : USAGE_MAIN, stdout);
        return EXIT_SUCCESS;
    }
    const verb_desc *v = find_verb(cmd);
    if (v == NULL) {
        if (cmd[0] == '-')
            errorf("unknown option '%s' (see 'sdxlvae --help')", cmd);
        else
            errorf("unknown command '%s' (see 'sdxlvae --help')", cmd);
        return EXIT_USAGE;
    }
    cli_args a;
    int p = parse_args(v, argc, argv, &a);
    if (p != 0) {
        free(a.pos);
        if (p == PARSE_EXIT_OK)
            return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        return p == PARSE_FAIL ? EXIT_FAILURE : EXIT_USAGE;
    }
    g_verbose = a.verbose;
    g_bar.enabled = !a.quiet && isatty(STDERR_FILENO);
    g_bar.delay = 1.0;
    /* For tests and impatient people: the bar's delay in seconds. */
    const char *delay = getenv("SDXLVAE_PROGRESS_DELAY");
    if (delay != NULL && *delay != '\0')
        g_bar.delay = atof(delay);
    install_signal_handlers();
    int rc = v->run(&a);
    free(a.pos);
    return rc;
}
