//! QR codes of SQRL URLs: SVG for the login page, PNG for `/png.sqrl`.
//!
//! Every page load draws a fresh code (every nut is new), so drawing is on the
//! login path. The `qrcode` crate encodes the data and draws the symbol; the
//! choice of mask pattern (ISO/IEC 18004 7.8.3: the one with the lowest
//! penalty score) is made here, with the crate's own scoring rules on a plain
//! grid, because the crate scores each of the eight candidates on a cloned
//! canvas through per-module closures, which was most of the cost of a login
//! page. The result is the same symbol the crate would produce (tested below).
//! The SVG is one path of horizontal runs rather than one rectangle per module.

use std::fmt::Write as _;

use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::{EcLevel, bits, ec};

/// Quiet zone around the code, in modules (the QR standard asks for 4).
const QUIET_ZONE: usize = 4;

/// Pixels per module in PNG output.
const PNG_SCALE: usize = 6;

/// Smallest side of the SVG, in CSS pixels.
const SVG_MIN_SIDE: usize = 240;

/// Level M survives a smudged screen and keeps the code small enough to scan
/// from a laptop display.
const EC_LEVEL: EcLevel = EcLevel::M;

/// The mask patterns in the order the `qrcode` crate tries them (ties go to
/// the first, as there).
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The data does not fit in a QR code.
    #[error("QR encoding: {0}")]
    Encode(#[from] qrcode::types::QrError),
    /// The PNG encoder failed.
    #[error("PNG encoding: {0}")]
    Png(#[from] png::EncodingError),
}

/// A QR symbol: `width × width` modules, row by row, `true` for dark.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Symbol {
    width: usize,
    dark: Vec<bool>,
}

impl Symbol {
    /// Encodes `data` at [`EC_LEVEL`] with the lowest-penalty mask.
    fn encode(data: &str) -> Result<Self, QrError> {
        let bits = bits::encode_auto(data.as_bytes(), EC_LEVEL)?;
        let version = bits.version();
        let (data, ec) = ec::construct_codewords(&bits.into_bytes(), version, EC_LEVEL)?;
        let mut canvas = Canvas::new(version, EC_LEVEL);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&data, &ec);
        let width =
            usize::try_from(version.width()).map_err(|_| qrcode::types::QrError::InvalidVersion)?;
        let mut best: Option<(u32, Symbol)> = None;
        for mask in MASKS {
            let mut masked = canvas.clone();
            masked.apply_mask(mask);
            let symbol = Symbol {
                width,
                dark: masked
                    .into_colors()
                    .into_iter()
                    .map(|c| c == qrcode::Color::Dark)
                    .collect(),
            };
            let score = symbol.penalty();
            if best.as_ref().is_none_or(|(lowest, _)| score < *lowest) {
                best = Some((score, symbol));
            }
        }
        best.map(|(_, symbol)| symbol)
            .ok_or(QrError::Encode(qrcode::types::QrError::InvalidVersion))
    }

    fn at(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.width + x]
    }

    /// The penalty score of ISO/IEC 18004 7.8.3.1, computed as the `qrcode`
    /// crate does (`Canvas::compute_total_penalty_scores`), so the same mask
    /// wins.
    fn penalty(&self) -> u32 {
        let w = self.width;
        let rows: Vec<&[bool]> = self.dark.chunks_exact(w).collect();
        let mut columns = vec![false; self.dark.len()];
        for (y, row) in rows.iter().enumerate() {
            for (x, dark) in row.iter().enumerate() {
                columns[x * w + y] = *dark;
            }
        }
        let mut score = 0;
        for lines in [self.dark.chunks_exact(w), columns.chunks_exact(w)] {
            for line in lines {
                score += runs_penalty(line) + finder_penalty(line);
            }
            // The three finder patterns match three times each, in each
            // direction; the crate does not count those.
            score = score.saturating_sub(360);
        }
        // Rule 2: each 2x2 block of one colour (overlaps counted) scores 3.
        for pair in rows.windows(2) {
            let blocks = pair[0].windows(2).zip(pair[1].windows(2));
            score += 3 * blocks
                .filter(|(top, bottom)| top[0] == top[1] && top == bottom)
                .count() as u32;
        }
        // Rule 4: the distance of the dark share from 50%, in 0.5% steps.
        let dark = self.dark.iter().filter(|d| **d).count();
        let ratio = dark * 200 / self.dark.len().max(1);
        score + ratio.abs_diff(100) as u32
    }
}

/// Rule 1: each run of five or more same-coloured modules in a line scores
/// its length minus two.
fn runs_penalty(line: &[bool]) -> u32 {
    line.chunk_by(|a, b| a == b)
        .filter(|run| run.len() >= 5)
        .map(|run| run.len() as u32 - 2)
        .sum()
}

/// Rule 3: each dark-light-dark-dark-dark-light-dark run (1:1:3:1:1) without
/// a dark module within four on *both* sides scores 40.
fn finder_penalty(line: &[bool]) -> u32 {
    const PATTERN: [bool; 7] = [true, false, true, true, true, false, true];
    let mut score = 0;
    for (j, window) in line.windows(7).enumerate() {
        if window != PATTERN {
            continue;
        }
        let before = &line[j.saturating_sub(4)..j];
        let after = &line[j + 7..(j + 11).min(line.len())];
        if !before.contains(&true) || !after.contains(&true) {
            score += 40;
        }
    }
    score
}

/// An SVG document of the QR code for `data`: one path of horizontal runs of
/// dark modules on a white square, with the quiet zone.
pub fn svg(data: &str) -> Result<String, QrError> {
    let symbol = Symbol::encode(data)?;
    let side = symbol.width + 2 * QUIET_ZONE;
    let pixels = side * SVG_MIN_SIDE.div_ceil(side);
    let mut out = format!(
        "<?xml version=\"1.0\" standalone=\"yes\"?>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{pixels}\" \
         height=\"{pixels}\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#ffffff\"/><path fill=\"#000000\" d=\""
    );
    for y in 0..symbol.width {
        let mut x = 0;
        while x < symbol.width {
            if !symbol.at(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < symbol.width && symbol.at(x, y) {
                x += 1;
            }
            let run = x - start;
            let _ = write!(
                out,
                "M{} {}h{run}v1h-{run}z",
                start + QUIET_ZONE,
                y + QUIET_ZONE
            );
        }
    }
    out.push_str("\"/></svg>");
    Ok(out)
}

/// A greyscale PNG of the QR code for `data`.
pub fn png(data: &str) -> Result<Vec<u8>, QrError> {
    let symbol = Symbol::encode(data)?;
    let modules = symbol.width;
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![0xffu8; side * side];
    for (index, dark) in symbol.dark.iter().enumerate() {
        if !dark {
            continue;
        }
        let x0 = (index % modules + QUIET_ZONE) * PNG_SCALE;
        let y0 = (index / modules + QUIET_ZONE) * PNG_SCALE;
        for row in pixels.chunks_exact_mut(side).skip(y0).take(PNG_SCALE) {
            if let Some(span) = row.get_mut(x0..x0 + PNG_SCALE) {
                span.fill(0);
            }
        }
    }
    let side = u32::try_from(side).map_err(|_| qrcode::types::QrError::DataTooLong)?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use qrcode::QrCode;
    use rand_core::RngCore as _;

    fn urls() -> Vec<String> {
        let mut rng = rand_core::OsRng;
        (0..150)
            .map(|i| {
                let mut nut = [0u8; 16];
                rng.fill_bytes(&mut nut);
                let nut = sqrl_core::base64url::encode(nut);
                // Lengths around what the service issues (QR and link forms).
                match i % 3 {
                    0 => format!("qrl://127.0.0.1:8080/cli.sqrl?nut={nut}"),
                    1 => format!("sqrl://login.example.com/cli.sqrl?nut={nut}"),
                    _ => format!(
                        "sqrl://login.example.com/cli.sqrl?nut={nut}&can=aHR0cHM6Ly9sb2dpbi5leGFtcGxlLmNvbS8"
                    ),
                }
            })
            .collect()
    }

    #[test]
    fn same_symbol_as_the_qrcode_crate() {
        for url in urls() {
            let ours = Symbol::encode(&url).unwrap();
            let theirs = QrCode::with_error_correction_level(url.as_bytes(), EC_LEVEL).unwrap();
            let theirs: Vec<bool> = theirs
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect();
            assert_eq!(ours.dark, theirs, "{url}");
        }
    }

    /// Reads the SVG's runs back into a grid.
    fn svg_modules(svg: &str, width: usize) -> Vec<bool> {
        let path = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut dark = vec![false; width * width];
        for run in path.split('M').filter(|r| !r.is_empty()) {
            let (x, rest) = run.split_once(' ').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let len: usize = rest.split_once('v').unwrap().0.parse().unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            for i in 0..len {
                dark[(y - QUIET_ZONE) * width + x - QUIET_ZONE + i] = true;
            }
        }
        dark
    }

    #[test]
    fn svg_and_png_show_the_symbol() {
        let url = "qrl://127.0.0.1:8080/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA";
        let symbol = Symbol::encode(url).unwrap();
        let svg = svg(url).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        let side = symbol.width + 2 * QUIET_ZONE;
        assert!(svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
        assert_eq!(svg_modules(&svg, symbol.width), symbol.dark);

        let png = png(url).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize, side * PNG_SCALE);
        // The centre pixel of every module is the module's colour.
        let stride = info.width as usize;
        for y in 0..symbol.width {
            for x in 0..symbol.width {
                let px = (x + QUIET_ZONE) * PNG_SCALE + PNG_SCALE / 2;
                let py = (y + QUIET_ZONE) * PNG_SCALE + PNG_SCALE / 2;
                assert_eq!(pixels[py * stride + px] == 0, symbol.at(x, y));
            }
        }
    }
}
