// Types of the sbd delegation policy for JavaScript and TypeScript: the WIT types of
// `sbd:delegation/types@0.1.0` (wit/delegation.wit) with camelCase fields. WIT `u64` values
// (timestamps in Unix milliseconds, amounts, value ceilings) are `bigint` in results; inputs
// accept a `bigint` or a safe-integer `number`. WIT variants are unions discriminated by `kind`.

/** A `u64` as an input: a `bigint`, or a `number` that is a safe non-negative integer. */
export type U64Input = bigint | number;

/** Vorion trust tiers: t0 0-199, t1 200-349, t2 350-499, t3 500-649, t4 650-799, t5 800-875, t6 876-950, t7 951-1000. */
export type TrustTier = 't0' | 't1' | 't2' | 't3' | 't4' | 't5' | 't6' | 't7';
/** The risk of the task being delegated (AG-396 4.8 risk tiers). */
export type RiskLevel = 'low' | 'medium' | 'high' | 'critical';
/** Budget units of the Cycles protocol. */
export type BudgetUnit = 'usd-microcents' | 'tokens' | 'credits' | 'risk-points';

/** An amount of one budget unit. */
export interface Budget<N = bigint> {
  unit: BudgetUnit;
  amount: N;
}

/** An agent as the policy sees it: an identifier and its own trust score (0-1000; u16). */
export interface Agent {
  id: string;
  trust: number;
}

/** The authority an agent holds. Every hop may only narrow it (AG-001, AG-396 4.7). */
export interface Mandate<N = bigint> {
  /** Largest value of a single action, in USD microcents. */
  valueCeiling: N;
  /** Permitted action kinds: `payment.refund`, `payment.*` for a family, `*` for all. */
  actionKinds: string[];
  /** Permitted counterparties; `*` permits any. */
  counterparties: string[];
  /** Spendable budget per unit; a unit that is absent cannot be spent at all. */
  budgets: Budget<N>[];
  /** How many further hops the holder may delegate (u8; 0: terminal). */
  remainingDepth: number;
  /** The mandate is void at or after this instant (Unix ms). */
  expiresAt: N;
}

/** A mandate as an input. */
export type MandateInput = Mandate<U64Input>;

/** One completed delegation in the chain so far (AG-396 4.2). */
export interface Link {
  from: string;
  to: string;
  /** The depth of this hop: 1 for the originator's delegation (u8). */
  depth: number;
  /** The delegation degree granted on this hop, in [0, 1]. */
  alpha: number;
  /** When the hop was granted (Unix ms). */
  at: U64Input;
  /** Why the hop was made (AG-396 4.6); default ''. */
  reason?: string;
}

/** A temporary depth-limit increase approved by a human (AG-396 4.12). */
export interface DepthException {
  approvedBy: string;
  justification: string;
  /** Extra hops it permits (u8). */
  extraDepth: number;
  expiresAt: U64Input;
}

/** A toolset's risk-point budget, as the host's ledger holds it. */
export interface ToolsetBudget {
  /** The toolset: an action kind's family (`payment` for `payment.refund`). */
  toolset: string;
  /** Risk points left (u64). */
  remaining: U64Input;
}

/** The action mask of a tenant that permits actions only through toolset budgets (host facts). */
export interface ActionMask {
  toolsets: ToolsetBudget[];
  /** The risk points this task costs (u64). */
  cost: U64Input;
}

/** What a hop naming an agent the tenant's registry does not know gets. */
export type UnregisteredRule = 'deny' | 'escalate';

/** The tenant's agent registry on this hop, as the host found it in its own records (host facts). */
export interface RegistryFacts {
  delegatorRegistered: boolean;
  delegateRegistered: boolean;
  /** Default `'deny'` (`unregistered-agent`); `'escalate'` goes to `reviewer`. */
  unregistered?: UnregisteredRule;
  /** The human who reviews a hop escalated for an unregistered agent. */
  reviewer: string;
  /** Whether each delegator's registry entry must list its delegates; default false. */
  explicitDelegation?: boolean;
  /** Whether the delegator's registry entry lists the receiving agent; default false. */
  delegateListed?: boolean;
}

/** The task being handed over. */
export interface Task {
  id: string;
  /** The action the task performs, e.g. `payment.refund`. */
  actionKind: string;
  risk: RiskLevel;
  /** The value the task moves, in USD microcents; default 0. */
  value?: U64Input;
  /** The counterparty the task acts on, if any. */
  counterparty?: string | null;
  /** Whether the delegator could finish the task itself (AG-396 4.4); default true. */
  completableLocally?: boolean;
}

/** One delegation to decide. */
export interface Request {
  from: Agent;
  to: Agent;
  task: Task;
  /** The delegator's own mandate (what it may pass on). */
  parentMandate: MandateInput;
  /** The mandate the delegator asks to grant the child. */
  requestedMandate: MandateInput;
  /** The chain so far, originator first; default []. */
  chain?: Link[];
  /** The SBD state vector s for this decision; default []. */
  state?: number[];
  /** A human-approved temporary depth increase, if one is on file. */
  depthException?: DepthException | null;
  /** The tenant's action mask, when it has one; absent or null: no mask applies. */
  actionMask?: ActionMask | null;
  /** The tenant's agent registry on this hop; absent or null: no registry applies. */
  registry?: RegistryFacts | null;
  /** The instant of the decision, from the host's clock (Unix ms). */
  now: U64Input;
}

/** A notice attached to an allowed delegation. */
export interface PolicyWarning {
  code: number;
  name: string;
  message: string;
}

/** One agent's share of accountability (SBD Definition 3.5). */
export interface AccountabilityShare {
  agent: string;
  weight: number;
}

/** What an allowed delegation carries to the child. */
export interface Grant {
  /** Delegation degree after projection onto the safe set, in [0, 1]. */
  alpha: number;
  /** The safety weight lambda(s), in [0, 1]. */
  lambda: number;
  /** The sub-agent the task goes to. */
  subAgent: string;
  /** The executor's own trust score. */
  effectiveTrust: number;
  effectiveTier: TrustTier;
  /** The child's mandate: never wider than the parent's. */
  childMandate: Mandate;
  /** This hop's depth (1 for the originator's delegation). */
  depth: number;
  /** Hops the child may still delegate. */
  remainingDepth: number;
  /** The maximum depth that applied to this decision. */
  maxDepth: number;
  /** Accountability over the chain including this hop, originator first. */
  accountability: AccountabilityShare[];
  /** Proposition 4.8 ceiling 1 - (1 - max alpha)^k on any delegate's weight. */
  accountabilityCeiling: number;
  /** Notices such as the 75% depth warning (AG-396 4.9). */
  warnings: PolicyWarning[];
}

/** Who an escalation goes to. */
export type EscalationTarget = { kind: 'human'; who: string } | { kind: 'agent'; agentId: string };

/** Go ahead, with this grant. */
export interface Allow {
  kind: 'allow';
  grant: Grant;
}

/** Hold the delegation and ask someone with more authority. */
export interface Escalate {
  kind: 'escalate';
  target: EscalationTarget;
  code: number;
  name: string;
  reason: string;
}

/** Refuse the delegation before the child is contacted. */
export interface Deny {
  kind: 'deny';
  code: number;
  name: string;
  /** Human-readable reason, naming the offending field. */
  message: string;
}

/** The decision on one delegation. */
export type Verdict = Allow | Escalate | Deny;

/** How a delegated task ended, for penalty propagation. */
export type Outcome = { kind: 'success'; gain: number } | { kind: 'failure'; penalty: number };

/** A change to one agent's trust score. */
export interface TrustDelta {
  agent: string;
  delta: number;
}

/** What a loaded policy says about itself. */
export interface PolicyInfo {
  name: string;
  version: string;
  /** Hex SHA-256 of the configuration bytes. */
  configDigest: string;
  maxDepth: number;
  /** The version of the postcard encoding `evaluate-encoded` speaks. */
  wireVersion: number;
}

/** The code of the `policy-fault` denial a failed evaluation is answered with (9001). */
export declare const POLICY_FAULT_CODE: 9001;

/** The component rejected the configuration bytes (the message names the field). */
export declare class ConfigError extends RangeError {}

/** The component failed a call that has no verdict to fail closed with. */
export declare class PolicyFault extends Error {}

/** The transpiled component: its core modules compiled once, instantiated per policy. */
export declare class PolicyComponent {
  private constructor();
  /** Loads the jco output in `dir` (default: this package's `generated/`, from `npm run build`). */
  static load(dir?: string | URL): Promise<PolicyComponent>;
  /** The component this package carries (`generated/`), loaded once per process. */
  static bundled(): Promise<PolicyComponent>;
  /**
   * A policy built from postcard bytes of an `sbd_policy::PolicyConfig`.
   * @throws ConfigError if the component rejects them.
   */
  instantiate(config: Uint8Array): Policy;
  /**
   * A policy built from configuration text as people write it (TOML, or JSON in the form of
   * `schema/policy.schema.json`), read strictly by the component. `model` is the bytes of the
   * file `sbd.model_file` names, when it names one.
   * @throws ConfigError naming the field (`$.depth.max_dept: unknown field ...`).
   */
  instantiateText(text: string, options?: { format?: 'toml' | 'json'; model?: Uint8Array }): Policy;
}

/** A delegation policy: the component instantiated with one configuration. */
export declare class Policy implements Disposable {
  constructor(component: PolicyComponent, config: Uint8Array);
  /**
   * A policy on the bundled component: the default policy when `config` is omitted, else a
   * policy file (`.json` as JSON, anything else as TOML, its `sbd.model_file` read beside it),
   * the policy's JSON form as an object (`schema/policy.schema.json`) or postcard bytes. The
   * component reads the configuration.
   * @throws ConfigError naming the bad field; SyntaxError for a file that does not parse.
   */
  static load(config?: string | URL | Record<string, unknown> | Uint8Array): Promise<Policy>;
  /** Loads the transpiled component and a configuration file (postcard bytes). */
  static fromFiles(configPath: string | URL, componentDir?: string | URL): Promise<Policy>;
  /** Name, version and configuration digest, as the component reported them at load. */
  readonly info: PolicyInfo;
  /**
   * Decides one delegation; a policy failure is a `policy-fault` denial.
   * @throws TypeError or RangeError, naming the field, when `request` is not representable.
   */
  evaluate(request: Request): Verdict;
  /** Decides many delegations in one call; verdict i answers request i. */
  evaluateBatch(requests: Request[]): Verdict[];
  /**
   * Decides requests given as JSON text (an object, or an array of them) through the
   * component's `evaluate-json`, the answer checked by its `check-verdict`; a request it cannot
   * read is denied `request-malformed`, naming its JSON path.
   */
  evaluateJson(text: string): Verdict | Verdict[];
  /** The narrowest child mandate that lies within `parent` and `requested`. */
  narrow(parent: MandateInput, requested: MandateInput): Mandate;
  /** Trust changes for `chain` (originator first, executor last) after a task ends. */
  trustDeltas(chain: string[], outcome: Outcome): TrustDelta[];
  /** Releases the instance; later calls throw. */
  close(): void;
  [Symbol.dispose](): void;
}

/** The JSON form of a request (as `sbd eval --request` reads it) as a `Request`. */
export declare function requestFromJson(value: unknown, at?: string): Request;
/** The JSON form of a mandate as a mandate. */
export declare function mandateFromJson(value: unknown, at?: string): Mandate;
/** A verdict from its JSON form (what `evaluate-json` answers); `u64` fields as bigint. */
export declare function verdictFromJson(value: unknown, at?: string): Verdict;
/** The JSON form of a verdict, as `sbd eval` prints it (integers above 2^53 - 1 stay bigint). */
export declare function verdictToJson(verdict: Verdict): Record<string, unknown>;
/** The JSON form of a mandate. */
export declare function mandateToJson(mandate: Mandate): Record<string, unknown>;
