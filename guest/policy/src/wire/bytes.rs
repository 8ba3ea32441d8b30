//! Postcard's primitive encodings, written and read by hand for the request and verdict
//! codecs ([`super::request`], [`super::verdict`]).
//!
//! Postcard's rules, as implemented here: `u8` is one byte; `u16`, `u32`, `u64` and lengths are
//! LEB128 varints of at most 3, 5 and 10 bytes whose last byte may not carry bits beyond the
//! type; `bool` and an `Option`'s tag are one byte, 0 or 1; an enum is its variant index as a
//! `u32` varint; `f64` is 8 bytes little-endian; a string is its length and UTF-8 bytes.

use alloc::string::String;
use alloc::vec::Vec;

use crate::model::{BudgetUnit, Mandate, RiskLevel};
use crate::reasons::Reason;

/// Why bytes are not what the codec expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside a value.
    Truncated,
    /// A varint is too long for its type or carries bits beyond it.
    BadVarint,
    /// A `bool` byte other than 0 or 1.
    BadBool,
    /// An `Option` tag other than 0 or 1.
    BadOption,
    /// An enum variant index out of range.
    BadVariant,
    /// A string that is not UTF-8.
    BadUtf8,
    /// A reason whose code and name do not name one reason.
    BadReason,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DecodeError::Truncated => "the bytes end inside a value",
            DecodeError::BadVarint => "a varint is malformed",
            DecodeError::BadBool => "a bool is neither 0 nor 1",
            DecodeError::BadOption => "an option tag is neither 0 nor 1",
            DecodeError::BadVariant => "an enum variant is out of range",
            DecodeError::BadUtf8 => "a string is not UTF-8",
            DecodeError::BadReason => "a reason's code and name disagree",
        })
    }
}

/// Appends `value` as a LEB128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

pub(super) fn put_strs(out: &mut Vec<u8>, items: &[String]) {
    put_varint(out, items.len() as u64);
    for item in items {
        put_str(out, item);
    }
}

pub(super) fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

pub(super) fn risk_index(risk: RiskLevel) -> u64 {
    match risk {
        RiskLevel::Low => 0,
        RiskLevel::Medium => 1,
        RiskLevel::High => 2,
        RiskLevel::Critical => 3,
    }
}

pub(super) fn unit_index(unit: BudgetUnit) -> u64 {
    match unit {
        BudgetUnit::UsdMicrocents => 0,
        BudgetUnit::Tokens => 1,
        BudgetUnit::Credits => 2,
        BudgetUnit::RiskPoints => 3,
    }
}

pub(super) fn put_mandate(out: &mut Vec<u8>, mandate: &Mandate) {
    put_varint(out, mandate.value_ceiling);
    put_strs(out, &mandate.action_kinds);
    put_strs(out, &mandate.counterparties);
    put_varint(out, mandate.budgets.len() as u64);
    for budget in &mandate.budgets {
        put_varint(out, unit_index(budget.unit));
        put_varint(out, budget.amount);
    }
    out.push(mandate.remaining_depth);
    put_varint(out, mandate.expires_at);
}

/// Appends a reason as its code and name.
pub(super) fn put_reason(out: &mut Vec<u8>, reason: Reason) {
    put_varint(out, u64::from(reason.code()));
    put_str(out, reason.name());
}

/// Appends an `f64` as its 8 little-endian bytes.
pub(super) fn put_f64(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// A cursor over encoded bytes.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
}

/// The most elements a length may announce before any is read: each element takes at least
/// one byte, so a longer announced length is refused when its elements run out; this only
/// bounds the up-front reservation, as serde's `size_hint::cautious` does.
const MAX_RESERVED: usize = 4096;

impl<'a> Reader<'a> {
    #[inline]
    pub(super) fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.bytes.split_first().ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(first)
    }

    /// A varint of at most `MAX` bytes whose last byte is at most `max_last`.
    #[inline]
    fn varint<const MAX: usize>(&mut self, max_last: u8) -> Result<u64, DecodeError> {
        // Most lengths, enum indices and small numbers take one byte.
        if let Some((&first, rest)) = self.bytes.split_first()
            && first < 0x80
        {
            self.bytes = rest;
            return Ok(u64::from(first));
        }
        self.varint_slow::<MAX>(max_last)
    }

    /// A varint of two or more bytes. Up to 8 bytes are decoded without a loop (inside the
    /// component every loop head also costs an epoch check): the terminating byte is the first
    /// without its high bit, and the 7-bit groups are packed together in three shift-and-mask
    /// steps. Longer varints, and the last few bytes of the input, take the byte loop.
    #[inline(never)]
    fn varint_slow<const MAX: usize>(&mut self, max_last: u8) -> Result<u64, DecodeError> {
        if let Some(head) = self.bytes.first_chunk::<8>() {
            let word = u64::from_le_bytes(*head);
            let ends = !word & 0x8080_8080_8080_8080;
            if ends != 0 {
                let len = (ends.trailing_zeros() / 8 + 1) as usize;
                if len > MAX {
                    return Err(DecodeError::BadVarint);
                }
                if len == MAX && head[len - 1] > max_last {
                    return Err(DecodeError::BadVarint);
                }
                let kept = if len == 8 { word } else { word & ((1u64 << (8 * len)) - 1) };
                let mut x = kept & 0x7f7f_7f7f_7f7f_7f7f;
                x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
                x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
                x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
                self.bytes = self.bytes.get(len..).unwrap_or_default();
                return Ok(x);
            }
            if MAX <= 8 {
                return Err(DecodeError::BadVarint);
            }
        }
        let bytes = self.bytes;
        let mut value = 0u64;
        for i in 0..MAX {
            let &byte = bytes.get(i).ok_or(DecodeError::Truncated)?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i + 1 == MAX && byte > max_last {
                    return Err(DecodeError::BadVarint);
                }
                self.bytes = bytes.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    #[inline]
    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.varint::<3>(0x03)?).map_err(|_| DecodeError::BadVarint)
    }

    #[inline]
    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint::<5>(0x0f)?).map_err(|_| DecodeError::BadVarint)
    }

    #[inline]
    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.varint::<10>(0x01)
    }

    /// A length, read as postcard reads a `usize` on this target.
    #[inline]
    pub(super) fn len(&mut self) -> Result<usize, DecodeError> {
        #[cfg(target_pointer_width = "64")]
        let value = self.u64()?;
        #[cfg(not(target_pointer_width = "64"))]
        let value = u64::from(self.u32()?);
        usize::try_from(value).map_err(|_| DecodeError::BadVarint)
    }

    #[inline]
    pub(super) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadBool),
        }
    }

    #[inline]
    pub(super) fn option(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadOption),
        }
    }

    pub(super) fn f64(&mut self) -> Result<f64, DecodeError> {
        let (head, rest) = self.bytes.split_first_chunk::<8>().ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(f64::from_le_bytes(*head))
    }

    #[inline]
    pub(super) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.len()?;
        if len > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let (text, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        core::str::from_utf8(text).map_err(|_| DecodeError::BadUtf8)
    }

    pub(super) fn seq<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let len = self.len()?;
        let mut items = Vec::with_capacity(len.min(MAX_RESERVED).min(self.bytes.len()));
        for _ in 0..len {
            items.push(item(self)?);
        }
        Ok(items)
    }

    pub(super) fn risk(&mut self) -> Result<RiskLevel, DecodeError> {
        Ok(match self.u32()? {
            0 => RiskLevel::Low,
            1 => RiskLevel::Medium,
            2 => RiskLevel::High,
            3 => RiskLevel::Critical,
            _ => return Err(DecodeError::BadVariant),
        })
    }

    pub(super) fn unit(&mut self) -> Result<BudgetUnit, DecodeError> {
        Ok(match self.u32()? {
            0 => BudgetUnit::UsdMicrocents,
            1 => BudgetUnit::Tokens,
            2 => BudgetUnit::Credits,
            3 => BudgetUnit::RiskPoints,
            _ => return Err(DecodeError::BadVariant),
        })
    }

    /// A reason as its code and name, which must name the same reason.
    pub(super) fn reason(&mut self) -> Result<Reason, DecodeError> {
        let code = self.u16()?;
        let name = self.str()?;
        match Reason::from_code(code) {
            Some(reason) if reason.name() == name => Ok(reason),
            _ => Err(DecodeError::BadReason),
        }
    }

    /// An owned string.
    pub(super) fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(String::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The value postcard reads from `bytes` as `T`, widened.
    fn postcard_reads<'a, T: serde::Deserialize<'a> + Into<u64>>(bytes: &'a [u8]) -> Option<u64> {
        postcard::from_bytes::<T>(bytes).ok().map(Into::into)
    }

    proptest! {
        /// Varints of every length, well-formed or not, read as postcard reads them, with the
        /// same bytes left over.
        #[test]
        fn varints_read_as_postcard_reads_them(
            value in prop_oneof![any::<u64>(), 0..1u64 << 21, (0..64u32).prop_map(|b| 1u64 << b)],
            junk in proptest::collection::vec(any::<u8>(), 0..12),
            cut in 0..12usize,
            flip in proptest::option::of((0..12usize, any::<u8>())),
        ) {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, value);
            bytes.extend_from_slice(&junk);
            if let Some((at, byte)) = flip && at < bytes.len() {
                bytes[at] = byte;
            }
            bytes.truncate(bytes.len().saturating_sub(cut % 3));
            let left = |r: &Reader<'_>| r.bytes.len();
            let mut reader = Reader { bytes: &bytes };
            prop_assert_eq!(reader.u64().ok(), postcard_reads::<u64>(&bytes));
            let mut reader32 = Reader { bytes: &bytes };
            prop_assert_eq!(reader32.u32().ok().map(u64::from), postcard_reads::<u32>(&bytes));
            if let Ok((_, rest)) = postcard::take_from_bytes::<u32>(&bytes) {
                prop_assert_eq!(left(&reader32), rest.len());
            }
            let mut reader16 = Reader { bytes: &bytes };
            prop_assert_eq!(reader16.u16().ok().map(u64::from), postcard_reads::<u16>(&bytes));
            if let Ok((_, rest)) = postcard::take_from_bytes::<u16>(&bytes) {
                prop_assert_eq!(left(&reader16), rest.len());
            }
            if let Ok((read, rest)) = postcard::take_from_bytes::<u64>(&bytes) {
                if flip.is_none() && cut % 3 == 0 {
                    prop_assert_eq!(read, value);
                }
                let mut again = Reader { bytes: &bytes };
                prop_assert_eq!(again.u64().ok(), Some(read));
                prop_assert_eq!(left(&again), rest.len());
            }
        }
    }
}
