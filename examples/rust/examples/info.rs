//! Prints what libsdxlvae sees in a VAE, then round-trips a flat grey image
//! through it.
//!
//!     cargo run --offline --example info -- path/to/vae.safetensors

use sdxlvae::{Model, RunOptions};

fn main() {
    let path = match std::env::args_os().nth(1) {
        Some(p) => p,
        None => {
            eprintln!("usage: info MODEL (a .safetensors file or a diffusers folder)");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(path.as_ref()) {
        eprintln!("info: {}", e);
        std::process::exit(1);
    }
}

fn run(path: &std::path::Path) -> Result<(), sdxlvae::Error> {
    println!(
        "libsdxlvae {} (ABI {})",
        sdxlvae::version(),
        sdxlvae::abi_version()
    );
    let model = Model::load(path)?;
    let info = model.info()?;
    println!("{:#?}", info);

    let f = model.downsample_factor();
    let (h, w) = (4 * f, 6 * f);
    let image = vec![0.25f32; 3 * h * w];
    let opts = RunOptions::new();
    let latent = model.encode(&image, 1, h, w, &opts)?;
    let back = model.decode(&latent, 1, h / f, w / f, &opts)?;
    println!(
        "round trip of a {}x{} image: latent {} floats, image {} floats",
        h,
        w,
        latent.len(),
        back.len()
    );
    Ok(())
}
