/** @module Interface sbd:delegation/policy@0.1.0 **/
export type Request = import('./sbd-delegation-types.js').Request;
export type Verdict = import('./sbd-delegation-types.js').Verdict;
export type Mandate = import('./sbd-delegation-types.js').Mandate;
export type Outcome = import('./sbd-delegation-types.js').Outcome;
export type TrustDelta = import('./sbd-delegation-types.js').TrustDelta;
export type PolicyInfo = import('./sbd-delegation-types.js').PolicyInfo;
export type ConfigError = import('./sbd-delegation-types.js').ConfigError;

export class DelegationPolicy {
  /**
   * This type does not have a public constructor.
   */
  private constructor();
  static create(config: Uint8Array): DelegationPolicy;
  evaluate(request: Request): Verdict;
  evaluateBatch(requests: Array<Request>): Array<Verdict>;
  evaluateEncoded(requests: Uint8Array): Uint8Array;
  narrow(parent: Mandate, requested: Mandate): Mandate;
  trustDeltas(chain: Array<string>, outcome: Outcome): Array<TrustDelta>;
  info(): PolicyInfo;
}
