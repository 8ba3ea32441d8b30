//! What canonical agent ids cost a decision, as ratios measured in one run:
//! `cargo run --release -p sbd-policy --example identity_cost`.
//!
//! Times `Policy::evaluate` on an allowed two-link request (six agent ids, all canonicalised
//! inside it), once with ASCII ids and once with non-ASCII ids, and the canonicalisation the
//! rules run (`identity::canonicalise_borrowed`) alone on an ASCII and a non-ASCII id.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "a measurement script")]

use std::hint::black_box;
use std::time::Instant;

use sbd_policy::identity::canonicalise_borrowed;
use sbd_policy::{Agent, Budget, BudgetUnit, Link, Mandate, Policy, PolicyConfig, Request, RiskLevel, Task};

const NOW: u64 = 1_700_000_000_000;

fn request(names: [&str; 4]) -> Request {
    let mandate = |budget, depth| Mandate {
        value_ceiling: 100_000,
        action_kinds: vec!["payment.*".into()],
        counterparties: vec!["acme".into()],
        budgets: vec![Budget { unit: BudgetUnit::UsdMicrocents, amount: budget }],
        remaining_depth: depth,
        expires_at: NOW + 3_600_000,
    };
    let link = |from: &str, to: &str, depth| Link {
        from: from.into(),
        to: to.into(),
        depth,
        alpha: 0.9,
        at: NOW - 1_000,
        reason: String::new(),
    };
    Request {
        from: Agent { id: names[2].into(), trust: 800 },
        to: Agent { id: names[3].into(), trust: 700 },
        task: Task {
            id: "t".into(),
            action_kind: "payment.refund".into(),
            risk: RiskLevel::Low,
            value: 5_000,
            counterparty: Some("acme".into()),
            completable_locally: true,
        },
        parent_mandate: mandate(50_000_000, 3),
        requested_mandate: mandate(5_000_000, 2),
        chain: vec![link(names[0], names[1], 1), link(names[1], names[2], 2)],
        state: Vec::new(),
        depth_exception: None,
        action_mask: None,
        registry: None,
        now: NOW,
    }
}

/// Nanoseconds per call, the best of five rounds of `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let policy = Policy::new(PolicyConfig::named("cost", "1")).expect("a valid configuration");
    let ascii = request(["orchestrator", "refund-agent", "ledger-agent", "fx-agent"]);
    let unicode = request(["orchestrateur", "agent-rembourse", "ledger-agent-ü", "fx-agent-東京"]);
    assert!(policy.evaluate(&ascii).is_allow() && policy.evaluate(&unicode).is_allow());
    let n = 200_000;
    let evaluate_ascii = per_call(n, || {
        black_box(policy.evaluate(black_box(&ascii)));
    });
    let evaluate_unicode = per_call(n, || {
        black_box(policy.evaluate(black_box(&unicode)));
    });
    let id_ascii = per_call(n, || {
        black_box(canonicalise_borrowed(black_box("ledger-agent")).is_ok());
    });
    let id_unicode = per_call(n, || {
        black_box(canonicalise_borrowed(black_box("ledger-agent-ü")).is_ok());
    });
    println!("evaluate, 6 ASCII ids        {evaluate_ascii:>9.1} ns  1.00x");
    println!(
        "evaluate, 6 non-ASCII ids    {evaluate_unicode:>9.1} ns  {:.2}x",
        evaluate_unicode / evaluate_ascii
    );
    println!("canonical id, ASCII         {id_ascii:>9.1} ns  {:.3}x", id_ascii / evaluate_ascii);
    println!("canonical id, non-ASCII     {id_unicode:>9.1} ns  {:.3}x", id_unicode / evaluate_ascii);
    println!(
        "six ASCII canonicalisations are {:.1}% of an ASCII decision",
        600.0 * id_ascii / evaluate_ascii
    );
}
