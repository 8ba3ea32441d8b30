//! The answer encoding written and read by hand: the same bytes as postcard's serde encoding of
//! `(u32, Result<[Verdict], str>)`, without serde. Serde wrote each denial and warning through a
//! cloned flat representation with the reason's name copied into a new string; here the name is
//! written straight from the reason table, and read back into the reason it must name.
//!
//! The serde derives of [`Verdict`] stay the reference: `tests/borrowed.rs` checks that this
//! writer produces postcard's bytes for verdicts of every shape and that this reader accepts
//! exactly what postcard's deserializer accepts on mutated bytes.

use alloc::string::String;
use alloc::vec::Vec;

use super::bytes::{DecodeError, Reader, put_f64, put_mandate, put_reason, put_str, put_varint};
use crate::model::{
    AccountabilityShare, Denial, Escalation, EscalationTarget, Grant, Mandate, TrustTier, Verdict, Warning,
};

/// `Result`'s variant indices, as serde numbers them.
const OK: u64 = 0;
const ERR: u64 = 1;

/// Appends the encoding of `version` followed by the answer to an encoded call.
pub fn write_answer(out: &mut Vec<u8>, version: u32, answer: Result<&[Verdict], &str>) {
    put_varint(out, u64::from(version));
    match answer {
        Ok(verdicts) => {
            put_varint(out, OK);
            put_varint(out, verdicts.len() as u64);
            for verdict in verdicts {
                write_verdict(out, verdict);
            }
        }
        Err(why) => {
            put_varint(out, ERR);
            put_str(out, why);
        }
    }
}

fn write_verdict(out: &mut Vec<u8>, verdict: &Verdict) {
    match verdict {
        Verdict::Allow(grant) => {
            put_varint(out, 0);
            put_f64(out, grant.alpha);
            put_f64(out, grant.lambda);
            put_str(out, &grant.sub_agent);
            put_varint(out, u64::from(grant.effective_trust));
            put_varint(out, grant.effective_tier as u64);
            put_mandate(out, &grant.child_mandate);
            out.extend_from_slice(&[grant.depth, grant.remaining_depth, grant.max_depth]);
            put_varint(out, grant.accountability.len() as u64);
            for share in &grant.accountability {
                put_str(out, &share.agent);
                put_f64(out, share.weight);
            }
            put_f64(out, grant.accountability_ceiling);
            put_varint(out, grant.warnings.len() as u64);
            for warning in &grant.warnings {
                put_reason(out, warning.reason);
                put_str(out, &warning.message);
            }
        }
        Verdict::Escalate(escalation) => {
            put_varint(out, 1);
            let (index, whom) = match &escalation.target {
                EscalationTarget::Human(whom) => (0, whom),
                EscalationTarget::Agent(whom) => (1, whom),
            };
            put_varint(out, index);
            put_str(out, whom);
            put_reason(out, escalation.reason);
            put_str(out, &escalation.message);
        }
        Verdict::Deny(denial) => {
            put_varint(out, 2);
            put_reason(out, denial.reason);
            put_str(out, &denial.message);
        }
    }
}

impl Reader<'_> {
    fn owned_mandate(&mut self) -> Result<Mandate, DecodeError> {
        Ok(Mandate {
            value_ceiling: self.u64()?,
            action_kinds: self.seq(Self::string)?,
            counterparties: self.seq(Self::string)?,
            budgets: self.seq(|r| Ok(crate::model::Budget { unit: r.unit()?, amount: r.u64()? }))?,
            remaining_depth: self.byte()?,
            expires_at: self.u64()?,
        })
    }

    fn tier(&mut self) -> Result<TrustTier, DecodeError> {
        let index = usize::try_from(self.u32()?).map_err(|_| DecodeError::BadVariant)?;
        TrustTier::ALL.get(index).copied().ok_or(DecodeError::BadVariant)
    }

    fn verdict(&mut self) -> Result<Verdict, DecodeError> {
        Ok(match self.u32()? {
            0 => Verdict::Allow(Grant {
                alpha: self.f64()?,
                lambda: self.f64()?,
                sub_agent: self.string()?,
                effective_trust: self.u16()?,
                effective_tier: self.tier()?,
                child_mandate: self.owned_mandate()?,
                depth: self.byte()?,
                remaining_depth: self.byte()?,
                max_depth: self.byte()?,
                accountability: self
                    .seq(|r| Ok(AccountabilityShare { agent: r.string()?, weight: r.f64()? }))?,
                accountability_ceiling: self.f64()?,
                warnings: self.seq(|r| Ok(Warning { reason: r.reason()?, message: r.string()? }))?,
            }),
            1 => {
                let target = match self.u32()? {
                    0 => EscalationTarget::Human(self.string()?),
                    1 => EscalationTarget::Agent(self.string()?),
                    _ => return Err(DecodeError::BadVariant),
                };
                Verdict::Escalate(Escalation { target, reason: self.reason()?, message: self.string()? })
            }
            2 => Verdict::Deny(Denial { reason: self.reason()?, message: self.string()? }),
            _ => return Err(DecodeError::BadVariant),
        })
    }
}

/// Reads the version and the answer; trailing bytes are ignored, as postcard's `from_bytes`
/// ignores them.
pub fn read_answer(bytes: &[u8]) -> Result<(u32, Result<Vec<Verdict>, String>), DecodeError> {
    let mut reader = Reader { bytes };
    let version = reader.u32()?;
    let answer = match reader.u32()? {
        0 => Ok(reader.seq(Reader::verdict)?),
        1 => Err(reader.string()?),
        _ => return Err(DecodeError::BadVariant),
    };
    Ok((version, answer))
}
