//! Defence in depth: a host re-checks what an allow claims before it trusts it. A component
//! that returns an allow violating the contract (a widened mandate, a degree outside [0, 1],
//! weights that do not partition the chain, a wrong depth) is treated as faulty.
//!
//! One implementation for every host: the Rust runtime calls [`check_verdict`] natively, and
//! the component exports it ([`check_json`], the WIT `check-verdict`) for the Python and JS
//! bindings, which used to carry copies of it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::{Reason, ReasonKind, Request, TrustTier, Verdict, attenuation};

/// Tolerance on the accountability weights' sum.
const WEIGHT_SUM_TOLERANCE: f64 = 1e-9;

/// Checks an allow against the request it answers; refusals and escalations always pass.
pub fn check_verdict(request: &Request, verdict: &Verdict) -> Result<(), String> {
    // A reason of the wrong kind (a warning's code on a denial, an escalation's on a denial)
    // is malformed, as the typed path's lift refuses it.
    let kinded = |reason: Reason, kind: ReasonKind, case: &str| {
        if reason.kind() == kind {
            Ok(())
        } else {
            Err(format!("{case} carries `{}` ({}), a {:?} reason", reason.name(), reason.code(), reason.kind()))
        }
    };
    let grant = match verdict {
        Verdict::Deny(denial) => return kinded(denial.reason, ReasonKind::Deny, "a denial"),
        Verdict::Escalate(escalation) => return kinded(escalation.reason, ReasonKind::Escalate, "an escalation"),
        Verdict::Allow(grant) => grant,
    };
    for warning in &grant.warnings {
        kinded(warning.reason, ReasonKind::Warn, "a warning")?;
    }
    let unit = |name: &str, x: f64| {
        if (0.0..=1.0).contains(&x) { Ok(()) } else { Err(format!("`{name}` is {x}, outside [0, 1]")) }
    };
    // The host's facts refuse this hop: an allow contradicts the rules that decide on them.
    crate::registry::check(request.registry.as_ref().map(crate::RegistryFacts::view), &request.from.id, &request.to.id)
        .map_err(|_| String::from("an allow for a hop the registry facts refuse"))?;
    attenuation::check_action_mask(request.action_mask.as_ref().map(crate::ActionMask::fields), &request.task.view())
        .map_err(|d| format!("an allow for a task the action mask refuses: {}", d.message))?;
    unit("alpha", grant.alpha)?;
    unit("lambda", grant.lambda)?;
    unit("accountability_ceiling", grant.accountability_ceiling)?;
    if usize::from(grant.depth) != request.hop_depth() {
        return Err(format!("`depth` is {} for hop {}", grant.depth, request.hop_depth()));
    }
    if grant.depth > grant.max_depth {
        return Err(format!("`depth` {} exceeds `max_depth` {}", grant.depth, grant.max_depth));
    }
    if grant.sub_agent == request.from.id || request.chain.iter().any(|l| l.from == grant.sub_agent) {
        return Err(format!("`sub_agent` `{}` is already in the chain", grant.sub_agent));
    }
    if grant.effective_trust != request.to.trust
        || grant.effective_tier != TrustTier::of_score(grant.effective_trust)
    {
        return Err("the effective trust is not the executor's own".into());
    }
    attenuation::check_within(&request.parent_mandate, &grant.child_mandate)
        .map_err(|d| format!("the child mandate is wider than the parent's: {}", d.message))?;
    if grant.remaining_depth != grant.child_mandate.remaining_depth {
        return Err("`remaining_depth` disagrees with the child mandate".into());
    }
    if grant.accountability.len() != request.chain.len() + 2 {
        return Err(format!(
            "{} accountability shares for a chain of {} agents",
            grant.accountability.len(),
            request.chain.len() + 2
        ));
    }
    let mut sum = 0.0;
    for share in &grant.accountability {
        unit("accountability weight", share.weight)?;
        sum += share.weight;
    }
    if (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        return Err(format!("accountability weights sum to {sum}, not 1"));
    }
    Ok(())
}

/// [`check_verdict`] on the JSON forms of a request and the verdict that answers it (what the
/// component's `check-verdict` export runs), or of an array of requests and the array of their
/// verdicts, checked pair by pair (one call for a batch). A request that cannot be read must
/// have been denied (`evaluate-json` denies it naming its JSON path), and text that opens an
/// array but is not one must have been answered with one denial. `Err` says what is wrong,
/// prefixed with the index of the pair in an array.
pub fn check_json(request: &str, verdict: &str) -> Result<(), String> {
    if !crate::json::is_array_text(request) {
        let verdict: Verdict = crate::json::from_str(verdict).map_err(|e| format!("verdict {e}"))?;
        return check_read(crate::json::from_str::<Request>(request).ok().as_ref(), &verdict);
    }
    let verdicts: Vec<Verdict> = crate::json::from_str(verdict).map_err(|e| format!("verdict {e}"))?;
    let Ok(items) = crate::json::from_str::<Vec<serde_json::Value>>(request) else {
        return match verdicts.as_slice() {
            [only] => check_read(None, only),
            _ => Err(format!("{} verdicts for text that is not an array of requests", verdicts.len())),
        };
    };
    if items.len() != verdicts.len() {
        return Err(format!("{} verdicts for {} requests", verdicts.len(), items.len()));
    }
    items.into_iter().zip(&verdicts).enumerate().try_for_each(|(i, (item, verdict))| {
        let request = crate::json::from_value::<Request>(item).ok();
        check_read(request.as_ref(), verdict).map_err(|e| format!("[{i}] {e}"))
    })
}

/// [`check_verdict`] for a request that was read, and for one that was not: its verdict must
/// be a denial.
fn check_read(request: Option<&Request>, verdict: &Verdict) -> Result<(), String> {
    match (request, verdict) {
        (Some(request), verdict) => check_verdict(request, verdict),
        (None, Verdict::Deny(_)) => Ok(()),
        (None, _) => Err("a request that cannot be read was not denied".into()),
    }
}
