/*
 * roundtrip.c - the smallest complete program on libsdxlvae: encode a PNG
 * into a latent, decode the latent back into an image, print the PSNR.
 *
 *   cc -std=c11 roundtrip.c ../common/png.c $(pkg-config --cflags --libs sdxlvae) -lz -lm
 *   ./roundtrip MODEL IN.png [OUT.png]
 *
 * MODEL is a .safetensors file or a diffusers folder (sdxl_vae.safetensors
 * for SDXL). IN.png's sides must be multiples of the model's downsample
 * factor (8 for released VAEs). The PSNR is that of `sdxlvae roundtrip`:
 * on 8-bit values, the decoded image mapped from [-1, 1] to 0..255.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <sdxlvae.h>

#include "../common/png.h" /* a small PNG reader and writer on zlib */

static uint8_t to_u8(float x)
{
    double y = ((double)x + 1.0) * 0.5 * 255.0;
    return !(y >= 0.0) ? 0 : y >= 255.0 ? 255 : (uint8_t)floor(y + 0.5);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s MODEL IN.png [OUT.png]\n", argv[0]);
        return 2;
    }
    int rc = 1;
    vae_model *vae = NULL;
    float *image = NULL, *latent = NULL;
    uint8_t *rgb = NULL;
    png_rgb png = {0};
    char err[256];

    if (vae_load(argv[1], NULL, &vae) != VAE_OK) {
        fprintf(stderr, "%s\n", vae_last_error(NULL)); /* no handle: the thread's message */
        return 1;
    }
    if (png_read_rgb(argv[2], &png, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", argv[2], err);
        goto done;
    }
    const int32_t w = (int32_t)png.width, h = (int32_t)png.height;
    const int32_t f = vae_downsample_factor(vae);
    uint64_t n_img, n_lat;
    /* The size queries also check the sides (multiples of f). */
    if (vae_encoded_size(vae, 1, h, w, &n_lat) != VAE_OK ||
        vae_decoded_size(vae, 1, h / f, w / f, &n_img) != VAE_OK) {
        fprintf(stderr, "%s: %s\n", argv[2], vae_last_error(vae));
        goto done;
    }
    image = malloc(n_img * sizeof *image);   /* 1 x 3 x h x w, NCHW */
    latent = malloc(n_lat * sizeof *latent); /* 1 x C x h/f x w/f */
    rgb = malloc((size_t)w * (size_t)h * 3);
    if (!image || !latent || !rgb) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    /* Interleaved RGB -> planar channels in [-1, 1]. */
    const size_t plane = (size_t)w * (size_t)h;
    const double scale = 1.0 / png.maxval; /* 255 for 8-bit PNGs */
    for (size_t p = 0; p < plane; p++)
        for (size_t c = 0; c < 3; c++)
            image[c * plane + p] = (float)(png.pixels[p * 3 + c] * scale * 2.0 - 1.0);

    if (vae_encode(vae, image, 1, h, w, latent, n_lat, NULL) != VAE_OK ||
        vae_decode(vae, latent, 1, h / f, w / f, image, n_img, NULL) != VAE_OK) {
        fprintf(stderr, "%s\n", vae_last_error(vae));
        goto done;
    }

    double sse = 0.0;
    for (size_t p = 0; p < plane; p++)
        for (size_t c = 0; c < 3; c++) {
            rgb[p * 3 + c] = to_u8(image[c * plane + p]);
            double ref = floor((double)png.pixels[p * 3 + c] * 255.0 / png.maxval + 0.5);
            double d = ref - rgb[p * 3 + c];
            sse += d * d;
        }
    printf("%s: %dx%d -> latent %dx%dx%d -> ", argv[2], (int)w, (int)h,
           (int)vae_latent_channels(vae), (int)(h / f), (int)(w / f));
    double mse = sse / (double)(plane * 3);
    if (mse == 0.0)
        printf("PSNR inf dB\n");
    else
        printf("PSNR %.2f dB\n", 10.0 * log10(255.0 * 255.0 / mse));
    if (argc == 4 && png_write_rgb8(argv[3], rgb, (uint32_t)w, (uint32_t)h, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", argv[3], err);
        goto done;
    }
    rc = 0;
done:
    free(rgb);
    free(latent);
    free(image);
    png_free(&png);
    vae_free(vae);
    return rc;
}
