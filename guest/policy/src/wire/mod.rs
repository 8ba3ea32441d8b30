//! The binary fast path between a Rust host and the component: requests and verdicts as
//! postcard bytes in one `list<u8>` each way, instead of the typed WIT records.
//!
//! Lowering typed records costs one guest allocation per string and list (about 25 for a
//! typical request), which dominates a call; one byte buffer costs one. The bytes are
//! postcard's encoding of the serde types, written and read by hand ([`bytes`], [`request`],
//! [`verdict`]) because serde's visitors were most of the codec's cost. Both sides must be
//! built from the same `sbd-policy` wire version, which the component reports in its
//! `policy-info`; a host falls back to the typed path when they differ.

use alloc::string::String;
use alloc::vec::Vec;

use crate::model::{Request, Verdict};
use crate::view::RequestView;

/// The version of this encoding; bump it whenever a serialized type changes shape.
pub const WIRE_VERSION: u32 = 3;

mod bytes;
mod request;
mod verdict;

pub use bytes::DecodeError;

/// Encodes requests for [`crate::Policy::evaluate_encoded`].
pub fn encode_requests(requests: &[Request]) -> Result<Vec<u8>, String> {
    encode_requests_into(requests, Vec::new())
}

/// [`encode_requests`] into `buffer` (cleared first), so a caller can reuse one allocation
/// across calls; returns the buffer holding exactly the encoding. Written by hand
/// ([`request`]): postcard's bytes for `(WIRE_VERSION, requests)`, without serde.
pub fn encode_requests_into(requests: &[Request], mut buffer: Vec<u8>) -> Result<Vec<u8>, String> {
    buffer.clear();
    request::write_requests(&mut buffer, WIRE_VERSION, requests);
    Ok(buffer)
}

/// Decodes what [`encode_requests`] wrote.
pub fn decode_requests(bytes: &[u8]) -> Result<Vec<Request>, String> {
    Ok(decode_request_views(bytes)?.iter().map(RequestView::to_request).collect())
}

/// Decodes what [`encode_requests`] wrote as borrowed views into `bytes`: no allocation per
/// string, each string's UTF-8 checked once, the same acceptance as postcard's deserializer.
pub fn decode_request_views(bytes: &[u8]) -> Result<Vec<RequestView<'_>>, String> {
    let (version, views) = request::read_requests(bytes).map_err(|e| alloc::format!("undecodable: {e}"))?;
    if version != WIRE_VERSION {
        return Err(alloc::format!("wire version {version} is not {WIRE_VERSION}"));
    }
    Ok(views)
}

/// Encodes the answer to an encoded call: the verdicts, or why the requests were unreadable.
/// Written by hand ([`verdict`]): postcard's bytes for `(WIRE_VERSION, answer)`, without serde.
pub fn encode_verdicts(verdicts: Result<&[Verdict], &str>) -> Result<Vec<u8>, String> {
    // Room for a typical answer up front: growing the buffer measured as 3% of a call.
    let mut out = Vec::with_capacity(64 + 320 * verdicts.map_or(0, <[Verdict]>::len));
    verdict::write_answer(&mut out, WIRE_VERSION, verdicts);
    Ok(out)
}

/// Decodes what [`encode_verdicts`] wrote; an unreadable-requests answer becomes `Err`.
pub fn decode_verdicts(bytes: &[u8]) -> Result<Vec<Verdict>, String> {
    let (version, answer) = verdict::read_answer(bytes).map_err(|e| alloc::format!("undecodable: {e}"))?;
    if version != WIRE_VERSION {
        return Err(alloc::format!("wire version {version} is not {WIRE_VERSION}"));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::reasons::Reason;
    use alloc::vec;

    fn request() -> Request {
        let mandate = Mandate {
            value_ceiling: 10,
            action_kinds: vec!["payment.*".into()],
            counterparties: vec!["*".into()],
            budgets: vec![Budget { unit: BudgetUnit::Tokens, amount: 5 }],
            remaining_depth: 2,
            expires_at: 99,
        };
        Request {
            from: Agent { id: "a".into(), trust: 700 },
            to: Agent { id: "b".into(), trust: 600 },
            task: Task {
                id: "t".into(),
                action_kind: "payment.refund".into(),
                risk: RiskLevel::High,
                value: 3,
                counterparty: Some("acme".into()),
                completable_locally: false,
            },
            parent_mandate: mandate.clone(),
            requested_mandate: mandate,
            chain: vec![Link {
                from: "o".into(),
                to: "a".into(),
                depth: 1,
                alpha: 0.5,
                at: 1,
                reason: "r".into(),
            }],
            state: vec![0.1, f64::NAN],
            depth_exception: Some(DepthException {
                approved_by: "h".into(),
                justification: "j".into(),
                extra_depth: 1,
                expires_at: 9,
            }),
            action_mask: Some(ActionMask { toolsets: vec![ToolsetBudget { toolset: "payment".into(), remaining: 7 }], cost: 5 }),
            registry: Some(RegistryFacts {
                delegator_registered: true,
                delegate_registered: true,
                unregistered: UnregisteredRule::Escalate,
                reviewer: "human".into(),
                explicit_delegation: true,
                delegate_listed: false,
            }),
            now: 5,
        }
    }

    #[test]
    fn requests_round_trip() {
        let original = vec![request(), request()];
        let bytes = encode_requests(&original).unwrap_or_default();
        let decoded = decode_requests(&bytes).unwrap_or_default();
        assert_eq!(decoded.len(), 2);
        // NaN != NaN, so compare the encodings.
        assert_eq!(encode_requests(&decoded).unwrap_or_default(), bytes);
    }

    #[test]
    fn encoding_into_a_used_buffer_gives_the_same_bytes() {
        let requests = vec![request(), request()];
        let fresh = encode_requests(&requests).unwrap_or_default();
        let reused = encode_requests_into(&requests, vec![7; 3000]).unwrap_or_default();
        assert_eq!(reused, fresh);
    }

    #[test]
    fn every_verdict_shape_round_trips() {
        let verdicts = vec![
            Verdict::deny(Reason::DelegationCycle, "cycle"),
            Verdict::escalate(EscalationTarget::Agent("sup".into()), Reason::TrustEscalation, "tier"),
            Verdict::Allow(Grant {
                alpha: 0.5,
                lambda: 0.25,
                sub_agent: "b".into(),
                effective_trust: 600,
                effective_tier: TrustTier::T3,
                child_mandate: request().requested_mandate,
                depth: 2,
                remaining_depth: 1,
                max_depth: 3,
                accountability: vec![AccountabilityShare { agent: "o".into(), weight: 1.0 }],
                accountability_ceiling: 0.75,
                warnings: vec![Warning { reason: Reason::DepthWarning, message: "deep".into() }],
            }),
        ];
        let bytes = encode_verdicts(Ok(&verdicts)).unwrap_or_default();
        assert_eq!(decode_verdicts(&bytes), Ok(verdicts));
        let refused = encode_verdicts(Err("unreadable")).unwrap_or_default();
        assert_eq!(decode_verdicts(&refused), Err("unreadable".into()));
    }

    #[test]
    fn other_versions_and_garbage_are_rejected() {
        let mut bytes = encode_requests(&[request()]).unwrap_or_default();
        bytes[0] = 7;
        assert!(decode_requests(&bytes).is_err_and(|e| e.contains("wire version 7")));
        assert!(decode_requests(&[0xff; 3]).is_err());
        assert!(decode_verdicts(&[]).is_err());
    }
}
