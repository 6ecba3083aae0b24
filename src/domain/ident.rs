//! What an identifier may contain. Ids end up in URLs, `Location` headers,
//! log lines and the EAM: control characters (CR, LF, NUL, …) and Unicode
//! bidirectional controls (which make text read differently than it is
//! stored) are refused in every id; `/` is refused where an id is one path
//! segment of the API (asset ids and what refers to them).

/// Bidirectional formatting characters (Unicode's Bidi_Control property).
const BIDI_CONTROLS: &[char] = &[
    '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}',
    '\u{2067}', '\u{2068}', '\u{2069}',
];

fn forbidden(c: char) -> Option<&'static str> {
    if c.is_control() {
        Some("a control character")
    } else if BIDI_CONTROLS.contains(&c) {
        Some("a bidirectional control character")
    } else {
        None
    }
}

/// Refuses control and bidirectional control characters in `value`.
pub fn check_text(field: &str, value: &str) -> Result<(), String> {
    match value.char_indices().find_map(|(i, c)| forbidden(c).map(|what| (i, c, what))) {
        Some((i, c, what)) => Err(format!("{field} contains {what} (U+{:04X}) at byte {i}", u32::from(c))),
        None => Ok(()),
    }
}

/// [`check_text`], and no `/`: the id is a path segment of the API.
pub fn check_segment(field: &str, value: &str) -> Result<(), String> {
    check_text(field, value)?;
    if value.contains('/') {
        return Err(format!("{field} must not contain '/'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bidi_and_slashes_are_refused() {
        assert!(check_segment("id", "P-101").is_ok());
        assert!(check_segment("id", "Pumpe Nr. 1 (Süd)").is_ok());
        for bad in ["P\r\n101", "P\0", "P\u{202E}101", "P\u{2066}x", "a/b", "tab\there", "\u{85}"] {
            assert!(check_segment("id", bad).is_err(), "{bad:?}");
        }
        assert!(check_text("source", "tdl://plant-a/vibration").is_ok());
        let err = check_text("source", "tdl://x\nInjected: 1").unwrap_err();
        assert!(err.contains("source") && err.contains("U+000A"), "{err}");
    }
}
