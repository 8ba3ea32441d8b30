//! The request encoding written and read by hand: the same bytes as postcard's serde encoding
//! of `(u32, [Request])` (so [`super::WIRE_VERSION`] is unchanged), without serde's visitor
//! machinery, which measured as most of a component call's decoding and encoding time.
//!
//! The field order is the one of [`Request`]'s (and [`RequestView`]'s) serde derives, which stay
//! the reference: `tests/borrowed.rs` checks that this writer produces postcard's bytes for
//! generated requests and that this reader accepts and rejects exactly what postcard's
//! deserializer does on mutated bytes.

use alloc::vec::Vec;

use super::bytes::{DecodeError, Reader, put_bool, put_mandate, put_str, put_varint, risk_index};
use crate::model::{Budget, Request, UnregisteredRule};
use crate::view::{
    ActionMaskView, AgentView, DepthExceptionView, LinkView, MandateView, RegistryView, RequestView, TaskView,
    ToolsetBudgetView,
};

/// The variant index postcard writes for `rule` (its declaration order).
fn unregistered_index(rule: UnregisteredRule) -> u64 {
    match rule {
        UnregisteredRule::Deny => 0,
        UnregisteredRule::Escalate => 1,
    }
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
            super::bytes::put_f64(out, link.alpha);
            put_varint(out, link.at);
            put_str(out, &link.reason);
        }
        put_varint(out, request.state.len() as u64);
        for x in &request.state {
            super::bytes::put_f64(out, *x);
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
        match &request.registry {
            Some(registry) => {
                out.push(1);
                put_bool(out, registry.delegator_registered);
                put_bool(out, registry.delegate_registered);
                put_varint(out, unregistered_index(registry.unregistered));
                put_str(out, &registry.reviewer);
                put_bool(out, registry.explicit_delegation);
                put_bool(out, registry.delegate_listed);
            }
            None => out.push(0),
        }
        put_varint(out, request.now);
    }
}

impl<'a> Reader<'a> {
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

    fn unregistered(&mut self) -> Result<UnregisteredRule, DecodeError> {
        Ok(match self.u32()? {
            0 => UnregisteredRule::Deny,
            1 => UnregisteredRule::Escalate,
            _ => return Err(DecodeError::BadVariant),
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
                    toolsets: self
                        .seq(|r| Ok(ToolsetBudgetView { toolset: r.str()?, remaining: r.u64()? }))?,
                    cost: self.u64()?,
                })
            } else {
                None
            },
            registry: if self.option()? {
                Some(RegistryView {
                    delegator_registered: self.bool()?,
                    delegate_registered: self.bool()?,
                    unregistered: self.unregistered()?,
                    reviewer: self.str()?,
                    explicit_delegation: self.bool()?,
                    delegate_listed: self.bool()?,
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
