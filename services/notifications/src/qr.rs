//! QR codes of ticket codes, drawn as small PNG images for the confirmation email. The matrix
//! comes from `qrcode`; drawing it ourselves with `png` keeps an image library out of the build.

use anyhow::Context;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module: big enough to scan from a phone screen held to a door scanner.
const SCALE: usize = 6;
/// The light border scanners need around the code, in modules (the standard asks for 4).
const QUIET_ZONE: usize = 4;

/// A PNG image (8-bit greyscale) of the QR code of `text`.
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    // Medium error correction survives a scratched screen and keeps a 130-character code small.
    let code =
        QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).context("the text does not fit a QR code")?;
    let modules = code.width();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let mut pixels = vec![u8::MAX; side * side];
    for (index, color) in code.to_colors().into_iter().enumerate() {
        if color != Color::Dark {
            continue;
        }
        let (column, row) = (index % modules + QUIET_ZONE, index / modules + QUIET_ZONE);
        for y in row * SCALE..(row + 1) * SCALE {
            let start = y * side + column * SCALE;
            pixels[start..start + SCALE].fill(0);
        }
    }
    let side = u32::try_from(side).context("QR image too large")?;
    let mut image = Vec::new();
    let mut encoder = png::Encoder::new(&mut image, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("writing a PNG header")?;
    writer.write_image_data(&pixels).context("writing PNG data")?;
    writer.finish().context("finishing a PNG")?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_becomes_a_square_png() {
        let image = png("hello").unwrap();
        assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(image));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        // Version 1 (21 modules) plus the quiet zone on both sides.
        assert_eq!(info.width as usize, (21 + 2 * QUIET_ZONE) * SCALE);
    }
}
