/** @module Interface sbd:delegation/types@0.1.0 **/
export type TrustScore = number;
export interface Agent {
  id: string,
  trust: TrustScore,
}
/**
 * # Variants
 * 
 * ## `"low"`
 * 
 * ## `"medium"`
 * 
 * ## `"high"`
 * 
 * ## `"critical"`
 */
export type RiskLevel = 'low' | 'medium' | 'high' | 'critical';
export interface Task {
  id: string,
  actionKind: string,
  risk: RiskLevel,
  value: bigint,
  counterparty?: string,
  completableLocally: boolean,
}
/**
 * # Variants
 * 
 * ## `"usd-microcents"`
 * 
 * ## `"tokens"`
 * 
 * ## `"credits"`
 * 
 * ## `"risk-points"`
 */
export type BudgetUnit = 'usd-microcents' | 'tokens' | 'credits' | 'risk-points';
export interface Budget {
  unit: BudgetUnit,
  amount: bigint,
}
export type TimestampMs = bigint;
export interface Mandate {
  valueCeiling: bigint,
  actionKinds: Array<string>,
  counterparties: Array<string>,
  budgets: Array<Budget>,
  remainingDepth: number,
  expiresAt: TimestampMs,
}
export interface Link {
  from: string,
  to: string,
  depth: number,
  alpha: number,
  at: TimestampMs,
  reason: string,
}
export interface DepthException {
  approvedBy: string,
  justification: string,
  extraDepth: number,
  expiresAt: TimestampMs,
}
export interface ToolsetBudget {
  toolset: string,
  remaining: bigint,
}
export interface ActionMask {
  toolsets: Array<ToolsetBudget>,
  cost: bigint,
}
/**
 * # Variants
 * 
 * ## `"deny"`
 * 
 * ## `"escalate"`
 */
export type UnregisteredRule = 'deny' | 'escalate';
export interface RegistryFacts {
  delegatorRegistered: boolean,
  delegateRegistered: boolean,
  unregistered: UnregisteredRule,
  reviewer: string,
  explicitDelegation: boolean,
  delegateListed: boolean,
}
export interface Request {
  from: Agent,
  to: Agent,
  task: Task,
  parentMandate: Mandate,
  requestedMandate: Mandate,
  chain: Array<Link>,
  state: Float64Array,
  depthException?: DepthException,
  actionMask?: ActionMask,
  registry?: RegistryFacts,
  now: TimestampMs,
}
/**
 * # Variants
 * 
 * ## `"t0"`
 * 
 * ## `"t1"`
 * 
 * ## `"t2"`
 * 
 * ## `"t3"`
 * 
 * ## `"t4"`
 * 
 * ## `"t5"`
 * 
 * ## `"t6"`
 * 
 * ## `"t7"`
 */
export type TrustTier = 't0' | 't1' | 't2' | 't3' | 't4' | 't5' | 't6' | 't7';
export interface AccountabilityShare {
  agent: string,
  weight: number,
}
export interface Warning {
  code: number,
  name: string,
  message: string,
}
export interface Grant {
  alpha: number,
  lambda: number,
  subAgent: string,
  effectiveTrust: TrustScore,
  effectiveTier: TrustTier,
  childMandate: Mandate,
  depth: number,
  remainingDepth: number,
  maxDepth: number,
  accountability: Array<AccountabilityShare>,
  accountabilityCeiling: number,
  warnings: Array<Warning>,
}
export type EscalationTarget = EscalationTargetHuman | EscalationTargetAgent;
export interface EscalationTargetHuman {
  tag: 'human',
  val: string,
}
export interface EscalationTargetAgent {
  tag: 'agent',
  val: string,
}
export interface Escalation {
  target: EscalationTarget,
  code: number,
  name: string,
  reason: string,
}
export interface Denial {
  code: number,
  name: string,
  message: string,
}
export type Verdict = VerdictAllow | VerdictEscalate | VerdictDeny;
export interface VerdictAllow {
  tag: 'allow',
  val: Grant,
}
export interface VerdictEscalate {
  tag: 'escalate',
  val: Escalation,
}
export interface VerdictDeny {
  tag: 'deny',
  val: Denial,
}
export type Outcome = OutcomeSuccess | OutcomeFailure;
export interface OutcomeSuccess {
  tag: 'success',
  val: number,
}
export interface OutcomeFailure {
  tag: 'failure',
  val: number,
}
export interface TrustDelta {
  agent: string,
  delta: number,
}
export interface PolicyInfo {
  name: string,
  version: string,
  configDigest: string,
  maxDepth: number,
  wireVersion: number,
}
export interface ConfigError {
  message: string,
}
/**
 * # Variants
 * 
 * ## `"json"`
 * 
 * ## `"toml"`
 */
export type ConfigFormat = 'json' | 'toml';
