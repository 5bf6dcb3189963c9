//! QR codes: reading a SQRL URL (or an exported identity) from a PNG/JPEG image,
//! and drawing one for export, in the terminal or as a PNG file.

use std::io::Cursor;

use qrcode::{Color, EcLevel, QrCode};

use crate::error::{Error, Result};

/// Largest image accepted, in bytes (a screenshot is a few MiB at most).
pub const MAX_IMAGE_BYTES: usize = 32 * 1024 * 1024;
/// Largest image accepted, in pixels per side.
const MAX_IMAGE_SIDE: u32 = 8192;
/// Quiet zone around a drawn code, in modules (ISO/IEC 18004 asks for 4).
const QUIET_ZONE: usize = 4;
/// Pixels per module in an exported PNG.
const PNG_SCALE: usize = 8;

/// Why no QR code could be read from an image, or drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QrFailure {
    /// The image file is larger than [`MAX_IMAGE_BYTES`].
    #[error("image larger than {} MiB", MAX_IMAGE_BYTES / (1024 * 1024))]
    ImageTooLarge,
    /// An image file named on the command line is larger than this crate reads.
    #[error("{0}: image file too large")]
    ImageFileTooLarge(String),
    /// The bytes are not a readable PNG or JPEG.
    #[error("unreadable image: {0}")]
    UnreadableImage(image::ImageError),
    /// The image has more pixels than is reasonable to scan.
    #[error("image of {width}x{height} pixels is too large to scan")]
    TooManyPixels {
        /// Pixels across.
        width: u32,
        /// Pixels down.
        height: u32,
    },
    /// A code was found but its modules do not decode.
    #[error("found a QR code but could not decode it: {0}")]
    Undecodable(rqrr::DeQRError),
    /// No code was found at all.
    #[error("no QR code found in the image")]
    NoCode,
    /// The codes found hold no SQRL link.
    #[error("the QR code in the image is not a SQRL link")]
    NotSqrl,
    /// The image's QR code holds an exported identity, not a login link.
    #[error("the QR code in the image is an exported identity, not a SQRL link")]
    IdentityNotALink,
    /// The codes found hold no identity.
    #[error("no identity QR code in {0}")]
    NoIdentity(String),
    /// The data does not fit in a QR code.
    #[error("cannot draw a QR code: {0}")]
    Encode(qrcode::types::QrError),
}

/// Whether bytes look like an image this module can read (PNG or JPEG magic).
pub fn looks_like_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Decodes every QR code found in a PNG or JPEG image; returns their raw payloads.
/// Fails if the image cannot be read or holds no readable code.
pub fn decode_image(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(QrFailure::ImageTooLarge.into());
    }
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| QrFailure::UnreadableImage(image::ImageError::IoError(e)))?;
    let (width, height) = reader
        .into_dimensions()
        .map_err(QrFailure::UnreadableImage)?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(QrFailure::TooManyPixels { width, height }.into());
    }
    let image = image::load_from_memory(bytes)
        .map_err(QrFailure::UnreadableImage)?
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let mut payloads = Vec::new();
    let mut last_error = None;
    for grid in prepared.detect_grids() {
        let mut payload = Vec::new();
        match grid.decode_to(&mut payload) {
            Ok(_) => payloads.push(payload),
            Err(e) => last_error = Some(e),
        }
    }
    if payloads.is_empty() {
        return Err(match last_error {
            Some(e) => QrFailure::Undecodable(e),
            None => QrFailure::NoCode,
        }
        .into());
    }
    Ok(payloads)
}

/// Decodes the single SQRL URL in an image: the first payload that is a
/// `sqrl://` or `qrl://` URL.
pub fn decode_sqrl_url(bytes: &[u8]) -> Result<String> {
    let payloads = decode_image(bytes)?;
    let link = payloads
        .iter()
        .filter_map(|p| std::str::from_utf8(p).ok())
        .map(str::trim)
        .find(|s| {
            let lower = s.to_ascii_lowercase();
            lower.starts_with("sqrl://") || lower.starts_with("qrl://")
        });
    match link {
        Some(link) => Ok(link.to_owned()),
        // An easy mix-up: the QR code `identity export -f qr-png` draws.
        None if payloads
            .iter()
            .any(|p| sqrl_core::storage::S4::import(p).is_ok()) =>
        {
            Err(QrFailure::IdentityNotALink.into())
        }
        None => Err(QrFailure::NotSqrl.into()),
    }
}

fn encode(data: &[u8]) -> Result<QrCode> {
    QrCode::with_error_correction_level(data, EcLevel::M).map_err(|e| QrFailure::Encode(e).into())
}

/// Draws a QR code for a terminal with Unicode half blocks (two modules per
/// character cell), dark modules drawn on a light background.
pub fn render_terminal(data: &[u8]) -> Result<String> {
    let code = encode(data)?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Draws a QR code as a grayscale PNG.
pub fn render_png(data: &[u8]) -> Result<Vec<u8>> {
    let code = encode(data)?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET_ZONE) * PNG_SCALE;
    let side_u32 =
        u32::try_from(side).map_err(|_| Error::Internal("QR code too large".to_owned()))?;
    let image = image::GrayImage::from_fn(side_u32, side_u32, |x, y| {
        let module = |p: u32| (p as usize / PNG_SCALE).checked_sub(QUIET_ZONE);
        let dark = match (module(x), module(y)) {
            (Some(mx), Some(my)) if mx < width && my < width => {
                colors.get(my * width + mx) == Some(&Color::Dark)
            }
            _ => false,
        };
        image::Luma([if dark { 0 } else { 255 }])
    });
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Internal(format!("PNG encoding failed: {e}")))?;
    Ok(png)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_of_a_sqrl_url() {
        let url =
            "sqrl://example.com:8443/cli.sqrl?x=4&nut=oOB4QOFJux5Z&can=aHR0cHM6Ly9leGFtcGxlLmNvbS8";
        let png = render_png(url.as_bytes()).unwrap();
        assert!(looks_like_image(&png));
        assert_eq!(decode_sqrl_url(&png).unwrap(), url);
    }

    #[test]
    fn binary_payload_round_trips() {
        let data: Vec<u8> = (0u8..=255).collect();
        let png = render_png(&data).unwrap();
        assert_eq!(decode_image(&png).unwrap(), vec![data]);
    }

    #[test]
    fn no_code_and_garbage_are_errors() {
        let blank = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
        let mut png = Vec::new();
        blank
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(matches!(
            decode_image(&png),
            Err(Error::Qr(QrFailure::NoCode))
        ));
        assert!(matches!(
            decode_image(b"\x89PNG\r\n\x1a\nrubbish"),
            Err(Error::Qr(QrFailure::UnreadableImage(_)))
        ));
        let not_sqrl = render_png(b"https://example.com/").unwrap();
        assert!(matches!(
            decode_sqrl_url(&not_sqrl),
            Err(Error::Qr(QrFailure::NotSqrl))
        ));
    }

    #[test]
    fn terminal_rendering_has_rows() {
        let text = render_terminal(b"sqrl://a/?nut=b").unwrap();
        assert!(text.lines().count() > 10);
    }
}
