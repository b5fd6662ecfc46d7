// roundtrip.cpp - examples/c/roundtrip.c in C++: encode a PNG, decode it
// back, print the PSNR, through a small RAII wrapper that lives here, in the
// example, not in the library (copy it into your project and adapt it).
//
//   cc -c ../common/png.c -o png.o
//   c++ -std=c++17 roundtrip.cpp png.o $(pkg-config --cflags --libs sdxlvae) -lz
//   ./roundtrip MODEL IN.png [OUT.png]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <sdxlvae.h> // extern "C" inside

extern "C" {
#include "../common/png.h" // a small PNG reader and writer on zlib (C)
}

namespace sdxlvae {

// A failed call: the status code and the library's message.
class error : public std::runtime_error {
public:
    error(int32_t status, const std::string &msg)
        : std::runtime_error(msg.empty() ? vae_strerror(status) : msg), status_(status) {}
    int32_t status() const noexcept { return status_; }

private:
    int32_t status_;
};

// A loaded VAE. Movable, not copyable; freed when it goes out of scope.
// Like the handle it wraps, it may be used from several threads at once.
class model {
public:
    explicit model(const std::string &path, int32_t n_threads = 0) {
        vae_load_options lo;
        vae_load_options_init(&lo, sizeof lo);
        lo.n_threads = n_threads;
        vae_model *m = nullptr;
        int32_t rc = vae_load(path.c_str(), &lo, &m);
        if (rc != VAE_OK)
            throw error(rc, vae_last_error(nullptr)); // no handle: the thread's message
        handle_.reset(m);
    }

    int32_t latent_channels() const { return vae_latent_channels(get()); }
    int32_t downsample_factor() const { return vae_downsample_factor(get()); }

    // n images (n x 3 x h x w, NCHW, in [-1, 1]) -> n x C x h/f x w/f.
    std::vector<float> encode(const std::vector<float> &image, int32_t n, int32_t h,
                              int32_t w) const {
        uint64_t count = 0;
        check(vae_encoded_size(get(), n, h, w, &count));
        check_input(image.size(), uint64_t(n) * 3 * uint64_t(h) * uint64_t(w));
        std::vector<float> latent(count);
        check(vae_encode(get(), image.data(), n, h, w, latent.data(), count, nullptr));
        return latent;
    }

    // n latents (n x C x lh x lw) -> n x 3 x lh*f x lw*f.
    std::vector<float> decode(const std::vector<float> &latent, int32_t n, int32_t lh,
                              int32_t lw) const {
        uint64_t count = 0;
        check(vae_decoded_size(get(), n, lh, lw, &count));
        check_input(latent.size(),
                    uint64_t(n) * uint64_t(latent_channels()) * uint64_t(lh) * uint64_t(lw));
        std::vector<float> image(count);
        check(vae_decode(get(), latent.data(), n, lh, lw, image.data(), count, nullptr));
        return image;
    }

private:
    struct deleter {
        void operator()(vae_model *m) const noexcept { vae_free(m); }
    };
    std::unique_ptr<vae_model, deleter> handle_;

    const vae_model *get() const { return handle_.get(); }
    void check(int32_t rc) const {
        if (rc != VAE_OK) throw error(rc, vae_last_error(get())); // the handle's message
    }
    void check_input(size_t have, uint64_t want) const {
        if (have != want)
            throw error(VAE_ERR_INVALID_ARGUMENT, "input holds " + std::to_string(have) +
                                                      " floats, " + std::to_string(want) +
                                                      " expected");
    }
};

} // namespace sdxlvae

namespace {

// The PNG reader's image, freed by its destructor.
struct png_image : png_rgb {
    png_image() : png_rgb{} {}
    ~png_image() { png_free(this); }
    png_image(const png_image &) = delete;
    png_image &operator=(const png_image &) = delete;
};

uint8_t to_u8(float x) {
    double y = (double(x) + 1.0) * 0.5 * 255.0;
    return !(y >= 0.0) ? 0 : y >= 255.0 ? 255 : uint8_t(std::floor(y + 0.5));
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL IN.png [OUT.png]\n", argv[0]);
        return 2;
    }
    try {
        sdxlvae::model vae(argv[1]);
        png_image png;
        char err[256];
        if (png_read_rgb(argv[2], &png, err, sizeof err) != 0)
            throw std::runtime_error(std::string(argv[2]) + ": " + err);
        const int32_t w = int32_t(png.width), h = int32_t(png.height);
        const int32_t f = vae.downsample_factor();
        const size_t plane = size_t(w) * size_t(h);

        std::vector<float> image(3 * plane);
        const double scale = 1.0 / png.maxval;
        for (size_t p = 0; p < plane; p++)
            for (size_t c = 0; c < 3; c++)
                image[c * plane + p] = float(png.pixels[p * 3 + c] * scale * 2.0 - 1.0);

        std::vector<float> latent = vae.encode(image, 1, h, w);
        std::vector<float> decoded = vae.decode(latent, 1, h / f, w / f);

        std::vector<uint8_t> rgb(3 * plane);
        double sse = 0.0;
        for (size_t p = 0; p < plane; p++)
            for (size_t c = 0; c < 3; c++) {
                rgb[p * 3 + c] = to_u8(decoded[c * plane + p]);
                double ref = std::floor(png.pixels[p * 3 + c] * 255.0 / png.maxval + 0.5);
                double d = ref - rgb[p * 3 + c];
                sse += d * d;
            }
        double mse = sse / double(3 * plane);
        std::printf("%s: %dx%d -> latent %dx%dx%d -> ", argv[2], int(w), int(h),
                    int(vae.latent_channels()), int(h / f), int(w / f));
        if (mse == 0.0)
            std::printf("PSNR inf dB\n");
        else
            std::printf("PSNR %.2f dB\n", 10.0 * std::log10(255.0 * 255.0 / mse));
        if (argc == 4 &&
            png_write_rgb8(argv[3], rgb.data(), uint32_t(w), uint32_t(h), err, sizeof err) != 0)
            throw std::runtime_error(std::string(argv[3]) + ": " + err);
    } catch (const sdxlvae::error &e) {
        std::fprintf(stderr, "sdxlvae error %d (%s): %s\n", int(e.status()), vae_strerror(e.status()),
                     e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
