//! Tenants and their API keys as the store holds them, for the units of work that change
//! them: how a stored key reads now, who may change it, writing it back, and what closing a
//! tenant does to everything it owns. The admin plane's handlers (`admin_api`) call these
//! inside their units of work; nothing here knows of HTTP.

use crate::cycles::{ApiKey, ApiKeyStatus};
use crate::error::{GatewayError, GatewayResult};
use crate::events::{self, EventData, EventType, NewEvent};
use crate::ledger;
use crate::principal::{Principal, Role, DEFAULT_ROLE};
use crate::repo::{StoredApiKey, Tx};
use crate::util::rfc3339;

/// The correlation id of a tenant update's events (and of a close cascade's).
pub fn tenant_update_correlation(tenant: &str, now: i64) -> String {
    format!("tenant_update:{tenant}:{now}")
}

/// What closing a tenant does to its state (`cycles-governance-admin-v0.1.25.yaml`, CASCADE):
/// its open reservations released, its budgets closed, its subscriptions disabled and its keys
/// revoked, each with its event. In the unit of work that closes it.
pub fn close_cascade(conn: &dyn Tx, tenant: &str, now: i64) -> GatewayResult<()> {
    let mut open = Vec::new();
    let scan = ledger::store::ReservationScan { tenant, status: Some("ACTIVE"), idempotency_key: None, offset: 0 };
    conn.scan_reservations(scan, &mut |r| {
        open.push(r);
        true
    })?;
    for mut r in open {
        for scope in &r.budgeted {
            if let Some(mut b) = conn.budget(tenant, scope, r.unit)? {
                b.reserved = ledger::checked_sub(b.reserved, r.amount, "reserved")?;
                conn.save_budget(tenant, &b, now)?;
            }
        }
        r.status = "RELEASED".into();
        r.finalized_at_ms = Some(now);
        conn.save_reservation(&r)?;
    }
    for mut b in conn.tenant_budgets(tenant)? {
        b.status = "CLOSED".into();
        conn.save_budget(tenant, &b, now)?;
    }
    // CASCADE Rule 1: the tenant's active and paused subscriptions are disabled.
    for mut sub in conn.subscriptions(Some(tenant), None)? {
        if sub.status == crate::webhooks::SubscriptionStatus::Disabled {
            continue;
        }
        let prior = sub.status.as_str();
        sub.status = crate::webhooks::SubscriptionStatus::Disabled;
        sub.updated_at_ms = now;
        crate::webhooks::save(conn, &sub)?;
        let data = EventData::WebhookLifecycle {
            subscription_id: sub.subscription_id.clone(),
            tenant_id: tenant.to_string(),
            previous_status: Some(prior),
            new_status: Some("DISABLED"),
            changed_fields: vec!["status".into()],
            disable_reason: Some("tenant_closed"),
        };
        // The cascade's events share the correlation id of the `tenant.closed` they follow.
        let event = NewEvent::new(EventType::WebhookDisabledViaTenantCascade, tenant, data)
            .correlation(tenant_update_correlation(tenant, now));
        events::emit(conn, event, now)?;
    }
    // The tenant's keys are revoked like any revocation: stamped, with the reason and an event
    // each (`api_key.revoked_via_tenant_cascade`), not only flagged in the status column. Last,
    // so no delivery is queued to a subscription the cascade disables. A key whose stored record
    // cannot be read is still revoked, by its status column, so that it never blocks a close.
    for stored in conn.api_keys(Some(tenant))?.into_iter().filter(|k| k.status == ApiKeyStatus::Active.as_str()) {
        let id = stored.key_id.clone();
        let data = match stored_key(&stored, now) {
            Ok(mut key) => {
                let previous = key.status;
                key.status = ApiKeyStatus::Revoked;
                key.revoked_at = Some(rfc3339(now));
                key.revoked_reason = Some("tenant closed".into());
                store_key(conn, &key, ApiKeyStatus::Revoked)?;
                EventData::ApiKey {
                    key_id: id,
                    key_name: Some(key.name),
                    previous_status: Some(previous.as_str()),
                    new_status: "REVOKED",
                    permissions: key.permissions,
                }
            }
            Err(_) => {
                tracing::error!(key_id = %id, "a stored API key record is unreadable; revoked by its status column only");
                conn.save_api_key(&StoredApiKey { status: ApiKeyStatus::Revoked.as_str().into(), ..stored })?;
                EventData::ApiKey {
                    key_id: id,
                    key_name: None,
                    previous_status: Some("ACTIVE"),
                    new_status: "REVOKED",
                    permissions: Vec::new(),
                }
            }
        };
        let event = NewEvent::new(EventType::ApiKeyRevokedViaTenantCascade, tenant, data)
            .correlation(tenant_update_correlation(tenant, now));
        events::emit(conn, event, now)?;
    }
    Ok(())
}

/// A stored key as it reads now: the `status` column is the truth (the body's copy may be
/// older), and an ACTIVE key past `expires_at_ms` reads as EXPIRED.
pub fn stored_key(stored: &StoredApiKey, now: i64) -> GatewayResult<ApiKey> {
    let unreadable = |why: String| GatewayError::internal(format!("the stored record of API key `{}` is unreadable: {why}", stored.key_id));
    let mut key: ApiKey = serde_json::from_str(&stored.body).map_err(|e| unreadable(e.to_string()))?;
    let status = stored.status.as_str();
    key.status = match ApiKeyStatus::from_name(status) {
        Some(ApiKeyStatus::Active) if stored.expires_at_ms <= now => ApiKeyStatus::Expired,
        Some(s) => s,
        None => return Err(unreadable(format!("status `{status}`"))),
    };
    Ok(key)
}

/// Reads key `id` for a change by the holder of key `by` (`None`: the admin key), with its
/// role: an operator key reaches its own tenant's keys (another tenant's key is reported as
/// missing, not as forbidden) and no other operator key than itself; the admin key reaches
/// every key. The role is the `role` column's, as at authentication (none: a key from before
/// roles, an `agent`; an unknown one fails).
pub fn key_for_change(conn: &dyn Tx, by: Option<&Principal>, id: &str, now: i64) -> GatewayResult<(ApiKey, Role)> {
    let Some(stored) = conn.api_key(id)? else {
        return Err(GatewayError::not_found(format!("API key `{id}` not found")));
    };
    let key = stored_key(&stored, now)?;
    let role = match stored.role.as_deref() {
        None => DEFAULT_ROLE,
        Some(r) => Role::parse(r).ok_or_else(|| GatewayError::internal(format!("API key `{id}` has the unknown role `{r}`")))?,
    };
    if let Some(p) = by {
        if key.tenant_id != p.tenant {
            return Err(GatewayError::not_found(format!("API key `{id}` not found")));
        }
        if role == Role::Operator && id != p.key_id {
            return Err(GatewayError::forbidden("only the admin key changes or revokes another operator key"));
        }
    }
    Ok((key, role))
}

/// Writes `key` back as the stored record of its id, with `status`.
pub fn store_key(conn: &dyn Tx, key: &ApiKey, status: ApiKeyStatus) -> GatewayResult<()> {
    let stored = conn.api_key(&key.key_id)?.ok_or_else(|| GatewayError::not_found(format!("API key `{}` not found", key.key_id)))?;
    conn.save_api_key(&StoredApiKey {
        status: status.as_str().into(),
        body: serde_json::to_string(key).map_err(GatewayError::internal)?,
        principal: Some(key.name.clone()),
        ..stored
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::ErrorCode;

    fn row(key_id: &str, body: &str, status: &str, expires_at_ms: i64) -> StoredApiKey {
        StoredApiKey {
            key_id: key_id.into(),
            tenant_id: "acme".into(),
            key_hash: "h".into(),
            status: status.into(),
            expires_at_ms,
            role: None,
            principal: None,
            body: body.into(),
        }
    }

    /// A key as the untyped code stored it (`json!`): a revoked one with every optional field,
    /// and one from before roles.
    #[test]
    fn stored_keys_from_before_the_types_read_back_and_expire_by_the_clock() {
        let revoked = json!({
            "key_id": "key_1", "tenant_id": "acme", "key_prefix": "cyc_live_0123ab", "name": "ops",
            "role": "operator", "permissions": ["budgets:read"], "status": "REVOKED",
            "created_at": "2026-01-01T00:00:00.000Z", "expires_at": "2027-01-01T00:00:00.000Z",
            "revoked_at": "2026-02-01T00:00:00.000Z", "description": "the ops key", "metadata": {"team": "ops"},
        });
        let key = stored_key(&row("key_1", &revoked.to_string(), "REVOKED", i64::MAX), 0).unwrap();
        assert_eq!(serde_json::to_value(&key).unwrap(), revoked, "every field written back as it was");
        let before_roles = json!({
            "key_id": "key_2", "tenant_id": "acme", "key_prefix": "cyc_live_4567cd", "name": "runtime",
            "permissions": crate::admin_api::DEFAULT_PERMISSIONS, "status": "ACTIVE",
            "created_at": "2026-01-01T00:00:00.000Z", "expires_at": "2027-01-01T00:00:00.000Z",
        });
        let (expires, now) = (1_000, 999);
        let key = stored_key(&row("key_2", &before_roles.to_string(), "ACTIVE", expires), now).unwrap();
        assert_eq!((key.status, key.role), (ApiKeyStatus::Active, None));
        // the same record a millisecond after its expiry reads EXPIRED; the column decides
        let key = stored_key(&row("key_2", &before_roles.to_string(), "ACTIVE", expires), expires).unwrap();
        assert_eq!(key.status, ApiKeyStatus::Expired);
        let key = stored_key(&row("key_2", &before_roles.to_string(), "REVOKED", expires), now).unwrap();
        assert_eq!(key.status, ApiKeyStatus::Revoked, "the status column, not the body's copy");
        // an unreadable record is a 500 (its detail goes to the log, not the answer)
        for (body, status) in [("{}".to_string(), "ACTIVE"), (before_roles.to_string(), "PAUSED")] {
            let e = stored_key(&row("key_2", &body, status, expires), now).unwrap_err();
            assert_eq!(e.code, ErrorCode::InternalError, "{body} {status}");
        }
    }
}
