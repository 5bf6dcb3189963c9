//! What drawing a login page's QR code costs.
//!
//! ```text
//! cargo bench -p sqrl-server --bench qr -- [--codes N]
//! ```
//!
//! Draws N codes (default 20000) of nut URLs of the length the service
//! issues (each nut fresh, as on every page load), as the login page's SVG,
//! and, in the same run and on the same URLs, the `qrcode` crate's own
//! encoder and SVG renderer: the symbol is the same (the module's tests hold
//! it to the crate's), so the ratio is what the page saves. Times are CPU
//! time of this thread, per code; runs alternate so that noise from the
//! other core falls on both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use qrcode::{EcLevel, QrCode};
use sqrl_core::rand_core::{OsRng, RngCore as _};

fn thread_cpu() -> Duration {
    let now = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32)
}

fn urls(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut nut = [0u8; 16];
            OsRng.fill_bytes(&mut nut);
            format!(
                "sqrl://login.example.com/cli.sqrl?nut={}",
                sqrl_core::base64url::encode(nut)
            )
        })
        .collect()
}

/// CPU time per code of `draw` over `urls`.
fn per_code(urls: &[String], mut draw: impl FnMut(&str) -> usize) -> Duration {
    let start = thread_cpu();
    let mut bytes = 0;
    for url in urls {
        bytes += draw(url);
    }
    assert!(bytes > 0);
    (thread_cpu() - start) / u32::try_from(urls.len()).unwrap()
}

fn main() {
    let mut codes = 20_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--codes" => codes = args.next().and_then(|n| n.parse().ok()).expect("--codes N"),
            // `cargo bench` passes --bench.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let urls = urls(codes);
    let ours = |url: &str| sqrl_server::qr::svg(url).unwrap().len();
    let crate_svg = |url: &str| {
        QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
            .unwrap()
            .render::<qrcode::render::svg::Color<'_>>()
            .build()
            .len()
    };
    // Warm up, then three alternating rounds.
    per_code(&urls[..urls.len().min(500)], ours);
    per_code(&urls[..urls.len().min(500)], crate_svg);
    let mut rows = Vec::new();
    for round in 1..=3 {
        let a = per_code(&urls, ours);
        let b = per_code(&urls, crate_svg);
        rows.push((round, a, b));
    }
    println!(
        "QR code of a nut URL ({} characters), SVG, CPU time per code",
        urls[0].len()
    );
    println!("round  login page  qrcode crate  ratio");
    for (round, a, b) in &rows {
        println!(
            "{round:>5}  {:>7.1} µs  {:>9.1} µs  {:>5.1}x",
            a.as_secs_f64() * 1e6,
            b.as_secs_f64() * 1e6,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    let best = rows.iter().map(|(_, a, _)| *a).min().unwrap();
    println!(
        "login page, best round: {:.1} µs per code",
        best.as_secs_f64() * 1e6
    );
}
