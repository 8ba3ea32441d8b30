//! Verdicts and traces as text for people.

use std::fmt::Write;

use sbd_policy::{BudgetUnit, EscalationTarget, Grant, Mandate, Verdict};

use crate::scenario::TraceEvent;

/// USD microcents as dollars: 100,000,000 microcents make one dollar.
fn dollars(microcents: u64) -> String {
    format!("${}.{:02}", microcents / 100_000_000, microcents % 100_000_000 / 1_000_000)
}

fn budgets(m: &Mandate) -> String {
    let budget = |b: &sbd_policy::Budget| match b.unit {
        BudgetUnit::UsdMicrocents => dollars(b.amount),
        unit => format!("{} {unit:?}", b.amount),
    };
    m.budgets.iter().map(budget).collect::<Vec<_>>().join(", ")
}

/// One verdict, indented, over as many lines as it needs.
pub fn verdict(verdict: &Verdict, parent: Option<&Mandate>) -> String {
    match verdict {
        Verdict::Allow(grant) => allow(grant, parent),
        Verdict::Escalate(e) => {
            let target = match &e.target {
                EscalationTarget::Human(who) => format!("human `{who}`"),
                EscalationTarget::Agent(who) => format!("agent `{who}`"),
            };
            format!("  ESCALATE to {target}: {} ({}): {}\n", e.reason.name(), e.reason.code(), e.message)
        }
        Verdict::Deny(d) => format!("  DENY     {} ({}): {}\n", d.reason.name(), d.reason.code(), d.message),
    }
}

fn allow(grant: &Grant, parent: Option<&Mandate>) -> String {
    let mut out = String::new();
    let m = &grant.child_mandate;
    let _ = writeln!(
        out,
        "  ALLOW    to `{}` ({:?}, trust {}): alpha {:.2}, lambda {:.2}, depth {} of {}, child may delegate {} more",
        grant.sub_agent,
        grant.effective_tier,
        grant.effective_trust,
        grant.alpha,
        grant.lambda,
        grant.depth,
        grant.max_depth,
        grant.remaining_depth
    );
    let _ = writeln!(out, "           child mandate: budgets [{}]", budgets(m));
    if let Some(p) = parent {
        let _ = writeln!(out, "                  (parent: [{}])", budgets(p));
    }
    let _ = writeln!(
        out,
        "           actions {:?}, counterparties {:?}, value <= {}",
        m.action_kinds,
        m.counterparties,
        dollars(m.value_ceiling)
    );
    let shares: Vec<String> =
        grant.accountability.iter().map(|s| format!("{} {:.3}", s.agent, s.weight)).collect();
    let _ = writeln!(
        out,
        "           accountability: {} (Prop. 4.8 ceiling {:.3})",
        shares.join(", "),
        grant.accountability_ceiling
    );
    for w in &grant.warnings {
        let _ = writeln!(out, "           WARNING {} ({}): {}", w.reason.name(), w.reason.code(), w.message);
    }
    out
}

/// A replayed scenario: each hop with its note and verdict, then the trace as a table.
pub fn trace(events: &[TraceEvent], notes: &[String]) -> String {
    let mut out = String::new();
    for event in events {
        let _ = writeln!(
            out,
            "hop {}  {} -> {}  (depth {}, task `{}`: {} {:?})",
            event.hop,
            event.from,
            event.to,
            event.depth,
            event.task,
            event.request.task.action_kind,
            event.request.task.risk
        );
        if let Some(note) = notes.get(event.hop - 1).filter(|n| !n.is_empty()) {
            let _ = writeln!(out, "  expect   {note}");
        }
        out.push_str(&verdict(&event.verdict, Some(&event.request.parent_mandate)));
        out.push('\n');
    }
    let _ = writeln!(out, "delegation trace (AG-396 4.6):");
    let _ = writeln!(
        out,
        "  {:>3}  {:>13}  {:<14} {:<14} {:>5}  {:<12} decision",
        "hop", "at (ms)", "from", "to", "depth", "task"
    );
    for e in events {
        let decision = match &e.verdict {
            Verdict::Allow(_) => "allow".to_string(),
            Verdict::Escalate(x) => format!("escalate {}", x.reason.name()),
            Verdict::Deny(x) => format!("deny {}", x.reason.name()),
        };
        let _ = writeln!(
            out,
            "  {:>3}  {:>13}  {:<14} {:<14} {:>5}  {:<12} {decision}",
            e.hop, e.at, e.from, e.to, e.depth, e.task
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn microcents_render_as_dollars_and_cents() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(500_000_000), "$5.00");
        assert_eq!(dollars(8_712_345_678), "$87.12");
    }
}
