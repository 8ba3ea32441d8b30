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

/// Parses an RFC 3339 date-time (`2026-11-27T10:00:00Z`, fractional seconds and a `+hh:mm`
/// offset allowed) as milliseconds since the epoch; `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, m, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hh, mm, ss) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        millis = digits.parse::<i64>().ok()? * 10i64.pow(3 - u32::try_from(digits.len()).ok()?);
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && b[i + 3] == b':' => {
            let total = num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let days = days_from_civil(y, m, d);
    let (cy, cm, cd) = civil_from_days(days);
    if (cy, cm, cd) != (y, m, d) {
        return None;
    }
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_s;
    secs.checked_mul(1000)?.checked_add(millis)
}

/// A page size of the admin-plane lists: 1 to 100, default 50; anything else is a 400.
pub fn page_size(limit: Option<u32>) -> crate::error::GatewayResult<usize> {
    match limit {
        None => Ok(50),
        Some(n @ 1..=100) => Ok(n as usize),
        Some(n) => Err(crate::error::GatewayError::invalid(format!("`limit` must be 1 to 100, not {n}"))),
    }
}

/// The offset a list's `cursor` names (this server's cursors are offsets into a stable order);
/// 0 without one, 400 for one it did not issue.
pub fn page_offset(cursor: Option<&str>) -> crate::error::GatewayResult<usize> {
    match cursor {
        Some(c) => c.parse().map_err(|_| crate::error::GatewayError::invalid("`cursor` is not a cursor this server issued")),
        None => Ok(0),
    }
}

/// An admin list's `search`, lowercased for a case-insensitive match: `None` when absent or
/// empty (the spec treats empty as absent); 400 beyond 128 characters.
pub fn search_term(search: Option<&str>) -> crate::error::GatewayResult<Option<String>> {
    match search.filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > 128 => Err(crate::error::GatewayError::invalid("`search` must be at most 128 characters")),
        other => Ok(other.map(str::to_lowercase)),
    }
}

/// Whether an admin list sorts descending: `sort_dir` `desc` (the spec's default) or `asc`;
/// 400 for anything else.
pub fn sort_descending(sort_dir: Option<&str>) -> crate::error::GatewayResult<bool> {
    match sort_dir {
        None | Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(other) => Err(crate::error::GatewayError::invalid(format!("`sort_dir` must be asc or desc, not `{other}`"))),
    }
}

/// What every sorted admin list (listTenants, listBudgets, listApiKeys) reads from its query
/// besides its own filters, each checked with a 400 naming its parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListControls {
    /// The lowercased `search` term ([`search_term`]).
    pub search: Option<String>,
    /// Whether a sort runs descending ([`sort_descending`]).
    pub descending: bool,
    /// Where the page starts ([`page_offset`]).
    pub offset: usize,
    /// How many items a page holds ([`page_size`]).
    pub limit: usize,
}

impl ListControls {
    /// Reads the four parameters.
    pub fn read(
        search: Option<&str>,
        sort_dir: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> crate::error::GatewayResult<ListControls> {
        Ok(ListControls {
            search: search_term(search)?,
            descending: sort_descending(sort_dir)?,
            offset: page_offset(cursor)?,
            limit: page_size(limit)?,
        })
    }

    /// Whether `text` holds the search term (true without one).
    pub fn matches(&self, text: &str) -> bool {
        self.search.as_ref().is_none_or(|s| text.to_lowercase().contains(s))
    }

    /// The page of `items` (already filtered, in the list's default order) sorted by `order`
    /// in the requested direction. The sort is stable, so ties keep the default order; without
    /// an order the items stay as they are.
    pub fn page<T, O: Fn(&T, &T) -> std::cmp::Ordering>(
        &self,
        mut items: Vec<T>,
        order: Option<O>,
    ) -> crate::cycles::BalancePage<T> {
        if let Some(order) = order {
            items.sort_by(|a, b| if self.descending { order(b, a) } else { order(a, b) });
        }
        crate::cycles::BalancePage::of(items, self.offset, self.limit)
    }
}

/// Howard Hinnant's civil-to-days algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn rfc3339_parses_what_it_formats_and_refuses_the_rest() {
        for ms in [0, 1_790_000_000_123, 951_782_400_000, -1_000] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339("2026-09-21T16:13:20.5+02:00"), Some(1_790_000_000_500));
        assert_eq!(parse_rfc3339("2026-09-21T14:13:20Z"), Some(1_790_000_000_000));
        for bad in ["", "2026-02-30T00:00:00Z", "2026-09-21 14:13:20Z", "2026-09-21T14:13:20", "2026-09-21T14:13:20.Z", "x026-09-21T14:13:20Z"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
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
