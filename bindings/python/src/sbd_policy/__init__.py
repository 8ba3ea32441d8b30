"""The sbd delegation policy, embedded in Python through its WebAssembly component.

Every agent-to-agent delegation (agent A hands task T to agent B) is decided before B is
contacted: allowed with a narrowed mandate, escalated to a human or a more trusted agent, or
denied with a stable reason code. The rules run inside the same sandboxed component the Rust
host runs (``sbd_component.wasm``), through the ``wasmtime`` package's component API.

The package carries the component and the default policy; no Rust toolchain is needed:

>>> from sbd_policy import Policy, request_from_json
>>> policy = Policy.load()  # or Policy.load("my-policy.toml"), Policy.load({...})
>>> verdict = policy.evaluate(request_from_json(request))  # Allow, Escalate or Deny  # doctest: +SKIP
"""

from .jsonform import (
    mandate_from_json,
    mandate_to_json,
    request_from_json,
    request_to_json,
    verdict_from_json,
    verdict_to_json,
)
from .policy import (
    DEFAULT_MEMORY_LIMIT,
    POLICY_FAULT_CODE,
    ConfigError,
    Policy,
    PolicyComponent,
    PolicyFault,
)
from .types import (
    AccountabilityShare,
    ActionMask,
    Agent,
    AgentTarget,
    Allow,
    Budget,
    BudgetUnit,
    Deny,
    DepthException,
    Escalate,
    EscalationTarget,
    Failure,
    Grant,
    HumanTarget,
    Link,
    Mandate,
    Outcome,
    PolicyInfo,
    PolicyWarning,
    RegistryFacts,
    Request,
    RiskLevel,
    Success,
    Task,
    ToolsetBudget,
    TrustDelta,
    TrustTier,
    UnregisteredRule,
    Verdict,
)

__all__ = [
    "AccountabilityShare",
    "ActionMask",
    "Agent",
    "AgentTarget",
    "Allow",
    "Budget",
    "BudgetUnit",
    "ConfigError",
    "DEFAULT_MEMORY_LIMIT",
    "Deny",
    "DepthException",
    "Escalate",
    "EscalationTarget",
    "Failure",
    "Grant",
    "HumanTarget",
    "Link",
    "Mandate",
    "Outcome",
    "POLICY_FAULT_CODE",
    "Policy",
    "PolicyComponent",
    "PolicyFault",
    "PolicyInfo",
    "PolicyWarning",
    "RegistryFacts",
    "Request",
    "RiskLevel",
    "Success",
    "Task",
    "ToolsetBudget",
    "TrustDelta",
    "TrustTier",
    "UnregisteredRule",
    "Verdict",
    "mandate_from_json",
    "mandate_to_json",
    "request_from_json",
    "request_to_json",
    "verdict_from_json",
    "verdict_to_json",
]
