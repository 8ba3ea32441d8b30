"""Defence in depth, as the Rust host has it (``host/runtime/src/verify.rs``): an allow is
re-checked against the request it answers before it is trusted. A component that returns an
allow breaking the contract (a widened mandate, a degree outside [0, 1], weights that do not
partition the chain, a wrong depth) is treated as faulty, and the binding fails closed."""

from __future__ import annotations

from .types import Allow, Mandate, Request, TrustTier, Verdict

_WEIGHT_SUM_TOLERANCE = 1e-9
_TIER_FLOORS = [(951, TrustTier.T7), (876, TrustTier.T6), (800, TrustTier.T5), (650, TrustTier.T4),
                (500, TrustTier.T3), (350, TrustTier.T2), (200, TrustTier.T1), (0, TrustTier.T0)]


def _tier_of(score: int) -> TrustTier:
    return next(tier for floor, tier in _TIER_FLOORS if score >= floor)


def _covers(outer: str, inner: str) -> bool:
    """``a.*`` covers names strictly under ``a.``; ``*`` covers all; a name covers itself."""
    if outer == "*":
        return True
    if outer.endswith(".*"):
        family = outer[:-1]  # keeps the dot: `a.`
        return inner.startswith(family) and len(inner) > len(family)
    return outer == inner


def _widening(parent: Mandate, child: Mandate) -> str | None:
    """Why ``child`` is not within ``parent`` (``attenuation::check_within``), or ``None``."""
    for budget in child.budgets:
        held = [b.amount for b in parent.budgets if b.unit == budget.unit]
        if not held or budget.amount > min(held):
            return f"`budgets`: {budget.amount} {budget.unit.value} is more than the parent holds"
    for kind in child.action_kinds:
        if not any(_covers(p, kind) for p in parent.action_kinds):
            return f"`action_kinds`: `{kind}` is not within the parent's"
    for party in child.counterparties:
        if not any(p == "*" or p == party for p in parent.counterparties):
            return f"`counterparties`: `{party}` is not within the parent's"
    if child.value_ceiling > parent.value_ceiling:
        return "`value_ceiling` exceeds the parent's"
    if child.expires_at > parent.expires_at:
        return "`expires_at` is later than the parent's"
    if child.remaining_depth >= parent.remaining_depth:
        return "`remaining_depth` is not smaller than the parent's"
    return None


def contract_violation(request: Request, verdict: Verdict) -> str | None:
    """Why ``verdict`` breaks the contract for ``request``; ``None`` for every refusal and
    escalation, and for an allow that keeps it."""
    if not isinstance(verdict, Allow):
        return None
    grant = verdict.grant
    for name, x in (("alpha", grant.alpha), ("lambda", grant.lambda_), ("accountability_ceiling", grant.accountability_ceiling)):
        if not 0.0 <= x <= 1.0:
            return f"`{name}` is {x}, outside [0, 1]"
    hop = len(request.chain) + 1
    if grant.depth != hop:
        return f"`depth` is {grant.depth} for hop {hop}"
    if grant.depth > grant.max_depth:
        return f"`depth` {grant.depth} exceeds `max_depth` {grant.max_depth}"
    if grant.sub_agent == request.from_.id or any(link.from_ == grant.sub_agent for link in request.chain):
        return f"`sub_agent` `{grant.sub_agent}` is already in the chain"
    if grant.effective_trust != request.to.trust or grant.effective_tier != _tier_of(grant.effective_trust):
        return "the effective trust is not the executor's own"
    widening = _widening(request.parent_mandate, grant.child_mandate)
    if widening is not None:
        return f"the child mandate is wider than the parent's: {widening}"
    if grant.remaining_depth != grant.child_mandate.remaining_depth:
        return "`remaining_depth` disagrees with the child mandate"
    if len(grant.accountability) != len(request.chain) + 2:
        return f"{len(grant.accountability)} accountability shares for a chain of {len(request.chain) + 2} agents"
    if any(not 0.0 <= share.weight <= 1.0 for share in grant.accountability):
        return "an accountability weight is outside [0, 1]"
    total = sum(share.weight for share in grant.accountability)
    if abs(total - 1.0) > _WEIGHT_SUM_TOLERANCE:
        return f"accountability weights sum to {total}, not 1"
    return None
