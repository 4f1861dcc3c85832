//! Ticket codes as QR codes, drawn as inline SVG: crisp at any size on a phone held to a door
//! scanner, and no image request per ticket.

use qrcode::{Color, EcLevel, QrCode};

/// The light border scanners need around the code, in modules (the standard asks for 4).
const QUIET_ZONE: usize = 4;

/// An SVG of the QR code of `text`, labelled for screen readers; `None` if it does not fit.
pub fn svg(text: &str, label: &str) -> Option<String> {
    // Medium error correction, as in the emails: survives a scratched screen, stays small.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let modules = code.width();
    let side = modules + 2 * QUIET_ZONE;
    let mut path = String::new();
    for (index, color) in code.to_colors().into_iter().enumerate() {
        if color == Color::Dark {
            let (x, y) = (index % modules + QUIET_ZONE, index / modules + QUIET_ZONE);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    let label = label.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;");
    Some(format!(
        r##"<svg class="qr" role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the drawing back as a scanner would: the path's unit squares on a bitmap.
    fn scan(svg: &str) -> String {
        const SCALE: usize = 4;
        let side: usize =
            svg.split("viewBox=\"0 0 ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
        let path = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
        let mut dark = vec![false; side * side];
        for square in path.split('M').filter(|s| !s.is_empty()) {
            let (x, rest) = square.split_once(' ').unwrap();
            let y = rest.split('h').next().unwrap();
            dark[y.parse::<usize>().unwrap() * side + x.parse::<usize>().unwrap()] = true;
        }
        let pixels = side * SCALE;
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(pixels, pixels, |x, y| {
            if dark[(y / SCALE) * side + x / SCALE] { 0 } else { 255 }
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code");
        grids[0].decode().unwrap().1
    }

    #[test]
    fn the_svg_scans_back_to_the_ticket_code() {
        let code = "EH1.0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.signature-of-the-ticket_AbCdEf0123456789";
        assert_eq!(scan(&svg(code, "QR").unwrap()), code);
    }

    #[test]
    fn a_ticket_code_draws_as_a_labelled_svg() {
        let svg = svg("EH1.abc.def", "QR code of <ticket> 1").unwrap_or_default();
        assert!(svg.starts_with("<svg class=\"qr\" role=\"img\" aria-label=\"QR code of &lt;ticket> 1\""), "{svg}");
        assert!(svg.contains("h1v1h-1z"));
    }
}
