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

/// The characters `check_text` refuses, as a regular-expression class body
/// (JSON Schema's `pattern`, ECMA-262 and Python alike): C0 and C1 controls
/// (Rust's `char::is_control`) and the bidirectional controls.
macro_rules! refused_class {
    () => {
        "\\u0000-\\u001F\\u007F-\\u009F\\u061C\\u200E\\u200F\\u202A-\\u202E\\u2066-\\u2069"
    };
}
/// What `str::trim` removes besides controls (Unicode White_Space).
macro_rules! space_class {
    () => {
        "\\u0020\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000"
    };
}

/// Text without refused characters ([`check_text`]), possibly blank.
pub const TEXT_PATTERN: &str = concat!("^[^", refused_class!(), "]*$");
/// Text without refused characters and not blank ([`check_name`]).
pub const NAME_PATTERN: &str =
    concat!("^[^", refused_class!(), "]*[^", refused_class!(), space_class!(), "][^", refused_class!(), "]*$");
/// [`NAME_PATTERN`] without `/` ([`check_segment_name`]).
pub const SEGMENT_PATTERN: &str =
    concat!("^[^/", refused_class!(), "]*[^/", refused_class!(), space_class!(), "][^/", refused_class!(), "]*$");
/// Any text with a character `str::trim` keeps (Unicode White_Space is
/// exactly what it removes): free text that must not be blank.
pub const NOT_BLANK_PATTERN: &str =
    "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

/// Free text: at most `max` characters and not blank; returned trimmed.
pub fn check_not_blank<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must be 1 to {max} characters, not blank"));
    }
    check_max(field, value, max)?;
    Ok(value.trim())
}

/// [`TEXT_PATTERN`] without `/`.
pub const SEGMENT_TEXT_PATTERN: &str = concat!("^[^/", refused_class!(), "]*$");

/// At most `max` characters (Unicode scalar values, as JSON Schema's
/// `maxLength` counts them; not bytes).
pub fn check_max(field: &str, value: &str, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max { Err(format!("{field} must be at most {max} characters, got {n}")) } else { Ok(()) }
}

/// A required text: 1 to `max` characters as given, not blank, no refused
/// character; returned trimmed (what is stored).
pub fn check_name<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must be 1 to {max} characters, not blank"));
    }
    check_max(field, value, max)?;
    check_text(field, value)?;
    Ok(value.trim())
}

/// [`check_name`], and no `/`.
pub fn check_segment_name<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, String> {
    let v = check_name(field, value, max)?;
    check_segment(field, v)?;
    Ok(v)
}

/// An optional text: at most `max` characters, no refused character;
/// `None` when blank.
pub fn check_optional<'a>(field: &str, value: Option<&'a str>, max: usize) -> Result<Option<&'a str>, String> {
    let Some(value) = value else { return Ok(None) };
    check_max(field, value, max)?;
    check_text(field, value)?;
    Ok(Some(value.trim()).filter(|v| !v.is_empty()))
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

    #[test]
    fn lengths_are_characters_and_blank_names_are_refused() {
        assert_eq!(check_name("name", " Pumpe ", 7).unwrap(), "Pumpe");
        assert!(check_name("name", &"ü".repeat(128), 128).is_ok(), "256 bytes, 128 characters");
        assert!(check_name("name", &"ü".repeat(129), 128).is_err());
        for bad in ["", "   ", "\u{3000}", "a\tb"] {
            assert!(check_name("name", bad, 128).is_err(), "{bad:?}");
        }
        assert_eq!(check_optional("x", Some("  "), 8).unwrap(), None);
        assert!(check_optional("x", Some("\t"), 8).is_err());
    }

    /// The patterns the document carries say what these functions check.
    #[test]
    fn patterns_match_the_checks() {
        let re = |p: &str| {
            // ECMA-262 `\uXXXX` is Rust regex `\u{XXXX}`.
            let rust = regex::Regex::new(r"\\u([0-9A-F]{4})").unwrap().replace_all(p, r"\u{$1}").into_owned();
            regex::Regex::new(&rust).unwrap()
        };
        let (text, name, segment) = (re(TEXT_PATTERN), re(NAME_PATTERN), re(SEGMENT_PATTERN));
        for v in [
            "P-101",
            " a ",
            "Pumpe Nr. 1 (Süd)",
            "a/b",
            "",
            " ",
            "\u{3000}",
            "a\tb",
            "P\u{202E}1",
            "\u{85}",
            "x\u{2028}",
        ] {
            assert_eq!(text.is_match(v), check_text("v", v).is_ok(), "text {v:?}");
            assert_eq!(name.is_match(v), check_name("v", v, 1000).is_ok(), "name {v:?}");
            assert_eq!(segment.is_match(v), check_segment_name("v", v, 1000).is_ok(), "segment {v:?}");
        }
    }
}
