//! Raw declarations of libsdxlvae's C API (`include/sdxlvae.h`, ABI 1),
//! written by hand: the 20 functions of the API proper (versions, status
//! names, loading, queries, options, running, errors), the three public
//! option and info structs, and the status codes, dtypes and flags they use.
//! Not declared: `VAE_ERR_CANCELLED`, the `VAE_STAGE_*` constants and the
//! progress callback, `vae_get_api` and the `vae_api` table (a Rust program
//! links the library), and the constants' function twins; the tests print
//! which names of the installed header are not bound.
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
//! - `vae_run_options` is declared up to `seed` (24 bytes), without the
//!   `progress` / `progress_user` fields of the C header: the library reads
//!   only `size` bytes, so calls made with it simply get no progress reports.
//! - `VAE_VERSION_*` are the release these declarations were written against
//!   (0.1.0); `vae_version_number()` says which release is loaded.

#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::mem::size_of;
use std::os::raw::c_char;

// ---- Versions ---------------------------------------------------------------

pub const VAE_VERSION_MAJOR: u32 = 0;
pub const VAE_VERSION_MINOR: u32 = 1;
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
    /// Reserved, must be 0.
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

// The sizes docs/abi.md gives for 64-bit targets; a mistake in the
// declarations above fails the build here rather than at run time.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<vae_load_options>() == 24);
    assert!(size_of::<vae_run_options>() == 24);
    assert!(size_of::<vae_model_info>() == 144);
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
        ("VAE_DTYPE_F32", VAE_DTYPE_F32 as i64),
        ("VAE_DTYPE_F16", VAE_DTYPE_F16 as i64),
        ("VAE_DTYPE_BF16", VAE_DTYPE_BF16 as i64),
        ("VAE_DTYPE_MIXED", VAE_DTYPE_MIXED as i64),
        ("VAE_MAX_LEVELS", VAE_MAX_LEVELS as i64),
        ("VAE_FLAG_RAW_LATENT", VAE_FLAG_RAW_LATENT as i64),
        ("VAE_FLAG_SAMPLE", VAE_FLAG_SAMPLE as i64),
        ("VAE_FLAG_DIRECT_CONV", VAE_FLAG_DIRECT_CONV as i64),
    ];

    /// Every function declared above.
    const BOUND_FUNCTIONS: &[&str] = &[
        "vae_version_number",
        "vae_version_string",
        "vae_abi_version",
        "vae_strerror",
        "vae_load_options_init",
        "vae_load",
        "vae_free",
        "vae_latent_channels",
        "vae_downsample_factor",
        "vae_scaling_factor",
        "vae_shift_factor",
        "vae_get_info",
        "vae_run_options_init",
        "vae_encoded_size",
        "vae_decoded_size",
        "vae_encode",
        "vae_encode_moments",
        "vae_decode",
        "vae_last_error",
        "vae_copy_last_error",
    ];

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
        // Constants added to the header later are fine (the ABI only grows);
        // just say which ones these declarations do not have yet.
        for (name, _) in header::HEADER_DEFINES {
            if !name.starts_with("VAE_VERSION_") && !BOUND.iter().any(|(n, _)| n == name) {
                eprintln!("note: {} is in the header but not bound", name);
            }
        }
    }

    #[test]
    fn functions_are_in_the_installed_header() {
        if header::HEADER_PATH.is_none() {
            return;
        }
        for name in BOUND_FUNCTIONS {
            assert!(
                header::HEADER_FUNCTIONS.contains(name),
                "{} is declared here but not in {:?}",
                name,
                header::HEADER_PATH
            );
        }
        for name in header::HEADER_FUNCTIONS {
            if !BOUND_FUNCTIONS.contains(name) {
                eprintln!("note: {} is in the header but not bound", name);
            }
        }
    }

    /// The offsets docs/abi.md lists for bindings that declare structs by hand.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn field_offsets_match_docs_abi_md() {
        macro_rules! offset {
            ($ty:ty, $field:ident) => {{
                let u = MaybeUninit::<$ty>::uninit();
                let base = u.as_ptr();
                // SAFETY: addr_of! computes the address without reading.
                unsafe { (addr_of!((*base).$field) as usize) - (base as usize) }
            }};
        }
        assert_eq!(offset!(vae_load_options, flags), 4);
        assert_eq!(offset!(vae_load_options, n_threads), 8);
        assert_eq!(offset!(vae_load_options, reserved), 12);
        assert_eq!(offset!(vae_load_options, config_path), 16);
        assert_eq!(offset!(vae_run_options, flags), 4);
        assert_eq!(offset!(vae_run_options, n_threads), 8);
        assert_eq!(offset!(vae_run_options, reserved), 12);
        assert_eq!(offset!(vae_run_options, seed), 16);
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
