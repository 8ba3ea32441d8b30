//! The decision pipeline: structural rules, attenuation, trust, SBD, routing, then the grant.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, PolicyConfig};
use crate::model::{
    AccountabilityShare, EscalationTarget, Grant, Mandate, Outcome, PolicyInfo, Refusal, Request, TrustDelta,
    Verdict, Warning,
};
use crate::reasons::Reason;
use crate::view::{ChainLink, Delegation, MandateFields, RequestView};
use crate::{attenuation, identity, sbd, structural, trust, wire};

/// A configured policy, ready to decide.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
    digest: String,
}

impl Policy {
    /// Builds a policy from postcard configuration bytes; the digest is over these bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Policy, ConfigError> {
        let config = PolicyConfig::from_bytes(bytes)?;
        Ok(Policy { config, digest: hex_sha256(bytes) })
    }

    /// Builds a policy from a configuration; the digest is over its postcard encoding, so it
    /// equals the digest of the same configuration loaded with [`Policy::from_bytes`].
    pub fn new(config: PolicyConfig) -> Result<Policy, ConfigError> {
        config.validate()?;
        let bytes = config.to_bytes()?;
        Ok(Policy { config, digest: hex_sha256(&bytes) })
    }

    /// The configuration in force.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Name, version and configuration digest.
    pub fn info(&self) -> PolicyInfo {
        PolicyInfo {
            name: self.config.name.clone(),
            version: self.config.version.clone(),
            config_digest: self.digest.clone(),
            max_depth: self.config.depth.max_depth,
            wire_version: wire::WIRE_VERSION,
        }
    }

    /// Decides one delegation. Never panics; every refusal carries a reason code.
    pub fn evaluate(&self, req: &Request) -> Verdict {
        match self.decide(req) {
            Ok(grant) => Verdict::Allow(grant),
            Err(refusal) => refusal.into(),
        }
    }

    /// Decides one delegation read as a borrowed view; the same verdict as
    /// [`Policy::evaluate`] on the owned request (every rule runs on the view itself).
    pub fn evaluate_view(&self, view: &RequestView<'_>) -> Verdict {
        match self.decide(view) {
            Ok(grant) => Verdict::Allow(grant),
            Err(refusal) => refusal.into(),
        }
    }

    /// Decides many delegations; verdict i answers request i.
    pub fn evaluate_batch(&self, requests: &[Request]) -> Vec<Verdict> {
        requests.iter().map(|r| self.evaluate(r)).collect()
    }

    /// Decides postcard-encoded requests ([`crate::wire`]) and returns postcard-encoded verdicts:
    /// the same decisions as [`Policy::evaluate_batch`], with one buffer each way.
    ///
    /// The requests are read as borrowed views ([`crate::view`]) and decided by the same rules
    /// without being copied into owned requests.
    pub fn evaluate_encoded(&self, requests: &[u8]) -> Vec<u8> {
        let answer = match wire::decode_request_views(requests) {
            Ok(views) => {
                let verdicts: Vec<Verdict> = views.iter().map(|view| self.evaluate_view(view)).collect();
                wire::encode_verdicts(Ok(&verdicts))
            }
            Err(why) => wire::encode_verdicts(Err(&why)),
        };
        // Encoding into a Vec cannot fail for these types; an empty answer is undecodable and
        // so fails closed at the host.
        answer.unwrap_or_default()
    }

    /// Decides delegations given as JSON text and answers as JSON text: one request (an
    /// object, the form of `schema/request.schema.json`) gets one verdict, an array of requests
    /// an array of verdicts (`schema/verdict.schema.json`).
    ///
    /// Requests are read strictly ([`crate::json`]): a request that is not JSON, or not a
    /// request, is answered with a `request-malformed` denial whose message names the JSON path
    /// (`$.task.risk: unknown variant ...`, `$[2].now: ...`), so every request gets a verdict
    /// and none is decided on a guess.
    pub fn evaluate_json(&self, text: &str) -> String {
        let malformed = |e: crate::json::JsonError| Verdict::deny(Reason::RequestMalformed, e.to_string());
        let answer = if crate::json::is_array_text(text) {
            match crate::json::from_str::<Vec<serde_json::Value>>(text) {
                Ok(items) => serde_json::to_string(
                    &items
                        .into_iter()
                        .enumerate()
                        .map(|(i, item)| match crate::json::from_value::<Request>(item) {
                            Ok(request) => self.evaluate(&request),
                            Err(e) => malformed(e.under(&format!("$[{i}]"))),
                        })
                        .collect::<Vec<_>>(),
                ),
                Err(e) => serde_json::to_string(&[malformed(e)]),
            }
        } else {
            let verdict = match crate::json::from_str::<Request>(text) {
                Ok(request) => self.evaluate(&request),
                Err(e) => malformed(e),
            };
            serde_json::to_string(&verdict)
        };
        // Verdicts always serialise (their numbers are finite); should one not, deny.
        answer.unwrap_or_else(|e| {
            format!(
                r#"{{"deny":{{"code":{},"reason":"{}","message":"the verdict could not be written as JSON: {}"}}}}"#,
                Reason::PolicyFault.code(),
                Reason::PolicyFault.name(),
                e.to_string().replace(['"', '\\'], "'")
            )
        })
    }

    /// The narrowest child mandate within `parent` and `requested`.
    pub fn narrow(&self, parent: &Mandate, requested: &Mandate) -> Mandate {
        attenuation::narrow(parent, requested)
    }

    /// Trust changes for the chain's agents after a task ends (Vorion penalty propagation).
    pub fn trust_deltas(&self, chain: &[String], outcome: Outcome) -> Vec<TrustDelta> {
        trust::trust_deltas(self.config.trust.penalty_propagation, chain, outcome)
    }

    /// Stages 1-5 of the pipeline, on an owned request or a borrowed view alike; `Err` carries
    /// the first refusal or escalation.
    fn decide<R: Delegation>(&self, req: &R) -> Result<Grant, Refusal> {
        // 1. structural
        let depth = structural::check(&self.config, req)?;
        self.after_structural(req, depth)
    }

    /// Stages 2-5 and the grant, for a request the structural rules admitted with `depth`.
    fn after_structural<R: Delegation>(
        &self,
        req: &R,
        depth: structural::DepthDecision,
    ) -> Result<Grant, Refusal> {
        let config = &self.config;
        let (parent, requested, task) = (req.parent_mandate(), req.requested_mandate(), req.task());
        // 2. attenuation
        attenuation::check_budget_units(parent, requested).map_err(Refusal::Deny)?;
        attenuation::check_within(parent, requested).map_err(Refusal::Deny)?;
        attenuation::check_task(requested, &task, req.now()).map_err(Refusal::Deny)?;
        attenuation::check_action_mask(req.action_mask(), &task).map_err(Refusal::Deny)?;
        // 3. trust
        trust::check(config, req)?;
        // 4. SBD
        let sbd = sbd::decide(&config.sbd, req.state(), task.risk)?;
        // 4b. risk-tightened authority: the state's risk signal may lower the depth limit and
        // raise the review threshold (`sbd.risk_bands`; nothing changes without bands).
        let (depth, review_threshold, raised_by) = self.tighten(depth, &sbd)?;
        // 5. routing
        if sbd.alpha < review_threshold {
            let raised = raised_by.map_or_else(String::new, |risk| {
                format!(" (raised from {:.3} by the risk signal {risk:.3})", config.sbd.review_threshold)
            });
            return Err(Refusal::escalate(
                EscalationTarget::Human(config.escalation.human.clone()),
                Reason::LowAlphaReview,
                format!(
                    "alpha {:.3} (capped at {:.3} in this state) is below the review threshold {review_threshold:.3}{raised}",
                    sbd.alpha, sbd.alpha_max
                ),
            ));
        }
        Ok(self.grant(req, depth, sbd))
    }

    /// Applies the risk bands to an admitted hop: escalates a hop deeper than the tightened
    /// limit to the designated human (`risk-depth-escalation`), and otherwise returns the depth
    /// facts with the tightened limit (so the grant's remaining depth shrinks too), the review
    /// threshold in force, and the risk signal when a band raised that threshold.
    fn tighten(
        &self,
        mut depth: structural::DepthDecision,
        decision: &sbd::SbdDecision,
    ) -> Result<(structural::DepthDecision, f64, Option<f64>), Refusal> {
        let config = &self.config;
        let base = config.sbd.review_threshold;
        if config.sbd.risk_bands.is_empty() {
            return Ok((depth, base, None));
        }
        let tight = sbd::tighten(&config.sbd.risk_bands, sbd::risk_signal(decision));
        let risk = tight.risk;
        if let Some(limit) = tight.max_depth
            && limit < depth.max_depth
        {
            if depth.depth > limit {
                return Err(Refusal::escalate(
                    EscalationTarget::Human(config.escalation.human.clone()),
                    Reason::RiskDepthEscalation,
                    format!(
                        "hop {} would exceed the maximum depth {limit} that the risk signal {risk:.3} (lambda {:.3}, alpha cap {:.3}) sets in this state, down from {}",
                        depth.depth, decision.lambda, decision.alpha_max, depth.max_depth
                    ),
                ));
            }
            depth.max_depth = limit;
            let reaches_warning =
                f64::from(depth.depth) + 1e-9 >= config.depth.warning_ratio * f64::from(limit);
            if reaches_warning && !depth.warnings.iter().any(|w| w.reason == Reason::DepthWarning) {
                depth.warnings.push(Warning {
                    reason: Reason::DepthWarning,
                    message: format!(
                        "hop {} of at most {limit} (tightened by the risk signal {risk:.3}) reaches the {:.0}% warning threshold",
                        depth.depth,
                        config.depth.warning_ratio * 100.0
                    ),
                });
            }
        }
        match tight.review_threshold {
            Some(raised) if raised > base => Ok((depth, raised, Some(risk))),
            _ => Ok((depth, base, None)),
        }
    }

    fn grant<R: Delegation>(&self, req: &R, depth: structural::DepthDecision, sbd: sbd::SbdDecision) -> Grant {
        let requested = req.requested_mandate();
        let remaining_depth = requested.remaining_depth().min(depth.max_depth.saturating_sub(depth.depth));
        let mut child_mandate = requested.to_mandate();
        child_mandate.remaining_depth = remaining_depth;

        let mut alphas: Vec<f64> = req.links().iter().map(ChainLink::alpha).collect();
        alphas.push(sbd.alpha);
        let weights = sbd::accountability_weights(&alphas);
        // The structural stage canonicalised every id: the grant names agents as one agent is
        // named everywhere (scopes, registry, traces).
        let sub_agent = match sbd.sub_agent {
            Some(chosen) => identity::canonicalise(&chosen).unwrap_or(chosen),
            None => depth.agents.last().cloned().unwrap_or_else(|| String::from(req.to_id())),
        };
        let accountability = depth
            .agents
            .into_iter()
            .zip(weights)
            .map(|(agent, weight)| AccountabilityShare { agent, weight })
            .collect();

        Grant {
            alpha: sbd.alpha,
            lambda: sbd.lambda,
            sub_agent,
            effective_trust: req.to_trust(),
            effective_tier: trust::effective_tier(req),
            child_mandate,
            depth: depth.depth,
            remaining_depth,
            max_depth: depth.max_depth,
            accountability,
            accountability_ceiling: sbd::accountability_ceiling(&alphas),
            warnings: depth.warnings,
        }
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_TOML: &str = include_str!("../../../policies/default.toml");
    const FINANCE_TOML: &str = include_str!("../../../policies/finance/policy.toml");
    const FINANCE_MODEL: &[u8] = include_bytes!("../../../policies/finance/model.postcard");

    fn request_json() -> serde_json::Value {
        serde_json::from_str(crate::json::tests::REQUEST).unwrap_or_else(|e| panic!("{e}"))
    }

    fn policy() -> Policy {
        Policy::new(PolicyConfig::named("p", "1")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn evaluate_json_answers_an_object_with_a_verdict_and_an_array_with_verdicts() {
        let policy = policy();
        let request: Request = serde_json::from_value(request_json()).unwrap_or_else(|e| panic!("{e}"));
        let expected = policy.evaluate(&request);
        let one: Verdict = serde_json::from_str(&policy.evaluate_json(&request_json().to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one, expected);
        let text = serde_json::to_string(&[request_json(), request_json()]).unwrap_or_default();
        let many: Vec<Verdict> =
            serde_json::from_str(&policy.evaluate_json(&text)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(many, [expected.clone(), expected]);
        assert_eq!(policy.evaluate_json("[]"), "[]");
    }

    #[test]
    fn evaluate_json_denies_what_it_cannot_read_naming_the_json_path() {
        let policy = policy();
        let denial = |answer: &str| -> Verdict { serde_json::from_str(answer).unwrap_or_else(|e| panic!("{answer}: {e}")) };
        let mut bad = request_json();
        bad["task"]["risk"] = "hgh".into();
        let Verdict::Deny(d) = denial(&policy.evaluate_json(&bad.to_string())) else { panic!("not denied") };
        assert_eq!(d.reason, Reason::RequestMalformed);
        assert!(d.message.starts_with("$.task.risk: unknown variant `hgh`"), "{}", d.message);
        // In an array only the bad request is denied, and its path starts with its index.
        let mut unknown = request_json();
        unknown["task"]["completable_localy"] = false.into();
        let text = serde_json::to_string(&[request_json(), unknown]).unwrap_or_default();
        let verdicts: Vec<Verdict> = serde_json::from_str(&policy.evaluate_json(&text)).unwrap_or_default();
        assert!(verdicts[0].is_allow(), "{verdicts:?}");
        let Verdict::Deny(d) = &verdicts[1] else { panic!("not denied: {verdicts:?}") };
        assert!(d.message.starts_with("$[1].task.completable_localy: unknown field"), "{}", d.message);
        // Text that is not JSON: one denial at the document, in the shape asked for.
        let Verdict::Deny(d) = denial(&policy.evaluate_json("{\"from\": ")) else { panic!("not denied") };
        assert!(d.message.starts_with("$: EOF"), "{}", d.message);
        let verdicts: Vec<Verdict> = serde_json::from_str(&policy.evaluate_json("[oops")).unwrap_or_default();
        assert_eq!(verdicts.len(), 1);
        assert_eq!(verdicts[0].reason(), Some(Reason::RequestMalformed));
    }

    #[test]
    fn configuration_text_reads_as_toml_and_json_alike() {
        use crate::config::ConfigFormat;
        let toml = PolicyConfig::from_text(DEFAULT_TOML, ConfigFormat::Toml, None).unwrap_or_else(|e| panic!("{e}"));
        let json_text = serde_json::to_string(&toml).unwrap_or_default();
        let json = PolicyConfig::from_text(&json_text, ConfigFormat::Json, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(toml, json);
        assert_eq!(toml.name, "default");
    }

    #[test]
    fn configuration_text_errors_name_where() {
        use crate::config::ConfigFormat;
        let message = |text: &str, format| match PolicyConfig::from_text(text, format, None) {
            Ok(_) => String::from("accepted"),
            Err(e) => String::from(e.message()),
        };
        let typo = DEFAULT_TOML.replacen("[depth]", "[depth]\nmax_dept = 3", 1);
        assert_ne!(typo, DEFAULT_TOML);
        let error = message(&typo, ConfigFormat::Toml);
        assert!(error.starts_with("$.depth.max_dept: unknown field `max_dept`"), "{error}");
        let error = message("name = \"x\"\nversion = ", ConfigFormat::Toml);
        assert!(error.starts_with("at line 2, column"), "{error}");
        for bad in ["nan", "inf", "-inf"] {
            let band = format!("name = \"x\"\nversion = \"1\"\n[[sbd.risk_bands]]\nat_least = 0.5\nmax_depth = 2\nreview_threshold = {bad}");
            let error = message(&band, ConfigFormat::Toml);
            assert!(error.starts_with("$.sbd.risk_bands[0].review_threshold: "), "{bad}: {error}");
            assert!(error.contains("not a finite number"), "{bad}: {error}");
        }
        let error = message(r#"{"name": "x", "version": "1", "sbd": {"review_threshold": "high"}}"#, ConfigFormat::Json);
        assert!(error.starts_with("$.sbd.review_threshold: invalid type"), "{error}");
    }

    #[test]
    fn a_model_file_is_answered_by_its_bytes_and_only_then() {
        use crate::config::ConfigFormat;
        let with = PolicyConfig::from_text(FINANCE_TOML, ConfigFormat::Toml, Some(FINANCE_MODEL))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(with.sbd.model.is_some());
        let missing = PolicyConfig::from_text(FINANCE_TOML, ConfigFormat::Toml, None).err().map(|e| e.to_string());
        assert!(missing.is_some_and(|e| e.contains("pass the bytes of that file")));
        let unasked = PolicyConfig::from_text(DEFAULT_TOML, ConfigFormat::Toml, Some(FINANCE_MODEL)).err();
        assert!(unasked.is_some_and(|e| e.message().contains("names no `sbd.model_file`")));
        let garbage = PolicyConfig::from_text(FINANCE_TOML, ConfigFormat::Toml, Some(&[0xff; 8])).err();
        assert!(garbage.is_some_and(|e| e.message().contains("not a trained SBD model")));
    }

    #[test]
    fn the_verdict_check_reads_json_and_catches_a_widened_mandate() {
        let policy = policy();
        let request = request_json().to_string();
        let verdict = policy.evaluate_json(&request);
        assert_eq!(crate::verify::check_json(&request, &verdict), Ok(()));
        let mut widened: serde_json::Value = serde_json::from_str(&verdict).unwrap_or_default();
        widened["allow"]["child_mandate"]["value_ceiling"] = 1_000_000.into();
        let error = crate::verify::check_json(&request, &widened.to_string()).err().unwrap_or_default();
        assert!(error.contains("wider than the parent"), "{error}");
        let error = crate::verify::check_json(&request, "{\"allow\": 3}").err().unwrap_or_default();
        assert!(error.starts_with("verdict $.allow: invalid type"), "{error}");
        // An unreadable request must have been denied, and only denied.
        let unreadable = r#"{"from": 3}"#;
        assert_eq!(crate::verify::check_json(unreadable, &policy.evaluate_json(unreadable)), Ok(()));
        let error = crate::verify::check_json(unreadable, &verdict).err().unwrap_or_default();
        assert_eq!(error, "a request that cannot be read was not denied");
        assert_eq!(crate::verify::check_json("[oops", &policy.evaluate_json("[oops")), Ok(()));
        // A reason of the wrong kind is malformed, as on the typed path.
        for wrong in [
            r#"{"deny": {"code": 5001, "reason": "depth-limit-escalation", "message": "m"}}"#,
            r#"{"escalate": {"target": {"agent": "a"}, "code": 1009, "reason": "request-malformed", "message": "m"}}"#,
        ] {
            let error = crate::verify::check_json(&request, wrong).err().unwrap_or_default();
            assert!(error.contains("reason"), "{wrong}: {error}");
        }
        // Arrays are checked pair by pair, a fault named by its index.
        let requests = format!("[{request},{request}]");
        let verdicts = policy.evaluate_json(&requests);
        assert_eq!(crate::verify::check_json(&requests, &verdicts), Ok(()));
        let mixed = format!("[{verdict},{widened}]");
        let error = crate::verify::check_json(&requests, &mixed).err().unwrap_or_default();
        assert!(error.starts_with("[1] the child mandate is wider"), "{error}");
        let error = crate::verify::check_json(&requests, &format!("[{verdict}]")).err().unwrap_or_default();
        assert_eq!(error, "1 verdicts for 2 requests");
    }

    #[test]
    fn digest_is_the_sha256_of_the_configuration_bytes() {
        let config = PolicyConfig::named("p", "1");
        let bytes = config.to_bytes().unwrap_or_default();
        let from_bytes = Policy::from_bytes(&bytes).map(|p| p.info().config_digest).unwrap_or_default();
        let from_config = Policy::new(config).map(|p| p.info().config_digest).unwrap_or_default();
        assert_eq!(from_bytes.len(), 64);
        assert_eq!(from_bytes, from_config);
        assert_eq!(hex_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
