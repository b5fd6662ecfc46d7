//! A safe Rust wrapper for libsdxlvae, the Stable Diffusion XL VAE (and every
//! VAE of the same architecture) running on the CPU.
//!
//! ```no_run
//! use sdxlvae::{Model, RunOptions};
//!
//! let model = Model::load("sdxl_vae.safetensors")?;
//! let (h, w) = (64, 64);
//! let image = vec![0.0f32; 3 * h * w]; // 1 x 3 x h x w, values in [-1, 1]
//! let latent = model.encode(&image, 1, h, w, &RunOptions::new())?;
//! let f = model.downsample_factor();
//! let decoded = model.decode(&latent, 1, h / f, w / f, &RunOptions::new())?;
//! assert_eq!(decoded.len(), image.len());
//! # Ok::<(), sdxlvae::Error>(())
//! ```
//!
//! Tensors are `f32`, contiguous, NCHW. Images have 3 channels; latents have
//! [`Model::latent_channels`] channels and sides 1/[`Model::downsample_factor`]
//! of the image's. Latents are scaled (the space diffusion models use) unless
//! [`RunOptions::raw_latent`] is set.
//!
//! Encode and decode can report progress to a closure and be cancelled by it:
//!
//! ```no_run
//! # use sdxlvae::{Model, RunOptions, ErrorKind};
//! # let model = Model::load("sdxl_vae.safetensors")?;
//! # let latent = vec![0.0f32; 4 * 128 * 128];
//! let result = model.decode_with_progress(&latent, 1, 128, 128, &RunOptions::new(),
//!     |fraction, _stage| {
//!         eprintln!("{:.0}%", fraction * 100.0);
//!         true // false cancels: the call fails with ErrorKind::Cancelled
//!     });
//! # Ok::<(), sdxlvae::Error>(())
//! ```

use std::any::Any;
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};

pub use sdxlvae_sys as sys;

/// Latents in raw VAE space instead of the scaled space (`VAE_FLAG_RAW_LATENT`).
pub const FLAG_RAW_LATENT: u32 = sys::VAE_FLAG_RAW_LATENT;
/// Encode draws a seeded sample of the posterior (`VAE_FLAG_SAMPLE`).
pub const FLAG_SAMPLE: u32 = sys::VAE_FLAG_SAMPLE;
/// Direct convolutions only, no Winograd (`VAE_FLAG_DIRECT_CONV`).
pub const FLAG_DIRECT_CONV: u32 = sys::VAE_FLAG_DIRECT_CONV;

/// The `stage` a progress callback gets from encode and encode_moments.
pub const STAGE_ENCODE: i32 = sys::VAE_STAGE_ENCODE;
/// The `stage` a progress callback gets from decode.
pub const STAGE_DECODE: i32 = sys::VAE_STAGE_DECODE;

// ---- Errors -----------------------------------------------------------------

/// What kind of failure a status code is. Codes this crate does not know
/// (from a newer library) are `Other`: any negative status is a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    InvalidArgument,
    Io,
    Format,
    Unsupported,
    Model,
    NoMemory,
    BufferTooSmall,
    Internal,
    /// A progress callback returned false (`VAE_ERR_CANCELLED`).
    Cancelled,
    Other,
}

/// A failed call: the library's status code and its message (which names
/// the file, tensor, offset or argument at fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: i32,
    message: String,
}

impl Error {
    /// The `VAE_ERR_*` status code (negative).
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The library's message; may be empty.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn kind(&self) -> ErrorKind {
        match self.code {
            sys::VAE_ERR_INVALID_ARGUMENT => ErrorKind::InvalidArgument,
            sys::VAE_ERR_IO => ErrorKind::Io,
            sys::VAE_ERR_FORMAT => ErrorKind::Format,
            sys::VAE_ERR_UNSUPPORTED => ErrorKind::Unsupported,
            sys::VAE_ERR_MODEL => ErrorKind::Model,
            sys::VAE_ERR_NO_MEMORY => ErrorKind::NoMemory,
            sys::VAE_ERR_BUFFER_TOO_SMALL => ErrorKind::BufferTooSmall,
            sys::VAE_ERR_INTERNAL => ErrorKind::Internal,
            sys::VAE_ERR_CANCELLED => ErrorKind::Cancelled,
            _ => ErrorKind::Other,
        }
    }

    /// An error found by this wrapper before calling into C.
    fn invalid(message: String) -> Error {
        Error {
            code: sys::VAE_ERR_INVALID_ARGUMENT,
            message,
        }
    }

    /// The message kept on the handle. Read right after the failed call and
    /// copied at once: the pointer is only valid until this thread's next
    /// call into the library.
    fn from_handle(model: *const sys::vae_model, code: i32) -> Error {
        // SAFETY: model is a live handle; the returned string is copied
        // before any other library call on this thread.
        let message = unsafe { cstr_to_string(sys::vae_last_error(model)) };
        Error { code, message }
    }

    /// The calling thread's message: only for vae_load, which has no handle.
    /// Safe Rust code stays on one thread between the call and this read.
    fn from_thread(code: i32) -> Error {
        // SAFETY: as above, with the thread's own message.
        let message = unsafe { cstr_to_string(sys::vae_last_error(ptr::null())) };
        Error { code, message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{} (status {})", strerror(self.code), self.code)
        } else {
            write!(f, "{} ({})", self.message, strerror(self.code))
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// # Safety
/// `p` is NULL or a NUL-terminated string that stays valid during the call.
unsafe fn cstr_to_string(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

// ---- Library-wide queries ---------------------------------------------------

/// A static English name for a status code (`vae_strerror`).
pub fn strerror(code: i32) -> &'static str {
    // SAFETY: vae_strerror returns a static string, never NULL.
    unsafe { CStr::from_ptr(sys::vae_strerror(code)) }
        .to_str()
        .unwrap_or("?")
}

/// The release of the library actually loaded, e.g. "0.1.0".
pub fn version() -> &'static str {
    // SAFETY: a static string.
    unsafe { CStr::from_ptr(sys::vae_version_string()) }
        .to_str()
        .unwrap_or("?")
}

/// The release of the library actually loaded, as MAJOR*10000+MINOR*100+PATCH.
pub fn version_number() -> u32 {
    // SAFETY: no arguments, no state.
    unsafe { sys::vae_version_number() }
}

/// The ABI generation of the library actually loaded (1 for libsdxlvae.so.1).
pub fn abi_version() -> u32 {
    // SAFETY: no arguments, no state.
    unsafe { sys::vae_abi_version() }
}

// ---- Options ----------------------------------------------------------------

/// Options for [`Model::load_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Default thread count for calls on the model; 0 = every CPU this
    /// process may run on.
    pub n_threads: u32,
    /// A config.json to use instead of the one found beside the weights.
    pub config_path: Option<PathBuf>,
}

/// Options for encode and decode. The default is the posterior mean, scaled
/// latents and the model's thread count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `FLAG_*` bits.
    pub flags: u32,
    /// 0 = the model's default.
    pub n_threads: u32,
    /// The noise seed, with [`FLAG_SAMPLE`].
    pub seed: u64,
}

impl RunOptions {
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    fn flag(mut self, bit: u32, on: bool) -> RunOptions {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
        self
    }

    /// Latents in raw VAE space instead of scaled.
    pub fn raw_latent(self, on: bool) -> RunOptions {
        self.flag(FLAG_RAW_LATENT, on)
    }

    /// Encode draws a sample of the posterior with this seed instead of
    /// taking its mean.
    pub fn sample(mut self, seed: u64) -> RunOptions {
        self.seed = seed;
        self.flag(FLAG_SAMPLE, true)
    }

    /// Every convolution in its direct form, no Winograd (more arithmetic in
    /// the 3x3 convolutions, slightly less rounding): `VAE_FLAG_DIRECT_CONV`.
    pub fn direct_conv(self, on: bool) -> RunOptions {
        self.flag(FLAG_DIRECT_CONV, on)
    }

    pub fn threads(mut self, n: u32) -> RunOptions {
        self.n_threads = n;
        self
    }

    fn to_sys(self) -> Result<sys::vae_run_options> {
        // Default fills it as vae_run_options_init(ptr, size of this struct)
        // would: zeros, and `size` = the size of sys::vae_run_options.
        Ok(sys::vae_run_options {
            flags: self.flags,
            n_threads: to_i32(self.n_threads as usize, "n_threads")?,
            seed: self.seed,
            ..Default::default()
        })
    }
}

// ---- Progress -------------------------------------------------------------

/// What `progress_user` points at during a run call with a progress closure.
struct Progress<'a> {
    f: &'a mut dyn FnMut(f32, i32) -> bool,
    /// A panic of the closure, caught (it must not unwind into C) and
    /// resumed once the C call has returned.
    panic: Option<Box<dyn Any + Send + 'static>>,
}

/// The `vae_progress_fn` handed to C: calls the closure behind `user`.
unsafe extern "C" fn progress_trampoline(user: *mut c_void, fraction: f32, stage: i32) -> i32 {
    // SAFETY: user is the &mut Progress set by Model::run, alive for the
    // whole C call; the library calls back on the calling thread only, never
    // concurrently, so this is the only reference in use.
    let state = unsafe { &mut *(user as *mut Progress<'_>) };
    if state.panic.is_some() {
        return 1;
    }
    match panic::catch_unwind(AssertUnwindSafe(|| (state.f)(fraction, stage))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(payload) => {
            state.panic = Some(payload);
            1
        }
    }
}

// ---- Model info -------------------------------------------------------------

/// How the weights are stored in the file (compute is always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    Mixed,
    /// A value this crate does not know (from a newer library).
    Other(i32),
}

/// What [`Model::info`] reports about the architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub latent_channels: usize,
    /// One entry per level.
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub norm_num_groups: usize,
    pub downsample_factor: usize,
    pub has_quant_conv: bool,
    pub has_post_quant_conv: bool,
    pub weight_dtype: Dtype,
    pub has_encoder: bool,
    pub has_decoder: bool,
    pub scaling_factor: f32,
    pub shift_factor: f32,
    pub norm_eps: f32,
    pub parameter_count: u64,
    /// "SDXL", "SD1.x/SD2.x", "SD3/Flux.1", ...
    pub family: String,
    /// "ldm", "diffusers" or "legacy" (old diffusers attention names).
    pub naming: String,
}

fn fixed_str(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn to_usize(v: i32) -> usize {
    usize::try_from(v).unwrap_or(0)
}

// ---- The model --------------------------------------------------------------

/// A loaded VAE. Freed (with `vae_free`) when dropped.
pub struct Model {
    raw: NonNull<sys::vae_model>,
}

// SAFETY: sdxlvae.h promises that a loaded vae_model is immutable and that
// any number of threads may call vae_encode()/vae_decode() (and the queries)
// on one handle at the same time; the one thing the library writes after
// loading, the handle's last-error slot, is guarded by a mutex inside it
// (lib/api.c). So sharing `&Model` across threads (Sync) is sound. Moving it
// to another thread (Send) is too: the handle is a heap object with no tie to
// the thread that loaded it. The only call that must not overlap the others,
// vae_free(), happens in Drop, which needs the Model by value or `&mut`, so
// the borrow checker proves no other call on it is running.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: raw came from vae_load and is freed exactly once, here.
        unsafe { sys::vae_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("latent_channels", &self.latent_channels())
            .field("downsample_factor", &self.downsample_factor())
            .finish()
    }
}

fn path_to_cstring(path: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = match path.to_str() {
        Some(s) => s.as_bytes().to_vec(),
        None => {
            return Err(Error::invalid(format!(
                "path {} is not valid Unicode",
                path.display()
            )))
        }
    };
    CString::new(bytes)
        .map_err(|_| Error::invalid(format!("path {} contains a NUL byte", path.display())))
}

fn to_i32(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid(format!("{} = {} does not fit in int32", what, v)))
}

/// n * a * b * c, or an error naming the tensor when it overflows.
fn product(dims: [usize; 4], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(format!("{} of shape {:?} is too large", what, dims)))
}

impl Model {
    /// Loads a VAE: a .safetensors file (a config.json beside it is used when
    /// present) or a diffusers folder. See `vae_load` in sdxlvae.h.
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Model> {
        Model::load_with(path, &LoadOptions::default())
    }

    pub fn load_with<P: AsRef<Path>>(path: P, opts: &LoadOptions) -> Result<Model> {
        let cpath = path_to_cstring(path.as_ref())?;
        let config = match &opts.config_path {
            Some(p) => Some(path_to_cstring(p)?),
            None => None,
        };
        let o = sys::vae_load_options {
            n_threads: to_i32(opts.n_threads as usize, "n_threads")?,
            config_path: config.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            ..Default::default()
        };
        let mut raw: *mut sys::vae_model = ptr::null_mut();
        // SAFETY: the strings and options outlive the call; the library keeps
        // no pointer to them.
        let rc = unsafe { sys::vae_load(cpath.as_ptr(), &o, &mut raw) };
        if rc != sys::VAE_OK {
            return Err(Error::from_thread(rc));
        }
        NonNull::new(raw)
            .map(|raw| Model { raw })
            .ok_or_else(|| Error {
                code: sys::VAE_ERR_INTERNAL,
                message: "vae_load succeeded but returned NULL".to_string(),
            })
    }

    /// The raw handle, for calling sdxlvae-sys functions directly. It stays
    /// owned by this Model.
    pub fn as_ptr(&self) -> *const sys::vae_model {
        self.raw.as_ptr()
    }

    fn ptr(&self) -> *const sys::vae_model {
        self.raw.as_ptr()
    }

    fn check(&self, rc: i32) -> Result<()> {
        if rc == sys::VAE_OK {
            Ok(())
        } else {
            Err(Error::from_handle(self.ptr(), rc))
        }
    }

    /// Channels of a latent: 4 (SD1.x/2.x/SDXL) or 16 (SD3/Flux.1).
    pub fn latent_channels(&self) -> usize {
        // SAFETY: a live handle.
        to_usize(unsafe { sys::vae_latent_channels(self.ptr()) })
    }

    /// Image side / latent side (8 for every released model).
    pub fn downsample_factor(&self) -> usize {
        // SAFETY: a live handle.
        to_usize(unsafe { sys::vae_downsample_factor(self.ptr()) })
    }

    /// scaled = (raw - shift) * scale.
    pub fn scaling_factor(&self) -> f32 {
        // SAFETY: a live handle.
        unsafe { sys::vae_scaling_factor(self.ptr()) }
    }

    pub fn shift_factor(&self) -> f32 {
        // SAFETY: a live handle.
        unsafe { sys::vae_shift_factor(self.ptr()) }
    }

    pub fn info(&self) -> Result<ModelInfo> {
        let mut i = sys::vae_model_info::default();
        // SAFETY: i.size is the size of the struct passed.
        self.check(unsafe { sys::vae_get_info(self.ptr(), &mut i) })?;
        let levels = to_usize(i.levels).min(sys::VAE_MAX_LEVELS);
        Ok(ModelInfo {
            latent_channels: to_usize(i.latent_channels),
            block_out_channels: i.block_out_channels[..levels]
                .iter()
                .map(|&c| to_usize(c))
                .collect(),
            layers_per_block: to_usize(i.layers_per_block),
            norm_num_groups: to_usize(i.norm_num_groups),
            downsample_factor: to_usize(i.downsample_factor),
            has_quant_conv: i.has_quant_conv != 0,
            has_post_quant_conv: i.has_post_quant_conv != 0,
            weight_dtype: match i.weight_dtype {
                sys::VAE_DTYPE_F32 => Dtype::F32,
                sys::VAE_DTYPE_F16 => Dtype::F16,
                sys::VAE_DTYPE_BF16 => Dtype::BF16,
                sys::VAE_DTYPE_MIXED => Dtype::Mixed,
                other => Dtype::Other(other),
            },
            has_encoder: i.has_encoder != 0,
            has_decoder: i.has_decoder != 0,
            scaling_factor: i.scaling_factor,
            shift_factor: i.shift_factor,
            norm_eps: i.norm_eps,
            parameter_count: i.parameter_count,
            family: fixed_str(&i.family),
            naming: fixed_str(&i.naming),
        })
    }

    /// Floats in the latent of an n x 3 x height x width image.
    pub fn encoded_len(&self, n: usize, height: usize, width: usize) -> Result<usize> {
        let mut floats = 0u64;
        // SAFETY: a live handle and a valid out pointer.
        self.check(unsafe {
            sys::vae_encoded_size(
                self.ptr(),
                to_i32(n, "n")?,
                to_i32(height, "height")?,
                to_i32(width, "width")?,
                &mut floats,
            )
        })?;
        usize::try_from(floats).map_err(|_| Error::invalid(format!("{} floats", floats)))
    }

    /// Floats in the image of an n x C x lheight x lwidth latent.
    pub fn decoded_len(&self, n: usize, lheight: usize, lwidth: usize) -> Result<usize> {
        let mut floats = 0u64;
        // SAFETY: a live handle and a valid out pointer.
        self.check(unsafe {
            sys::vae_decoded_size(
                self.ptr(),
                to_i32(n, "n")?,
                to_i32(lheight, "lheight")?,
                to_i32(lwidth, "lwidth")?,
                &mut floats,
            )
        })?;
        usize::try_from(floats).map_err(|_| Error::invalid(format!("{} floats", floats)))
    }

    /// The C functions read the whole input tensor with no capacity to check
    /// against, so its length is checked here, exactly.
    fn check_input(&self, got: usize, dims: [usize; 4], what: &str) -> Result<()> {
        let want = product(dims, what)?;
        if got != want {
            return Err(Error::invalid(format!(
                "{} has {} floats but {} x {} x {} x {} needs {}",
                what, got, dims[0], dims[1], dims[2], dims[3], want
            )));
        }
        Ok(())
    }

    /// Makes one run call with `opts` turned into a vae_run_options, with
    /// `progress` (if any) behind the C callback, and maps its status.
    fn run(
        &self,
        opts: &RunOptions,
        progress: Option<&mut dyn FnMut(f32, i32) -> bool>,
        call: impl FnOnce(&sys::vae_run_options) -> i32,
    ) -> Result<()> {
        let mut o = opts.to_sys()?;
        let mut state = progress.map(|f| Progress { f, panic: None });
        if let Some(state) = state.as_mut() {
            o.progress = Some(progress_trampoline);
            o.progress_user = state as *mut Progress<'_> as *mut c_void;
        }
        let rc = call(&o);
        if let Some(payload) = state.and_then(|s| s.panic) {
            panic::resume_unwind(payload);
        }
        self.check(rc)
    }

    fn encode_impl(
        &self,
        image: &[f32],
        n: usize,
        height: usize,
        width: usize,
        latent: &mut [f32],
        opts: &RunOptions,
        progress: Option<&mut dyn FnMut(f32, i32) -> bool>,
    ) -> Result<()> {
        self.check_input(image.len(), [n, 3, height, width], "image")?;
        let (n, height, width) = (to_i32(n, "n")?, to_i32(height, "height")?, to_i32(width, "width")?);
        // SAFETY: image holds exactly the floats the call reads; latent's
        // capacity is passed; nothing is kept after the call.
        self.run(opts, progress, |o| unsafe {
            sys::vae_encode(
                self.ptr(),
                image.as_ptr(),
                n,
                height,
                width,
                latent.as_mut_ptr(),
                latent.len() as u64,
                o,
            )
        })
    }

    fn decode_impl(
        &self,
        latent: &[f32],
        n: usize,
        lheight: usize,
        lwidth: usize,
        image: &mut [f32],
        opts: &RunOptions,
        progress: Option<&mut dyn FnMut(f32, i32) -> bool>,
    ) -> Result<()> {
        self.check_input(
            latent.len(),
            [n, self.latent_channels(), lheight, lwidth],
            "latent",
        )?;
        let (n, lheight, lwidth) = (to_i32(n, "n")?, to_i32(lheight, "lheight")?, to_i32(lwidth, "lwidth")?);
        // SAFETY: latent holds exactly the floats the call reads; image's
        // capacity is passed; nothing is kept after the call.
        self.run(opts, progress, |o| unsafe {
            sys::vae_decode(
                self.ptr(),
                latent.as_ptr(),
                n,
                lheight,
                lwidth,
                image.as_mut_ptr(),
                image.len() as u64,
                o,
            )
        })
    }

    /// Encodes n images (n x 3 x height x width, values in [-1, 1]) into
    /// latents (n x C x height/f x width/f) written to `latent`, which must
    /// hold at least [`Model::encoded_len`] floats.
    pub fn encode_into(
        &self,
        image: &[f32],
        n: usize,
        height: usize,
        width: usize,
        latent: &mut [f32],
        opts: &RunOptions,
    ) -> Result<()> {
        self.encode_impl(image, n, height, width, latent, opts, None)
    }

    /// [`Model::encode_into`] with a progress callback: `progress(fraction,
    /// stage)` is called on this thread with fraction 0 first, after every
    /// layer (fraction never decreases, and covers all n images), and with
    /// 1.0 last on success; `stage` is [`STAGE_ENCODE`]. Returning false
    /// cancels the call, which then fails with [`ErrorKind::Cancelled`]
    /// (the contents of `latent` are then unspecified; the model stays
    /// usable). A panic in the closure cancels the call and is resumed once
    /// it has returned.
    pub fn encode_into_with_progress<F>(
        &self,
        image: &[f32],
        n: usize,
        height: usize,
        width: usize,
        latent: &mut [f32],
        opts: &RunOptions,
        mut progress: F,
    ) -> Result<()>
    where
        F: FnMut(f32, i32) -> bool,
    {
        self.encode_impl(image, n, height, width, latent, opts, Some(&mut progress))
    }

    /// [`Model::encode_into`] into a new vector of [`Model::encoded_len`] floats.
    pub fn encode(
        &self,
        image: &[f32],
        n: usize,
        height: usize,
        width: usize,
        opts: &RunOptions,
    ) -> Result<Vec<f32>> {
        self.check_input(image.len(), [n, 3, height, width], "image")?;
        let mut latent = vec![0.0f32; self.encoded_len(n, height, width)?];
        self.encode_impl(image, n, height, width, &mut latent, opts, None)?;
        Ok(latent)
    }

    /// [`Model::encode`] with a progress callback, as in
    /// [`Model::encode_into_with_progress`].
    pub fn encode_with_progress<F>(
        &self,
        image: &[f32],
        n: usize,
        height: usize,
        width: usize,
        opts: &RunOptions,
        mut progress: F,
    ) -> Result<Vec<f32>>
    where
        F: FnMut(f32, i32) -> bool,
    {
        self.check_input(image.len(), [n, 3, height, width], "image")?;
        let mut latent = vec![0.0f32; self.encoded_len(n, height, width)?];
        self.encode_impl(image, n, height, width, &mut latent, opts, Some(&mut progress))?;
        Ok(latent)
    }

    /// The raw posterior moments, n x 2C x height/f x width/f: the first C
    /// channels the mean, the last C the log-variance. The flags in `opts`
    /// do not apply to moments; its thread count does.
    pub fn encode_moments(
        &self,
        image: &[f32],
        n: usize,
        height: usize,
        width: usize,
        opts: &RunOptions,
    ) -> Result<Vec<f32>> {
        self.check_input(image.len(), [n, 3, height, width], "image")?;
        let len = self
            .encoded_len(n, height, width)?
            .checked_mul(2)
            .ok_or_else(|| Error::invalid("moments too large".to_string()))?;
        let mut moments = vec![0.0f32; len];
        let (n, height, width) = (to_i32(n, "n")?, to_i32(height, "height")?, to_i32(width, "width")?);
        // SAFETY: as in encode_impl.
        self.run(opts, None, |o| unsafe {
            sys::vae_encode_moments(
                self.ptr(),
                image.as_ptr(),
                n,
                height,
                width,
                moments.as_mut_ptr(),
                moments.len() as u64,
                o,
            )
        })?;
        Ok(moments)
    }

    /// Decodes n latents (n x C x lheight x lwidth; scaled unless
    /// [`RunOptions::raw_latent`]) into images (n x 3 x lheight*f x lwidth*f)
    /// written to `image`, which must hold at least [`Model::decoded_len`]
    /// floats. The output is the raw decoder output, not clamped.
    pub fn decode_into(
        &self,
        latent: &[f32],
        n: usize,
        lheight: usize,
        lwidth: usize,
        image: &mut [f32],
        opts: &RunOptions,
    ) -> Result<()> {
        self.decode_impl(latent, n, lheight, lwidth, image, opts, None)
    }

    /// [`Model::decode_into`] with a progress callback, as in
    /// [`Model::encode_into_with_progress`]; `stage` is [`STAGE_DECODE`].
    pub fn decode_into_with_progress<F>(
        &self,
        latent: &[f32],
        n: usize,
        lheight: usize,
        lwidth: usize,
        image: &mut [f32],
        opts: &RunOptions,
        mut progress: F,
    ) -> Result<()>
    where
        F: FnMut(f32, i32) -> bool,
    {
        self.decode_impl(latent, n, lheight, lwidth, image, opts, Some(&mut progress))
    }

    /// [`Model::decode_into`] into a new vector of [`Model::decoded_len`] floats.
    pub fn decode(
        &self,
        latent: &[f32],
        n: usize,
        lheight: usize,
        lwidth: usize,
        opts: &RunOptions,
    ) -> Result<Vec<f32>> {
        self.check_input(
            latent.len(),
            [n, self.latent_channels(), lheight, lwidth],
            "latent",
        )?;
        let mut image = vec![0.0f32; self.decoded_len(n, lheight, lwidth)?];
        self.decode_impl(latent, n, lheight, lwidth, &mut image, opts, None)?;
        Ok(image)
    }

    /// [`Model::decode`] with a progress callback, as in
    /// [`Model::decode_into_with_progress`].
    pub fn decode_with_progress<F>(
        &self,
        latent: &[f32],
        n: usize,
        lheight: usize,
        lwidth: usize,
        opts: &RunOptions,
        mut progress: F,
    ) -> Result<Vec<f32>>
    where
        F: FnMut(f32, i32) -> bool,
    {
        self.check_input(
            latent.len(),
            [n, self.latent_channels(), lheight, lwidth],
            "latent",
        )?;
        let mut image = vec![0.0f32; self.decoded_len(n, lheight, lwidth)?];
        self.decode_impl(latent, n, lheight, lwidth, &mut image, opts, Some(&mut progress))?;
        Ok(image)
    }
}
