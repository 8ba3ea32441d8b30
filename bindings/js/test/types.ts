// Type-checked (`npm run typecheck`), not run: the declarations in src/index.d.ts describe a
// usable API, and misuse is a compile error.
import {
  ConfigError,
  Policy,
  PolicyComponent,
  requestFromJson,
  verdictToJson,
  type Mandate,
  type Request,
  type Verdict,
} from '../src/index.js';

export async function decide(config: Uint8Array): Promise<string> {
  const component: PolicyComponent = await PolicyComponent.load();
  const policy: Policy = component.instantiate(config);
  const request: Request = {
    from: { id: 'a', trust: 700 },
    to: { id: 'b', trust: 700 },
    task: { id: 't', actionKind: 'crm.read', risk: 'low' },
    parentMandate: { valueCeiling: 100, actionKinds: ['crm.*'], counterparties: ['*'], budgets: [], remainingDepth: 2, expiresAt: 2000n },
    requestedMandate: { valueCeiling: 10n, actionKinds: ['crm.read'], counterparties: ['*'], budgets: [{ unit: 'tokens', amount: 5 }], remainingDepth: 1, expiresAt: 1500 },
    now: 1000n,
  };
  const verdict: Verdict = policy.evaluate(request);
  const narrowed: Mandate = policy.narrow(request.parentMandate, request.requestedMandate);
  const ceiling: bigint = narrowed.valueCeiling;
  // @ts-expect-error: a grant's u64 fields are bigint, not number
  const wrong: number = narrowed.expiresAt;
  // @ts-expect-error: risk levels are a closed set
  policy.evaluate({ ...request, task: { ...request.task, risk: 'extreme' } });
  // @ts-expect-error: an outcome needs its kind
  policy.trustDeltas(['a'], { penalty: 1 });
  void [ceiling, wrong, verdictToJson(verdict), requestFromJson({}), ConfigError];
  switch (verdict.kind) {
    case 'allow':
      return `${verdict.grant.subAgent} at alpha ${verdict.grant.alpha}`;
    case 'escalate':
      return verdict.target.kind === 'human' ? verdict.target.who : verdict.target.agentId;
    case 'deny':
      return `${verdict.name} (${verdict.code}): ${verdict.message}`;
  }
}
