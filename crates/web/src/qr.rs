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

    #[test]
    fn a_ticket_code_draws_as_a_labelled_svg() {
        let svg = svg("EH1.abc.def", "QR code of <ticket> 1").unwrap_or_default();
        assert!(svg.starts_with("<svg class=\"qr\" role=\"img\" aria-label=\"QR code of &lt;ticket> 1\""), "{svg}");
        assert!(svg.contains("h1v1h-1z"));
    }
}
