#!/usr/bin/env bash
# The README's gateway quickstart, as a script: from an empty data directory to an allowed
# two-hop delegation with curl on the default configuration.
set -euo pipefail
SBD=${SBD:-sbd}
GW=${GW:-http://127.0.0.1:7878}
DATA=${DATA:-./sbd-data}

# 0. Start the gateway (first start mints the admin key into $DATA/admin.key).
"$SBD" serve --data-dir "$DATA" --addr "${GW#http://}" --quiet &
SERVER=$!; trap 'kill $SERVER 2>/dev/null' EXIT   # stopped when the script ends, however it ends
until curl -sf "$GW/healthz" >/dev/null; do sleep 0.2; done
ADMIN=$(cat "$DATA/admin.key")

# 1. Operator set-up: a tenant, an API key for it, a budget the delegations are carved from.
curl -sf -X POST "$GW/v1/admin/tenants" -H "X-Admin-API-Key: $ADMIN" \
  -H 'content-type: application/json' -d '{"tenant_id": "acme", "name": "Acme"}' >/dev/null
KEY=$(curl -sf -X POST "$GW/v1/admin/api-keys" -H "X-Admin-API-Key: $ADMIN" \
  -H 'content-type: application/json' -d '{"tenant_id": "acme", "name": "agents"}' | jq -r .key_secret)
curl -sf -X POST "$GW/v1/admin/budgets" -H "X-Cycles-API-Key: $KEY" -H 'content-type: application/json' \
  -d '{"scope": "tenant:acme", "unit": "USD_MICROCENTS", "allocated": {"unit": "USD_MICROCENTS", "amount": 10000000000}}' >/dev/null

# 2. Hop 1: the orchestrator hands a refund to the refund agent, asking for $5 of its $50.
EXP=$(( $(date +%s) * 1000 + 3600000 ))     # mandates expire in an hour
mandate() { # budget(microcents) action_kinds(JSON) remaining_depth
  echo "{\"value_ceiling\": 50000000000, \"action_kinds\": $2, \"counterparties\": [\"acme\"],
         \"budgets\": [{\"unit\": \"USD_MICROCENTS\", \"amount\": $1}], \"remaining_depth\": $3, \"expires_at\": $EXP}"
}
TASK='{"id": "refund-4821", "action_kind": "payment.refund", "risk": "medium", "value": 1000000, "counterparty": "acme"}'
HOP1=$(curl -sf -X POST "$GW/v1/delegations" -H "X-Cycles-API-Key: $KEY" -H 'content-type: application/json' -d "{
  \"request\": {
    \"from\": {\"id\": \"orchestrator\", \"trust\": 900}, \"to\": {\"id\": \"refund-agent\", \"trust\": 720},
    \"task\": $TASK, \"state\": [0.12],
    \"parent_mandate\": $(mandate 5000000000 '["payment.*", "crm.*"]' 4),
    \"requested_mandate\": $(mandate 500000000 '["payment.refund"]' 3)}}")
echo "$HOP1" | jq '{decision, chain_id, alpha: .verdict.allow.alpha, child_budget: .verdict.allow.child_mandate.budgets}'

# 3. Hop 2: the refund agent passes $2 on to the ledger agent, presenting its token.
CHAIN=$(echo "$HOP1" | jq -r .chain_id)
TOKEN=$(echo "$HOP1" | jq -r .child_token)
CHILD=$(echo "$HOP1" | jq -c .verdict.allow.child_mandate)
ALPHA=$(echo "$HOP1" | jq .verdict.allow.alpha)
AT=$(( $(date +%s) * 1000 ))
HOP2=$(curl -sf -X POST "$GW/v1/delegations" -H "X-Cycles-API-Key: $KEY" -H 'content-type: application/json' -d "{
  \"chain_id\": \"$CHAIN\", \"token\": \"$TOKEN\",
  \"request\": {
    \"from\": {\"id\": \"refund-agent\", \"trust\": 720}, \"to\": {\"id\": \"ledger-agent\", \"trust\": 680},
    \"task\": $TASK, \"state\": [0.12], \"parent_mandate\": $CHILD,
    \"requested_mandate\": $(mandate 200000000 '["payment.refund"]' 2),
    \"chain\": [{\"from\": \"orchestrator\", \"to\": \"refund-agent\", \"depth\": 1, \"alpha\": $ALPHA, \"at\": $AT}]}}")
echo "$HOP2" | jq '{decision, depth: .verdict.allow.depth, accountability: .verdict.allow.accountability}'

# 4. The chain's trace.
curl -sf "$GW/v1/chains/$CHAIN" -H "X-Cycles-API-Key: $KEY" | jq '[.events[] | {seq, delegator, delegate, decision}]'
