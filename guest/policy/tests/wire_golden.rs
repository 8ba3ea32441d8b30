//! Golden wire vectors: the postcard bytes of fixed requests and verdicts, committed per wire
//! version under `schema/wire/`. A change to any serialized type changes these bytes; the test
//! then fails until `WIRE_VERSION` is bumped and the new version's vectors are committed, so a
//! host and a component built from different sources can never silently misread each other.
//!
//! New version: bump `sbd_policy::wire::WIRE_VERSION`, then
//! `SBD_BLESS=1 cargo test --release -p sbd-policy --test wire_golden`. Blessing refuses to
//! overwrite an existing version's vectors with different bytes.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::PathBuf;

use sbd_policy::wire::{WIRE_VERSION, encode_requests, encode_verdicts};
use sbd_policy::*;

fn mandate(ceiling: u64, depth: u8) -> Mandate {
    Mandate {
        value_ceiling: ceiling,
        action_kinds: vec!["payment.*".into(), "crm.read".into()],
        counterparties: vec!["acme".into()],
        budgets: vec![
            Budget { unit: BudgetUnit::UsdMicrocents, amount: 5_000_000_000 },
            Budget { unit: BudgetUnit::Tokens, amount: 200_000 },
        ],
        remaining_depth: depth,
        expires_at: 1_790_003_600_000,
    }
}

/// Every field and every optional part present once, one of them absent once.
fn requests() -> Vec<Request> {
    let full = Request {
        from: Agent { id: "refund-agent".into(), trust: 720 },
        to: Agent { id: "ledger-agent".into(), trust: 680 },
        task: Task {
            id: "refund-4821".into(),
            action_kind: "payment.refund".into(),
            risk: RiskLevel::High,
            value: 8_700_000_000,
            counterparty: Some("acme".into()),
            completable_locally: false,
        },
        parent_mandate: mandate(10_000_000_000, 3),
        requested_mandate: mandate(9_000_000_000, 2),
        chain: vec![Link {
            from: "orchestrator".into(),
            to: "refund-agent".into(),
            depth: 1,
            alpha: 0.7,
            at: 1_790_000_001_000,
            reason: "refund-4821".into(),
        }],
        state: vec![0.12, -3.5, 1e300],
        depth_exception: Some(DepthException {
            approved_by: "risk-officer".into(),
            justification: "quarter close".into(),
            extra_depth: 1,
            expires_at: 1_790_000_900_000,
        }),
        action_mask: Some(ActionMask {
            toolsets: vec![ToolsetBudget { toolset: "payment".into(), remaining: 40 }],
            cost: 5,
        }),
        registry: Some(RegistryFacts {
            delegator_registered: true,
            delegate_registered: false,
            unregistered: UnregisteredRule::Escalate,
            reviewer: "risk-officer".into(),
            explicit_delegation: true,
            delegate_listed: false,
        }),
        now: 1_790_000_002_000,
    };
    let mut minimal = full.clone();
    minimal.task.counterparty = None;
    minimal.task.risk = RiskLevel::Low;
    minimal.chain.clear();
    minimal.state.clear();
    minimal.depth_exception = None;
    minimal.action_mask = None;
    minimal.registry = None;
    vec![full, minimal]
}

/// One verdict of each shape, with both escalation targets.
fn verdicts() -> Vec<Verdict> {
    vec![
        Verdict::Allow(Grant {
            alpha: 0.5,
            lambda: 0.7,
            sub_agent: "ledger-agent".into(),
            effective_trust: 680,
            effective_tier: TrustTier::T4,
            child_mandate: mandate(9_000_000_000, 1),
            depth: 2,
            remaining_depth: 1,
            max_depth: 3,
            accountability: vec![
                AccountabilityShare { agent: "orchestrator".into(), weight: 0.3 },
                AccountabilityShare { agent: "refund-agent".into(), weight: 0.35 },
                AccountabilityShare { agent: "ledger-agent".into(), weight: 0.35 },
            ],
            accountability_ceiling: 0.91,
            warnings: vec![Warning { reason: Reason::DepthWarning, message: "depth 2 of 3".into() }],
        }),
        Verdict::deny(Reason::DelegationCycle, "`orchestrator` is already in the chain"),
        Verdict::escalate(EscalationTarget::Human("risk-officer".into()), Reason::DepthLimitEscalation, "depth"),
        Verdict::escalate(EscalationTarget::Agent("supervisor-bot".into()), Reason::TrustEscalation, "tier"),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn golden_text() -> String {
    let requests = encode_requests(&requests()).expect("requests encode");
    let verdicts = encode_verdicts(Ok(&verdicts())).expect("verdicts encode");
    let refused = encode_verdicts(Err("undecodable: unexpected end of input")).expect("refusal encodes");
    format!(
        "# sbd wire version {WIRE_VERSION}: postcard bytes (hex) of the fixed values in \
         guest/policy/tests/wire_golden.rs\nrequests {}\nverdicts {}\nrefusal {}\n",
        hex(&requests),
        hex(&verdicts),
        hex(&refused)
    )
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../schema/wire/v{WIRE_VERSION}.txt"))
}

#[test]
fn the_encoding_matches_this_wire_versions_golden_vectors() {
    let path = golden_path();
    let current = golden_text();
    let committed = std::fs::read_to_string(&path).ok();
    let bless = std::env::var_os("SBD_BLESS").is_some_and(|v| v == "1");
    match committed {
        Some(committed) if committed == current => {}
        Some(_) => panic!(
            "the postcard encoding differs from the committed vectors of wire version {WIRE_VERSION} \
             ({}): a serialized type changed shape. Bump sbd_policy::wire::WIRE_VERSION and commit the \
             new version's vectors (SBD_BLESS=1 cargo test --release -p sbd-policy --test wire_golden)",
            path.display()
        ),
        None if bless => std::fs::write(&path, current).expect("write the golden vectors"),
        None => panic!(
            "no golden vectors for wire version {WIRE_VERSION} at {}: write them with \
             SBD_BLESS=1 cargo test --release -p sbd-policy --test wire_golden",
            path.display()
        ),
    }
}

#[test]
fn the_golden_bytes_decode_to_the_fixed_values() {
    let text = std::fs::read_to_string(golden_path()).expect("golden vectors for this version");
    let line = |key: &str| -> Vec<u8> {
        let hex = text
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no `{key}` line"));
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    };
    assert_eq!(sbd_policy::wire::decode_requests(&line("requests")), Ok(requests()));
    assert_eq!(sbd_policy::wire::decode_verdicts(&line("verdicts")), Ok(verdicts()));
    assert_eq!(
        sbd_policy::wire::decode_verdicts(&line("refusal")),
        Err("undecodable: unexpected end of input".to_string())
    );
}
