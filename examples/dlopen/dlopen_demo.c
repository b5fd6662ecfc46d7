/*
 * dlopen_demo.c - load libsdxlvae at run time, the way game engines load
 * plugins: dlopen() the SONAME, look up one symbol, vae_get_api, and call
 * everything through the versioned table it returns. The program is not
 * linked with -lsdxlvae; it needs the header only (for the types).
 *
 *   cc -std=c11 dlopen_demo.c ../common/npy.c $(pkg-config --cflags sdxlvae) -ldl -lm
 *   ./dlopen_demo MODEL LATENT.npy [REFERENCE.npy]
 *
 * Prints the library's version and the model's description, decodes the raw
 * latent LATENT.npy (N x C x h x w) with a progress callback, and compares
 * the image with REFERENCE.npy when given (max|ours - ref| / max|ref|, which
 * must be <= 1e-4). Set SDXLVAE_LIBRARY to load another file.
 */
#include <dlfcn.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sdxlvae.h>

#include "../common/npy.h" /* a small .npy reader */

/* Whether the loaded library's table has `member`: a table from an older
 * library is shorter than our vae_api. */
#define API_HAS(api, member) \
    (offsetof(vae_api, member) + sizeof((api)->member) <= (size_t)(api)->size)

typedef const vae_api *(*get_api_fn)(uint32_t abi_major);

typedef struct progress_log {
    int calls;
    float last;
    int monotonic;
} progress_log;

static int32_t on_progress(void *user, float fraction, int32_t stage)
{
    progress_log *log = user;
    (void)stage;
    if (fraction < log->last) log->monotonic = 0;
    log->last = fraction;
    log->calls++;
    return 0; /* non-zero would cancel */
}

static const char *dtype_name(const vae_api *api, int32_t dt)
{
    if (dt == api->vae_dtype_f32()) return "F32";
    if (dt == api->vae_dtype_f16()) return "F16";
    if (dt == api->vae_dtype_bf16()) return "BF16";
    return "mixed";
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s MODEL LATENT.npy [REFERENCE.npy]\n", argv[0]);
        return 2;
    }
    const char *libname = getenv("SDXLVAE_LIBRARY");
    if (!libname || !*libname) libname = "libsdxlvae.so.1"; /* the SONAME: ABI 1 */
    void *lib = dlopen(libname, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    /* POSIX: a function pointer may travel through void *; copy the bits. */
    void *sym = dlsym(lib, "vae_get_api");
    get_api_fn get_api;
    if (!sym) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        dlclose(lib);
        return 1;
    }
    memcpy(&get_api, &sym, sizeof get_api);
    const vae_api *api = get_api(VAE_ABI_VERSION);
    /* Everything used below is in the table since its first version. */
    if (!api || api->abi_major != VAE_ABI_VERSION || !API_HAS(api, vae_model_info_size)) {
        fprintf(stderr, "%s: no ABI %d table, or one too old for this program\n", libname,
                VAE_ABI_VERSION);
        dlclose(lib);
        return 1;
    }
    printf("%s: libsdxlvae %s (ABI %u), a table of %u bytes (this program knows %zu)\n",
           libname, api->vae_version_string(), (unsigned)api->abi_major, (unsigned)api->size,
           sizeof(vae_api));

    int rc = 1;
    vae_model *m = NULL;
    npy_array lat = {0}, ref = {0};
    float *img = NULL;
    char err[256];
    if (api->vae_load(argv[1], NULL, &m) != api->vae_ok()) {
        fprintf(stderr, "%s\n", api->vae_last_error(NULL));
        goto done;
    }
    /* The struct as this program knows it; the library fills what it has. */
    vae_model_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (api->vae_get_info(m, &info) != api->vae_ok()) {
        fprintf(stderr, "%s\n", api->vae_last_error(m));
        goto done;
    }
    printf("model: %s, %s names, %d levels, %d latent channels, %s weights, %llu parameters, "
           "scaling factor %g\n",
           info.family, info.naming, (int)info.levels, (int)info.latent_channels,
           dtype_name(api, info.weight_dtype), (unsigned long long)info.parameter_count,
           (double)info.scaling_factor);

    if (npy_read(argv[2], &lat, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", argv[2], err);
        goto done;
    }
    if (lat.ndim != 4 || lat.shape[1] != info.latent_channels) {
        fprintf(stderr, "%s: expected N x %d x h x w\n", argv[2], (int)info.latent_channels);
        goto done;
    }
    int32_t n = (int32_t)lat.shape[0], lh = (int32_t)lat.shape[2], lw = (int32_t)lat.shape[3];
    uint64_t count;
    if (api->vae_decoded_size(m, n, lh, lw, &count) != api->vae_ok() ||
        !(img = malloc(count * sizeof *img))) {
        fprintf(stderr, "%s\n", img ? "out of memory" : api->vae_last_error(m));
        goto done;
    }
    progress_log log = {0, 0.0f, 1};
    vae_run_options ro;
    api->vae_run_options_init(&ro, sizeof ro);
    ro.flags = api->vae_flag_raw_latent(); /* the fixtures' latents are raw */
    ro.progress = on_progress;
    ro.progress_user = &log;
    if (api->vae_decode(m, lat.data, n, lh, lw, img, count, &ro) != api->vae_ok()) {
        fprintf(stderr, "%s\n", api->vae_last_error(m));
        goto done;
    }
    int f = (int)info.downsample_factor;
    printf("decode: %d x %d x %d x %d -> %d x 3 x %d x %d, %d progress reports%s\n", (int)n,
           (int)info.latent_channels, (int)lh, (int)lw, (int)n, (int)lh * f, (int)lw * f,
           log.calls, log.monotonic && log.last == 1.0f ? " (monotonic, ending at 1.0)" : " (BAD)");
    if (!log.monotonic || log.last != 1.0f) goto done;

    if (argc == 4) {
        if (npy_read(argv[3], &ref, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", argv[3], err);
            goto done;
        }
        if (ref.count != count) {
            fprintf(stderr, "%s: %llu values, the decode has %llu\n", argv[3],
                    (unsigned long long)ref.count, (unsigned long long)count);
            goto done;
        }
        double num = 0, den = 0;
        for (uint64_t i = 0; i < count; i++) {
            double d = fabs((double)img[i] - (double)ref.data[i]);
            if (d > num || d != d) num = d != d ? INFINITY : d; /* NaN fails */
            if (fabs((double)ref.data[i]) > den) den = fabs((double)ref.data[i]);
        }
        double rel = den > 0 ? num / den : num;
        printf("max|ours - ref| / max|ref| = %.3g (%s 1e-4)\n", rel, rel <= 1e-4 ? "<=" : "NOT <=");
        if (!(rel <= 1e-4)) goto done;
    }
    rc = 0;
done:
    free(img);
    npy_free(&lat);
    npy_free(&ref);
    api->vae_free(m);
    dlclose(lib);
    return rc;
}
