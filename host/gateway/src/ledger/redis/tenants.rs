//! Tenants and their API keys on Redis ([`TenantStore`]), in the tenant's slot and written by
//! its fenced unit of work.
//!
//! | key | holds |
//! |---|---|
//! | `P:{T}:tenant` | the tenant record: its status and observe mode as the ledger reads them, beside the provisioning record (`record`), JSON |
//! | `P:{T}:apikey:ID` | an API key: its columns and its record's JSON text |
//! | `P:{T}:apikeys` | set of the tenant's key ids |
//!
//! Cross-tenant indexes, written before the commit and never changed: `P:tenant-ids` (every
//! tenant, for the admin listing), `P:apikey-tenants` (the tenants with keys),
//! `P:apikey-tenant:ID` (a key's tenant, for lookups by id alone) and `P:apikey-hash:H` (the id of the key whose secret hashes to `H`, for
//! authentication; a hash names one key, ever).

use serde::{Deserialize, Serialize};

use super::{Transaction, Write};
use crate::cycles::{ObserveMode, Tenant};
use crate::error::{GatewayError, GatewayResult};
use crate::repo::{StoredApiKey, TenantStore};

/// The tenant record as kept: what the ledger reads (`status`, `observe`) and the record.
#[derive(Serialize, Deserialize)]
struct KeptTenant {
    status: String,
    #[serde(default)]
    observe: bool,
    /// Absent in a record written for the ledger alone (its tests).
    #[serde(default)]
    record: Option<Tenant>,
}

impl Transaction<'_> {
    fn kept_tenant(&self, tenant: &str) -> GatewayResult<Option<Tenant>> {
        let kept: Option<KeptTenant> = self
            .get(&self.key(tenant, "tenant")?)?
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| GatewayError::internal(format!("the stored record of tenant `{tenant}` is unreadable: {e}")))
            })
            .transpose()?;
        match kept {
            None => Ok(None),
            Some(KeptTenant { record: Some(record), .. }) => Ok(Some(record)),
            // fail closed: never taken for a tenant that does not exist and created afresh
            Some(KeptTenant { record: None, status, .. }) => {
                Err(GatewayError::internal(format!("tenant `{tenant}` has a ledger record ({status}) but no provisioning record")))
            }
        }
    }

    fn key_record(&self, tenant: &str, key_id: &str) -> GatewayResult<Option<StoredApiKey>> {
        self.get_json(&self.key(tenant, &format!("apikey:{key_id}"))?)
    }
}

impl TenantStore for Transaction<'_> {
    fn tenant_record(&self, tenant: &str) -> GatewayResult<Option<Tenant>> {
        self.kept_tenant(tenant)
    }

    fn save_tenant_record(&self, tenant: &Tenant) -> GatewayResult<()> {
        let kept = KeptTenant {
            status: tenant.status.as_str().to_string(),
            observe: tenant.observe_mode.is_some_and(|m| matches!(m, ObserveMode::Observe)),
            record: Some(tenant.clone()),
        };
        self.set_json(self.key(&tenant.tenant_id, "tenant")?, &kept)?;
        self.indexes.borrow_mut().push(Write::SetAdd(format!("{}:tenant-ids", self.prefix), tenant.tenant_id.clone()));
        Ok(())
    }

    fn tenant_records(&self) -> GatewayResult<Vec<Tenant>> {
        let mut out = Vec::new();
        for tenant in self.indexed_tenants("tenant-ids")? {
            if let Some(record) = self.kept_tenant(&tenant)? {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
        Ok(out)
    }

    fn insert_api_key(&self, k: &StoredApiKey) -> GatewayResult<()> {
        let key = self.key(&k.tenant_id, &format!("apikey:{}", k.key_id))?;
        self.refuse_existing(&key)?;
        match self.indexed_tenant("apikey-hash", &k.key_hash)? {
            // the same key again: an attempt that ran again after its lock lapsed
            Some(id) if id == k.key_id => {}
            Some(_) => return Err(GatewayError::internal("redis: an API key with this secret's hash exists")),
            None => {
                self.indexes.borrow_mut().push(Write::SetOnce(format!("{}:apikey-hash:{}", self.prefix, k.key_hash), k.key_id.clone()));
            }
        }
        self.index_tenant("apikey-tenant", &k.key_id, &k.tenant_id)?;
        self.add_indexed_tenant("apikey-tenants", &k.tenant_id);
        self.set_json(key, k)?;
        self.add_member(Write::SetAdd(self.key(&k.tenant_id, "apikeys")?, k.key_id.clone()));
        Ok(())
    }

    fn api_key(&self, key_id: &str) -> GatewayResult<Option<StoredApiKey>> {
        match self.indexed_tenant("apikey-tenant", key_id)? {
            Some(tenant) => self.key_record(&tenant, key_id),
            None => Ok(None),
        }
    }

    fn api_key_by_hash(&self, key_hash: &str) -> GatewayResult<Option<StoredApiKey>> {
        let Some(key_id) = self.indexed_tenant("apikey-hash", key_hash)? else { return Ok(None) };
        // the record must carry the hash that led to it (an index is never trusted alone)
        Ok(self.api_key(&key_id)?.filter(|k| k.key_hash == key_hash))
    }

    fn save_api_key(&self, k: &StoredApiKey) -> GatewayResult<()> {
        let Some(stored) = self.key_record(&k.tenant_id, &k.key_id)? else {
            return Err(GatewayError::internal(format!("redis: API key `{}` is not kept with tenant `{}`", k.key_id, k.tenant_id)));
        };
        // only the status, the record and the principal change
        let saved = StoredApiKey { status: k.status.clone(), body: k.body.clone(), principal: k.principal.clone(), ..stored };
        self.set_json(self.key(&k.tenant_id, &format!("apikey:{}", k.key_id))?, &saved)
    }

    fn api_keys(&self, tenant: Option<&str>) -> GatewayResult<Vec<StoredApiKey>> {
        let tenants = match tenant {
            Some(t) => vec![t.to_string()],
            None => self.indexed_tenants("apikey-tenants")?,
        };
        let mut out = Vec::new();
        for tenant in tenants {
            out.extend(self.indexed_records::<StoredApiKey>(&tenant, "apikeys", "apikey")?);
        }
        out.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(out)
    }
}
