/** @module Interface sbd:delegation/policy@0.1.0 **/
export function checkVerdict(request: string, verdict: string): void;
export type Request = import('./sbd-delegation-types.js').Request;
export type Verdict = import('./sbd-delegation-types.js').Verdict;
export type Mandate = import('./sbd-delegation-types.js').Mandate;
export type Outcome = import('./sbd-delegation-types.js').Outcome;
export type TrustDelta = import('./sbd-delegation-types.js').TrustDelta;
export type PolicyInfo = import('./sbd-delegation-types.js').PolicyInfo;
export type ConfigError = import('./sbd-delegation-types.js').ConfigError;
export type ConfigFormat = import('./sbd-delegation-types.js').ConfigFormat;

export class DelegationPolicy {
  /**
   * This type does not have a public constructor.
   */
  private constructor();
  static create(config: Uint8Array): DelegationPolicy;
  static createFromText(config: string, format: ConfigFormat, model: Uint8Array | undefined): DelegationPolicy;
  evaluate(request: Request): Verdict;
  evaluateBatch(requests: Array<Request>): Array<Verdict>;
  evaluateEncoded(requests: Uint8Array): Uint8Array;
  evaluateJson(requests: string): string;
  narrow(parent: Mandate, requested: Mandate): Mandate;
  trustDeltas(chain: Array<string>, outcome: Outcome): Array<TrustDelta>;
  info(): PolicyInfo;
}
