// Package sdxlvae binds libsdxlvae, the Stable Diffusion XL VAE (and every VAE
// of the same architecture: SD1.x/2.x, SD3, Flux.1) running on the CPU in C.
//
// Tensors are []float32, contiguous, NCHW. Images have 3 channels with values
// in [-1, 1]; latents have LatentChannels() channels and sides
// 1/DownsampleFactor() of the image's. Output slices are allocated by the
// caller: EncodedSize and DecodedSize say how many floats they need. Go memory
// is handed to C only for the duration of a call (the library keeps no
// pointer), which is what cgo's pointer rules require.
//
// A Model may be used from any number of goroutines at once. Close waits for
// running calls on it to finish.
package sdxlvae

/*
#cgo pkg-config: sdxlvae
#include <stdlib.h>
#include <string.h>
#include <sdxlvae.h>

// vae_load has no handle to keep its error on: the message is the calling
// thread's. A goroutine can move to another OS thread between two cgo calls,
// so load and copy the message in one call, on one thread.
static int32_t sdxlvae_go_load(const char *path, const vae_load_options *opts,
                               vae_model **out, char **msg)
{
    int32_t rc = vae_load(path, opts, out);
    *msg = NULL;
    if (rc != VAE_OK) *msg = strdup(vae_last_error(NULL));
    return rc;
}
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// Status is a libsdxlvae status code. The negative ones are errors, so a
// Status can be compared with errors.Is:
//
//	if errors.Is(err, sdxlvae.ErrIO) { ... }
type Status int32

const (
	OK                 Status = C.VAE_OK
	ErrInvalidArgument Status = C.VAE_ERR_INVALID_ARGUMENT
	ErrIO              Status = C.VAE_ERR_IO
	ErrFormat          Status = C.VAE_ERR_FORMAT
	ErrUnsupported     Status = C.VAE_ERR_UNSUPPORTED
	ErrModel           Status = C.VAE_ERR_MODEL
	ErrNoMemory        Status = C.VAE_ERR_NO_MEMORY
	ErrBufferTooSmall  Status = C.VAE_ERR_BUFFER_TOO_SMALL
	ErrInternal        Status = C.VAE_ERR_INTERNAL
)

// Error names the status code (vae_strerror).
func (s Status) Error() string { return C.GoString(C.vae_strerror(C.int32_t(s))) }

// Flags for RunOptions.Flags.
const (
	// FlagRawLatent: latents in raw VAE space instead of the scaled space
	// diffusion models use.
	FlagRawLatent uint32 = C.VAE_FLAG_RAW_LATENT
	// FlagSample: Encode draws a sample of the posterior (seeded by
	// RunOptions.Seed) instead of taking its mean.
	FlagSample uint32 = C.VAE_FLAG_SAMPLE
	// FlagDirectConv: every convolution in its direct form (no Winograd).
	FlagDirectConv uint32 = C.VAE_FLAG_DIRECT_CONV
)

// Weight storage types reported in Info.WeightDtype.
const (
	DtypeF32   = int(C.VAE_DTYPE_F32)
	DtypeF16   = int(C.VAE_DTYPE_F16)
	DtypeBF16  = int(C.VAE_DTYPE_BF16)
	DtypeMixed = int(C.VAE_DTYPE_MIXED)
)

// Error is a failed call: its status and the library's message, which names
// the file, tensor, offset or argument at fault.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("sdxlvae: %s (status %d)", e.Status.Error(), int32(e.Status))
	}
	return fmt.Sprintf("sdxlvae: %s (%s)", e.Message, e.Status.Error())
}

// Is makes errors.Is(err, sdxlvae.ErrIO) and the like work.
func (e *Error) Is(target error) bool {
	s, ok := target.(Status)
	return ok && s == e.Status
}

// ErrClosed is returned by calls on a Model after Close.
var ErrClosed = &Error{Status: ErrInvalidArgument, Message: "the model is closed"}

func invalid(format string, args ...interface{}) error {
	return &Error{Status: ErrInvalidArgument, Message: fmt.Sprintf(format, args...)}
}

// Version is the release of the library actually loaded, e.g. "0.1.0".
func Version() string { return C.GoString(C.vae_version_string()) }

// VersionNumber is the loaded release as MAJOR*10000 + MINOR*100 + PATCH.
func VersionNumber() uint32 { return uint32(C.vae_version_number()) }

// ABIVersion is the ABI generation of the loaded library (1: libsdxlvae.so.1).
func ABIVersion() uint32 { return uint32(C.vae_abi_version()) }

// LoadOptions for LoadWithOptions. The zero value is the default.
type LoadOptions struct {
	// Threads is the default thread count for calls on the model;
	// 0 = every CPU this process may run on.
	Threads int
	// ConfigPath is a config.json to use instead of the one found beside
	// the weights; "" = look for it.
	ConfigPath string
}

// RunOptions for the encode and decode calls. The zero value (or nil) is the
// posterior mean, scaled latents and the model's thread count.
type RunOptions struct {
	Flags   uint32 // Flag* bits
	Threads int    // 0 = the model's default
	Seed    uint64 // the noise seed, with FlagSample
}

// Info describes a loaded model's architecture.
type Info struct {
	LatentChannels   int
	BlockOutChannels []int // one entry per level
	LayersPerBlock   int
	NormNumGroups    int
	DownsampleFactor int
	HasQuantConv     bool
	HasPostQuantConv bool
	WeightDtype      int // Dtype*
	HasEncoder       bool
	HasDecoder       bool
	ScalingFactor    float32
	ShiftFactor      float32
	NormEps          float32
	ParameterCount   uint64
	Family           string // "SDXL", "SD1.x/SD2.x", "SD3/Flux.1", ...
	Naming           string // "ldm", "diffusers" or "legacy" (old diffusers attention names)
}

// Model is a loaded VAE. Free it with Close.
type Model struct {
	// Calls hold mu for reading, Close for writing: vae_free must not run
	// while a call on the handle does, and the C model itself is immutable
	// and safe for concurrent calls.
	mu sync.RWMutex
	p  *C.vae_model
}

// Load loads a VAE: a .safetensors file (a config.json beside it is used
// when present) or a folder in the diffusers layout.
func Load(path string) (*Model, error) {
	return LoadWithOptions(path, nil)
}

// LoadWithOptions is Load with options; nil means the defaults.
func LoadWithOptions(path string, opts *LoadOptions) (*Model, error) {
	// Filled as vae_load_options_init(&o, sizeof o) would: zeros, and size =
	// the size of this struct as the header built against declares it (the
	// library reads only that many bytes, whatever its own version).
	var o C.vae_load_options
	o.size = C.uint32_t(unsafe.Sizeof(o))
	if opts != nil {
		if opts.Threads < 0 || opts.Threads > math.MaxInt32 {
			return nil, invalid("LoadOptions.Threads is %d", opts.Threads)
		}
		o.n_threads = C.int32_t(opts.Threads)
		if opts.ConfigPath != "" {
			cfg := C.CString(opts.ConfigPath)
			defer C.free(unsafe.Pointer(cfg))
			o.config_path = cfg
		}
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))

	var p *C.vae_model
	var msg *C.char
	rc := C.sdxlvae_go_load(cpath, &o, &p, &msg)
	if rc != C.VAE_OK {
		e := &Error{Status: Status(rc)}
		if msg != nil {
			e.Message = C.GoString(msg)
			C.free(unsafe.Pointer(msg))
		}
		return nil, e
	}
	m := &Model{p: p}
	// A safety net for a Model that is dropped without Close.
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

// Close frees the model, after any call running on it has returned. Calls
// after Close return ErrClosed; Close itself may be called again.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p != nil {
		C.vae_free(m.p)
		m.p = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

// lastError is the message of the call that just failed on this handle.
// It is kept on the handle, so it does not matter which OS thread this
// goroutine is on now; vae_copy_last_error copies it into Go memory in one
// call.
func (m *Model) lastError(rc C.int32_t) error {
	buf := make([]byte, 512)
	n := C.vae_copy_last_error(m.p, (*C.char)(unsafe.Pointer(&buf[0])), C.uint64_t(len(buf)))
	if int(n) >= len(buf) {
		buf = make([]byte, int(n)+1)
		n = C.vae_copy_last_error(m.p, (*C.char)(unsafe.Pointer(&buf[0])), C.uint64_t(len(buf)))
		if int(n) >= len(buf) {
			n = C.uint64_t(len(buf) - 1)
		}
	}
	return &Error{Status: Status(rc), Message: string(buf[:n])}
}

// acquire read-locks the model; the caller must call m.mu.RUnlock().
func (m *Model) acquire() error {
	m.mu.RLock()
	if m.p == nil {
		m.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// LatentChannels is 4 (SD1.x/2.x/SDXL) or 16 (SD3/Flux.1); 0 after Close.
func (m *Model) LatentChannels() int {
	if m.acquire() != nil {
		return 0
	}
	defer m.mu.RUnlock()
	return int(C.vae_latent_channels(m.p))
}

// DownsampleFactor is image side / latent side (8 for every released model).
func (m *Model) DownsampleFactor() int {
	if m.acquire() != nil {
		return 0
	}
	defer m.mu.RUnlock()
	return int(C.vae_downsample_factor(m.p))
}

// ScalingFactor and ShiftFactor give the latent scaling:
// scaled = (raw - shift) * scale.
func (m *Model) ScalingFactor() float32 {
	if m.acquire() != nil {
		return 0
	}
	defer m.mu.RUnlock()
	return float32(C.vae_scaling_factor(m.p))
}

func (m *Model) ShiftFactor() float32 {
	if m.acquire() != nil {
		return 0
	}
	defer m.mu.RUnlock()
	return float32(C.vae_shift_factor(m.p))
}

// Info reports the model's architecture.
func (m *Model) Info() (Info, error) {
	if err := m.acquire(); err != nil {
		return Info{}, err
	}
	defer m.mu.RUnlock()
	var ci C.vae_model_info
	ci.size = C.uint32_t(unsafe.Sizeof(ci))
	if rc := C.vae_get_info(m.p, &ci); rc != C.VAE_OK {
		return Info{}, m.lastError(rc)
	}
	levels := int(ci.levels)
	if levels < 0 || levels > C.VAE_MAX_LEVELS {
		levels = 0
	}
	info := Info{
		LatentChannels:   int(ci.latent_channels),
		BlockOutChannels: make([]int, levels),
		LayersPerBlock:   int(ci.layers_per_block),
		NormNumGroups:    int(ci.norm_num_groups),
		DownsampleFactor: int(ci.downsample_factor),
		HasQuantConv:     ci.has_quant_conv != 0,
		HasPostQuantConv: ci.has_post_quant_conv != 0,
		WeightDtype:      int(ci.weight_dtype),
		HasEncoder:       ci.has_encoder != 0,
		HasDecoder:       ci.has_decoder != 0,
		ScalingFactor:    float32(ci.scaling_factor),
		ShiftFactor:      float32(ci.shift_factor),
		NormEps:          float32(ci.norm_eps),
		ParameterCount:   uint64(ci.parameter_count),
		Family:           C.GoString(&ci.family[0]),
		Naming:           C.GoString(&ci.naming[0]),
	}
	for i := range info.BlockOutChannels {
		info.BlockOutChannels[i] = int(ci.block_out_channels[i])
	}
	return info, nil
}

// int32s converts dimensions for C, refusing what does not fit.
func int32s(names []string, vals ...int) ([]C.int32_t, error) {
	out := make([]C.int32_t, len(vals))
	for i, v := range vals {
		if v < 0 || v > math.MaxInt32 {
			return nil, invalid("%s = %d does not fit in int32", names[i], v)
		}
		out[i] = C.int32_t(v)
	}
	return out, nil
}

// checkLen checks an input tensor's length against its shape, exactly: the C
// functions read the whole tensor and have no capacity to check it against.
func checkLen(what string, got int, dims ...int) error {
	want := 1
	for _, d := range dims {
		if d < 0 || (d != 0 && want > math.MaxInt/d) {
			return invalid("%s of shape %v is too large", what, dims)
		}
		want *= d
	}
	if got != want {
		return invalid("%s has %d floats but shape %v needs %d", what, got, dims, want)
	}
	return nil
}

func runOpts(opts *RunOptions) (C.vae_run_options, error) {
	// Filled as vae_run_options_init(&o, sizeof o) would: see LoadWithOptions.
	var o C.vae_run_options
	o.size = C.uint32_t(unsafe.Sizeof(o))
	if opts != nil {
		if opts.Threads < 0 || opts.Threads > math.MaxInt32 {
			return o, invalid("RunOptions.Threads is %d", opts.Threads)
		}
		o.flags = C.uint32_t(opts.Flags)
		o.n_threads = C.int32_t(opts.Threads)
		o.seed = C.uint64_t(opts.Seed)
	}
	return o, nil
}

// input is the pointer to an input slice (nil for an empty one, which
// checkLen has matched with a zero dimension that the library refuses).
func input(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

// floats is the pointer and capacity of an output slice (nil for an empty one).
func floats(s []float32) (*C.float, C.uint64_t) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.float)(unsafe.Pointer(&s[0])), C.uint64_t(len(s))
}

func (m *Model) size(query func(*C.vae_model, C.int32_t, C.int32_t, C.int32_t, *C.uint64_t) C.int32_t,
	names []string, n, a, b int) (int, error) {
	if err := m.acquire(); err != nil {
		return 0, err
	}
	defer m.mu.RUnlock()
	d, err := int32s(names, n, a, b)
	if err != nil {
		return 0, err
	}
	var count C.uint64_t
	if rc := query(m.p, d[0], d[1], d[2], &count); rc != C.VAE_OK {
		return 0, m.lastError(rc)
	}
	if uint64(count) > uint64(math.MaxInt) {
		return 0, invalid("%d floats do not fit in an int", uint64(count))
	}
	return int(count), nil
}

// EncodedSize is the number of floats in the latent of an n x 3 x height x
// width image.
func (m *Model) EncodedSize(n, height, width int) (int, error) {
	return m.size(func(p *C.vae_model, n, h, w C.int32_t, c *C.uint64_t) C.int32_t {
		return C.vae_encoded_size(p, n, h, w, c)
	}, []string{"n", "height", "width"}, n, height, width)
}

// DecodedSize is the number of floats in the image of an n x C x lheight x
// lwidth latent.
func (m *Model) DecodedSize(n, lheight, lwidth int) (int, error) {
	return m.size(func(p *C.vae_model, n, h, w C.int32_t, c *C.uint64_t) C.int32_t {
		return C.vae_decoded_size(p, n, h, w, c)
	}, []string{"n", "lheight", "lwidth"}, n, lheight, lwidth)
}

// Encode encodes n images (n x 3 x height x width, values in [-1, 1]) into
// latent (n x C x height/f x width/f), which must hold EncodedSize floats.
// The latent is the posterior mean (or a sample with FlagSample), scaled
// unless FlagRawLatent.
func (m *Model) Encode(image []float32, n, height, width int, latent []float32, opts *RunOptions) error {
	return m.encode(false, image, n, height, width, latent, opts)
}

// EncodeMoments writes the raw posterior moments, n x 2C x height/f x
// width/f: the first C channels the mean, the last C the log-variance.
// moments must hold 2*EncodedSize floats; the flags of opts do not apply.
func (m *Model) EncodeMoments(image []float32, n, height, width int, moments []float32, opts *RunOptions) error {
	return m.encode(true, image, n, height, width, moments, opts)
}

func (m *Model) encode(moments bool, image []float32, n, height, width int, out []float32, opts *RunOptions) error {
	if err := m.acquire(); err != nil {
		return err
	}
	defer m.mu.RUnlock()
	if err := checkLen("image", len(image), n, 3, height, width); err != nil {
		return err
	}
	d, err := int32s([]string{"n", "height", "width"}, n, height, width)
	if err != nil {
		return err
	}
	o, err := runOpts(opts)
	if err != nil {
		return err
	}
	in := input(image)
	ptr, capacity := floats(out)
	var rc C.int32_t
	if moments {
		rc = C.vae_encode_moments(m.p, in, d[0], d[1], d[2], ptr, capacity, &o)
	} else {
		rc = C.vae_encode(m.p, in, d[0], d[1], d[2], ptr, capacity, &o)
	}
	if rc != C.VAE_OK {
		return m.lastError(rc)
	}
	return nil
}

// Decode decodes n latents (n x C x lheight x lwidth; scaled unless
// FlagRawLatent) into image (n x 3 x lheight*f x lwidth*f), which must hold
// DecodedSize floats. The image is the raw decoder output, not clamped.
func (m *Model) Decode(latent []float32, n, lheight, lwidth int, image []float32, opts *RunOptions) error {
	if err := m.acquire(); err != nil {
		return err
	}
	defer m.mu.RUnlock()
	channels := int(C.vae_latent_channels(m.p))
	if err := checkLen("latent", len(latent), n, channels, lheight, lwidth); err != nil {
		return err
	}
	d, err := int32s([]string{"n", "lheight", "lwidth"}, n, lheight, lwidth)
	if err != nil {
		return err
	}
	o, err := runOpts(opts)
	if err != nil {
		return err
	}
	ptr, capacity := floats(image)
	rc := C.vae_decode(m.p, input(latent), d[0], d[1], d[2], ptr, capacity, &o)
	if rc != C.VAE_OK {
		return m.lastError(rc)
	}
	return nil
}
