//! The canary: golden requests a bundle carries with the verdicts it must give them, run on the
//! freshly loaded policy before it may serve.
//!
//! ```json
//! {"cases": [{"name": "self-delegation is refused",
//!             "request": { ... a delegation request ... },
//!             "expect": {"outcome": "deny", "reason": "self-delegation"}}]}
//! ```

use sbd_policy::{Reason, Request, Verdict};
use serde::{Deserialize, Serialize};

/// What a verdict is, without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The delegation goes ahead.
    Allow,
    /// It is held for a human or a more trusted agent.
    Escalate,
    /// It is refused.
    Deny,
}

impl Outcome {
    /// The outcome of `verdict`.
    pub fn of(verdict: &Verdict) -> Outcome {
        match verdict {
            Verdict::Allow(_) => Outcome::Allow,
            Verdict::Escalate(_) => Outcome::Escalate,
            Verdict::Deny(_) => Outcome::Deny,
        }
    }
}

/// The verdict a case expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Allow, escalate or deny.
    pub outcome: Outcome,
    /// The reason's kebab name (`delegation-cycle`), for an escalation or a denial; when absent
    /// any reason is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Expectation {
    /// What `verdict` is, as an expectation that it meets.
    pub fn of(verdict: &Verdict) -> Expectation {
        Expectation { outcome: Outcome::of(verdict), reason: verdict.reason().map(|r| r.name().to_string()) }
    }

    fn matches(&self, verdict: &Verdict) -> bool {
        Outcome::of(verdict) == self.outcome
            && self.reason.as_deref().is_none_or(|name| verdict.reason().map(Reason::name) == Some(name))
    }
}

/// One golden request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryCase {
    /// What the case shows, for people and error messages.
    pub name: String,
    /// The request.
    pub request: Request,
    /// The verdict it must get.
    pub expect: Expectation,
}

/// A bundle's golden requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// At least one case.
    pub cases: Vec<CanaryCase>,
}

/// Why a canary was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanaryError {
    /// The canary file is not a canary.
    #[error("not a canary file: {0}")]
    Malformed(String),
    /// It has no case, so it would prove nothing.
    #[error("the canary has no cases")]
    Empty,
    /// A case names a reason that does not exist.
    #[error("case `{case}`: `expect.reason` `{reason}` is not a reason name (see `sbd reasons`)")]
    UnknownReason {
        /// The case.
        case: String,
        /// The name given.
        reason: String,
    },
    /// A case got another verdict than expected.
    #[error("case `{case}`: expected {expected}, got {got}")]
    Mismatch {
        /// The case.
        case: String,
        /// The expected verdict, in words.
        expected: String,
        /// The verdict given, in words.
        got: String,
    },
}

fn describe(outcome: Outcome, reason: Option<&str>) -> String {
    let word = match outcome {
        Outcome::Allow => "allow",
        Outcome::Escalate => "escalate",
        Outcome::Deny => "deny",
    };
    match reason {
        Some(reason) => format!("{word} `{reason}`"),
        None => word.to_string(),
    }
}

impl Canary {
    /// Parses and checks a canary file's bytes: JSON, at least one case, known reason names.
    pub fn from_json(bytes: &[u8]) -> Result<Canary, CanaryError> {
        let canary: Canary =
            serde_json::from_slice(bytes).map_err(|e| CanaryError::Malformed(e.to_string()))?;
        canary.check()?;
        Ok(canary)
    }

    /// The canary file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// A canary whose expectations are the verdicts `decide` gives `requests` now (to record
    /// a known-good policy's behaviour as the golden set for its next version).
    pub fn record(requests: &[(String, Request)], mut decide: impl FnMut(&Request) -> Verdict) -> Canary {
        let cases = requests
            .iter()
            .map(|(name, request)| CanaryCase {
                name: name.clone(),
                expect: Expectation::of(&decide(request)),
                request: request.clone(),
            })
            .collect();
        Canary { cases }
    }

    fn check(&self) -> Result<(), CanaryError> {
        if self.cases.is_empty() {
            return Err(CanaryError::Empty);
        }
        for case in &self.cases {
            if let Some(reason) = &case.expect.reason
                && !Reason::ALL.iter().any(|r| r.name() == reason)
            {
                return Err(CanaryError::UnknownReason { case: case.name.clone(), reason: reason.clone() });
            }
        }
        Ok(())
    }

    /// Runs every case through `decide`; the first mismatch is the error.
    pub fn run(&self, mut decide: impl FnMut(&Request) -> Verdict) -> Result<(), CanaryError> {
        self.check()?;
        for case in &self.cases {
            let verdict = decide(&case.request);
            if !case.expect.matches(&verdict) {
                return Err(CanaryError::Mismatch {
                    case: case.name.clone(),
                    expected: describe(case.expect.outcome, case.expect.reason.as_deref()),
                    got: describe(Outcome::of(&verdict), verdict.reason().map(Reason::name)),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use sbd_policy::{Policy, PolicyConfig};

    fn cases() -> Vec<(String, Request)> {
        let allowed = sbd_e2e::allowed_request();
        let mut itself = allowed.clone();
        itself.to.id = itself.from.id.clone();
        vec![("allowed".into(), allowed), ("self".into(), itself)]
    }

    #[test]
    fn a_recorded_canary_passes_and_a_changed_policy_fails_it() {
        let Ok(policy) = Policy::new(PolicyConfig::named("default", "1")) else { panic!("default config") };
        let canary = Canary::record(&cases(), |r| policy.evaluate(r));
        assert_eq!(canary.cases[0].expect.outcome, Outcome::Allow);
        assert_eq!(canary.cases[1].expect.reason.as_deref(), Some("self-delegation"));
        let back = Canary::from_json(canary.to_json().as_bytes());
        assert_eq!(back.as_ref().ok(), Some(&canary));
        assert_eq!(canary.run(|r| policy.evaluate(r)), Ok(()));
        // A policy whose depth limit is 1 refuses the third hop the canary expects allowed.
        let mut strict = PolicyConfig::named("default", "1");
        strict.depth.max_depth = 1;
        strict.depth.max_depth_by_risk.low = 1;
        strict.depth.max_depth_by_risk.medium = 1;
        strict.depth.max_depth_by_risk.high = 1;
        strict.depth.max_depth_by_risk.critical = 1;
        let Ok(strict) = Policy::new(strict) else { panic!("strict config") };
        assert!(
            matches!(canary.run(|r| strict.evaluate(r)), Err(CanaryError::Mismatch { case, .. }) if case == "allowed")
        );
    }

    #[test]
    fn empty_canaries_and_unknown_reasons_are_refused() {
        assert_eq!(Canary::from_json(br#"{"cases": []}"#), Err(CanaryError::Empty));
        let Ok(policy) = Policy::new(PolicyConfig::named("default", "1")) else { panic!("default config") };
        let mut canary = Canary::record(&cases(), |r| policy.evaluate(r));
        canary.cases[1].expect.reason = Some("no-such-reason".into());
        assert!(matches!(
            Canary::from_json(canary.to_json().as_bytes()),
            Err(CanaryError::UnknownReason { .. })
        ));
        assert!(matches!(Canary::from_json(b"{}"), Err(CanaryError::Malformed(_))));
    }
}
