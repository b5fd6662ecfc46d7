//! Runs the wrapper on the project's own micro fixture (test/fixtures, or the
//! folder named by SDXLVAE_FIXTURES) and checks it against the reference
//! outputs stored beside it.

use std::path::PathBuf;

use sdxlvae::{Dtype, ErrorKind, Model, RunOptions};

fn fixtures() -> PathBuf {
    match std::env::var_os("SDXLVAE_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures"),
    }
}

fn micro_ldm() -> PathBuf {
    fixtures().join("micro-ldm-f32")
}

/// A little-endian float32 C-order .npy: (shape, data).
fn read_npy(path: &PathBuf) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e));
    assert!(
        bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY",
        "{}: not .npy",
        path.display()
    );
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => panic!("{}: .npy version {}", path.display(), v),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'"),
        "{}: not little-endian float32: {}",
        path.display(),
        header
    );
    assert!(
        header.contains("'fortran_order': False"),
        "{}: Fortran order",
        path.display()
    );
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("{}: no shape in {}", path.display(), header));
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data: Vec<f32> = bytes[start + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "{}",
        path.display()
    );
    (shape, data)
}

/// max|a - b| / max|b|
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| (*y as f64).abs()).fold(0.0, f64::max);
    diff / scale
}

#[test]
fn decode_matches_the_reference() {
    let dir = micro_ldm();
    let model = Model::load(&dir).expect("load micro-ldm-f32");
    let (lshape, latent) = read_npy(&dir.join("latent.npy"));
    let (dshape, want) = read_npy(&dir.join("decoded.npy"));
    assert_eq!(lshape.len(), 4);
    assert_eq!(lshape[1], model.latent_channels());
    let f = model.downsample_factor();
    assert_eq!(dshape, vec![lshape[0], 3, lshape[2] * f, lshape[3] * f]);

    let opts = RunOptions::new().raw_latent(true);
    let got = model
        .decode(&latent, lshape[0], lshape[2], lshape[3], &opts)
        .expect("decode");
    let err = rel_err(&got, &want);
    println!("decode: max|a-b|/max|b| = {:.3e}", err);
    assert!(err <= 1e-4, "decode error {:e} > 1e-4", err);
}

#[test]
fn encode_matches_the_reference() {
    let dir = micro_ldm();
    let model = Model::load(&dir).unwrap();
    let (ishape, image) = read_npy(&dir.join("image.npy"));
    let (_, want) = read_npy(&dir.join("latent.npy"));
    let opts = RunOptions::new().raw_latent(true);
    let got = model
        .encode(&image, ishape[0], ishape[2], ishape[3], &opts)
        .expect("encode");
    let err = rel_err(&got, &want);
    println!("encode: max|a-b|/max|b| = {:.3e}", err);
    assert!(err <= 1e-4, "encode error {:e} > 1e-4", err);

    let (_, moments) = read_npy(&dir.join("moments.npy"));
    let got = model
        .encode_moments(&image, ishape[0], ishape[2], ishape[3], &RunOptions::new())
        .unwrap();
    assert!(rel_err(&got, &moments) <= 1e-4);
}

#[test]
fn info_reads_every_field() {
    // Wrong offsets in the hand-written vae_model_info would show up here.
    let model = Model::load(micro_ldm()).unwrap();
    let info = model.info().unwrap();
    assert_eq!(info.latent_channels, 4);
    assert_eq!(info.block_out_channels, vec![8, 16]);
    assert_eq!(info.layers_per_block, 1);
    assert_eq!(info.norm_num_groups, 4);
    assert_eq!(info.downsample_factor, 2);
    assert!(info.has_quant_conv && info.has_post_quant_conv);
    assert!(info.has_encoder && info.has_decoder);
    assert_eq!(info.weight_dtype, Dtype::F32);
    assert!((info.scaling_factor - 0.13025).abs() < 1e-6);
    assert_eq!(info.shift_factor, 0.0);
    assert!(info.norm_eps > 0.0 && info.norm_eps < 1e-3);
    assert!(info.parameter_count > 0);
    assert_eq!(info.naming, "ldm");
    assert!(!info.family.is_empty());
    assert_eq!(model.downsample_factor(), info.downsample_factor);
    assert_eq!(model.scaling_factor(), info.scaling_factor);
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let path = fixtures().join("no-such-model/vae.safetensors");
    let err = Model::load(&path).expect_err("loading a missing file must fail");
    assert_eq!(err.kind(), ErrorKind::Io, "{}", err);
    assert!(err.code() < 0);
    assert!(
        err.message().contains("no-such-model/vae.safetensors"),
        "message does not name the path: {:?}",
        err.message()
    );
    assert!(err.to_string().contains("no-such-model"));
}

#[test]
fn bad_arguments_are_errors_not_crashes() {
    let model = Model::load(micro_ldm()).unwrap();
    // Caught here: the input is shorter than its shape.
    let err = model
        .decode(&[0.0; 10], 1, 8, 12, &RunOptions::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("latent"), "{}", err);

    // Caught by the library, message read from the handle: the height is not
    // a multiple of the downsampling factor.
    let image = vec![0.0f32; 3 * 15 * 24];
    let err = model
        .encode(&image, 1, 15, 24, &RunOptions::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(!err.message().is_empty());

    // An output buffer too small for the result.
    let (_, latent) = read_npy(&micro_ldm().join("latent.npy"));
    let mut small = vec![0.0f32; 7];
    let err = model
        .decode_into(&latent, 1, 8, 12, &mut small, &RunOptions::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BufferTooSmall, "{}", err);
}

#[test]
fn one_model_decodes_on_many_threads() {
    let dir = micro_ldm();
    let model = Model::load(&dir).unwrap();
    let (s, latent) = read_npy(&dir.join("latent.npy"));
    let opts = RunOptions::new().raw_latent(true).threads(1);
    let want = model.decode(&latent, s[0], s[2], s[3], &opts).unwrap();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| model.decode(&latent, s[0], s[2], s[3], &opts).unwrap()))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), want);
        }
    });
    // And the model can move to another thread and be dropped there.
    std::thread::spawn(move || drop(model)).join().unwrap();
}

#[test]
fn library_versions() {
    assert_eq!(sdxlvae::abi_version(), 1);
    assert!(sdxlvae::version_number() >= 100);
    assert!(sdxlvae::version().starts_with(&format!("{}.", sdxlvae::version_number() / 10000)));
    assert_eq!(sdxlvae::strerror(sdxlvae::sys::VAE_OK), "success");
}

#[test]
fn a_cancelled_decode_fails_and_the_next_one_is_whole() {
    let dir = micro_ldm();
    let model = Model::load(&dir).unwrap();
    let (s, latent) = read_npy(&dir.join("latent.npy"));
    let opts = RunOptions::new().raw_latent(true);
    let want = model.decode(&latent, s[0], s[2], s[3], &opts).unwrap();

    // Cancel at the first report past half way.
    let mut seen = Vec::new();
    let err = model
        .decode_with_progress(&latent, s[0], s[2], s[3], &opts, |fraction, stage| {
            seen.push((fraction, stage));
            fraction < 0.5
        })
        .expect_err("the callback cancelled the decode");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{}", err);
    assert_eq!(err.code(), sdxlvae::sys::VAE_ERR_CANCELLED);
    let &(last, _) = seen.last().unwrap();
    assert!(
        seen.len() >= 3 && (0.5..1.0).contains(&last),
        "not cancelled partway: {:?}",
        seen
    );
    assert!(seen.iter().all(|&(_, stage)| stage == sdxlvae::STAGE_DECODE));

    // The model is still usable: the same decode, not cancelled, reports
    // 0 first, never goes back, ends at exactly 1, and gives the same image.
    let mut all = Vec::new();
    let got = model
        .decode_with_progress(&latent, s[0], s[2], s[3], &opts, |fraction, stage| {
            all.push((fraction, stage));
            true
        })
        .expect("decode after a cancelled one");
    assert_eq!(got, want, "output differs from an uncancelled decode");
    assert_eq!(all.first().map(|p| p.0), Some(0.0));
    assert_eq!(all.last().map(|p| p.0), Some(1.0));
    assert!(all.windows(2).all(|w| w[0].0 <= w[1].0), "{:?}", all);
    assert!(all.len() > seen.len());
    // And the plain call still agrees too.
    assert_eq!(model.decode(&latent, s[0], s[2], s[3], &opts).unwrap(), want);
}

#[test]
fn encode_reports_progress_and_a_panicking_callback_panics_the_caller() {
    let dir = micro_ldm();
    let model = Model::load(&dir).unwrap();
    let (s, image) = read_npy(&dir.join("image.npy"));
    let opts = RunOptions::new();
    let want = model.encode(&image, s[0], s[2], s[3], &opts).unwrap();
    let mut stages = Vec::new();
    let got = model
        .encode_with_progress(&image, s[0], s[2], s[3], &opts, |_, stage| {
            stages.push(stage);
            true
        })
        .unwrap();
    assert_eq!(got, want);
    assert!(stages.len() >= 2 && stages.iter().all(|&st| st == sdxlvae::STAGE_ENCODE));

    // A panic must not unwind through C: it cancels the call and is resumed
    // once the call has returned.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.encode_with_progress(&image, s[0], s[2], s[3], &opts, |fraction, _| {
            if fraction > 0.0 {
                panic!("from the progress callback");
            }
            true
        })
    }));
    let payload = caught.expect_err("the panic reaches the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from the progress callback"));
    assert_eq!(model.encode(&image, s[0], s[2], s[3], &opts).unwrap(), want);
}
