//! Small shared helpers: server time, random identifiers, digests, RFC 3339 timestamps.

use sha2::{Digest, Sha256};

/// Milliseconds since the Unix epoch, server time (the spec's "now").
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `bytes` random bytes from the operating system, lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS generator failing is not recoverable for a service that mints keys: fall back to
    // nothing weaker; an all-zero buffer would be a predictable key, so abort loudly instead.
    if let Err(e) = getrandom::fill(&mut buf) {
        tracing::error!(error = %e, "operating system random generator failed");
        std::process::abort();
    }
    hex(&buf)
}

/// A new identifier: `prefix`, the time in milliseconds and 10 random bytes, in hex. Time
/// first keeps inserts at the right edge of the store's B-trees.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{:012x}{}", now_ms(), random_hex(10))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds, e.g. `2026-11-24T00:40:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_790_000_000_123), "2026-09-21T14:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn random_ids_differ_and_have_the_prefix() {
        let a = new_id("rsv_");
        let b = new_id("rsv_");
        assert_ne!(a, b);
        assert!(a.starts_with("rsv_") && a.len() == 36);
        assert!(a < new_id("rsv_") || a[4..16] == new_id("rsv_")[4..16]);
    }
}
