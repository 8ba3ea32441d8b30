"""What the adapter tests share: a policy, a fixed clock, agents with trust scores, a mandate."""

from __future__ import annotations

from sbd_policy import Budget, BudgetUnit, Mandate, Policy, RiskLevel, Task
from sbd_policy.adapters import Delegations, TokenIssuer

USD = 10**8  # USD microcents per dollar
NOW = 1_790_000_000_000

TRUST = {"triage": 900, "refunds": 720, "ledger": 700, "w1": 900, "w2": 900, "w3": 900, "w4": 900, "auditor": 950}


def gate(policy: Policy, *, tokens: TokenIssuer | None = None, now: int = NOW) -> Delegations:
    """The gate the tests use: `refunds` asks only for refunds, up to $100."""
    return Delegations(
        policy,
        TRUST,
        clock=lambda: now,
        narrowing={"refunds": {"action_kinds": ["payment.refund"], "value_ceiling": 100 * USD}},
        tokens=tokens,
    )


def mandate(depth: int = 4, *, now: int = NOW) -> Mandate:
    return Mandate(
        value_ceiling=500 * USD,
        action_kinds=["payment.*"],
        counterparties=["acme"],
        budgets=[Budget(BudgetUnit.USD_MICROCENTS, 50 * USD)],
        remaining_depth=depth,
        expires_at=now + 3_600_000,
    )


REFUND = Task("refund-4821", "payment.refund", RiskLevel.LOW, value=87 * USD, counterparty="acme")
"""A low-risk refund: allowed down a short chain."""

TRADE = Task("trade-77", "payment.transfer", RiskLevel.HIGH, value=1 * USD, counterparty="acme", completable_locally=False)
"""A high-risk transfer (at most 3 hops on the default policy) no agent can finish itself: the
fourth hop escalates to the risk officer."""
