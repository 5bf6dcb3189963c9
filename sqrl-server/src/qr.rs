//! QR codes of SQRL URLs: SVG for the login page, PNG for `/png.sqrl`.

use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode};

/// Quiet zone around the code, in modules (the QR standard asks for 4).
const QUIET_ZONE: usize = 4;

/// Pixels per module in PNG output.
const PNG_SCALE: usize = 6;

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

fn code(data: &str) -> Result<QrCode, QrError> {
    // Level M survives a smudged screen and keeps the code small enough to
    // scan from a laptop display.
    Ok(QrCode::with_error_correction_level(
        data.as_bytes(),
        EcLevel::M,
    )?)
}

/// An SVG document of the QR code for `data`.
pub fn svg(data: &str) -> Result<String, QrError> {
    Ok(code(data)?
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// A greyscale PNG of the QR code for `data`.
pub fn png(data: &str) -> Result<Vec<u8>, QrError> {
    let code = code(data)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![0xffu8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
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

    #[test]
    fn svg_and_png_are_produced() {
        let url = "qrl://127.0.0.1:8080/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA";
        let svg = svg(url).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        let png = png(url).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize % PNG_SCALE, 0);
    }
}
