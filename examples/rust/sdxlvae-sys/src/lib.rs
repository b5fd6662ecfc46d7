//! Raw declarations of libsdxlvae's C API (`include/sdxlvae.h`, ABI 1),
//! written by hand and complete: every `VAE_API` function (the API proper,
//! the constants' function twins and `vae_get_api`), the public structs
//! (`vae_load_options`, `vae_run_options` with its progress callback and
//! memory budget, `vae_model_info`, `vae_memory_estimate` and the `vae_api`
//! table), the `vae_progress_fn` type and
//! every integer constant. The tests check that against the installed header:
//! a constant, function or `vae_api` member of the header that is not bound
//! here fails them.
//!
//! Everything here is `unsafe` to call and follows the C rules; see the
//! header and `docs/abi.md` for the contract. The `sdxlvae` crate wraps it in
//! a safe API.
//!
//! Things that differ from a literal transcription, on purpose:
//!
//! - The option structs implement `Default`, which fills them as the
//!   `*_init()` functions do, with `size` set to the size of *this* Rust
//!   struct. `vae_load_options_init(&mut o, size_of_val(&o) as u32)` /
//!   `vae_run_options_init(...)` do the same: they take the caller's struct
//!   size and zero exactly that many bytes (every default is zero), so
//!   either way nothing is written past a struct declared here, whatever
//!   release of libsdxlvae.so.1 is loaded.
//! - Function pointers (`vae_progress_fn`, the members of `vae_api`) are
//!   `Option<unsafe extern "C" fn ...>`, so that NULL is `None`.
//! - `VAE_VERSION_*` are the release these declarations were written against
//!   (0.2.0); `vae_version_number()` says which release is loaded.

#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::mem::size_of;
use std::os::raw::{c_char, c_void};

// ---- Versions ---------------------------------------------------------------

pub const VAE_VERSION_MAJOR: u32 = 0;
pub const VAE_VERSION_MINOR: u32 = 2;
pub const VAE_VERSION_PATCH: u32 = 0;
/// The ABI generation: the N of the SONAME libsdxlvae.so.N.
pub const VAE_ABI_VERSION: u32 = 1;
pub const VAE_VERSION_NUMBER: u32 =
    VAE_VERSION_MAJOR * 10000 + VAE_VERSION_MINOR * 100 + VAE_VERSION_PATCH;

// ---- Status codes -----------------------------------------------------------

pub const VAE_OK: i32 = 0;
pub const VAE_ERR_INVALID_ARGUMENT: i32 = -1;
pub const VAE_ERR_IO: i32 = -2;
pub const VAE_ERR_FORMAT: i32 = -3;
pub const VAE_ERR_UNSUPPORTED: i32 = -4;
pub const VAE_ERR_MODEL: i32 = -5;
pub const VAE_ERR_NO_MEMORY: i32 = -6;
pub const VAE_ERR_BUFFER_TOO_SMALL: i32 = -7;
pub const VAE_ERR_INTERNAL: i32 = -8;
/// The progress callback asked to stop.
pub const VAE_ERR_CANCELLED: i32 = -9;

// ---- Load flags (0.2.0) -----------------------------------------------------

/// Skip the encoder's weights: a decode-only handle.
pub const VAE_LOAD_NO_ENCODER: u32 = 1 << 0;
/// Skip the decoder's weights: an encode-only handle.
pub const VAE_LOAD_NO_DECODER: u32 = 1 << 1;
/// Keep the weights in 16 bits in memory (F32 files rounded to F16).
pub const VAE_LOAD_HALF_WEIGHTS: u32 = 1 << 2;

// ---- Model info -------------------------------------------------------------

pub const VAE_DTYPE_F32: i32 = 0;
pub const VAE_DTYPE_F16: i32 = 1;
pub const VAE_DTYPE_BF16: i32 = 2;
pub const VAE_DTYPE_MIXED: i32 = 3;

pub const VAE_MAX_LEVELS: usize = 8;

// ---- Run flags --------------------------------------------------------------

/// Latents are raw VAE space instead of the scaled space diffusion models use.
pub const VAE_FLAG_RAW_LATENT: u32 = 1 << 0;
/// vae_encode draws a seeded sample of the posterior instead of its mean.
pub const VAE_FLAG_SAMPLE: u32 = 1 << 1;
/// Every convolution in its direct form (no Winograd).
pub const VAE_FLAG_DIRECT_CONV: u32 = 1 << 2;
/// (0.2.0) Run tiled even when the untiled estimate fits max_memory.
pub const VAE_FLAG_TILED: u32 = 1 << 3;
/// (0.2.0) Wrap-around padding: the output tiles seamlessly.
pub const VAE_FLAG_CIRCULAR: u32 = 1 << 4;

// ---- Progress ---------------------------------------------------------------

/// The `stage` a progress callback gets from vae_encode / vae_encode_moments.
pub const VAE_STAGE_ENCODE: i32 = 1;
/// The `stage` a progress callback gets from vae_decode.
pub const VAE_STAGE_DECODE: i32 = 2;

/// `vae_progress_fn`: called on the thread that made the run call, with
/// fraction 0 first, after every layer, and 1.0 last on success. Return 0 to
/// go on; anything else cancels the call with VAE_ERR_CANCELLED. A Rust
/// callback must not unwind out of it (catch panics).
pub type vae_progress_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, fraction: f32, stage: i32) -> i32>;

// ---- Types ------------------------------------------------------------------

/// The opaque model handle (`vae_model`); only ever used behind a pointer.
/// The marker makes it !Send, !Sync and !Unpin, as the nomicon advises for
/// opaque FFI types: thread-safety is a promise of the wrapper, not of a
/// raw pointer.
#[repr(C)]
pub struct vae_model {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vae_load_options {
    /// sizeof(vae_load_options) as the caller knows it.
    pub size: u32,
    /// VAE_LOAD_* bits (0.2.0; 0.1.0 required 0).
    pub flags: u32,
    /// Default thread count for calls on the handle; 0 = every CPU.
    pub n_threads: i32,
    /// Must be 0.
    pub reserved: i32,
    /// A config.json to use instead of the one beside the weights; NULL = look.
    pub config_path: *const c_char,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vae_run_options {
    /// sizeof(vae_run_options) as the caller knows it.
    pub size: u32,
    /// VAE_FLAG_* bits.
    pub flags: u32,
    /// 0 = the handle's default.
    pub n_threads: i32,
    /// Must be 0.
    pub reserved: i32,
    /// With VAE_FLAG_SAMPLE: the noise seed.
    pub seed: u64,
    /// None (NULL) = no progress reports.
    pub progress: vae_progress_fn,
    /// Passed to `progress` as its first argument.
    pub progress_user: *mut c_void,
    /// (0.2.0) Bytes of working memory one call may use (not the weights nor
    /// the caller's buffers); a call that needs more runs tiled. 0 = half the
    /// physical memory.
    pub max_memory: u64,
    /// (0.2.0) Tile side in image pixels, a multiple of the downsample
    /// factor: run tiled with this tile. 0 = tile only when needed.
    pub tile: i32,
    /// Must be 0.
    pub reserved2: i32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vae_model_info {
    /// Set by the caller to sizeof(vae_model_info); the library stores back
    /// the number of bytes it filled.
    pub size: u32,
    pub latent_channels: i32,
    /// Entries used in block_out_channels.
    pub levels: i32,
    pub block_out_channels: [i32; VAE_MAX_LEVELS],
    pub layers_per_block: i32,
    pub norm_num_groups: i32,
    pub downsample_factor: i32,
    pub has_quant_conv: i32,
    pub has_post_quant_conv: i32,
    /// VAE_DTYPE_* as stored in the file.
    pub weight_dtype: i32,
    pub has_encoder: i32,
    pub has_decoder: i32,
    pub scaling_factor: f32,
    pub shift_factor: f32,
    pub norm_eps: f32,
    pub parameter_count: u64,
    /// NUL-terminated: "SDXL", "SD1.x/SD2.x", "SD3/Flux.1", ...
    pub family: [c_char; 32],
    /// NUL-terminated: "ldm", "diffusers" or "legacy" (old diffusers attention names).
    pub naming: [c_char; 16],
}

/// What vae_estimate_memory() says about one call, before any work (0.2.0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vae_memory_estimate {
    /// Set by the caller to sizeof(vae_memory_estimate).
    pub size: u32,
    /// 1: a call with these options fits the budget; 0: it would fail with
    /// VAE_ERR_NO_MEMORY.
    pub fits: i32,
    /// 1: it would run tiled...
    pub tiled: i32,
    /// ... with this tile side (image pixels); 0 when untiled.
    pub tile: i32,
    /// The budget the options resolve to.
    pub budget_bytes: u64,
    /// Working memory of an untiled call.
    pub untiled_bytes: u64,
    /// Working memory of the tiled call these options would make.
    pub tiled_bytes: u64,
    /// The handle's weights (already allocated).
    pub weights_bytes: u64,
    /// The caller's input and output of one image.
    pub io_bytes: u64,
    /// Arithmetic of that call / of an untiled call.
    pub work_ratio: f64,
}

impl Default for vae_load_options {
    /// The defaults of vae_load_options_init(), sized for this struct.
    fn default() -> Self {
        vae_load_options {
            size: size_of::<Self>() as u32,
            flags: 0,
            n_threads: 0,
            reserved: 0,
            config_path: std::ptr::null(),
        }
    }
}

impl Default for vae_run_options {
    /// The defaults of vae_run_options_init(), sized for this struct.
    fn default() -> Self {
        vae_run_options {
            size: size_of::<Self>() as u32,
            flags: 0,
            n_threads: 0,
            reserved: 0,
            seed: 0,
            progress: None,
            progress_user: std::ptr::null_mut(),
            max_memory: 0,
            tile: 0,
            reserved2: 0,
        }
    }
}

impl Default for vae_memory_estimate {
    /// Zeroed, with `size` set, ready for vae_estimate_memory().
    fn default() -> Self {
        vae_memory_estimate {
            size: size_of::<Self>() as u32,
            fits: 0,
            tiled: 0,
            tile: 0,
            budget_bytes: 0,
            untiled_bytes: 0,
            tiled_bytes: 0,
            weights_bytes: 0,
            io_bytes: 0,
            work_ratio: 0.0,
        }
    }
}

impl Default for vae_model_info {
    /// Zeroed, with `size` set, ready for vae_get_info().
    fn default() -> Self {
        vae_model_info {
            size: size_of::<Self>() as u32,
            latent_channels: 0,
            levels: 0,
            block_out_channels: [0; VAE_MAX_LEVELS],
            layers_per_block: 0,
            norm_num_groups: 0,
            downsample_factor: 0,
            has_quant_conv: 0,
            has_post_quant_conv: 0,
            weight_dtype: 0,
            has_encoder: 0,
            has_decoder: 0,
            scaling_factor: 0.0,
            shift_factor: 0.0,
            norm_eps: 0.0,
            parameter_count: 0,
            family: [0; 32],
            naming: [0; 16],
        }
    }
}

/// The table `vae_get_api()` returns: every public function as a pointer, in
/// exactly the member order of `struct vae_api` in sdxlvae.h. It only grows at
/// its end: use a member only when its offset + 8 <= `size` (the table of an
/// older library may be shorter than this struct). Never build or free one.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vae_api {
    /// Bytes of this table in the loaded library.
    pub size: u32,
    /// VAE_ABI_VERSION of the loaded library.
    pub abi_major: u32,
    /// vae_version_number() of the loaded library.
    pub version_number: u32,
    /// 0.
    pub reserved: u32,
    // Release 0.1.0 (version node SDXLVAE_1.0).
    pub vae_version_number: Option<unsafe extern "C" fn() -> u32>,
    pub vae_version_string: Option<unsafe extern "C" fn() -> *const c_char>,
    pub vae_abi_version: Option<unsafe extern "C" fn() -> u32>,
    pub vae_strerror: Option<unsafe extern "C" fn(status: i32) -> *const c_char>,
    pub vae_load_options_init: Option<unsafe extern "C" fn(opts: *mut vae_load_options, size: u32)>,
    pub vae_load: Option<
        unsafe extern "C" fn(
            path: *const c_char,
            opts: *const vae_load_options,
            out: *mut *mut vae_model,
        ) -> i32,
    >,
    pub vae_free: Option<unsafe extern "C" fn(model: *mut vae_model)>,
    pub vae_latent_channels: Option<unsafe extern "C" fn(model: *const vae_model) -> i32>,
    pub vae_downsample_factor: Option<unsafe extern "C" fn(model: *const vae_model) -> i32>,
    pub vae_scaling_factor: Option<unsafe extern "C" fn(model: *const vae_model) -> f32>,
    pub vae_shift_factor: Option<unsafe extern "C" fn(model: *const vae_model) -> f32>,
    pub vae_get_info:
        Option<unsafe extern "C" fn(model: *const vae_model, info: *mut vae_model_info) -> i32>,
    pub vae_run_options_init: Option<unsafe extern "C" fn(opts: *mut vae_run_options, size: u32)>,
    pub vae_encoded_size: Option<
        unsafe extern "C" fn(
            model: *const vae_model,
            n: i32,
            height: i32,
            width: i32,
            n_floats: *mut u64,
        ) -> i32,
    >,
    pub vae_decoded_size: Option<
        unsafe extern "C" fn(
            model: *const vae_model,
            n: i32,
            lheight: i32,
            lwidth: i32,
            n_floats: *mut u64,
        ) -> i32,
    >,
    pub vae_encode: Option<
        unsafe extern "C" fn(
            model: *const vae_model,
            image: *const f32,
            n: i32,
            height: i32,
            width: i32,
            latent: *mut f32,
            latent_capacity: u64,
            opts: *const vae_run_options,
        ) -> i32,
    >,
    pub vae_encode_moments: Option<
        unsafe extern "C" fn(
            model: *const vae_model,
            image: *const f32,
            n: i32,
            height: i32,
            width: i32,
            moments: *mut f32,
            moments_capacity: u64,
            opts: *const vae_run_options,
        ) -> i32,
    >,
    pub vae_decode: Option<
        unsafe extern "C" fn(
            model: *const vae_model,
            latent: *const f32,
            n: i32,
            lheight: i32,
            lwidth: i32,
            image: *mut f32,
            image_capacity: u64,
            opts: *const vae_run_options,
        ) -> i32,
    >,
    pub vae_last_error: Option<unsafe extern "C" fn(model: *const vae_model) -> *const c_char>,
    pub vae_copy_last_error:
        Option<unsafe extern "C" fn(model: *const vae_model, buf: *mut c_char, cap: u64) -> u64>,
    // The constants' function twins.
    pub vae_ok: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_invalid_argument: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_io: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_format: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_unsupported: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_model: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_no_memory: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_buffer_too_small: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_internal: Option<unsafe extern "C" fn() -> i32>,
    pub vae_err_cancelled: Option<unsafe extern "C" fn() -> i32>,
    pub vae_flag_raw_latent: Option<unsafe extern "C" fn() -> u32>,
    pub vae_flag_sample: Option<unsafe extern "C" fn() -> u32>,
    pub vae_flag_direct_conv: Option<unsafe extern "C" fn() -> u32>,
    pub vae_dtype_f32: Option<unsafe extern "C" fn() -> i32>,
    pub vae_dtype_f16: Option<unsafe extern "C" fn() -> i32>,
    pub vae_dtype_bf16: Option<unsafe extern "C" fn() -> i32>,
    pub vae_dtype_mixed: Option<unsafe extern "C" fn() -> i32>,
    pub vae_max_levels: Option<unsafe extern "C" fn() -> i32>,
    pub vae_stage_encode: Option<unsafe extern "C" fn() -> i32>,
    pub vae_stage_decode: Option<unsafe extern "C" fn() -> i32>,
    pub vae_load_options_size: Option<unsafe extern "C" fn() -> u32>,
    pub vae_run_options_size: Option<unsafe extern "C" fn() -> u32>,
    pub vae_model_info_size: Option<unsafe extern "C" fn() -> u32>,
    // Release 0.2.0 (version node SDXLVAE_1.1).
    pub vae_estimate_memory: Option<
        unsafe extern "C" fn(
            model: *const vae_model,
            stage: i32,
            height: i32,
            width: i32,
            opts: *const vae_run_options,
            est: *mut vae_memory_estimate,
        ) -> i32,
    >,
    pub vae_load_no_encoder: Option<unsafe extern "C" fn() -> u32>,
    pub vae_load_no_decoder: Option<unsafe extern "C" fn() -> u32>,
    pub vae_load_half_weights: Option<unsafe extern "C" fn() -> u32>,
    pub vae_flag_tiled: Option<unsafe extern "C" fn() -> u32>,
    pub vae_flag_circular: Option<unsafe extern "C" fn() -> u32>,
    pub vae_memory_estimate_size: Option<unsafe extern "C" fn() -> u32>,
}

// The sizes docs/abi.md gives for 64-bit targets; a mistake in the
// declarations above fails the build here rather than at run time.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<vae_load_options>() == 24);
    assert!(size_of::<vae_run_options>() == 56);
    assert!(size_of::<vae_model_info>() == 144);
    assert!(size_of::<vae_memory_estimate>() == 64);
    assert!(size_of::<vae_api>() == 416);
};

// ---- Functions --------------------------------------------------------------

extern "C" {
    /// The release of the library actually loaded, as VAE_VERSION_NUMBER.
    pub fn vae_version_number() -> u32;
    /// The same as a static string, e.g. "0.1.0".
    pub fn vae_version_string() -> *const c_char;
    /// The ABI generation of the library actually loaded.
    pub fn vae_abi_version() -> u32;

    /// A static English name for a status code; never NULL.
    pub fn vae_strerror(status: i32) -> *const c_char;

    /// Zeroes the first `size` bytes of *opts (pass the size of the struct
    /// declared here) and sets opts.size = size: the same as Default.
    pub fn vae_load_options_init(opts: *mut vae_load_options, size: u32);
    /// On failure *out is NULL and vae_last_error(NULL) on the same thread
    /// says why.
    pub fn vae_load(
        path: *const c_char,
        opts: *const vae_load_options,
        out: *mut *mut vae_model,
    ) -> i32;
    /// NULL is allowed. No call on the handle may be running.
    pub fn vae_free(model: *mut vae_model);

    pub fn vae_latent_channels(model: *const vae_model) -> i32;
    pub fn vae_downsample_factor(model: *const vae_model) -> i32;
    pub fn vae_scaling_factor(model: *const vae_model) -> f32;
    pub fn vae_shift_factor(model: *const vae_model) -> f32;
    /// Set info->size first; bytes past what the library knows are untouched.
    pub fn vae_get_info(model: *const vae_model, info: *mut vae_model_info) -> i32;

    /// Zeroes the first `size` bytes of *opts (pass the size of the struct
    /// declared here) and sets opts.size = size: the same as Default.
    pub fn vae_run_options_init(opts: *mut vae_run_options, size: u32);

    pub fn vae_encoded_size(
        model: *const vae_model,
        n: i32,
        height: i32,
        width: i32,
        n_floats: *mut u64,
    ) -> i32;
    pub fn vae_decoded_size(
        model: *const vae_model,
        n: i32,
        lheight: i32,
        lwidth: i32,
        n_floats: *mut u64,
    ) -> i32;

    /// Reads n*3*height*width floats from `image` (there is no input
    /// capacity: the caller must make sure they are there).
    pub fn vae_encode(
        model: *const vae_model,
        image: *const f32,
        n: i32,
        height: i32,
        width: i32,
        latent: *mut f32,
        latent_capacity: u64,
        opts: *const vae_run_options,
    ) -> i32;
    /// Needs twice the capacity of vae_encoded_size().
    pub fn vae_encode_moments(
        model: *const vae_model,
        image: *const f32,
        n: i32,
        height: i32,
        width: i32,
        moments: *mut f32,
        moments_capacity: u64,
        opts: *const vae_run_options,
    ) -> i32;
    /// Reads n*C*lheight*lwidth floats from `latent`.
    pub fn vae_decode(
        model: *const vae_model,
        latent: *const f32,
        n: i32,
        lheight: i32,
        lwidth: i32,
        image: *mut f32,
        image_capacity: u64,
        opts: *const vae_run_options,
    ) -> i32;

    /// Thread-local copy, valid until this thread's next call into the
    /// library; "" when nothing failed.
    pub fn vae_last_error(model: *const vae_model) -> *const c_char;
    /// Returns the whole message's length, as snprintf does.
    pub fn vae_copy_last_error(model: *const vae_model, buf: *mut c_char, cap: u64) -> u64;
    // ---- Constants as functions: each returns the constant of its name. ----
    pub fn vae_ok() -> i32;
    pub fn vae_err_invalid_argument() -> i32;
    pub fn vae_err_io() -> i32;
    pub fn vae_err_format() -> i32;
    pub fn vae_err_unsupported() -> i32;
    pub fn vae_err_model() -> i32;
    pub fn vae_err_no_memory() -> i32;
    pub fn vae_err_buffer_too_small() -> i32;
    pub fn vae_err_internal() -> i32;
    pub fn vae_err_cancelled() -> i32;
    pub fn vae_flag_raw_latent() -> u32;
    pub fn vae_flag_sample() -> u32;
    pub fn vae_flag_direct_conv() -> u32;
    pub fn vae_dtype_f32() -> i32;
    pub fn vae_dtype_f16() -> i32;
    pub fn vae_dtype_bf16() -> i32;
    pub fn vae_dtype_mixed() -> i32;
    pub fn vae_max_levels() -> i32;
    pub fn vae_stage_encode() -> i32;
    pub fn vae_stage_decode() -> i32;
    /// sizeof(vae_load_options) as the loaded library knows it.
    pub fn vae_load_options_size() -> u32;
    /// sizeof(vae_run_options) as the loaded library knows it.
    pub fn vae_run_options_size() -> u32;
    /// sizeof(vae_model_info) as the loaded library knows it.
    pub fn vae_model_info_size() -> u32;

    // ---- Memory (0.2.0, version node SDXLVAE_1.1) ----
    /// How much memory an encode (VAE_STAGE_ENCODE) or decode
    /// (VAE_STAGE_DECODE) of one height x width image (image pixels) takes
    /// with `opts` (NULL = defaults), untiled and tiled, and which would run.
    /// Set est->size first.
    pub fn vae_estimate_memory(
        model: *const vae_model,
        stage: i32,
        height: i32,
        width: i32,
        opts: *const vae_run_options,
        est: *mut vae_memory_estimate,
    ) -> i32;
    pub fn vae_load_no_encoder() -> u32;
    pub fn vae_load_no_decoder() -> u32;
    pub fn vae_load_half_weights() -> u32;
    pub fn vae_flag_tiled() -> u32;
    pub fn vae_flag_circular() -> u32;
    /// sizeof(vae_memory_estimate) as the loaded library knows it.
    pub fn vae_memory_estimate_size() -> u32;

    // ---- One entry point for dlopen ----
    /// The static, read-only table of the loaded library for ABI generation
    /// `abi_major` (pass VAE_ABI_VERSION), or NULL. Never free it.
    pub fn vae_get_api(abi_major: u32) -> *const vae_api;
}


/// Integer `#define`s and `VAE_API` function names read from the installed
/// sdxlvae.h by build.rs, for the tests that check this file against it.
#[doc(hidden)]
pub mod header {
    include!(concat!(env!("OUT_DIR"), "/header.rs"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::mem::MaybeUninit;
    use std::ptr::addr_of;

    /// Every constant declared above, by its C name.
    const BOUND: &[(&str, i64)] = &[
        ("VAE_ABI_VERSION", VAE_ABI_VERSION as i64),
        ("VAE_OK", VAE_OK as i64),
        ("VAE_ERR_INVALID_ARGUMENT", VAE_ERR_INVALID_ARGUMENT as i64),
        ("VAE_ERR_IO", VAE_ERR_IO as i64),
        ("VAE_ERR_FORMAT", VAE_ERR_FORMAT as i64),
        ("VAE_ERR_UNSUPPORTED", VAE_ERR_UNSUPPORTED as i64),
        ("VAE_ERR_MODEL", VAE_ERR_MODEL as i64),
        ("VAE_ERR_NO_MEMORY", VAE_ERR_NO_MEMORY as i64),
        ("VAE_ERR_BUFFER_TOO_SMALL", VAE_ERR_BUFFER_TOO_SMALL as i64),
        ("VAE_ERR_INTERNAL", VAE_ERR_INTERNAL as i64),
        ("VAE_ERR_CANCELLED", VAE_ERR_CANCELLED as i64),
        ("VAE_DTYPE_F32", VAE_DTYPE_F32 as i64),
        ("VAE_DTYPE_F16", VAE_DTYPE_F16 as i64),
        ("VAE_DTYPE_BF16", VAE_DTYPE_BF16 as i64),
        ("VAE_DTYPE_MIXED", VAE_DTYPE_MIXED as i64),
        ("VAE_MAX_LEVELS", VAE_MAX_LEVELS as i64),
        ("VAE_FLAG_RAW_LATENT", VAE_FLAG_RAW_LATENT as i64),
        ("VAE_FLAG_SAMPLE", VAE_FLAG_SAMPLE as i64),
        ("VAE_FLAG_DIRECT_CONV", VAE_FLAG_DIRECT_CONV as i64),
        ("VAE_FLAG_TILED", VAE_FLAG_TILED as i64),
        ("VAE_FLAG_CIRCULAR", VAE_FLAG_CIRCULAR as i64),
        ("VAE_LOAD_NO_ENCODER", VAE_LOAD_NO_ENCODER as i64),
        ("VAE_LOAD_NO_DECODER", VAE_LOAD_NO_DECODER as i64),
        ("VAE_LOAD_HALF_WEIGHTS", VAE_LOAD_HALF_WEIGHTS as i64),
        ("VAE_STAGE_ENCODE", VAE_STAGE_ENCODE as i64),
        ("VAE_STAGE_DECODE", VAE_STAGE_DECODE as i64),
    ];

    /// Declared too, but as the release these declarations were written
    /// for: the header's values change with every release, so only their
    /// presence is checked.
    const BOUND_RELEASE: &[(&str, i64)] = &[
        ("VAE_VERSION_MAJOR", VAE_VERSION_MAJOR as i64),
        ("VAE_VERSION_MINOR", VAE_VERSION_MINOR as i64),
        ("VAE_VERSION_PATCH", VAE_VERSION_PATCH as i64),
        ("VAE_VERSION_NUMBER", VAE_VERSION_NUMBER as i64),
    ];

    /// Every function declared above, by name and address: naming a function
    /// here that the extern block lacks does not compile.
    macro_rules! functions {
        ($($f:ident),* $(,)?) => {
            vec![$((stringify!($f), $f as *const () as usize)),*]
        };
    }

    fn bound_functions() -> Vec<(&'static str, usize)> {
        functions![
            vae_version_number,
            vae_version_string,
            vae_abi_version,
            vae_strerror,
            vae_load_options_init,
            vae_load,
            vae_free,
            vae_latent_channels,
            vae_downsample_factor,
            vae_scaling_factor,
            vae_shift_factor,
            vae_get_info,
            vae_run_options_init,
            vae_encoded_size,
            vae_decoded_size,
            vae_encode,
            vae_encode_moments,
            vae_decode,
            vae_last_error,
            vae_copy_last_error,
            vae_ok,
            vae_err_invalid_argument,
            vae_err_io,
            vae_err_format,
            vae_err_unsupported,
            vae_err_model,
            vae_err_no_memory,
            vae_err_buffer_too_small,
            vae_err_internal,
            vae_err_cancelled,
            vae_flag_raw_latent,
            vae_flag_sample,
            vae_flag_direct_conv,
            vae_dtype_f32,
            vae_dtype_f16,
            vae_dtype_bf16,
            vae_dtype_mixed,
            vae_max_levels,
            vae_stage_encode,
            vae_stage_decode,
            vae_load_options_size,
            vae_run_options_size,
            vae_model_info_size,
            vae_estimate_memory,
            vae_load_no_encoder,
            vae_load_no_decoder,
            vae_load_half_weights,
            vae_flag_tiled,
            vae_flag_circular,
            vae_memory_estimate_size,
            vae_get_api,
        ]
    }

    macro_rules! offset {
        ($ty:ty, $field:ident) => {{
            let u = MaybeUninit::<$ty>::uninit();
            let base = u.as_ptr();
            // SAFETY: addr_of! computes the address without reading.
            unsafe { (addr_of!((*base).$field) as usize) - (base as usize) }
        }};
    }

    /// Every member of vae_api declared above, in declaration order, with
    /// its offset: a member named here that the struct lacks does not compile.
    macro_rules! members {
        ($($m:ident),* $(,)?) => {
            vec![$((stringify!($m), offset!(vae_api, $m))),*]
        };
    }

    fn api_members() -> Vec<(&'static str, usize)> {
        let v = members![
            size,
            abi_major,
            version_number,
            reserved,
            vae_version_number,
            vae_version_string,
            vae_abi_version,
            vae_strerror,
            vae_load_options_init,
            vae_load,
            vae_free,
            vae_latent_channels,
            vae_downsample_factor,
            vae_scaling_factor,
            vae_shift_factor,
            vae_get_info,
            vae_run_options_init,
            vae_encoded_size,
            vae_decoded_size,
            vae_encode,
            vae_encode_moments,
            vae_decode,
            vae_last_error,
            vae_copy_last_error,
            vae_ok,
            vae_err_invalid_argument,
            vae_err_io,
            vae_err_format,
            vae_err_unsupported,
            vae_err_model,
            vae_err_no_memory,
            vae_err_buffer_too_small,
            vae_err_internal,
            vae_err_cancelled,
            vae_flag_raw_latent,
            vae_flag_sample,
            vae_flag_direct_conv,
            vae_dtype_f32,
            vae_dtype_f16,
            vae_dtype_bf16,
            vae_dtype_mixed,
            vae_max_levels,
            vae_stage_encode,
            vae_stage_decode,
            vae_load_options_size,
            vae_run_options_size,
            vae_model_info_size,
            vae_estimate_memory,
            vae_load_no_encoder,
            vae_load_no_decoder,
            vae_load_half_weights,
            vae_flag_tiled,
            vae_flag_circular,
            vae_memory_estimate_size,
        ];
        v
    }

    #[test]
    fn constants_match_the_installed_header() {
        if header::HEADER_PATH.is_none() {
            eprintln!("sdxlvae.h was not found at build time: skipped");
            return;
        }
        for &(name, value) in BOUND {
            let found = header::HEADER_DEFINES.iter().find(|(n, _)| *n == name);
            match found {
                Some(&(_, v)) => assert_eq!(v, value, "{} is {} in the header", name, v),
                None => panic!("{} is not in {:?}", name, header::HEADER_PATH),
            }
        }
        // Strict: every integer constant of the header must be bound here.
        let missing: Vec<&str> = header::HEADER_DEFINES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| {
                !BOUND.iter().any(|(b, _)| b == n) && !BOUND_RELEASE.iter().any(|(b, _)| b == n)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "constants of {:?} not bound by sdxlvae-sys: {:?}",
            header::HEADER_PATH,
            missing
        );
    }

    #[test]
    fn functions_match_the_installed_header() {
        if header::HEADER_PATH.is_none() {
            return;
        }
        let bound = bound_functions();
        for (name, addr) in &bound {
            assert_ne!(*addr, 0, "{}", name);
            assert!(
                header::HEADER_FUNCTIONS.contains(name),
                "{} is declared here but not in {:?}",
                name,
                header::HEADER_PATH
            );
        }
        // Strict: every VAE_API function of the header must be bound here.
        let missing: Vec<&str> = header::HEADER_FUNCTIONS
            .iter()
            .copied()
            .filter(|n| !bound.iter().any(|(b, _)| b == n))
            .collect();
        assert!(
            missing.is_empty(),
            "functions of {:?} not bound by sdxlvae-sys: {:?}",
            header::HEADER_PATH,
            missing
        );
    }

    #[test]
    fn vae_api_matches_the_installed_header() {
        let members = api_members();
        // The layout: four uint32, then one pointer per function from 16 on.
        for (i, (name, off)) in members.iter().enumerate() {
            let want = if i < 4 { 4 * i } else { 16 + 8 * (i - 4) };
            assert_eq!(*off, want, "offset of vae_api.{}", name);
        }
        assert_eq!(size_of::<vae_api>(), 16 + 8 * (members.len() - 4));
        if header::HEADER_PATH.is_none() {
            return;
        }
        // Exactly the members of the header's struct, in its order.
        let names: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, header::HEADER_API_MEMBERS, "struct vae_api members");
        // And the table holds every function of the header but vae_get_api:
        // release by release (it only grows at its end), each release's in
        // the order the header declares them.
        let release = |n: &str| {
            LATER_RELEASES.iter().position(|r| r.contains(&n)).map_or(0, |i| i + 1)
        };
        let mut functions: Vec<&str> = header::HEADER_FUNCTIONS
            .iter()
            .copied()
            .filter(|n| *n != "vae_get_api")
            .collect();
        functions.sort_by_key(|n| release(n)); // stable: keeps the header's order
        assert_eq!(&names[4..], &functions[..], "vae_api function members");
    }

    /// The functions each release after 0.1.0 (SDXLVAE_1.0) added: their
    /// vae_api members follow those of the release before.
    const LATER_RELEASES: &[&[&str]] = &[
        // 0.2.0, version node SDXLVAE_1.1
        &[
            "vae_estimate_memory",
            "vae_load_no_encoder",
            "vae_load_no_decoder",
            "vae_load_half_weights",
            "vae_flag_tiled",
            "vae_flag_circular",
            "vae_memory_estimate_size",
        ],
    ];

    #[test]
    fn constant_twins_return_the_constants() {
        unsafe {
            assert_eq!(vae_ok(), VAE_OK);
            assert_eq!(vae_err_invalid_argument(), VAE_ERR_INVALID_ARGUMENT);
            assert_eq!(vae_err_io(), VAE_ERR_IO);
            assert_eq!(vae_err_format(), VAE_ERR_FORMAT);
            assert_eq!(vae_err_unsupported(), VAE_ERR_UNSUPPORTED);
            assert_eq!(vae_err_model(), VAE_ERR_MODEL);
            assert_eq!(vae_err_no_memory(), VAE_ERR_NO_MEMORY);
            assert_eq!(vae_err_buffer_too_small(), VAE_ERR_BUFFER_TOO_SMALL);
            assert_eq!(vae_err_internal(), VAE_ERR_INTERNAL);
            assert_eq!(vae_err_cancelled(), VAE_ERR_CANCELLED);
            assert_eq!(vae_flag_raw_latent(), VAE_FLAG_RAW_LATENT);
            assert_eq!(vae_flag_sample(), VAE_FLAG_SAMPLE);
            assert_eq!(vae_flag_direct_conv(), VAE_FLAG_DIRECT_CONV);
            assert_eq!(vae_dtype_f32(), VAE_DTYPE_F32);
            assert_eq!(vae_dtype_f16(), VAE_DTYPE_F16);
            assert_eq!(vae_dtype_bf16(), VAE_DTYPE_BF16);
            assert_eq!(vae_dtype_mixed(), VAE_DTYPE_MIXED);
            assert_eq!(vae_max_levels() as usize, VAE_MAX_LEVELS);
            assert_eq!(vae_stage_encode(), VAE_STAGE_ENCODE);
            assert_eq!(vae_stage_decode(), VAE_STAGE_DECODE);
            assert_eq!(vae_load_no_encoder(), VAE_LOAD_NO_ENCODER);
            assert_eq!(vae_load_no_decoder(), VAE_LOAD_NO_DECODER);
            assert_eq!(vae_load_half_weights(), VAE_LOAD_HALF_WEIGHTS);
            assert_eq!(vae_flag_tiled(), VAE_FLAG_TILED);
            assert_eq!(vae_flag_circular(), VAE_FLAG_CIRCULAR);
            // This crate was written for the current release: the structs
            // declared here are exactly the library's.
            assert_eq!(vae_load_options_size() as usize, size_of::<vae_load_options>());
            assert_eq!(vae_run_options_size() as usize, size_of::<vae_run_options>());
            assert_eq!(vae_model_info_size() as usize, size_of::<vae_model_info>());
            assert_eq!(vae_memory_estimate_size() as usize, size_of::<vae_memory_estimate>());
        }
    }

    #[test]
    fn vae_get_api_gives_the_table() {
        unsafe {
            assert!(vae_get_api(VAE_ABI_VERSION + 1).is_null());
            let api = vae_get_api(VAE_ABI_VERSION);
            assert!(!api.is_null());
            let api = &*api;
            assert!(api.size as usize >= size_of::<vae_api>(), "size {}", api.size);
            assert_eq!(api.abi_major, VAE_ABI_VERSION);
            assert_eq!(api.version_number, vae_version_number());
            assert_eq!(api.reserved, 0);
            // Every member is set (a NULL would be None).
            let words = std::slice::from_raw_parts(
                (api as *const vae_api as *const usize).add(2),
                (size_of::<vae_api>() - 16) / 8,
            );
            assert!(words.iter().all(|&w| w != 0), "a NULL member in vae_api");
            // Calls through the table are the same functions.
            assert_eq!(api.vae_abi_version.unwrap()(), vae_abi_version());
            assert_eq!(api.vae_err_cancelled.unwrap()(), VAE_ERR_CANCELLED);
            assert_eq!(api.vae_stage_decode.unwrap()(), VAE_STAGE_DECODE);
            assert_eq!(api.vae_run_options_size.unwrap()(), vae_run_options_size());
            assert_eq!(api.vae_model_info_size.unwrap()(), vae_model_info_size());
            let s = CStr::from_ptr(api.vae_strerror.unwrap()(VAE_ERR_CANCELLED));
            assert_eq!(s, CStr::from_ptr(vae_strerror(VAE_ERR_CANCELLED)));
        }
    }

    #[test]
    fn run_options_init_takes_the_callers_size() {
        unsafe extern "C" fn cb(_: *mut c_void, _: f32, _: i32) -> i32 {
            0
        }
        let mut o = vae_run_options {
            size: 0,
            flags: 7,
            n_threads: 3,
            reserved: 1,
            seed: 42,
            progress: Some(cb),
            progress_user: 8 as *mut c_void,
            max_memory: 1 << 30,
            tile: 64,
            reserved2: 5,
        };
        unsafe { vae_run_options_init(&mut o, size_of::<vae_run_options>() as u32) };
        let d = vae_run_options::default();
        assert_eq!(o.size, 56);
        assert_eq!((o.size, o.flags, o.n_threads, o.reserved, o.seed), (d.size, 0, 0, 0, 0));
        assert!(o.progress.is_none() && o.progress_user.is_null());
        assert_eq!((o.max_memory, o.tile, o.reserved2), (0, 0, 0));

        let mut l = vae_load_options {
            size: 0,
            flags: 1,
            n_threads: 2,
            reserved: 3,
            config_path: b"x\0".as_ptr() as *const c_char,
        };
        unsafe { vae_load_options_init(&mut l, size_of::<vae_load_options>() as u32) };
        assert_eq!((l.size, l.flags, l.n_threads, l.reserved), (24, 0, 0, 0));
        assert!(l.config_path.is_null());
    }

    /// The offsets docs/abi.md lists for bindings that declare structs by hand.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn field_offsets_match_docs_abi_md() {
        assert_eq!(offset!(vae_load_options, flags), 4);
        assert_eq!(offset!(vae_load_options, n_threads), 8);
        assert_eq!(offset!(vae_load_options, reserved), 12);
        assert_eq!(offset!(vae_load_options, config_path), 16);
        assert_eq!(offset!(vae_run_options, flags), 4);
        assert_eq!(offset!(vae_run_options, n_threads), 8);
        assert_eq!(offset!(vae_run_options, reserved), 12);
        assert_eq!(offset!(vae_run_options, seed), 16);
        assert_eq!(offset!(vae_run_options, progress), 24);
        assert_eq!(offset!(vae_run_options, progress_user), 32);
        assert_eq!(offset!(vae_run_options, max_memory), 40);
        assert_eq!(offset!(vae_run_options, tile), 48);
        assert_eq!(offset!(vae_run_options, reserved2), 52);
        assert_eq!(size_of::<vae_run_options>(), 56);
        assert_eq!(offset!(vae_memory_estimate, fits), 4);
        assert_eq!(offset!(vae_memory_estimate, tiled), 8);
        assert_eq!(offset!(vae_memory_estimate, tile), 12);
        assert_eq!(offset!(vae_memory_estimate, budget_bytes), 16);
        assert_eq!(offset!(vae_memory_estimate, untiled_bytes), 24);
        assert_eq!(offset!(vae_memory_estimate, tiled_bytes), 32);
        assert_eq!(offset!(vae_memory_estimate, weights_bytes), 40);
        assert_eq!(offset!(vae_memory_estimate, io_bytes), 48);
        assert_eq!(offset!(vae_memory_estimate, work_ratio), 56);
        assert_eq!(size_of::<vae_memory_estimate>(), 64);
        assert_eq!(offset!(vae_api, vae_version_number), 16);
        assert_eq!(offset!(vae_api, vae_model_info_size), 352);
        assert_eq!(offset!(vae_api, vae_estimate_memory), 360);
        assert_eq!(offset!(vae_api, vae_memory_estimate_size), 408);
        assert_eq!(offset!(vae_model_info, latent_channels), 4);
        assert_eq!(offset!(vae_model_info, levels), 8);
        assert_eq!(offset!(vae_model_info, block_out_channels), 12);
        assert_eq!(offset!(vae_model_info, layers_per_block), 44);
        assert_eq!(offset!(vae_model_info, norm_num_groups), 48);
        assert_eq!(offset!(vae_model_info, downsample_factor), 52);
        assert_eq!(offset!(vae_model_info, has_quant_conv), 56);
        assert_eq!(offset!(vae_model_info, has_post_quant_conv), 60);
        assert_eq!(offset!(vae_model_info, weight_dtype), 64);
        assert_eq!(offset!(vae_model_info, has_encoder), 68);
        assert_eq!(offset!(vae_model_info, has_decoder), 72);
        assert_eq!(offset!(vae_model_info, scaling_factor), 76);
        assert_eq!(offset!(vae_model_info, shift_factor), 80);
        assert_eq!(offset!(vae_model_info, norm_eps), 84);
        assert_eq!(offset!(vae_model_info, parameter_count), 88);
        assert_eq!(offset!(vae_model_info, family), 96);
        assert_eq!(offset!(vae_model_info, naming), 128);
    }

    #[test]
    fn the_loaded_library_is_abi_1() {
        unsafe {
            assert_eq!(vae_abi_version(), VAE_ABI_VERSION);
            assert!(vae_version_number() >= VAE_VERSION_NUMBER);
            let v = CStr::from_ptr(vae_version_string()).to_str().unwrap();
            assert_eq!(v.split('.').count(), 3, "version string {:?}", v);
            let s = CStr::from_ptr(vae_strerror(VAE_ERR_IO)).to_str().unwrap();
            assert!(!s.is_empty());
        }
    }

    #[test]
    fn load_failure_sets_the_thread_message() {
        let path = b"/nonexistent/sdxlvae-sys-test.safetensors\0";
        let mut model: *mut vae_model = std::ptr::null_mut();
        let opts = vae_load_options::default();
        unsafe {
            let rc = vae_load(path.as_ptr() as *const c_char, &opts, &mut model);
            assert!(rc < 0);
            assert!(model.is_null());
            let mut buf = [0 as c_char; 512];
            let len = vae_copy_last_error(std::ptr::null(), buf.as_mut_ptr(), buf.len() as u64);
            assert!(len > 0);
            let msg = CStr::from_ptr(buf.as_ptr()).to_string_lossy();
            assert!(msg.contains("sdxlvae-sys-test"), "message: {}", msg);
        }
    }
}
