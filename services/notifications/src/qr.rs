//! QR codes of ticket codes, drawn as small PNG images for the confirmation email. The matrix
//! comes from `qrcode`; drawing it ourselves with `png` keeps an image library out of the build.

use anyhow::Context;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module: big enough to scan from a phone screen held to a door scanner.
const SCALE: usize = 6;
/// The light border scanners need around the code, in modules (the standard asks for 4).
const QUIET_ZONE: usize = 4;

/// A PNG image (1-bit greyscale) of the QR code of `text`.
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    // Medium error correction survives a scratched screen and keeps a 130-character code small.
    let code =
        QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).context("the text does not fit a QR code")?;
    let modules = code.width();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    // One bit a pixel, 1 for light: a QR code has two colours, and deflating an eighth of the
    // bytes is most of what drawing costs (profiled: these images took a tenth of the CPU of
    // an embedded flash sale, whose confirmations are rendered while it runs).
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![u8::MAX; row_bytes * side];
    for (index, color) in code.to_colors().into_iter().enumerate() {
        if color != Color::Dark {
            continue;
        }
        let (column, row) = (index % modules + QUIET_ZONE, index / modules + QUIET_ZONE);
        for y in row * SCALE..(row + 1) * SCALE {
            for x in column * SCALE..(column + 1) * SCALE {
                pixels[y * row_bytes + x / 8] &= !(0x80 >> (x % 8));
            }
        }
    }
    let side = u32::try_from(side).context("QR image too large")?;
    let mut image = Vec::new();
    let mut encoder = png::Encoder::new(&mut image, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().context("writing a PNG header")?;
    writer.write_image_data(&pixels).context("writing PNG data")?;
    writer.finish().context("finishing a PNG")?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_becomes_a_square_png_with_every_module_drawn() {
        let image = png("hello").unwrap();
        assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n");
        let mut decoder = png::Decoder::new(std::io::Cursor::new(image));
        // Unpacked to a byte a pixel, 0 dark and 255 light.
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(frame.width, frame.height);
        // Version 1 (21 modules) plus the quiet zone on both sides.
        let side = frame.width as usize;
        assert_eq!(side, (21 + 2 * QUIET_ZONE) * SCALE);
        let code = QrCode::with_error_correction_level(b"hello", EcLevel::M).unwrap();
        let pixel = |module_x: usize, module_y: usize| {
            let (x, y) = (module_x * SCALE + SCALE / 2, module_y * SCALE + SCALE / 2);
            pixels[y * frame.line_size + x]
        };
        for (index, color) in code.to_colors().into_iter().enumerate() {
            let (x, y) = (index % 21 + QUIET_ZONE, index / 21 + QUIET_ZONE);
            assert_eq!(pixel(x, y), if color == Color::Dark { 0 } else { u8::MAX }, "module ({x}, {y})");
        }
        assert!((0..21 + 2 * QUIET_ZONE).all(|i| pixel(i, 0) == u8::MAX && pixel(0, i) == u8::MAX), "quiet zone");
    }
}
