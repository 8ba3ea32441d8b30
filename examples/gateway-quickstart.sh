#!/usr/bin/env bash
# The README's gateway quickstart, as a script: from an empty data directory to an allowed
# two-hop delegation with curl on the default configuration, with anchored authority: an
# operator registers the agents and grants the orchestrator its root mandate; each agent
# delegates with its own key and the token it holds.
set -euo pipefail
SBD=${SBD:-sbd}
GW=${GW:-http://127.0.0.1:7878}
DATA=${DATA:-./sbd-data}
JSON='content-type: application/json'

# 0. Start the gateway (first start mints the admin key into $DATA/admin.key).
"$SBD" serve --data-dir "$DATA" --addr "${GW#http://}" --quiet &
SERVER=$!; trap 'kill $SERVER 2>/dev/null' EXIT   # stopped when the script ends, however it ends
until curl -sf "$GW/healthz" >/dev/null; do sleep 0.2; done
ADMIN=$(cat "$DATA/admin.key")

# 1. Set-up with the admin key: a tenant and its operator's key.
curl -sf -X POST "$GW/v1/admin/tenants" -H "X-Admin-API-Key: $ADMIN" -H "$JSON" \
  -d '{"tenant_id": "acme", "name": "Acme"}' >/dev/null
key() { # role name -> a new API key of tenant acme
  curl -sf -X POST "$GW/v1/admin/api-keys" -H "X-Admin-API-Key: $ADMIN" -H "$JSON" \
    -d "{\"tenant_id\": \"acme\", \"name\": \"$2\", \"role\": \"$1\"}" | jq -r .key_secret
}
OPERATOR=$(key operator ops-team)

# 2. The operator: a $100 budget, the agents in the registry (trust scores are the registry's,
#    never the caller's), and the orchestrator's root grant of $50, held from the budget.
op() { curl -sf -X POST "$GW$1" -H "X-Cycles-API-Key: $OPERATOR" -H "$JSON" -d "$2"; }
op /v1/admin/budgets '{"scope": "tenant:acme", "unit": "USD_MICROCENTS", "allocated": {"unit": "USD_MICROCENTS", "amount": 10000000000}}' >/dev/null
for a in orchestrator:900 refund-agent:720 ledger-agent:680; do
  op /v1/agents "{\"agent_id\": \"${a%%:*}\", \"trust\": ${a##*:}}" >/dev/null
done
EXP=$(( $(date +%s) * 1000 + 3600000 ))     # mandates expire in an hour
mandate() { # budget(microcents) action_kinds(JSON) remaining_depth
  echo "{\"value_ceiling\": 50000000000, \"action_kinds\": $2, \"counterparties\": [\"acme\"],
         \"budgets\": [{\"unit\": \"USD_MICROCENTS\", \"amount\": $1}], \"remaining_depth\": $3, \"expires_at\": $EXP}"
}
ROOT_MANDATE=$(mandate 5000000000 '["payment.*", "crm.*"]' 4)
ROOT=$(op /v1/root-grants "{\"agent_id\": \"orchestrator\", \"mandate\": $ROOT_MANDATE}")
echo "$ROOT" | jq '{chain_id, grant_id}'

# 3. Hop 1: the orchestrator (its own agent key) hands a refund to the refund agent, asking
#    for $5 of its $50, presenting its root grant.
ORCHESTRATOR=$(key agent orchestrator)
TASK='{"id": "refund-4821", "action_kind": "payment.refund", "risk": "medium", "value": 1000000, "counterparty": "acme"}'
HOP1=$(curl -sf -X POST "$GW/v1/delegations" -H "X-Cycles-API-Key: $ORCHESTRATOR" -H "$JSON" -d "{
  \"token\": $(echo "$ROOT" | jq .token),
  \"request\": {
    \"from\": {\"id\": \"orchestrator\", \"trust\": 0}, \"to\": {\"id\": \"refund-agent\", \"trust\": 0},
    \"task\": $TASK, \"state\": [0.12], \"parent_mandate\": $ROOT_MANDATE,
    \"requested_mandate\": $(mandate 500000000 '["payment.refund"]' 3)}}")
echo "$HOP1" | jq '{decision, chain_id, alpha: .verdict.allow.alpha, escrow}'

# 4. Hop 2: the refund agent passes $2 on to the ledger agent with the token hop 1 gave it
#    (the chain so far, its link times and degrees come from the token).
REFUND=$(key agent refund-agent)
HOP2=$(curl -sf -X POST "$GW/v1/delegations" -H "X-Cycles-API-Key: $REFUND" -H "$JSON" -d "{
  \"token\": $(echo "$HOP1" | jq .child_token),
  \"request\": {
    \"from\": {\"id\": \"refund-agent\", \"trust\": 0}, \"to\": {\"id\": \"ledger-agent\", \"trust\": 0},
    \"task\": $TASK, \"state\": [0.12], \"parent_mandate\": $(echo "$HOP1" | jq -c .verdict.allow.child_mandate),
    \"requested_mandate\": $(mandate 200000000 '["payment.refund"]' 2)}}")
echo "$HOP2" | jq '{decision, depth: .verdict.allow.depth, accountability: .verdict.allow.accountability}'

# 5. The chain's signed trace and its escrow tree.
CHAIN=$(echo "$HOP1" | jq -r .chain_id)
curl -sf "$GW/v1/chains/$CHAIN" -H "X-Cycles-API-Key: $REFUND" | jq '{integrity, events: [.events[] | {seq, delegator, delegate, decision}]}'
curl -sf "$GW/v1/chains/$CHAIN/grants" -H "X-Cycles-API-Key: $REFUND" | jq '[.grants[] | {holder, depth, status, units}]'
