//! Strict lowercase hex. NIP-01 fixes ids, pubkeys and signatures as lowercase
//! hex of an exact length; uppercase or odd lengths are refused, not repaired.

/// Decodes exactly `N` bytes from `2 * N` lowercase hex characters.
pub fn decode_fixed<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [h, l] => (nibble(*h)?, nibble(*l)?),
            _ => return None,
        };
        *slot = (hi << 4) | lo;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Appends the lowercase hex form of `bytes` to `out`.
pub fn encode_into(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// The lowercase hex form of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    encode_into(&mut s, bytes);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        assert_eq!(decode_fixed::<2>("00ff"), Some([0, 255]));
        assert_eq!(encode(&[0, 255, 16]), "00ff10");
        assert_eq!(decode_fixed::<2>("00FF"), None, "uppercase is refused");
        assert_eq!(decode_fixed::<2>("00f"), None);
        assert_eq!(decode_fixed::<2>("00fff"), None);
        assert_eq!(decode_fixed::<2>("0g00"), None);
        assert_eq!(decode_fixed::<1>("é"), None, "two bytes of UTF-8 are not hex");
    }
}
