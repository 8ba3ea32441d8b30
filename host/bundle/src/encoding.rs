//! Byte encodings shared by keys, bundles and tokens: hex, unpadded base64url, SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes lowercase hex (the only form written, so each value has one text form); `None` for
/// an odd length or any other character.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

/// Decodes hex into exactly `N` bytes.
pub fn unhex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    unhex(text)?.try_into().ok()
}

/// Unpadded base64url (RFC 4648 section 5).
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url, refusing padding, other alphabets and non-zero trailing bits
/// (so every byte string has exactly one accepted text form).
pub fn unbase64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        }

        #[test]
        fn base64url_round_trips_and_has_one_form(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = base64url(&bytes);
            prop_assert_eq!(unbase64url(&text), Some(bytes.clone()));
            // Any other single-character text decodes to something else or nothing.
            for (i, c) in text.char_indices() {
                for other in ['A', 'Q', 'g', 'w', '-', '_', '='] {
                    if other == c { continue; }
                    let mut changed = text.clone();
                    changed.replace_range(i..i + 1, &other.to_string());
                    prop_assert_ne!(unbase64url(&changed), Some(bytes.clone()));
                }
            }
        }
    }

    #[test]
    fn unhex_refuses_odd_and_non_hex() {
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("AB"), None);
        assert_eq!(unhex_array::<2>("abcd"), Some([0xab, 0xcd]));
        assert_eq!(unhex_array::<3>("abcd"), None);
    }
}
