//! The request encoding written and read by hand: the same bytes as postcard's serde encoding
//! of `(u32, [Request])` (so [`super::WIRE_VERSION`] is unchanged), without serde's visitor
//! machinery, which measured as most of a component call's decoding and encoding time.
//!
//! The field order is the one of [`Request`]'s (and [`RequestView`]'s) serde derives, which stay
//! the reference: `tests/borrowed.rs` checks that this writer produces postcard's bytes for
//! generated requests and that this reader accepts and rejects exactly what postcard's
//! deserializer does on mutated bytes.
//!
//! Postcard's rules, as implemented here: `u8` is one byte; `u16`, `u32`, `u64` and lengths are
//! LEB128 varints of at most 3, 5 and 10 bytes whose last byte may not carry bits beyond the
//! type; `bool` and an `Option`'s tag are one byte, 0 or 1; an enum is its variant index as a
//! `u32` varint; `f64` is 8 bytes little-endian; a string is its length and UTF-8 bytes.

use alloc::string::String;
use alloc::vec::Vec;

use crate::model::{Budget, BudgetUnit, Mandate, Request, RiskLevel};
use crate::view::{
    ActionMaskView, AgentView, DepthExceptionView, LinkView, MandateView, RequestView, TaskView, ToolsetBudgetView,
};

/// Why bytes are not a request encoding.
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
        })
    }
}

/// Appends `value` as a LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn put_strs(out: &mut Vec<u8>, items: &[String]) {
    put_varint(out, items.len() as u64);
    for item in items {
        put_str(out, item);
    }
}

fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

fn risk_index(risk: RiskLevel) -> u64 {
    match risk {
        RiskLevel::Low => 0,
        RiskLevel::Medium => 1,
        RiskLevel::High => 2,
        RiskLevel::Critical => 3,
    }
}

fn unit_index(unit: BudgetUnit) -> u64 {
    match unit {
        BudgetUnit::UsdMicrocents => 0,
        BudgetUnit::Tokens => 1,
        BudgetUnit::Credits => 2,
        BudgetUnit::RiskPoints => 3,
    }
}

fn put_mandate(out: &mut Vec<u8>, mandate: &Mandate) {
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

/// Appends the encoding of `version` followed by `requests` to `out`.
pub fn write_requests(out: &mut Vec<u8>, version: u32, requests: &[Request]) {
    put_varint(out, u64::from(version));
    put_varint(out, requests.len() as u64);
    for request in requests {
        for agent in [&request.from, &request.to] {
            put_str(out, &agent.id);
            put_varint(out, u64::from(agent.trust));
        }
        let task = &request.task;
        put_str(out, &task.id);
        put_str(out, &task.action_kind);
        put_varint(out, risk_index(task.risk));
        put_varint(out, task.value);
        match &task.counterparty {
            Some(party) => {
                out.push(1);
                put_str(out, party);
            }
            None => out.push(0),
        }
        put_bool(out, task.completable_locally);
        put_mandate(out, &request.parent_mandate);
        put_mandate(out, &request.requested_mandate);
        put_varint(out, request.chain.len() as u64);
        for link in &request.chain {
            put_str(out, &link.from);
            put_str(out, &link.to);
            out.push(link.depth);
            out.extend_from_slice(&link.alpha.to_le_bytes());
            put_varint(out, link.at);
            put_str(out, &link.reason);
        }
        put_varint(out, request.state.len() as u64);
        for x in &request.state {
            out.extend_from_slice(&x.to_le_bytes());
        }
        match &request.depth_exception {
            Some(exception) => {
                out.push(1);
                put_str(out, &exception.approved_by);
                put_str(out, &exception.justification);
                out.push(exception.extra_depth);
                put_varint(out, exception.expires_at);
            }
            None => out.push(0),
        }
        match &request.action_mask {
            Some(mask) => {
                out.push(1);
                put_varint(out, mask.toolsets.len() as u64);
                for toolset in &mask.toolsets {
                    put_str(out, &toolset.toolset);
                    put_varint(out, toolset.remaining);
                }
                put_varint(out, mask.cost);
            }
            None => out.push(0),
        }
        put_varint(out, request.now);
    }
}

/// A cursor over request bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

/// The most elements a length may announce before any is read: each element takes at least
/// one byte, so a longer announced length is refused when its elements run out; this only
/// bounds the up-front reservation, as serde's `size_hint::cautious` does.
const MAX_RESERVED: usize = 4096;

impl<'a> Reader<'a> {
    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.bytes.split_first().ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(first)
    }

    /// A varint of at most `max_bytes` bytes whose last byte is at most `max_last`.
    #[inline]
    fn varint(&mut self, max_bytes: u32, max_last: u8) -> Result<u64, DecodeError> {
        // Most lengths, enum indices and small numbers take one byte.
        if let Some((&first, rest)) = self.bytes.split_first()
            && first < 0x80
        {
            self.bytes = rest;
            return Ok(u64::from(first));
        }
        self.varint_slow(max_bytes, max_last)
    }

    #[inline(never)]
    fn varint_slow(&mut self, max_bytes: u32, max_last: u8) -> Result<u64, DecodeError> {
        let bytes = self.bytes;
        let mut value = 0u64;
        for i in 0..max_bytes as usize {
            let &byte = bytes.get(i).ok_or(DecodeError::Truncated)?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i + 1 == max_bytes as usize && byte > max_last {
                    return Err(DecodeError::BadVarint);
                }
                self.bytes = bytes.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.varint(3, 0x03)?).map_err(|_| DecodeError::BadVarint)
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint(5, 0x0f)?).map_err(|_| DecodeError::BadVarint)
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.varint(10, 0x01)
    }

    /// A length, read as postcard reads a `usize` on this target.
    #[inline]
    fn len(&mut self) -> Result<usize, DecodeError> {
        #[cfg(target_pointer_width = "64")]
        let value = self.u64()?;
        #[cfg(not(target_pointer_width = "64"))]
        let value = u64::from(self.u32()?);
        usize::try_from(value).map_err(|_| DecodeError::BadVarint)
    }

    #[inline]
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadBool),
        }
    }

    #[inline]
    fn option(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadOption),
        }
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        let (head, rest) = self.bytes.split_first_chunk::<8>().ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(f64::from_le_bytes(*head))
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.len()?;
        if len > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let (text, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        core::str::from_utf8(text).map_err(|_| DecodeError::BadUtf8)
    }

    fn seq<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>) -> Result<Vec<T>, DecodeError> {
        let len = self.len()?;
        let mut items = Vec::with_capacity(len.min(MAX_RESERVED).min(self.bytes.len()));
        for _ in 0..len {
            items.push(item(self)?);
        }
        Ok(items)
    }

    fn risk(&mut self) -> Result<RiskLevel, DecodeError> {
        Ok(match self.u32()? {
            0 => RiskLevel::Low,
            1 => RiskLevel::Medium,
            2 => RiskLevel::High,
            3 => RiskLevel::Critical,
            _ => return Err(DecodeError::BadVariant),
        })
    }

    fn unit(&mut self) -> Result<BudgetUnit, DecodeError> {
        Ok(match self.u32()? {
            0 => BudgetUnit::UsdMicrocents,
            1 => BudgetUnit::Tokens,
            2 => BudgetUnit::Credits,
            3 => BudgetUnit::RiskPoints,
            _ => return Err(DecodeError::BadVariant),
        })
    }

    fn agent(&mut self) -> Result<AgentView<'a>, DecodeError> {
        Ok(AgentView { id: self.str()?, trust: self.u16()? })
    }

    fn mandate(&mut self) -> Result<MandateView<'a>, DecodeError> {
        Ok(MandateView {
            value_ceiling: self.u64()?,
            action_kinds: self.seq(Self::str)?,
            counterparties: self.seq(Self::str)?,
            budgets: self.seq(|r| Ok(Budget { unit: r.unit()?, amount: r.u64()? }))?,
            remaining_depth: self.byte()?,
            expires_at: self.u64()?,
        })
    }

    fn request(&mut self) -> Result<RequestView<'a>, DecodeError> {
        Ok(RequestView {
            from: self.agent()?,
            to: self.agent()?,
            task: TaskView {
                id: self.str()?,
                action_kind: self.str()?,
                risk: self.risk()?,
                value: self.u64()?,
                counterparty: if self.option()? { Some(self.str()?) } else { None },
                completable_locally: self.bool()?,
            },
            parent_mandate: self.mandate()?,
            requested_mandate: self.mandate()?,
            chain: self.seq(|r| {
                Ok(LinkView {
                    from: r.str()?,
                    to: r.str()?,
                    depth: r.byte()?,
                    alpha: r.f64()?,
                    at: r.u64()?,
                    reason: r.str()?,
                })
            })?,
            state: self.seq(Self::f64)?,
            depth_exception: if self.option()? {
                Some(DepthExceptionView {
                    approved_by: self.str()?,
                    justification: self.str()?,
                    extra_depth: self.byte()?,
                    expires_at: self.u64()?,
                })
            } else {
                None
            },
            action_mask: if self.option()? {
                Some(ActionMaskView {
                    toolsets: self.seq(|r| Ok(ToolsetBudgetView { toolset: r.str()?, remaining: r.u64()? }))?,
                    cost: self.u64()?,
                })
            } else {
                None
            },
            now: self.u64()?,
        })
    }
}

/// Reads the version and the requests as borrowed views; trailing bytes are ignored, as
/// postcard's `from_bytes` ignores them.
pub fn read_requests(bytes: &[u8]) -> Result<(u32, Vec<RequestView<'_>>), DecodeError> {
    let mut reader = Reader { bytes };
    let version = reader.u32()?;
    let requests = reader.seq(Reader::request)?;
    Ok((version, requests))
}
