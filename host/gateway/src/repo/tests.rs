//! The [`crate::repo`] traits and the rules written on them, checked on every backend by the
//! same functions: the embedded SQLite store (an in-memory database with the real schema,
//! each unit of work in a savepoint as on the writer thread), Redis and a three-node Redis
//! Cluster (each started on loopback for the test; skipped with a notice where they cannot
//! be, unless `SBD_REQUIRE_REDIS=1`).

use std::io::Write as _;
use std::sync::Arc;

use rusqlite::Connection;

use super::*;
use crate::delegations::load_exception;
use crate::error::{ApiError, ErrorCode};
use crate::ledger::redis::RedisLedger;
use crate::registry::{self, Unregistered};
use crate::test_redis::{redis_deployments, RedisDeployment};

/// A backend under test: runs one unit of work on a tenant's state.
trait Backend {
    /// Runs `op` as one unit of work on `tenant`: all of it or, when it fails, none of it.
    fn unit(&self, tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> ApiResult<()>) -> ApiResult<()>;
}

impl Backend for Connection {
    fn unit(&self, _tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> ApiResult<()>) -> ApiResult<()> {
        self.execute_batch("SAVEPOINT op")?;
        let outcome = op(self);
        let end = if outcome.is_ok() { "RELEASE op" } else { "ROLLBACK TO op; RELEASE op" };
        self.execute_batch(end)?;
        outcome
    }
}

/// A store on a Redis deployment of the test's own.
struct OnRedis {
    store: Arc<RedisLedger>,
    deployment: RedisDeployment,
}

impl Backend for OnRedis {
    fn unit(&self, tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> ApiResult<()>) -> ApiResult<()> {
        self.store.run(tenant, |tx| op(tx))
    }
}

fn on_redis(deployment: RedisDeployment) -> OnRedis {
    let store = RedisLedger::open(&deployment.url, &deployment.prefix).expect("a Redis client");
    OnRedis { store: Arc::new(store), deployment }
}

/// Runs `check` on every backend, naming the backend in a failure.
fn on_every_backend(check: fn(&dyn Backend)) {
    let sqlite = Connection::open_in_memory().expect("in-memory SQLite");
    crate::store::migrate(&sqlite).expect("schema");
    let mut backends: Vec<(&str, Box<dyn Backend>)> = vec![("sqlite", Box::new(sqlite))];
    for (name, deployment) in redis_deployments() {
        backends.push((name, Box::new(on_redis(deployment))));
    }
    for (name, backend) in backends {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&*backend))) {
            let _ = writeln!(std::io::stderr(), "the check failed on the {name} backend");
            std::panic::resume_unwind(panic);
        }
    }
}

/// `op` as one unit of work on `tenant`, with its result.
fn unit<T>(backend: &dyn Backend, tenant: &str, mut op: impl FnMut(&dyn Tx) -> ApiResult<T>) -> ApiResult<T> {
    let mut result = None;
    backend.unit(tenant, &mut |tx| {
        result = Some(op(tx)?);
        Ok(())
    })?;
    result.ok_or_else(|| ApiError::internal("the unit of work did not run"))
}

const TENANT: &str = "acme";
const OTHER: &str = "globex";

fn agent(id: &str, trust: f64) -> AgentRecord {
    AgentRecord { agent_id: id.into(), trust, capabilities: vec!["payment.*".into()], delegates: vec!["b".into()] }
}

fn code(e: &ApiError) -> ErrorCode {
    e.code
}

#[test]
fn authority_settings_default_until_set_and_are_the_tenants_own() {
    on_every_backend(|b| {
        assert_eq!(unit(b, TENANT, |tx| tx.authority_settings(TENANT)).unwrap(), None);
        assert_eq!(unit(b, TENANT, |tx| registry::settings(tx, TENANT)).unwrap(), AuthoritySettings::default());
        let set = AuthoritySettings {
            open_roots: true,
            unregistered: Unregistered::Escalate,
            require_explicit_delegation: true,
            reviewer: "alice".into(),
        };
        unit(b, TENANT, |tx| tx.set_authority_settings(TENANT, &set)).unwrap();
        assert_eq!(unit(b, TENANT, |tx| registry::settings(tx, TENANT)).unwrap(), set);
        assert_eq!(unit(b, OTHER, |tx| tx.authority_settings(OTHER)).unwrap(), None, "another tenant's settings");
        let changed = AuthoritySettings { open_roots: false, ..set.clone() };
        unit(b, TENANT, |tx| tx.set_authority_settings(TENANT, &changed)).unwrap();
        assert_eq!(unit(b, TENANT, |tx| tx.authority_settings(TENANT)).unwrap(), Some(changed));
    });
}

#[test]
fn agents_register_replace_list_in_id_order_and_stay_in_their_tenant() {
    on_every_backend(|b| {
        for (id, trust) in [("c", 700.0), ("a", 300.0), ("b", 500.0)] {
            unit(b, TENANT, |tx| registry::upsert(tx, TENANT, &agent(id, trust), 1)).unwrap();
        }
        unit(b, OTHER, |tx| registry::upsert(tx, OTHER, &agent("z", 10.0), 1)).unwrap();
        let ids = |tenant: &'static str| -> Vec<String> {
            unit(b, tenant, |tx| tx.agents(tenant)).unwrap().into_iter().map(|a| a.agent_id).collect()
        };
        assert_eq!(ids(TENANT), ["a", "b", "c"]);
        assert_eq!(ids(OTHER), ["z"]);
        assert_eq!(unit(b, TENANT, |tx| tx.agent(TENANT, "z")).unwrap(), None, "another tenant's agent");
        let replaced = AgentRecord { capabilities: vec![], delegates: vec![], ..agent("b", 900.0) };
        unit(b, TENANT, |tx| registry::upsert(tx, TENANT, &replaced, 2)).unwrap();
        assert_eq!(unit(b, TENANT, |tx| tx.agent(TENANT, "b")).unwrap(), Some(replaced));
        assert_eq!(ids(TENANT), ["a", "b", "c"], "a replacement is not a second agent");
    });
}

#[test]
fn the_registry_rules_refuse_a_score_out_of_range_and_clamp_reported_ones() {
    on_every_backend(|b| {
        for trust in [-1.0, 1000.5, f64::NAN, f64::INFINITY] {
            let e = unit(b, TENANT, |tx| registry::upsert(tx, TENANT, &agent("a", trust), 1)).unwrap_err();
            assert_eq!(code(&e), ErrorCode::InvalidRequest, "trust {trust}");
        }
        assert_eq!(unit(b, TENANT, |tx| tx.agents(TENANT)).unwrap(), [], "a refused agent is not registered");
        unit(b, TENANT, |tx| registry::upsert(tx, TENANT, &agent("a", 500.0), 1)).unwrap();
        for (reported, stored) in [(2000.0, 1000.0), (-5.0, 0.0), (f64::NAN, 0.0), (612.5, 612.5)] {
            assert!(unit(b, TENANT, |tx| registry::set_trust(tx, TENANT, "a", reported, 2)).unwrap());
            let trust = unit(b, TENANT, |tx| tx.agent(TENANT, "a")).unwrap().map(|a| a.trust);
            assert_eq!(trust, Some(stored), "reported {reported}");
        }
        assert!(!unit(b, TENANT, |tx| registry::set_trust(tx, TENANT, "ghost", 10.0, 2)).unwrap(), "an unregistered agent");
        assert_eq!(unit(b, TENANT, |tx| tx.agent(TENANT, "ghost")).unwrap(), None, "moving a score registers nobody");
    });
}

#[test]
fn a_unit_of_work_reads_its_own_writes_and_a_failed_one_leaves_nothing() {
    on_every_backend(|b| {
        let seen = unit(b, TENANT, |tx| {
            registry::upsert(tx, TENANT, &agent("a", 400.0), 1)?;
            registry::set_trust(tx, TENANT, "a", 410.0, 1)?;
            let stored = StoredDelegation { request_hash: "h".into(), response: "{}".into(), trace_seq: Some(1) };
            assert!(tx.insert_delegation_response(TENANT, "k", &stored, 1)?);
            assert!(!tx.insert_delegation_response(TENANT, "k", &stored, 1)?, "the unit's own response");
            Ok((tx.agents(TENANT)?.len(), tx.agent(TENANT, "a")?.map(|a| a.trust)))
        })
        .unwrap();
        assert_eq!(seen, (1, Some(410.0)));
        let failed = unit(b, TENANT, |tx| {
            registry::upsert(tx, TENANT, &agent("b", 400.0), 1)?;
            tx.set_authority_settings(TENANT, &AuthoritySettings { open_roots: true, ..AuthoritySettings::default() })?;
            let stored = StoredDelegation { request_hash: "h2".into(), response: "{}".into(), trace_seq: None };
            tx.insert_delegation_response(TENANT, "k2", &stored, 1)?;
            Err::<(), _>(ApiError::invalid("refused at the end"))
        });
        assert!(failed.is_err());
        assert_eq!(unit(b, TENANT, |tx| tx.agent(TENANT, "b")).unwrap(), None);
        assert_eq!(unit(b, TENANT, |tx| tx.agents(TENANT)).unwrap().len(), 1, "the index holds no agent of the failed unit");
        assert_eq!(unit(b, TENANT, |tx| tx.authority_settings(TENANT)).unwrap(), None);
        assert_eq!(unit(b, TENANT, |tx| tx.delegation_response(TENANT, "k2")).unwrap(), None);
    });
}

#[test]
fn a_stored_delegation_response_is_never_replaced_and_is_the_tenants_own() {
    on_every_backend(|b| {
        let first = StoredDelegation { request_hash: "h1".into(), response: r#"{"decision":"allow"}"#.into(), trace_seq: Some(7) };
        let twin = StoredDelegation { request_hash: "h2".into(), response: r#"{"decision":"deny"}"#.into(), trace_seq: Some(8) };
        assert!(unit(b, TENANT, |tx| tx.insert_delegation_response(TENANT, "implicit:h1", &first, 1)).unwrap());
        assert!(!unit(b, TENANT, |tx| tx.insert_delegation_response(TENANT, "implicit:h1", &twin, 2)).unwrap(), "taken");
        assert_eq!(unit(b, TENANT, |tx| tx.delegation_response(TENANT, "implicit:h1")).unwrap(), Some(first.clone()));
        assert_eq!(unit(b, OTHER, |tx| tx.delegation_response(OTHER, "implicit:h1")).unwrap(), None, "another tenant's key");
        assert!(unit(b, OTHER, |tx| tx.insert_delegation_response(OTHER, "implicit:h1", &twin, 2)).unwrap());
        // a response stored before seals: its receipt in the text, no trace event named
        let legacy = StoredDelegation { trace_seq: None, ..first };
        assert!(unit(b, TENANT, |tx| tx.insert_delegation_response(TENANT, "explicit:key_1:x", &legacy, 3)).unwrap());
        assert_eq!(unit(b, TENANT, |tx| tx.delegation_response(TENANT, "explicit:key_1:x")).unwrap(), Some(legacy));
    });
}

#[test]
fn a_depth_exception_is_read_for_its_own_tenant_and_chain_only() {
    on_every_backend(|b| {
        let chain = "0123456789abcdef0123456789abcdef";
        let row = DepthExceptionRow {
            id: "dex_1".into(),
            chain_id: chain.into(),
            approved_by: "alice".into(),
            justification: "incident 42".into(),
            extra_depth: 2,
            expires_at_ms: 5_000,
            created_at_ms: 1_000,
        };
        unit(b, TENANT, |tx| tx.insert_depth_exception(TENANT, &row)).unwrap();
        assert!(unit(b, TENANT, |tx| tx.insert_depth_exception(TENANT, &row)).is_err(), "an id is recorded once");
        assert_eq!(unit(b, TENANT, |tx| tx.depth_exception(TENANT, "dex_1")).unwrap(), Some(row.clone()));
        let granted = unit(b, TENANT, |tx| load_exception(tx, TENANT, chain, "dex_1")).unwrap();
        assert_eq!((granted.approved_by.as_str(), granted.extra_depth, granted.expires_at), ("alice", 2, 5_000));
        let other_chain = unit(b, TENANT, |tx| load_exception(tx, TENANT, "ffffffffffffffffffffffffffffffff", "dex_1")).unwrap_err();
        assert_eq!(code(&other_chain), ErrorCode::Forbidden);
        let other_tenant = unit(b, OTHER, |tx| load_exception(tx, OTHER, chain, "dex_1")).unwrap_err();
        assert_eq!(code(&other_tenant), ErrorCode::NotFound, "another tenant's exception is not found");
    });
}

/// Two gateways on one Redis store the same idempotency keys at once: each key is taken by
/// exactly one of them, and both then read the winner's response.
#[test]
fn two_gateways_racing_for_one_idempotency_key_store_one_response() {
    for (name, deployment) in redis_deployments() {
        let gateways: Vec<Arc<RedisLedger>> =
            (0..2).map(|_| Arc::new(RedisLedger::open(&deployment.url, &deployment.prefix).expect("a Redis client"))).collect();
        let keys = 40;
        let threads: Vec<_> = (0..4)
            .map(|worker| {
                let gateway = Arc::clone(&gateways[worker % 2]);
                std::thread::spawn(move || {
                    (0..keys)
                        .map(|k| {
                            let stored = StoredDelegation { request_hash: format!("w{worker}"), response: "{}".into(), trace_seq: Some(k) };
                            let mut won = false;
                            gateway
                                .run(TENANT, |tx| {
                                    won = tx.insert_delegation_response(TENANT, &format!("implicit:{k}"), &stored, 1)?;
                                    Ok(())
                                })
                                .expect("a unit of work");
                            won
                        })
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        let won: Vec<Vec<bool>> = threads.into_iter().map(|t| t.join().expect("a worker")).collect();
        for k in 0..keys {
            let winners: Vec<usize> = (0..4).filter(|w| won[*w][usize::try_from(k).unwrap_or(0)]).collect();
            assert_eq!(winners.len(), 1, "{name}: key {k} was stored by {winners:?}");
            let hash = |g: &RedisLedger| {
                let mut out = None;
                g.run(TENANT, |tx| {
                    out = tx.delegation_response(TENANT, &format!("implicit:{k}"))?.map(|s| s.request_hash);
                    Ok(())
                })
                .expect("a read");
                out
            };
            let expected = Some(format!("w{}", winners[0]));
            assert_eq!((hash(&gateways[0]), hash(&gateways[1])), (expected.clone(), expected), "{name}: key {k}");
        }
        drop(deployment);
    }
}

/// What the Redis backend keeps is in the tenant's slot, under the keys its module documents.
#[test]
fn on_redis_the_registry_and_records_sit_in_the_tenants_slot() {
    for (name, deployment) in redis_deployments() {
        let backend = on_redis(deployment);
        unit(&backend, TENANT, |tx| registry::upsert(tx, TENANT, &agent("a", 1.0), 1)).unwrap();
        let stored = StoredDelegation { request_hash: "h".into(), response: "{}".into(), trace_seq: Some(1) };
        unit(&backend, TENANT, |tx| tx.insert_delegation_response(TENANT, "k", &stored, 1)).unwrap();
        let prefix = &backend.deployment.prefix;
        for key in [format!("{prefix}:{{{TENANT}}}:agent:a"), format!("{prefix}:{{{TENANT}}}:agents"), format!("{prefix}:{{{TENANT}}}:dlg:k")] {
            let exists: i64 = backend.store.query(::redis::cmd("EXISTS").arg(&key));
            assert_eq!(exists, 1, "{name}: `{key}`");
        }
    }
}
