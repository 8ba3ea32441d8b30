//! The host bindings generated from `wit/delegation.wit`, and the conversions between them and
//! `sbd_policy` types (`sbd_policy::wit_conversions!`, shared with the component). Lifting a
//! verdict checks every code against the reason table: a code the table does not know, or one
//! of the wrong kind, is a malformed verdict.

use wasmtime::StoreLimits;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "delegation-policy-component",
});

pub(crate) use exports::sbd::delegation::policy::GuestDelegationPolicy;
use sbd::delegation::types as wit;

/// Per-store host data: only the memory limiter (the policy imports no host functions).
pub(crate) struct HostState {
    pub(crate) limits: StoreLimits,
}

// The conversions, written once in `sbd_policy::wit` for this side and the component's.
sbd_policy::wit_conversions!(wit);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_or_miskinded_codes_are_malformed() {
        let deny = |code, name: &str| {
            verdict_from(wit::Verdict::Deny(wit::Denial { code, name: name.into(), message: String::new() }))
        };
        assert!(deny(1002, "delegation-cycle").is_ok());
        assert!(deny(1002, "self-delegation").is_err());
        assert!(deny(7777, "made-up").is_err());
        // An escalation code used on a denial.
        assert!(deny(5001, "depth-limit-escalation").is_err());
    }
}
