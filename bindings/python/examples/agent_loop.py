"""A plain Python agent loop whose every hand-off is gated by the sbd policy.

An orchestrator works through a queue of tasks. For each one it picks a worker agent, asks the
policy whether it may delegate, and then:

* on ``Allow``, hands the task over with the *child* mandate from the grant (never its own),
  records the hop in the chain, and lets the worker delegate further if it wants to;
* on ``Escalate``, parks the task for the human or the more trusted agent the policy names;
* on ``Deny``, does not contact the worker at all and logs the reason code.

When a delegated task ends, ``trust_deltas`` says how every agent's trust score changes.

    python examples/agent_loop.py [--component sbd_component.wasm] [--config policy.toml]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from sbd_policy import (
    Agent,
    AgentTarget,
    Allow,
    Budget,
    BudgetUnit,
    Deny,
    Escalate,
    Failure,
    HumanTarget,
    Link,
    Mandate,
    Policy,
    Request,
    RiskLevel,
    Success,
    Task,
)

USD = 100_000_000  # USD microcents per dollar


@dataclass
class Worker:
    """An agent the orchestrator can delegate to, and what it does with a task."""

    id: str
    trust: int
    subcontract_to: str | None = None
    fails: bool = False


@dataclass
class Hop:
    """Where a task is: who holds it, under which mandate, after which chain."""

    holder: Agent
    mandate: Mandate
    chain: list[Link] = field(default_factory=list)


def delegate(policy: Policy, hop: Hop, worker: Worker, task: Task, wanted: Mandate, now: int) -> Hop | None:
    """Asks the policy before contacting `worker`; returns the worker's hop if allowed."""
    request = Request(
        from_=hop.holder,
        to=Agent(worker.id, worker.trust),
        task=task,
        parent_mandate=hop.mandate,
        # Ask for no more than the task needs; the policy checks it lies within our own mandate.
        requested_mandate=policy.narrow(hop.mandate, wanted),
        chain=hop.chain,
        state=[0.12],  # e.g. the 30-day annualised volatility the SBD safe set looks at
        now=now,
    )
    verdict = policy.evaluate(request)
    arrow = f"{hop.holder.id} -> {worker.id}"
    match verdict:
        case Allow(grant):
            print(
                f"  ALLOW    {arrow}: alpha {grant.alpha:.2f}, depth {grant.depth}/{grant.max_depth}, "
                f"child ceiling ${grant.child_mandate.value_ceiling / USD:.2f}"
            )
            for warning in grant.warnings:
                print(f"           warning {warning.name} ({warning.code}): {warning.message}")
            link = Link(hop.holder.id, worker.id, grant.depth, grant.alpha, now, task.id)
            return Hop(Agent(worker.id, worker.trust), grant.child_mandate, [*hop.chain, link])
        case Escalate(target=HumanTarget(who), name=name, code=code):
            print(f"  ESCALATE {arrow}: to human `{who}`, {name} ({code}); task parked")
        case Escalate(target=AgentTarget(agent_id), name=name, code=code):
            print(f"  ESCALATE {arrow}: to agent `{agent_id}`, {name} ({code}); task rerouted")
        case Deny(code, name, message):
            print(f"  DENY     {arrow}: {name} ({code}): {message}")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--component", type=Path, help="a component file (default: the one the package carries)")
    parser.add_argument("--config", type=Path, help="a .toml or .json policy (default: the default policy)")
    args = parser.parse_args()

    with Policy.load(args.config, component=args.component) as policy:
        print(f"policy `{policy.info.name}` {policy.info.version} (config {policy.info.config_digest[:12]})")
        now = int(time.time() * 1000)
        orchestrator = Hop(
            holder=Agent("orchestrator", 900),
            mandate=Mandate(
                value_ceiling=500 * USD,
                action_kinds=["payment.*", "crm.*"],
                counterparties=["acme", "globex"],
                budgets=[Budget(BudgetUnit.USD_MICROCENTS, 50 * USD)],
                remaining_depth=4,
                expires_at=now + 3_600_000,
            ),
        )
        workers = {
            "refund-agent": Worker("refund-agent", 720, subcontract_to="ledger-agent"),
            "ledger-agent": Worker("ledger-agent", 680, subcontract_to="refund-agent"),  # would close a cycle
            "intern-bot": Worker("intern-bot", 150),
            "crm-agent": Worker("crm-agent", 610, fails=True),
        }
        queue = [
            (Task("refund-4821", "payment.refund", RiskLevel.MEDIUM, 87 * USD, "acme"), "refund-agent"),
            (Task("wire-9000", "payment.wire", RiskLevel.HIGH, 400 * USD, "globex"), "intern-bot"),
            (Task("lookup-17", "crm.read", RiskLevel.LOW, 0, "acme"), "crm-agent"),
            (Task("refund-big", "payment.refund", RiskLevel.LOW, 900 * USD, "acme"), "refund-agent"),
        ]
        trust = {w.id: float(w.trust) for w in workers.values()} | {"orchestrator": 900.0}
        for task, first in queue:
            print(f"task `{task.id}` ({task.action_kind}, {task.risk.value}, ${task.value / USD:.2f})")
            wanted = Mandate(
                value_ceiling=max(task.value, 1),
                action_kinds=[task.action_kind],
                counterparties=[task.counterparty] if task.counterparty else [],
                budgets=[Budget(BudgetUnit.USD_MICROCENTS, 5 * USD)],
                remaining_depth=2,
                expires_at=now + 600_000,
            )
            hop = orchestrator
            worker: Worker | None = workers[first]
            while worker is not None:
                next_hop = delegate(policy, hop, worker, task, wanted, now)
                if next_hop is None:
                    break  # the current holder keeps the task
                hop = next_hop
                worker = workers.get(worker.subcontract_to or "")
            if hop is orchestrator:
                continue  # nothing was handed over
            executor = hop.holder.id
            agents = [link.from_ for link in hop.chain] + [executor]
            failed = workers[executor].fails
            outcome = Failure(40.0) if failed else Success(5.0)
            for delta in policy.trust_deltas(agents, outcome):
                trust[delta.agent] += delta.delta
            scores = ", ".join(f"{a} {trust[a]:.0f}" for a in agents)
            print(f"  {'FAILED' if failed else 'DONE'} by {executor}; trust now {scores}")

if __name__ == "__main__":
    main()
