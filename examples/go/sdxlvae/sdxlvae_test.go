package sdxlvae_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/libsdxlvae/libsdxlvae/examples/go/sdxlvae"
)

// fixtures is the project's test/fixtures, or the folder in SDXLVAE_FIXTURES.
func fixtures() string {
	if dir := os.Getenv("SDXLVAE_FIXTURES"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "..", "test", "fixtures")
}

func microLDM() string { return filepath.Join(fixtures(), "micro-ldm-f32") }

// readNpy reads a little-endian float32 C-order .npy file.
func readNpy(t *testing.T, path string) ([]int, []float32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		t.Fatalf("%s: not a .npy file", path)
	}
	var hlen, start int
	switch b[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		hlen, start = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		t.Fatalf("%s: .npy version %d", path, b[6])
	}
	header := string(b[start : start+hlen])
	if !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'fortran_order': False") {
		t.Fatalf("%s: not C-order little-endian float32: %s", path, header)
	}
	i := strings.Index(header, "'shape': (")
	if i < 0 {
		t.Fatalf("%s: no shape: %s", path, header)
	}
	rest := header[i+len("'shape': ("):]
	rest = rest[:strings.Index(rest, ")")]
	var shape []int
	count := 1
	for _, f := range strings.Split(rest, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: shape %q", path, rest)
		}
		shape = append(shape, d)
		count *= d
	}
	raw := b[start+hlen:]
	if len(raw) != 4*count {
		t.Fatalf("%s: %d data bytes for shape %v", path, len(raw), shape)
	}
	data := make([]float32, count)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return shape, data
}

// relErr is max|a-b| / max|b|.
func relErr(t *testing.T, a, b []float32) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("lengths %d and %d", len(a), len(b))
	}
	var diff, scale float64
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff / scale
}

func load(t *testing.T) *sdxlvae.Model {
	t.Helper()
	m, err := sdxlvae.Load(microLDM())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestDecodeMatchesReference(t *testing.T) {
	m := load(t)
	ls, latent := readNpy(t, filepath.Join(microLDM(), "latent.npy"))
	ds, want := readNpy(t, filepath.Join(microLDM(), "decoded.npy"))
	if ls[1] != m.LatentChannels() {
		t.Fatalf("latent has %d channels, model %d", ls[1], m.LatentChannels())
	}
	f := m.DownsampleFactor()
	if fmt.Sprint(ds) != fmt.Sprint([]int{ls[0], 3, ls[2] * f, ls[3] * f}) {
		t.Fatalf("decoded.npy shape %v for latent %v", ds, ls)
	}
	size, err := m.DecodedSize(ls[0], ls[2], ls[3])
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, size)
	opts := &sdxlvae.RunOptions{Flags: sdxlvae.FlagRawLatent}
	if err := m.Decode(latent, ls[0], ls[2], ls[3], got, opts); err != nil {
		t.Fatal(err)
	}
	e := relErr(t, got, want)
	t.Logf("decode: max|a-b|/max|b| = %.3e", e)
	if e > 1e-4 {
		t.Fatalf("decode error %g > 1e-4", e)
	}
}

func TestEncodeMatchesReference(t *testing.T) {
	m := load(t)
	is, image := readNpy(t, filepath.Join(microLDM(), "image.npy"))
	_, want := readNpy(t, filepath.Join(microLDM(), "latent.npy"))
	_, wantMoments := readNpy(t, filepath.Join(microLDM(), "moments.npy"))
	size, err := m.EncodedSize(is[0], is[2], is[3])
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, size)
	opts := &sdxlvae.RunOptions{Flags: sdxlvae.FlagRawLatent}
	if err := m.Encode(image, is[0], is[2], is[3], got, opts); err != nil {
		t.Fatal(err)
	}
	if e := relErr(t, got, want); e > 1e-4 {
		t.Fatalf("encode error %g > 1e-4", e)
	}
	moments := make([]float32, 2*size)
	if err := m.EncodeMoments(image, is[0], is[2], is[3], moments, nil); err != nil {
		t.Fatal(err)
	}
	if e := relErr(t, moments, wantMoments); e > 1e-4 {
		t.Fatalf("moments error %g > 1e-4", e)
	}
}

func TestInfo(t *testing.T) {
	info, err := load(t).Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.LatentChannels != 4 || fmt.Sprint(info.BlockOutChannels) != "[8 16]" ||
		info.LayersPerBlock != 1 || info.NormNumGroups != 4 || info.DownsampleFactor != 2 ||
		!info.HasQuantConv || !info.HasPostQuantConv || !info.HasEncoder || !info.HasDecoder ||
		info.WeightDtype != sdxlvae.DtypeF32 || math.Abs(float64(info.ScalingFactor)-0.13025) > 1e-6 ||
		info.ParameterCount == 0 || info.Naming != "ldm" || info.Family == "" {
		t.Fatalf("unexpected info %+v", info)
	}
}

func TestLoadErrorNamesThePath(t *testing.T) {
	path := filepath.Join(fixtures(), "no-such-model", "vae.safetensors")
	m, err := sdxlvae.Load(path)
	if err == nil {
		m.Close()
		t.Fatal("loading a missing file succeeded")
	}
	if !errors.Is(err, sdxlvae.ErrIO) {
		t.Fatalf("want ErrIO, got %v", err)
	}
	var e *sdxlvae.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, path) {
		t.Fatalf("message does not name %s: %v", path, err)
	}
}

func TestBadArguments(t *testing.T) {
	m := load(t)
	// Caught in Go: the input is shorter than its shape.
	err := m.Decode(make([]float32, 10), 1, 8, 12, make([]float32, 1000), nil)
	if !errors.Is(err, sdxlvae.ErrInvalidArgument) || !strings.Contains(err.Error(), "latent") {
		t.Fatalf("short latent: %v", err)
	}
	// Caught by the library, message read from the handle: the height is not
	// a multiple of the downsampling factor.
	err = m.Encode(make([]float32, 3*15*24), 1, 15, 24, make([]float32, 1000), nil)
	var e *sdxlvae.Error
	if !errors.As(err, &e) || e.Status != sdxlvae.ErrInvalidArgument || e.Message == "" {
		t.Fatalf("odd height: %v", err)
	}
	// An output buffer too small.
	_, latent := readNpy(t, filepath.Join(microLDM(), "latent.npy"))
	err = m.Decode(latent, 1, 8, 12, make([]float32, 7), nil)
	if !errors.Is(err, sdxlvae.ErrBufferTooSmall) {
		t.Fatalf("small output: %v", err)
	}
	// Calls after Close.
	m.Close()
	if err := m.Decode(latent, 1, 8, 12, make([]float32, 7), nil); err != sdxlvae.ErrClosed {
		t.Fatalf("after Close: %v", err)
	}
}

func TestConcurrentDecodes(t *testing.T) {
	m := load(t)
	ls, latent := readNpy(t, filepath.Join(microLDM(), "latent.npy"))
	size, _ := m.DecodedSize(ls[0], ls[2], ls[3])
	opts := &sdxlvae.RunOptions{Flags: sdxlvae.FlagRawLatent, Threads: 1}
	want := make([]float32, size)
	if err := m.Decode(latent, ls[0], ls[2], ls[3], want, opts); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]float32, size)
			if err := m.Decode(latent, ls[0], ls[2], ls[3], got, opts); err != nil {
				errs <- err
				return
			}
			for i := range got {
				if got[i] != want[i] {
					errs <- fmt.Errorf("float %d differs", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestVersion(t *testing.T) {
	if sdxlvae.ABIVersion() != 1 || sdxlvae.VersionNumber() < 100 || sdxlvae.Version() == "" {
		t.Fatalf("version %s (%d), ABI %d", sdxlvae.Version(), sdxlvae.VersionNumber(), sdxlvae.ABIVersion())
	}
	if sdxlvae.OK.Error() != "success" {
		t.Fatalf("strerror(0) = %q", sdxlvae.OK.Error())
	}
}
