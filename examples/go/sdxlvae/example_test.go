package sdxlvae_test

import (
	"fmt"
	"log"

	"github.com/libsdxlvae/libsdxlvae/examples/go/sdxlvae"
)

// Encodes an image to a latent and decodes it back.
func Example() {
	m, err := sdxlvae.Load("sdxl_vae.safetensors")
	if err != nil {
		log.Fatal(err) // e.g. "sdxlvae: sdxl_vae.safetensors: cannot open: ..."
	}
	defer m.Close()

	h, w := 64, 64
	image := make([]float32, 3*h*w) // 1 x 3 x h x w, values in [-1, 1]

	n, err := m.EncodedSize(1, h, w)
	if err != nil {
		log.Fatal(err)
	}
	latent := make([]float32, n)
	if err := m.Encode(image, 1, h, w, latent, nil); err != nil {
		log.Fatal(err)
	}

	f := m.DownsampleFactor()
	n, err = m.DecodedSize(1, h/f, w/f)
	if err != nil {
		log.Fatal(err)
	}
	decoded := make([]float32, n)
	if err := m.Decode(latent, 1, h/f, w/f, decoded, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(latent), len(decoded))
}
