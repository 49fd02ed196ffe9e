//! NIP-01 canonical serialization. The id is the SHA-256 of
//! `[0,<pubkey>,<created_at>,<kind>,<tags>,<content>]` with no whitespace and
//! strings escaped exactly so: `\n \" \\ \r \t \b \f` as short escapes, the other
//! C0 controls as `\u00xx` (lowercase), every other character verbatim
//! (DEL, C1 controls, U+2028/9, `/`, non-BMP). We always re-encode the parsed
//! strings; the client's bytes are never hashed, so wire escapes like `\u0041`
//! or `\/` cannot change the id.

/// Appends `s` as a canonical JSON string literal (with quotes) to `out`.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'\n' => "\\n",
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on char boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        if short.is_empty() {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Appends the canonical JSON of a tag list: `[["e","…"],["p","…"]]`.
pub fn write_tags(out: &mut String, tags: &[Vec<String>]) {
    out.push('[');
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        for (j, value) in tag.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write_string(out, value);
        }
        out.push(']');
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut out = String::new();
        write_string(&mut out, s);
        out
    }

    #[test]
    fn escapes_exactly_what_nip01_lists() {
        assert_eq!(esc("a\nb"), r#""a\nb""#);
        assert_eq!(esc("\"\\\r\t\u{8}\u{c}"), r#""\"\\\r\t\b\f""#);
        assert_eq!(
            esc("\u{0}\u{1}\u{b}\u{1b}\u{1f}"),
            r#""\u0000\u0001\u000b\u001b\u001f""#
        );
        assert_eq!(esc("\u{7f}\u{80}\u{2028}/<>&'😀"), "\"\u{7f}\u{80}\u{2028}/<>&'😀\"");
        assert_eq!(esc(""), r#""""#);
    }

    #[test]
    fn agrees_with_serde_json_on_every_bmp_control_and_ascii() {
        for c in (0u32..0x100).filter_map(char::from_u32) {
            let s = format!("x{c}y");
            assert_eq!(esc(&s), serde_json::to_string(&s).unwrap_or_default(), "{c:?}");
        }
    }
}
