//! The [`crate::repo`] traits and the rules written on them, checked on every backend by the
//! same functions: the embedded SQLite store (an in-memory database with the real schema,
//! each unit of work in a savepoint as on the writer thread), Redis and a three-node Redis
//! Cluster (each started on loopback for the test; skipped with a notice where they cannot
//! be, unless `SBD_REQUIRE_REDIS=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::sync::Arc;

use rusqlite::Connection;

use super::*;
use crate::cycles::Unit;
use crate::delegations::load_exception;
use crate::escalations::{self, EscalationRecord, Status as EscalationStatus, TargetBody};
use crate::escrow::{self, GrantStatus, NewGrant};
use crate::error::{GatewayError, ErrorCode};
use crate::ledger::redis::RedisLedger;
use crate::registry::{self, Unregistered};
use crate::test_redis::{redis_deployments, RedisDeployment};
use crate::traces::{self, event_hash, receipt_signed, Appended, NewEvent, Seal};
use sbd_bundle::KeyPair;

/// A backend under test: runs one unit of work on a tenant's state.
trait Backend {
    /// Runs `op` as one unit of work on `tenant`: all of it or, when it fails, none of it.
    fn unit(&self, tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> GatewayResult<()>) -> GatewayResult<()>;
    /// Like [`Backend::unit`], and answers the seal that signs the trace events `op` appended.
    fn unit_sealed(&self, tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> GatewayResult<()>) -> GatewayResult<Option<Arc<Seal>>>;
    /// Overwrites the stored record of escalation `id` with text that is not a record, as a
    /// damaged store would hold it (its status and assignee kept).
    fn damage_escalation(&self, tenant: &str, id: &str);
}

impl Backend for Connection {
    fn unit(&self, _tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> GatewayResult<()>) -> GatewayResult<()> {
        // the writer thread's own job: a savepoint, undone whole on an error
        crate::store::in_savepoint(self, |c| op(c))
    }

    fn unit_sealed(&self, _tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> GatewayResult<()>) -> GatewayResult<Option<Arc<Seal>>> {
        // as the writer thread does: the unit's leaves are its batch's, sealed inside its
        // transaction before it ends
        traces::discard_pending();
        let outcome = crate::store::in_savepoint(self, |c| op(c).and_then(|()| traces::seal_pending(c, 0)));
        if outcome.is_err() {
            traces::discard_pending();
        }
        outcome
    }

    fn damage_escalation(&self, tenant: &str, id: &str) {
        let n = self.execute("UPDATE escalations SET body = 'not json' WHERE id = ?1 AND tenant_id = ?2", [id, tenant]).expect("update");
        assert_eq!(n, 1, "escalation `{id}` exists");
    }
}

/// A store on a Redis deployment of the test's own.
struct OnRedis {
    store: Arc<RedisLedger>,
    deployment: RedisDeployment,
}

impl Backend for OnRedis {
    fn unit(&self, tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> GatewayResult<()>) -> GatewayResult<()> {
        self.store.run(tenant, |tx| op(tx))
    }

    fn unit_sealed(&self, tenant: &str, op: &mut dyn FnMut(&dyn Tx) -> GatewayResult<()>) -> GatewayResult<Option<Arc<Seal>>> {
        Ok(self.store.run_sealed(tenant, |tx| op(tx))?.1)
    }

    fn damage_escalation(&self, tenant: &str, id: &str) {
        let key = format!("{}:{{{tenant}}}:esc:{id}", self.deployment.prefix);
        let text: String = self.store.query(::redis::cmd("GET").arg(&key));
        let mut stored: serde_json::Value = serde_json::from_str(&text).expect("a stored escalation");
        stored["body"] = "not json".into();
        let () = self.store.query(::redis::cmd("SET").arg(&key).arg(stored.to_string()));
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
fn unit<T>(backend: &dyn Backend, tenant: &str, mut op: impl FnMut(&dyn Tx) -> GatewayResult<T>) -> GatewayResult<T> {
    let mut result = None;
    backend.unit(tenant, &mut |tx| {
        result = Some(op(tx)?);
        Ok(())
    })?;
    result.ok_or_else(|| GatewayError::internal("the unit of work did not run"))
}

const TENANT: &str = "acme";
const OTHER: &str = "globex";

fn agent(id: &str, trust: f64) -> AgentRecord {
    AgentRecord { agent_id: id.into(), trust, capabilities: vec!["payment.*".into()], delegates: vec!["b".into()] }
}

fn code(e: &GatewayError) -> ErrorCode {
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
            Err::<(), _>(GatewayError::invalid("refused at the end"))
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
        insert(&backend, &new_grant("root", None, &[(Unit::Tokens, 10)])).unwrap();
        insert(&backend, &new_grant("kid", Some("root"), &[(Unit::Tokens, 1)])).unwrap();
        unit(&backend, TENANT, |tx| tx.save_escalation(TENANT, &escalation("esc_1", "alice", 5))).unwrap();
        let prefix = &backend.deployment.prefix;
        let tenant_keys = ["agent:a", "agents", "dlg:k", "grant:root", "grant:kid", "grant-kids:root", "chain-grants:c", "chain-root:c", "grants", "esc:esc_1", "esc-all", "esc-pending"];
        for key in tenant_keys.iter().map(|rest| format!("{prefix}:{{{TENANT}}}:{rest}")).chain([format!("{prefix}:esc-tenants")]) {
            let exists: i64 = backend.store.query(::redis::cmd("EXISTS").arg(&key));
            assert_eq!(exists, 1, "{name}: `{key}`");
        }
        // an id a caller sends that names an index reads as no record, not as the index
        assert_eq!(unit(&backend, TENANT, |tx| tx.grant(TENANT, "root:kids")).unwrap().map(|g| g.grant_id), None, "{name}");
        assert_eq!(unit(&backend, TENANT, |tx| tx.escalation(TENANT, "pending")).unwrap().map(|e| e.id), None, "{name}");
    }
}

fn new_grant<'a>(id: &'a str, parent: Option<&'a str>, budgets: &'a [(Unit, i64)]) -> NewGrant<'a> {
    NewGrant {
        tenant: TENANT,
        grant_id: id,
        chain_id: "c",
        parent_id: parent,
        holder: id,
        depth: i64::from(parent.is_some()),
        expires_at_ms: 10_000,
        now: 1,
        budgets,
    }
}

fn insert(b: &dyn Backend, grant: &NewGrant<'_>) -> GatewayResult<()> {
    unit(b, TENANT, |tx| escrow::insert(tx, grant))
}

fn load(b: &dyn Backend, id: &str) -> escrow::Grant {
    unit(b, TENANT, |tx| tx.grant(TENANT, id)).unwrap().unwrap_or_else(|| panic!("grant `{id}`"))
}

fn sound(b: &dyn Backend) -> bool {
    unit(b, TENANT, |tx| escrow::violations(tx, TENANT)).unwrap().is_empty()
}

#[test]
fn siblings_cannot_spend_one_parent_budget_twice() {
    on_every_backend(|b| {
        insert(b, &new_grant("root", None, &[(Unit::Tokens, 100)])).unwrap();
        insert(b, &new_grant("a", Some("root"), &[(Unit::Tokens, 60)])).unwrap();
        let e = insert(b, &new_grant("b", Some("root"), &[(Unit::Tokens, 60)])).unwrap_err();
        assert_eq!(e.code, ErrorCode::BudgetExceeded, "{}", e.message);
        insert(b, &new_grant("b", Some("root"), &[(Unit::Tokens, 40)])).unwrap();
        let root = load(b, "root");
        assert_eq!((root.units[0].carved, root.units[0].available), (100, 0));
        assert!(sound(b));
    });
}

#[test]
fn a_commit_returns_the_rest_and_a_revocation_settles_the_subtree() {
    on_every_backend(|b| {
        insert(b, &new_grant("root", None, &[(Unit::Tokens, 100)])).unwrap();
        insert(b, &new_grant("a", Some("root"), &[(Unit::Tokens, 60)])).unwrap();
        insert(b, &new_grant("a1", Some("a"), &[(Unit::Tokens, 50)])).unwrap();
        let commit = |id: &str, spent: i64, now: i64| unit(b, TENANT, |tx| escrow::commit(tx, TENANT, id, &[(Unit::Tokens, spent)], now));
        assert!(commit("a", 5, 2).is_err(), "a live child blocks the commit");
        commit("a1", 20, 2).unwrap();
        commit("a", 5, 3).unwrap();
        assert_eq!(load(b, "root").units[0].carved, 25, "a consumed 5 + its child's 20; 35 returned");
        insert(b, &new_grant("b", Some("root"), &[(Unit::Tokens, 75)])).unwrap();
        insert(b, &new_grant("b1", Some("b"), &[(Unit::Tokens, 70)])).unwrap();
        insert(b, &new_grant("b2", Some("b"), &[(Unit::Tokens, 1)])).unwrap();
        let settled = unit(b, TENANT, |tx| escrow::settle_subtree(tx, TENANT, "b", GrantStatus::Revoked, 4)).unwrap();
        assert_eq!(settled.grants, ["b1", "b2", "b"], "deepest first, by id within a level");
        assert_eq!(load(b, "b1").status, GrantStatus::Revoked);
        assert!(insert(b, &new_grant("b3", Some("b"), &[(Unit::Tokens, 1)])).is_err(), "a revoked node cannot delegate");
        assert_eq!(load(b, "root").units[0].carved, 25);
        let chain: Vec<String> = unit(b, TENANT, |tx| escrow::chain(tx, TENANT, "c")).unwrap().into_iter().map(|g| g.grant_id).collect();
        // `new_grant` gives every child depth 1 and time 1: after the root, the order is the ids'
        assert_eq!(chain, ["root", "a", "a1", "b", "b1", "b2"], "by depth, then creation, then id");
        assert!(sound(b));
    });
}

#[test]
fn a_unit_listed_twice_a_second_root_and_a_taken_id_are_refused() {
    on_every_backend(|b| {
        assert!(insert(b, &new_grant("r", None, &[(Unit::Tokens, 1), (Unit::Tokens, 1)])).is_err());
        insert(b, &new_grant("r", None, &[(Unit::Tokens, 1)])).unwrap();
        assert_eq!(insert(b, &new_grant("r2", None, &[(Unit::Tokens, 1)])).unwrap_err().code, ErrorCode::DuplicateResource);
        assert_eq!(insert(b, &new_grant("r", Some("r"), &[(Unit::Tokens, 1)])).unwrap_err().code, ErrorCode::DuplicateResource);
        assert_eq!(load(b, "r").units[0].carved, 0, "a refused insert carves nothing from its parent");
        // a chain id is the tenant's own: another tenant may root a chain of the same id
        let other = NewGrant { tenant: OTHER, ..new_grant("o", None, &[(Unit::Tokens, 1)]) };
        unit(b, OTHER, |tx| escrow::insert(tx, &other)).unwrap();
        assert_eq!(unit(b, OTHER, |tx| tx.grant(OTHER, "r")).unwrap().map(|g| g.grant_id), None, "another tenant's grant");
        assert!(sound(b));
    });
}

#[test]
fn a_root_grant_records_its_reservation_and_a_settled_root_reports_it() {
    on_every_backend(|b| {
        insert(b, &new_grant("root", None, &[(Unit::Tokens, 100), (Unit::Credits, 5)])).unwrap();
        unit(b, TENANT, |tx| escrow::set_reservation(tx, TENANT, "root", Unit::Tokens, "rsv_1")).unwrap();
        assert!(unit(b, TENANT, |tx| escrow::set_reservation(tx, TENANT, "root", Unit::RiskPoints, "rsv_2")).is_err(), "a unit it does not hold");
        insert(b, &new_grant("a", Some("root"), &[(Unit::Tokens, 30), (Unit::Credits, 0)])).unwrap();
        unit(b, TENANT, |tx| escrow::commit(tx, TENANT, "a", &[(Unit::Tokens, 12)], 2)).unwrap();
        let settled = unit(b, TENANT, |tx| escrow::commit(tx, TENANT, "root", &[(Unit::Tokens, 3)], 3)).unwrap();
        assert_eq!(settled.root_reservations, [(Unit::Tokens, "rsv_1".to_string(), 15)], "12 by the child and 3 by the root");
        let root = load(b, "root");
        assert_eq!((root.status, root.units[1].spent, root.units[1].carved), (GrantStatus::Committed, 3, 12));
        assert!(unit(b, TENANT, |tx| escrow::commit(tx, TENANT, "root", &[], 4)).is_err(), "settled once");
        assert!(sound(b));
    });
}

/// Random trees of carves, commits, releases and revocations on every backend: the audit
/// finds nothing, and no node's descendants ever hold more than its grant.
#[test]
fn random_trees_stay_sound() {
    on_every_backend(|b| {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        insert(b, &new_grant("g000", None, &[(Unit::Tokens, 1_000)])).unwrap();
        let mut ids = vec!["g000".to_string()];
        let mut done = [0usize; 3];
        for step in 1..120 {
            let target = ids[usize::try_from(next(ids.len() as u64)).unwrap_or(0)].clone();
            let amount = i64::try_from(next(400)).unwrap_or(0);
            let kind = next(5);
            let outcome = match kind {
                0..=2 => {
                    let id = format!("g{step:03}");
                    let budgets = [(Unit::Tokens, amount)];
                    let grant = NewGrant { grant_id: &id, holder: &id, ..new_grant("", Some(&target), &budgets) };
                    let made = insert(b, &grant);
                    if made.is_ok() {
                        ids.push(id.clone());
                    }
                    made
                }
                3 => unit(b, TENANT, |tx| escrow::commit(tx, TENANT, &target, &[(Unit::Tokens, amount / 4)], 2).map(drop)),
                _ => unit(b, TENANT, |tx| escrow::settle_subtree(tx, TENANT, &target, GrantStatus::Released, 2).map(drop)),
            };
            if outcome.is_ok() {
                done[match kind {
                    0..=2 => 0,
                    3 => 1,
                    _ => 2,
                }] += 1;
            }
            let violations = unit(b, TENANT, |tx| escrow::violations(tx, TENANT)).unwrap();
            assert!(violations.is_empty(), "after step {step}: {violations:?}");
        }
        // carves, commits and settlements each succeeded, not only refusals
        assert!(done.iter().all(|n| *n >= 3), "{done:?}");
    });
}

/// A PENDING escalation of `assignee` expiring at `expires_at_ms`.
fn escalation(id: &str, assignee: &str, expires_at_ms: i64) -> EscalationRecord {
    let task = serde_json::json!({"id": "t1", "action_kind": "payment.refund", "risk": "high", "value": 500,
                                  "counterparty": "acme", "completable_locally": true});
    serde_json::from_value(serde_json::json!({
        "id": id, "chain_id": "c", "status": "PENDING", "target": {"kind": "human", "id": assignee},
        "assignee": assignee, "paths": [], "reason_code": 2002, "reason": "value-review", "message": "m",
        "delegator": "a", "delegate": "b", "task": task, "created_at_ms": 0, "expires_at_ms": expires_at_ms
    }))
    .expect("an escalation record")
}

fn escalation_ids(records: Vec<EscalationRecord>) -> Vec<String> {
    records.into_iter().map(|r| r.id).collect()
}

#[test]
fn escalations_list_by_expiry_filter_and_count_pending_per_assignee() {
    on_every_backend(|b| {
        for e in [escalation("esc_1", "alice", 300), escalation("esc_2", "bob", 100), escalation("esc_3", "alice", 200)] {
            unit(b, TENANT, |tx| tx.save_escalation(TENANT, &e)).unwrap();
        }
        let list = |status: Option<EscalationStatus>, assignee: Option<&str>| {
            escalation_ids(unit(b, TENANT, |tx| tx.escalations(TENANT, status, assignee)).unwrap())
        };
        assert_eq!(list(None, None), ["esc_2", "esc_3", "esc_1"], "by expiry");
        assert_eq!(list(None, Some("alice")), ["esc_3", "esc_1"]);
        assert_eq!(unit(b, TENANT, |tx| tx.pending_escalations(TENANT, "alice")).unwrap(), 2);
        let mut decided = escalation("esc_3", "alice", 200);
        decided.status = EscalationStatus::Decided;
        unit(b, TENANT, |tx| tx.save_escalation(TENANT, &decided)).unwrap();
        assert_eq!(unit(b, TENANT, |tx| tx.pending_escalations(TENANT, "alice")).unwrap(), 1, "a decided one is not pending");
        assert_eq!(list(Some(EscalationStatus::Pending), None), ["esc_2", "esc_1"]);
        assert_eq!(list(Some(EscalationStatus::Decided), Some("alice")), ["esc_3"]);
        assert_eq!(unit(b, TENANT, |tx| tx.escalation(TENANT, "esc_3")).unwrap().map(|r| r.status), Some(EscalationStatus::Decided));
        assert_eq!(unit(b, OTHER, |tx| tx.escalation(OTHER, "esc_1")).unwrap().map(|r| r.id), None, "another tenant's");
        assert_eq!(unit(b, OTHER, |tx| tx.escalations(OTHER, None, None)).unwrap().len(), 0);
        assert_eq!(unit(b, OTHER, |tx| tx.pending_escalations(OTHER, "alice")).unwrap(), 0);
    });
}

#[test]
fn the_sweep_finds_only_pending_escalations_past_their_ttl() {
    on_every_backend(|b| {
        for e in [escalation("esc_1", "alice", 100), escalation("esc_2", "alice", 500), escalation("esc_3", "bob", 50)] {
            unit(b, TENANT, |tx| tx.save_escalation(TENANT, &e)).unwrap();
        }
        let expired = |now: i64, max: usize| -> Vec<String> {
            unit(b, TENANT, |tx| tx.expired_escalations(TENANT, now, max)).unwrap().into_iter().map(|(id, r)| {
                assert!(r.is_some_and(|r| r.id == id), "the record of `{id}`");
                id
            }).collect()
        };
        assert_eq!(expired(200, 10), ["esc_3", "esc_1"], "by expiry; `esc_2` has not expired");
        assert_eq!(expired(200, 1), ["esc_3"], "at most `max`");
        assert_eq!(expired(100, 10), ["esc_3"], "expired means before now");
        let mut closed = escalation("esc_3", "bob", 50);
        closed.status = EscalationStatus::Expired;
        unit(b, TENANT, |tx| tx.save_escalation(TENANT, &closed)).unwrap();
        assert_eq!(expired(200, 10), ["esc_1"], "a closed one is not found again");
        assert!(unit(b, TENANT, |tx| tx.escalation_tenants()).unwrap().contains(&TENANT.to_string()));
        assert_eq!(unit(b, OTHER, |tx| tx.expired_escalations(OTHER, 1_000, 10)).unwrap().len(), 0, "another tenant's");
    });
}

#[test]
fn escalation_targets_are_checked_and_listed_by_trust_then_agent() {
    on_every_backend(|b| {
        let target = |agent: &str, trust: u16| TargetBody {
            agent_id: agent.into(),
            capabilities: vec!["payment.*".into()],
            trust,
            tier: "T4".into(),
            max_concurrent: 2,
        };
        for t in [target("carol", 700), target("bob", 900), target("alice", 700)] {
            unit(b, TENANT, |tx| escalations::register_target(tx, TENANT, &t)).unwrap();
        }
        let bad = TargetBody { max_concurrent: 0, ..target("dave", 1) };
        assert_eq!(unit(b, TENANT, |tx| escalations::register_target(tx, TENANT, &bad)).unwrap_err().code, ErrorCode::InvalidRequest);
        unit(b, TENANT, |tx| escalations::register_target(tx, TENANT, &target("carol", 950))).unwrap();
        let listed: Vec<(String, u16)> =
            unit(b, TENANT, |tx| tx.escalation_targets(TENANT)).unwrap().into_iter().map(|t| (t.agent_id, t.trust)).collect();
        let expected = [("carol", 950), ("bob", 900), ("alice", 700)].map(|(a, t)| (a.to_string(), t));
        assert_eq!(listed, expected, "a replaced target moves; ties by agent id");
        assert_eq!(unit(b, OTHER, |tx| tx.escalation_targets(OTHER)).unwrap().len(), 0);
    });
}

/// The audit finds a broken tree: a parent whose `carved` disagrees with its children, and a
/// node whose amounts exceed its grant (written past the rules, as a damaged store would).
#[test]
fn the_audit_reports_a_tree_the_rules_did_not_make() {
    on_every_backend(|b| {
        insert(b, &new_grant("root", None, &[(Unit::Tokens, 100)])).unwrap();
        insert(b, &new_grant("a", Some("root"), &[(Unit::Tokens, 60)])).unwrap();
        assert!(sound(b));
        let root = load(b, "root");
        let tampered = escrow::GrantUnit { carved: 50, ..root.units[0].clone() };
        unit(b, TENANT, |tx| tx.save_grant_unit(TENANT, "root", &tampered)).unwrap();
        let found = unit(b, TENANT, |tx| escrow::violations(tx, TENANT)).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].grant_id.as_str(), found[0].unit.as_str()), ("root", "TOKENS"));
        assert!(found[0].message.contains("carved 50 but the children hold or consumed 60"), "{}", found[0].message);
        let a = load(b, "a");
        let overspent = escrow::GrantUnit { spent: 61, ..a.units[0].clone() };
        // SQLite's CHECK refuses such a row outright; a backend without one stores it, and then
        // the audit must say so
        if unit(b, TENANT, |tx| tx.save_grant_unit(TENANT, "a", &overspent)).is_ok() {
            let found = unit(b, TENANT, |tx| escrow::violations(tx, TENANT)).unwrap();
            assert!(found.iter().any(|v| v.grant_id == "a" && v.message.contains("carved 0 + spent 61 > granted 60")), "{found:?}");
        }
        // another tenant's unit of work cannot change this tenant's grant through its id
        let _ = unit(b, OTHER, |tx| tx.save_grant_unit(OTHER, "root", &escrow::GrantUnit { carved: 0, ..tampered.clone() }));
        assert_eq!(load(b, "root").units[0].carved, 50);
    });
}

/// An escalation whose stored record cannot be read is filtered by its status, closed by the
/// sweep, and never breaks a queue that does not list it.
#[test]
fn an_unreadable_escalation_is_closed_by_its_status_alone() {
    on_every_backend(|b| {
        for e in [escalation("esc_1", "alice", 100), escalation("esc_2", "alice", 500)] {
            unit(b, TENANT, |tx| tx.save_escalation(TENANT, &e)).unwrap();
        }
        b.damage_escalation(TENANT, "esc_1");
        assert_eq!(unit(b, TENANT, |tx| tx.escalation(TENANT, "esc_1")).unwrap_err().code, ErrorCode::InternalError);
        assert_eq!(unit(b, TENANT, |tx| tx.pending_escalations(TENANT, "alice")).unwrap(), 2, "still counted by its status");
        assert!(unit(b, TENANT, |tx| tx.expired_escalations(TENANT, 50, 10)).unwrap().is_empty(), "not past its TTL yet");
        let expired = unit(b, TENANT, |tx| tx.expired_escalations(TENANT, 200, 10)).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!((expired[0].0.as_str(), expired[0].1.is_none()), ("esc_1", true));
        unit(b, TENANT, |tx| tx.expire_unreadable_escalation(TENANT, "esc_1")).unwrap();
        assert_eq!(unit(b, TENANT, |tx| tx.pending_escalations(TENANT, "alice")).unwrap(), 1);
        assert!(unit(b, TENANT, |tx| tx.expired_escalations(TENANT, 200, 10)).unwrap().is_empty(), "closed once");
        let pending = unit(b, TENANT, |tx| tx.escalations(TENANT, Some(EscalationStatus::Pending), None)).unwrap();
        assert_eq!(escalation_ids(pending), ["esc_2"], "the pending queue reads again");
        assert!(unit(b, TENANT, |tx| tx.escalations(TENANT, None, None)).is_err(), "a listing that includes it fails closed");
    });
}

/// Each statement of a grant's lookup is prepared once per SQLite connection, not on every run.
#[test]
fn on_sqlite_loading_a_grant_does_not_reprepare_its_statements() {
    let conn = Connection::open_in_memory().expect("in-memory SQLite");
    crate::store::migrate(&conn).expect("schema");
    insert(&conn, &new_grant("root", None, &[(Unit::Tokens, 100), (Unit::Credits, 5)])).expect("root");
    for id in ["a", "b", "c"] {
        insert(&conn, &new_grant(id, Some("root"), &[(Unit::Tokens, 1)])).expect("child");
    }
    for _ in 0..5 {
        assert_eq!(load(&conn, "root").units.len(), 2);
    }
    for sql in [sqlite::UNITS_SQL, sqlite::GRANT_SQL] {
        let stmt = conn.prepare_cached(sql).expect("cached");
        let reprepared = stmt.get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(reprepared, 0, "`{sql}` was prepared again {reprepared} times");
    }
}

/// `op` as one unit of work on `tenant`, with its result and the seal of its trace events.
fn sealed<T>(backend: &dyn Backend, tenant: &str, mut op: impl FnMut(&dyn Tx) -> GatewayResult<T>) -> GatewayResult<(T, Option<Arc<Seal>>)> {
    let mut result = None;
    let seal = backend.unit_sealed(tenant, &mut |tx| {
        result = Some(op(tx)?);
        Ok(())
    })?;
    Ok((result.ok_or_else(|| GatewayError::internal("the unit of work did not run"))?, seal))
}

fn trace_event<'a>(tenant: &'a str, chain: &'a str, n: i64) -> NewEvent<'a> {
    NewEvent {
        tenant,
        chain_id: chain,
        delegator: "a",
        delegate: "b",
        depth: n,
        at_ms: 1_000 + n,
        decision: "allow",
        reason_code: None,
        policy_version: "p@1",
        body: format!("{{\"n\":{n}}}"),
    }
}

fn unhex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

/// Events appended in units of work chain per (tenant, chain) on every backend: positions from
/// 1, each hash over the previous one, sequence numbers increasing; the seal each unit answers
/// proves its events (a receipt verifies); a unit that fails appends nothing.
#[test]
fn appended_trace_events_chain_per_tenant_and_their_seal_proves_them() {
    on_every_backend(|b| {
        let signer = KeyPair::from_secret(&[7; 32]);
        let key = signer.public();
        let (first, seal) = sealed(b, TENANT, |tx| {
            Ok(vec![
                traces::append(tx, &trace_event(TENANT, "c1", 1), &signer)?,
                traces::append(tx, &trace_event(TENANT, "c1", 2), &signer)?,
                traces::append(tx, &trace_event(TENANT, "c2", 3), &signer)?,
            ])
        })
        .unwrap();
        let seal = seal.expect("a unit that appended answers a seal");
        assert_eq!(seal.record.tree_size, 3);
        assert_eq!(first.iter().map(|a| a.pos).collect::<Vec<_>>(), [1, 2, 1], "positions per chain");
        assert!(first.windows(2).all(|w| w[0].seq < w[1].seq), "sequence numbers increase");
        for (a, chain) in first.iter().zip(["c1", "c1", "c2"]) {
            assert!(receipt_signed(&seal.receipt(a), TENANT, chain, &key), "the receipt of {a:?}");
            assert!(!receipt_signed(&seal.receipt(a), OTHER, chain, &key), "a receipt names its tenant");
        }
        let failed = sealed(b, TENANT, |tx| {
            traces::append(tx, &trace_event(TENANT, "c1", 9), &signer)?;
            Err::<Appended, _>(GatewayError::invalid("refused after appending"))
        });
        assert!(failed.is_err());
        let (next, next_seal) = sealed(b, TENANT, |tx| traces::append(tx, &trace_event(TENANT, "c1", 4), &signer)).unwrap();
        let next_seal = next_seal.expect("a seal");
        assert_eq!(next.pos, 3, "the failed unit's event is not in the chain");
        assert!(next.seq > first[2].seq);
        assert!(next_seal.record.seal_id > seal.record.seal_id, "seal ids increase");
        assert!(receipt_signed(&next_seal.receipt(&next), TENANT, "c1", &key));
        let records = unit(b, TENANT, |tx| tx.trace_events(TENANT, "c1")).unwrap();
        assert_eq!(records.iter().map(|r| r.pos).collect::<Vec<_>>(), [1, 2, 3]);
        let mut prev = [0u8; 32];
        for r in &records {
            assert_eq!(unhex32(&r.prev_hash), prev, "event {} links to the one before", r.pos);
            assert_eq!(crate::util::hex(&event_hash(&prev, r)), r.hash, "event {} hashes as stored", r.pos);
            prev = unhex32(&r.hash);
        }
        let head = unit(b, TENANT, |tx| tx.trace_head(TENANT, "c1")).unwrap().expect("a head");
        assert_eq!((head.count, head.head_hash.as_str()), (3, next.hash.as_str()));
        // the chain verifies from what the store kept: events, head, seals and audit paths
        let proofs = unit(b, TENANT, |tx| traces::inclusions(tx, TENANT, &records)).unwrap();
        assert_eq!(proofs.seals.len(), 2, "the two units' seals");
        assert_eq!(traces::verify_records(&records, TENANT, "c1", &key, Some(&head), &proofs), Ok(()));
        // a receipt made again from the store is the one the unit's seal gave
        let again = unit(b, TENANT, |tx| traces::receipt(tx, TENANT, first[1].seq, &key)).unwrap();
        assert_eq!(again, Some(seal.receipt(&first[1])));
        let mut edited = records.clone();
        edited[1].body = "{\"n\":99}".into();
        assert!(traces::verify_records(&edited, TENANT, "c1", &key, Some(&head), &proofs).is_err(), "an edit is found");
        // another tenant's chain of the same id is its own
        let (theirs, _) = sealed(b, OTHER, |tx| traces::append(tx, &trace_event(OTHER, "c1", 1), &signer)).unwrap();
        assert_eq!(theirs.pos, 1);
        let asked_by_other = unit(b, OTHER, |tx| traces::receipt(tx, OTHER, first[1].seq, &key)).unwrap();
        assert_ne!(asked_by_other, Some(seal.receipt(&first[1])), "a tenant never gets another's receipt");
        assert_eq!(unit(b, TENANT, |tx| tx.trace_events(TENANT, "c1")).unwrap().len(), 3);
        // a unit that appends nothing answers no seal
        assert!(sealed(b, TENANT, |tx| tx.trace_head(TENANT, "c1")).unwrap().1.is_none());
    });
}

/// The escalation sweep closes a PENDING escalation past its TTL once, with one trace event,
/// on every backend; on Redis two gateways sweeping at once still close it once.
#[test]
fn an_expired_escalation_is_closed_once_with_one_trace_event() {
    let signer = KeyPair::from_secret(&[9; 32]);
    let decisions = |b: &dyn Backend| -> Vec<String> {
        unit(b, TENANT, |tx| tx.trace_events(TENANT, "c")).unwrap().into_iter().map(|r| r.decision).collect()
    };
    on_every_backend(|b| {
        let signer = KeyPair::from_secret(&[9; 32]);
        for e in [escalation("esc_1", "alice", 100), escalation("esc_2", "alice", 500)] {
            unit(b, TENANT, |tx| tx.save_escalation(TENANT, &e)).unwrap();
        }
        let (closed, seal) = sealed(b, TENANT, |tx| escalations::sweep_tenant(tx, TENANT, 200, &signer)).unwrap();
        assert_eq!(closed, 1);
        assert!(seal.is_some(), "the expiry's trace event is sealed");
        let record = unit(b, TENANT, |tx| tx.escalation(TENANT, "esc_1")).unwrap().expect("esc_1");
        assert_eq!((record.status, record.decided_by.as_deref()), (EscalationStatus::Expired, Some("system:ttl")));
        assert_eq!(sealed(b, TENANT, |tx| escalations::sweep_tenant(tx, TENANT, 300, &signer)).unwrap().0, 0, "closed once");
        let events: Vec<String> =
            unit(b, TENANT, |tx| tx.trace_events(TENANT, "c")).unwrap().into_iter().map(|r| r.decision).collect();
        assert_eq!(events, ["escalation-decision"]);
        let queue = unit(b, TENANT, |tx| escalations::queue(tx, TENANT, Some(EscalationStatus::Pending), None, 300, &signer)).unwrap();
        assert_eq!(escalation_ids(queue), ["esc_2"]);
    });
    for (name, deployment) in redis_deployments() {
        let gateways: Vec<Arc<RedisLedger>> =
            (0..2).map(|_| Arc::new(RedisLedger::open(&deployment.url, &deployment.prefix).expect("a Redis client"))).collect();
        let backend = OnRedis { store: Arc::clone(&gateways[0]), deployment };
        for i in 0..20 {
            unit(&backend, TENANT, |tx| tx.save_escalation(TENANT, &escalation(&format!("esc_{i:02}"), "alice", 100))).unwrap();
        }
        let sweepers: Vec<_> = (0..4)
            .map(|w| {
                let (gateway, signer) = (Arc::clone(&gateways[w % 2]), signer.clone());
                std::thread::spawn(move || gateway.run(TENANT, |tx| escalations::sweep_tenant(tx, TENANT, 200, &signer)).expect("a sweep"))
            })
            .collect();
        let closed: usize = sweepers.into_iter().map(|t| t.join().expect("a sweeper")).sum();
        assert_eq!(closed, 20, "{name}: each escalation closed by exactly one sweep");
        assert_eq!(decisions(&backend).len(), 20, "{name}: one trace event each");
    }
}

/// On Redis, a seal counter or a sequence counter that went back (a failover lost its last
/// increments) makes an append fail instead of replacing a seal or repointing an event.
#[test]
fn on_redis_a_counter_that_went_back_is_refused_not_obeyed() {
    for (name, deployment) in redis_deployments() {
        let backend = on_redis(deployment);
        let signer = KeyPair::from_secret(&[7; 32]);
        let append = |n: i64| sealed(&backend, TENANT, |tx| traces::append(tx, &trace_event(TENANT, "c1", n), &signer));
        let (first, seal) = append(1).unwrap();
        let prefix = backend.deployment.prefix.clone();
        let () = backend.store.query(::redis::cmd("SET").arg(format!("{prefix}:ids:seal")).arg(0));
        assert!(append(2).is_err(), "{name}: a taken seal id");
        let () = backend.store.query(::redis::cmd("SET").arg(format!("{prefix}:{{{TENANT}}}:trace-seq")).arg(0));
        assert!(append(3).is_err(), "{name}: a taken sequence number");
        // what was written before stands
        let key = signer.public();
        let again = unit(&backend, TENANT, |tx| traces::receipt(tx, TENANT, first.seq, &key)).unwrap();
        assert_eq!(again, Some(seal.expect("a seal").receipt(&first)), "{name}");
        assert_eq!(unit(&backend, TENANT, |tx| tx.trace_events(TENANT, "c1")).unwrap().len(), 1, "{name}");
    }
}

// ---- the event log and the webhook outbox ----

use crate::events::{self as log, EventCategory, EventData, EventFilter, EventType, Origin, SortBy, SortDir, SYSTEM_TENANT};
use crate::webhooks::{self, Attempt, Delivery, DeliveryFilter, DeliveryStatus, RetryPolicy, Subscription, SubscriptionStatus};

fn data() -> EventData {
    EventData::System { component: "test", message: "m".into(), severity: "info", details: serde_json::json!({}) }
}

/// What a test emitted, in commit order: its row as the log must hold it.
struct Emitted {
    rows: Vec<crate::events::EventRow>,
}

/// Emits `event` at `at_ms` in one unit of work of its tenant, with request id `request`,
/// and records the row the log must hold.
fn emit(b: &dyn Backend, out: &mut Emitted, event: log::NewEvent, at_ms: i64, request: Option<&str>) -> String {
    let tenant = event.tenant_id.clone();
    let origin = Origin { request_id: request.map(String::from), trace_id: request.map(|r| format!("trace-{r}")), actor: None };
    let id = origin.scope(|| unit(b, &tenant, |tx| log::emit(tx, event.clone(), at_ms))).unwrap();
    let stored = unit(b, &tenant, |tx| log::get(tx, &id)).unwrap().expect("the emitted event");
    out.rows.push(crate::events::EventRow {
        event: stored,
        correlation_id: event.correlation_id.clone(),
        request_id: request.map(String::from),
    });
    id
}

/// The log the event tests list: two tenants, times that rise with commit order (pairs of
/// one tenant's events share a millisecond), scopes in both cases and with non-ASCII letters.
fn emit_log(b: &dyn Backend) -> Emitted {
    let mut out = Emitted { rows: Vec::new() };
    let kinds = [EventType::TenantUpdated, EventType::ReservationDenied, EventType::ApiKeyCreated, EventType::BudgetExhausted];
    for i in 0..24i64 {
        let tenant = if i % 3 == 0 { OTHER } else { TENANT };
        let mut event = log::NewEvent::new(kinds[usize::try_from(i).unwrap() % kinds.len()], tenant, data());
        match i % 4 {
            0 => event = event.scope(format!("tenant:{tenant}/App:{i}")),
            1 => event = event.scope(format!("tenant:{tenant}/Émile_{i}%")),
            2 => {}
            _ => event = event.scope(format!("tenant:{tenant}/app:{i}")),
        }
        if i % 5 == 0 {
            event = event.correlation(format!("corr-{}", i / 10));
        }
        // events 3k+1 and 3k+2, both the first tenant's, share a millisecond; otherwise time
        // rises with commit order, across tenants too (whose order within a millisecond the
        // backends may break differently)
        let at = 1_000 + 10 * if i % 3 == 2 { i - 1 } else { i };
        emit(b, &mut out, event, at, (i % 7 == 0).then_some("req-7").or((i % 7 == 1).then_some("req-1")));
    }
    out
}

/// What `f` must list: the rows it admits, in its order, ties in commit order in its
/// direction (the embedded store's `ORDER BY column, seq`), paged.
fn expected(out: &Emitted, f: &EventFilter, offset: usize, count: usize) -> Vec<String> {
    let mut rows: Vec<&crate::events::EventRow> = out.rows.iter().filter(|r| f.admits(r)).collect();
    if f.sort_dir == SortDir::Desc {
        rows.reverse();
    }
    let key = |r: &crate::events::EventRow| -> Option<String> {
        match f.sort_by {
            SortBy::Timestamp => None,
            SortBy::EventType => Some(r.event.event_type.as_str().into()),
            SortBy::Category => Some(r.event.event_type.category().as_str().into()),
            SortBy::Scope => r.event.scope.clone(),
            SortBy::TenantId => Some(r.event.tenant_id.clone()),
        }
    };
    rows.sort_by(|a, b| if f.sort_dir == SortDir::Desc { key(b).cmp(&key(a)) } else { key(a).cmp(&key(b)) });
    rows.into_iter().skip(offset).take(count).map(|r| r.event.body.clone()).collect()
}

#[test]
fn event_listings_filter_sort_and_page_as_the_embedded_query_does() {
    on_every_backend(|b| {
        let out = emit_log(b);
        let base = EventFilter { limit: 100, ..EventFilter::default() };
        let mut filters = vec![
            base.clone(),
            EventFilter { tenant_id: Some(TENANT.into()), ..base.clone() },
            EventFilter { tenant_id: Some(OTHER.into()), tenant_accessible_only: true, ..base.clone() },
            EventFilter { event_type: Some(EventType::ReservationDenied), ..base.clone() },
            EventFilter { category: Some(EventCategory::ApiKey), ..base.clone() },
            EventFilter { scope_prefix: Some(format!("tenant:{TENANT}/app:")), ..base.clone() },
            EventFilter { correlation_id: Some("corr-1".into()), ..base.clone() },
            EventFilter { request_id: Some("req-7".into()), ..base.clone() },
            EventFilter { trace_id: Some("trace-req-1".into()), ..base.clone() },
            EventFilter { from_ms: Some(1_030), to_ms: Some(1_070), ..base.clone() },
            EventFilter { from_ms: Some(1_075), ..base.clone() },
            EventFilter { to_ms: Some(999), ..base.clone() },
            EventFilter { from_ms: Some(2_000), to_ms: Some(1_000), ..base.clone() },
        ];
        for search in ["APP:1", "app_", "%", "émile", "ÉMILE", "CORR-2", "_1"] {
            filters.push(EventFilter { search: Some(search.into()), ..base.clone() });
        }
        for sort_by in [SortBy::Timestamp, SortBy::EventType, SortBy::Category, SortBy::Scope, SortBy::TenantId] {
            for sort_dir in [SortDir::Asc, SortDir::Desc] {
                filters.push(EventFilter { sort_by, sort_dir, ..base.clone() });
                filters.push(EventFilter { sort_by, sort_dir, tenant_id: Some(TENANT.into()), from_ms: Some(1_020), ..base.clone() });
            }
        }
        let mut nonempty = 0;
        for f in &filters {
            for (offset, count) in [(0, 100), (0, 3), (2, 3), (5, 4), (40, 5)] {
                let listed = unit(b, TENANT, |tx| tx.matching_events(f, offset, count)).unwrap();
                assert_eq!(listed, expected(&out, f, offset, count), "{f:?} from {offset}, {count}");
                nonempty += usize::from(!listed.is_empty());
            }
        }
        assert!(nonempty > 60, "the filters select something ({nonempty} nonempty pages)");
        // the search reads `%` and `_` literally and lowercases the columns in ASCII only
        let search = |text: &str| unit(b, TENANT, |tx| tx.matching_events(&EventFilter { search: Some(text.into()), ..base.clone() }, 0, 100)).unwrap().len();
        assert_eq!(search("%"), 6);
        assert_eq!(search("ÉMILE"), 0, "É is not folded in the column");
        assert_eq!(search("émile"), 0, "nor in the search text's lowercase");
        assert_eq!(search("App:4"), 1);
        // a page and its cursor
        let page = unit(b, TENANT, |tx| log::list(tx, &EventFilter { limit: 5, ..base.clone() })).unwrap();
        assert_eq!((page.events.len(), page.next_cursor.as_deref()), (5, Some("5")));
        assert_eq!(page.events, expected(&out, &base, 0, 5), "newest first");
        let last = unit(b, TENANT, |tx| log::list(tx, &EventFilter { limit: 5, cursor: Some("20".into()), ..base.clone() })).unwrap();
        assert_eq!((last.events.len(), last.next_cursor), (4, None));
        let e = unit(b, TENANT, |tx| log::list(tx, &EventFilter { cursor: Some("-1".into()), ..base.clone() })).unwrap_err();
        assert_eq!(code(&e), ErrorCode::InvalidRequest);
    });
}

#[test]
fn an_event_is_found_by_id_and_windows_are_oldest_first_and_capped() {
    on_every_backend(|b| {
        let out = emit_log(b);
        let first = out.rows[0].event.event_id.clone();
        assert_eq!(out.rows[0].event.tenant_id, OTHER);
        let found = unit(b, TENANT, |tx| log::get(tx, &first)).unwrap().expect("another tenant's event, by id alone");
        assert_eq!((found.tenant_id.as_str(), found.body.as_str()), (OTHER, out.rows[0].event.body.as_str()));
        assert!(unit(b, TENANT, |tx| log::get(tx, "evt_missing")).unwrap().is_none());
        let ids = |events: Vec<crate::events::StoredEvent>| events.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
        let want = |tenant: Option<&str>, from: i64, to: i64| -> Vec<String> {
            out.rows
                .iter()
                .filter(|r| tenant.is_none_or(|t| t == r.event.tenant_id) && (from..=to).contains(&r.event.at_ms))
                .map(|r| r.event.event_id.clone())
                .collect()
        };
        for (tenant, from, to) in [(Some(TENANT), 0, i64::MAX), (Some(OTHER), 1_020, 1_080), (None, 1_010, 1_050), (None, 0, 999)] {
            let window = unit(b, TENANT, |tx| log::window(tx, tenant, from, to, 100)).unwrap();
            assert_eq!(ids(window), want(tenant, from, to), "{tenant:?} {from}..={to}");
        }
        let capped = unit(b, TENANT, |tx| log::window(tx, None, 0, i64::MAX, 3)).unwrap();
        assert_eq!(ids(capped), want(None, 0, i64::MAX)[..4], "cap + 1, to tell more than the cap");
    });
}

#[test]
fn a_failed_unit_leaves_no_event_and_no_delivery() {
    on_every_backend(|b| {
        unit(b, TENANT, |tx| webhooks::save(tx, &subscription("whsub_t", TENANT, &[EventType::ReservationDenied]))).unwrap();
        let mut id = String::new();
        let e = unit(b, TENANT, |tx| {
            id = log::emit(tx, log::NewEvent::new(EventType::ReservationDenied, TENANT, data()), 5)?;
            Err::<(), _>(GatewayError::invalid("refused after the event"))
        })
        .unwrap_err();
        assert_eq!(code(&e), ErrorCode::InvalidRequest);
        assert!(unit(b, TENANT, |tx| log::get(tx, &id)).unwrap().is_none(), "no event");
        let all = EventFilter { limit: 100, ..EventFilter::default() };
        assert_eq!(unit(b, TENANT, |tx| tx.matching_events(&all, 0, 100)).unwrap().len(), 0);
        let sub = subscription("whsub_t", TENANT, &[]);
        assert_eq!(unit(b, TENANT, |tx| tx.subscription_deliveries(&sub, &DeliveryFilter::default(), 0, 100)).unwrap(), []);
    });
}

fn subscription(id: &str, tenant: &str, types: &[EventType]) -> Subscription {
    Subscription {
        subscription_id: id.into(),
        tenant_id: tenant.into(),
        name: None,
        description: None,
        url: "https://example.com/hook".into(),
        event_types: types.to_vec(),
        event_categories: vec![],
        scope_filter: None,
        thresholds: None,
        signing_secret: webhooks::new_secret(),
        headers: std::collections::BTreeMap::new(),
        status: SubscriptionStatus::Active,
        retry_policy: RetryPolicy::default(),
        disable_after_failures: 10,
        consecutive_failures: 0,
        created_at_ms: 0,
        updated_at_ms: 0,
        last_triggered_at_ms: None,
        last_success_at_ms: None,
        last_failure_at_ms: None,
        metadata: None,
    }
}

fn deliveries(b: &dyn Backend, sub: &Subscription, f: &DeliveryFilter) -> Vec<Delivery> {
    unit(b, &sub.tenant_id, |tx| tx.subscription_deliveries(sub, f, 0, 100_000)).unwrap()
}

#[test]
fn an_event_queues_a_delivery_to_each_active_subscription_that_receives_it() {
    on_every_backend(|b| {
        let denied = [EventType::ReservationDenied];
        let own = subscription("whsub_own", TENANT, &denied);
        let paused = Subscription { status: SubscriptionStatus::Paused, ..subscription("whsub_paused", TENANT, &denied) };
        let other_type = subscription("whsub_type", TENANT, &[EventType::TenantUpdated]);
        let other_tenant = subscription("whsub_other", OTHER, &denied);
        let system = subscription("whsub_system", SYSTEM_TENANT, &denied);
        for sub in [&own, &paused, &other_type, &other_tenant] {
            unit(b, &sub.tenant_id, |tx| webhooks::save(tx, sub)).unwrap();
        }
        unit(b, SYSTEM_TENANT, |tx| webhooks::save(tx, &system)).unwrap();
        let listed = |tenant: Option<&str>, status| -> Vec<String> {
            unit(b, TENANT, |tx| tx.subscriptions(tenant, status)).unwrap().into_iter().map(|s| s.subscription_id).collect()
        };
        assert_eq!(listed(Some(TENANT), None), ["whsub_own", "whsub_paused", "whsub_type"]);
        assert_eq!(listed(Some(TENANT), Some(SubscriptionStatus::Active)), ["whsub_own", "whsub_type"]);
        assert_eq!(listed(None, None), ["whsub_other", "whsub_own", "whsub_paused", "whsub_system", "whsub_type"]);
        assert_eq!(unit(b, TENANT, |tx| webhooks::count_for(tx, TENANT)).unwrap(), 3);
        let found = unit(b, TENANT, |tx| webhooks::load(tx, "whsub_system")).unwrap().map(|s| s.tenant_id);
        assert_eq!(found.as_deref(), Some(SYSTEM_TENANT), "by id alone");
        let e = unit(b, TENANT, |tx| webhooks::load_for(tx, "whsub_other", Some(TENANT))).unwrap_err();
        assert_eq!(code(&e), ErrorCode::WebhookNotFound, "another tenant's is not found");

        let mut out = Emitted { rows: Vec::new() };
        let event = emit(b, &mut out, log::NewEvent::new(EventType::ReservationDenied, TENANT, data()), 100, None);
        let queued = |sub: &Subscription| deliveries(b, sub, &DeliveryFilter::default()).into_iter().map(|d| d.event_id).collect::<Vec<_>>();
        assert_eq!(queued(&own), std::slice::from_ref(&event));
        assert_eq!(queued(&system), std::slice::from_ref(&event), "a system subscription receives every tenant's");
        for sub in [&paused, &other_type, &other_tenant] {
            assert_eq!(queued(sub), Vec::<String>::new(), "{}", sub.subscription_id);
        }
        let d = &deliveries(b, &own, &DeliveryFilter::default())[0];
        assert_eq!((d.status, d.attempts, d.next_attempt_at_ms, d.created_at_ms), (DeliveryStatus::Pending, 0, Some(100), 100));
        assert_eq!(unit(b, TENANT, |tx| tx.delivery(TENANT, &d.delivery_id)).unwrap().as_ref(), Some(d));
    });
}

#[test]
fn attempts_retry_then_succeed_and_a_deleted_subscription_takes_its_owed_deliveries() {
    on_every_backend(|b| {
        let own = Subscription {
            retry_policy: RetryPolicy { max_retries: 2, ..RetryPolicy::default() },
            ..subscription("whsub_own", TENANT, &[EventType::ReservationDenied])
        };
        unit(b, TENANT, |tx| webhooks::save(tx, &own)).unwrap();
        let mut out = Emitted { rows: Vec::new() };
        for at in [100, 200, 300] {
            emit(b, &mut out, log::NewEvent::new(EventType::ReservationDenied, TENANT, data()), at, None);
        }
        let all = deliveries(b, &own, &DeliveryFilter::default());
        assert_eq!(all.iter().map(|d| d.created_at_ms).collect::<Vec<_>>(), [300, 200, 100], "newest first");
        let failed = Attempt { status: Some(500), elapsed_ms: 7, error: Some("HTTP 500".into()) };
        let ok = Attempt { status: Some(204), elapsed_ms: 3, error: None };
        let oldest = all[2].clone();
        let first = lease(b, 1_000, 1, 10, 0);
        assert_eq!(first.iter().map(|d| d.delivery_id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&oldest.delivery_id), "the oldest first");
        assert_eq!(unit(b, TENANT, |tx| webhooks::record_attempt(tx, &first[0], &failed, 1_000)).unwrap(), "RETRYING");
        let retrying = unit(b, TENANT, |tx| tx.delivery(TENANT, &oldest.delivery_id)).unwrap().unwrap();
        assert_eq!((retrying.status, retrying.attempts, retrying.response_status), (DeliveryStatus::Retrying, 1, Some(500)));
        let retry_at = retrying.next_attempt_at_ms.unwrap();
        assert!(retry_at > 1_000);
        // the same lease cannot record a second attempt
        assert_eq!(unit(b, TENANT, |tx| webhooks::record_attempt(tx, &first[0], &ok, 1_500)).unwrap(), "LEASE_LOST");
        let again = lease(b, retry_at, 3, 10, 0);
        let retry = again.iter().find(|d| d.delivery_id == oldest.delivery_id).expect("due again at its retry time");
        assert_eq!(unit(b, TENANT, |tx| webhooks::record_attempt(tx, retry, &ok, 2_000)).unwrap(), "SUCCESS");
        let done = unit(b, TENANT, |tx| tx.delivery(TENANT, &oldest.delivery_id)).unwrap().unwrap();
        assert_eq!((done.status, done.attempts, done.completed_at_ms, done.next_attempt_at_ms), (DeliveryStatus::Success, 2, Some(2_000), None));
        let sub = unit(b, TENANT, |tx| webhooks::load(tx, "whsub_own")).unwrap().unwrap();
        assert_eq!((sub.consecutive_failures, sub.last_success_at_ms), (0, Some(2_000)));
        // filters and pages
        let only = |status: &str| DeliveryFilter { status: Some(status.into()), ..DeliveryFilter::default() };
        assert_eq!(deliveries(b, &own, &only("SUCCESS")).len(), 1);
        assert_eq!(deliveries(b, &own, &only("PENDING")).len(), 2);
        let window = DeliveryFilter { from_ms: Some(150), to_ms: Some(300), ..DeliveryFilter::default() };
        assert_eq!(deliveries(b, &own, &window).iter().map(|d| d.created_at_ms).collect::<Vec<_>>(), [300, 200]);
        let page = unit(b, TENANT, |tx| webhooks::list_deliveries(tx, &own, &DeliveryFilter { limit: 2, ..DeliveryFilter::default() })).unwrap();
        assert_eq!((page.deliveries.len(), page.next_cursor.as_deref()), (2, Some("2")));
        let e = unit(b, TENANT, |tx| webhooks::list_deliveries(tx, &own, &only("LOST"))).unwrap_err();
        assert_eq!(code(&e), ErrorCode::InvalidRequest);
        // deleting the subscription takes the two owed deliveries and keeps the finished one
        unit(b, TENANT, |tx| webhooks::delete(tx, &own)).unwrap();
        assert!(unit(b, TENANT, |tx| webhooks::load(tx, "whsub_own")).unwrap().is_none());
        assert_eq!(unit(b, TENANT, |tx| tx.subscriptions(Some(TENANT), None)).unwrap().len(), 0);
        for d in &all[..2] {
            assert!(unit(b, TENANT, |tx| tx.delivery(TENANT, &d.delivery_id)).unwrap().is_none(), "owed {}", d.delivery_id);
        }
        assert!(unit(b, TENANT, |tx| tx.delivery(TENANT, &oldest.delivery_id)).unwrap().is_some(), "finished");
        // an attempt recorded after the delete finds nothing to record
        let dropped = again.iter().find(|d| d.delivery_id == all[0].delivery_id).expect("leased with the retry");
        assert_eq!(unit(b, TENANT, |tx| webhooks::record_attempt(tx, dropped, &ok, 3_000)).unwrap(), "DELETED");
    });
}

fn replay_window(from_ms: i64, to_ms: i64, only: Option<&[EventType]>, max_events: usize) -> webhooks::ReplayWindow {
    webhooks::ReplayWindow { from_ms, to_ms, only: only.map(<[EventType]>::to_vec), max_events }
}

#[test]
fn a_replay_queues_the_windows_events_once_at_a_time() {
    on_every_backend(|b| {
        let own = subscription("whsub_own", TENANT, &[EventType::ReservationDenied, EventType::TenantUpdated]);
        let mut out = Emitted { rows: Vec::new() };
        for (at, kind) in [(100, EventType::ReservationDenied), (200, EventType::TenantUpdated), (300, EventType::ReservationDenied)] {
            emit(b, &mut out, log::NewEvent::new(kind, TENANT, data()), at, None);
        }
        emit(b, &mut out, log::NewEvent::new(EventType::ReservationDenied, OTHER, data()), 150, None);
        // created after the events: only a replay delivers them
        unit(b, TENANT, |tx| webhooks::save(tx, &own)).unwrap();
        let e = unit(b, TENANT, |tx| webhooks::replay(tx, &own, &replay_window(0, 1_000, None, 2), 5_000)).unwrap_err();
        assert_eq!(code(&e), ErrorCode::InvalidRequest, "3 events, at most 2");
        let only = [EventType::ReservationDenied];
        let (_, queued) = unit(b, TENANT, |tx| webhooks::replay(tx, &own, &replay_window(0, 250, Some(&only), 10), 5_000)).unwrap();
        assert_eq!(queued, 1, "the tenant's denial before 250");
        assert!(unit(b, TENANT, |tx| tx.replay_owed(&own)).unwrap());
        let e = unit(b, TENANT, |tx| webhooks::replay(tx, &own, &replay_window(0, 1_000, None, 10), 5_000)).unwrap_err();
        assert_eq!(code(&e), ErrorCode::ReplayInProgress);
        let queued = deliveries(b, &own, &DeliveryFilter::default());
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].event_id, out.rows[0].event.event_id);
        assert!(queued[0].replay_id.as_deref().is_some_and(|r| r.starts_with("rpl_")));
        let probe = Attempt { status: Some(200), elapsed_ms: 1, error: None };
        unit(b, TENANT, |tx| webhooks::record_test(tx, &own, "evt_probe", &probe, 6_000)).unwrap();
        let newest = &deliveries(b, &own, &DeliveryFilter::default())[0];
        assert_eq!((newest.event_type.as_str(), newest.status), ("system.webhook_test", DeliveryStatus::Success));
    });
}

fn lease(b: &dyn Backend, now: i64, max: usize, per_tenant: usize, stale_before: i64) -> Vec<webhooks::Due> {
    unit(b, TENANT, |tx| webhooks::lease_tenant(tx, TENANT, now, max, 60_000, per_tenant, stale_before)).unwrap()
}

#[test]
fn leasing_a_tenants_deliveries_caps_its_sends_in_flight_and_skips_paused_and_stale_ones() {
    on_every_backend(|b| {
        let denied = [EventType::ReservationDenied];
        let own = subscription("whsub_own", TENANT, &denied);
        let paused = subscription("whsub_paused", TENANT, &denied);
        for sub in [&own, &paused] {
            unit(b, TENANT, |tx| webhooks::save(tx, sub)).unwrap();
        }
        let mut out = Emitted { rows: Vec::new() };
        for at in [100, 200, 300, 400, 500] {
            emit(b, &mut out, log::NewEvent::new(EventType::ReservationDenied, TENANT, data()), at, None);
        }
        let paused = Subscription { status: SubscriptionStatus::Paused, ..paused };
        unit(b, TENANT, |tx| webhooks::save(tx, &paused)).unwrap();
        let at = |due: &[webhooks::Due]| -> Vec<String> { due.iter().map(|d| format!("{}@{}", d.subscription.subscription_id, d.event_id)).collect() };
        let first = lease(b, 1_000, 10, 3, 0);
        let want: Vec<String> = out.rows[..3].iter().map(|r| format!("whsub_own@{}", r.event.event_id)).collect();
        assert_eq!(at(&first), want, "oldest first, 3 in flight at most, none to the paused one");
        assert_eq!(first[0].event_body, out.rows[0].event.body);
        assert!(lease(b, 1_000, 10, 3, 0).is_empty(), "3 in flight");
        assert_eq!(unit(b, TENANT, |tx| tx.leased_deliveries(TENANT, 1_000)).unwrap(), 3);
        // a lease that lapsed (its dispatcher died mid-send) is due again
        let second = lease(b, 61_001, 3, 3, 0);
        assert_eq!(at(&second), want);
        // the first dispatcher, back late, records nothing: the delivery is the second's
        let ok = Attempt { status: Some(200), elapsed_ms: 1, error: None };
        let failed = Attempt { status: Some(500), elapsed_ms: 1, error: None };
        assert_eq!(unit(b, TENANT, |tx| webhooks::record_attempt(tx, &first[0], &failed, 61_002)).unwrap(), "LEASE_LOST");
        // one delivered: room for one more, the next oldest
        assert_eq!(unit(b, TENANT, |tx| webhooks::record_attempt(tx, &second[0], &ok, 61_002)).unwrap(), "SUCCESS");
        assert_eq!(unit(b, TENANT, |tx| webhooks::record_attempt(tx, &first[0], &failed, 61_002)).unwrap(), "LEASE_LOST", "nor after it");
        let delivered = unit(b, TENANT, |tx| tx.delivery(TENANT, &second[0].delivery_id)).unwrap().unwrap();
        assert_eq!((delivered.status, delivered.attempts), (DeliveryStatus::Success, 1));
        assert_eq!(at(&lease(b, 61_003, 10, 3, 0)), [format!("whsub_own@{}", out.rows[3].event.event_id)]);
        // the paused subscription's deliveries wait; resumed, they go
        let resumed = Subscription { status: SubscriptionStatus::Active, ..paused.clone() };
        unit(b, TENANT, |tx| webhooks::save(tx, &resumed)).unwrap();
        let later = 61_003 + webhooks::PAUSED_RECHECK_MS + 1;
        assert_eq!(lease(b, later, 10, 10, 0).iter().filter(|d| d.subscription.subscription_id == "whsub_paused").count(), 5);
        // a subscription that no longer receives the event: failed, never sent
        let narrowed = Subscription { event_types: vec![EventType::TenantUpdated], ..own.clone() };
        unit(b, TENANT, |tx| webhooks::save(tx, &narrowed)).unwrap();
        let after = later + 60_001;
        assert!(lease(b, after, 10, 10, 0).iter().all(|d| d.subscription.subscription_id == "whsub_paused"));
        let failed = deliveries(b, &own, &DeliveryFilter { status: Some("FAILED".into()), ..DeliveryFilter::default() });
        assert_eq!(failed.len(), 4, "the four still owed to the narrowed subscription");
        assert!(failed.iter().all(|d| d.error_message.as_deref().is_some_and(|m| m.contains("no longer receives"))));
        // a day on, what is still owed is stale: failed, not leased; then the retention sweep
        let day = after + 86_400_000;
        assert!(lease(b, day, 10, 10, day - 1_000).is_empty());
        let stale = deliveries(b, &paused, &DeliveryFilter { status: Some("FAILED".into()), ..DeliveryFilter::default() });
        assert_eq!(stale.len(), 5);
        assert!(stale.iter().all(|d| d.error_message.as_deref().is_some_and(|m| m.contains("stale"))));
        assert_eq!(unit(b, TENANT, |tx| tx.delivery_tenants()).unwrap(), [TENANT]);
        assert_eq!(unit(b, TENANT, |tx| webhooks::sweep_tenant_deliveries(tx, TENANT, day, 100)).unwrap(), 5, "finished before `day`");
        assert_eq!(unit(b, TENANT, |tx| webhooks::sweep_tenant_deliveries(tx, TENANT, day + 1, 100)).unwrap(), 5, "finished at `day`");
        assert_eq!(deliveries(b, &own, &DeliveryFilter::default()).len() + deliveries(b, &paused, &DeliveryFilter::default()).len(), 0);
    });
}

/// On Redis several gateways dispatch at once: each delivery is leased to one of them; an
/// attempt to a system subscription and a final failure are recorded in three units.
#[test]
fn on_redis_gateways_lease_each_delivery_once_and_record_attempts_across_tenants() {
    for (name, deployment) in redis_deployments() {
        let gateways: Vec<Arc<RedisLedger>> =
            (0..2).map(|_| Arc::new(RedisLedger::open(&deployment.url, &deployment.prefix).expect("a Redis client"))).collect();
        let backend = OnRedis { store: Arc::clone(&gateways[0]), deployment };
        let denied = [EventType::ReservationDenied];
        let own = subscription("whsub_own", TENANT, &denied);
        unit(&backend, TENANT, |tx| webhooks::save(tx, &own)).unwrap();
        let system = Subscription {
            disable_after_failures: 1,
            retry_policy: RetryPolicy { max_retries: 0, ..RetryPolicy::default() },
            ..subscription("whsub_system", SYSTEM_TENANT, &denied)
        };
        unit(&backend, SYSTEM_TENANT, |tx| webhooks::save(tx, &system)).unwrap();
        for (i, tenant) in [TENANT, OTHER].into_iter().cycle().take(40).enumerate() {
            let at = 100 + i64::try_from(i).unwrap();
            unit(&backend, tenant, |tx| log::emit(tx, log::NewEvent::new(EventType::ReservationDenied, tenant, data()), at)).unwrap();
        }
        // 20 of TENANT's to two subscriptions, 20 of OTHER's to the system one
        let dispatchers: Vec<_> = (0..4)
            .map(|w| {
                let gateway = Arc::clone(&gateways[w % 2]);
                std::thread::spawn(move || {
                    let mut leased = Vec::new();
                    for _ in 0..30 {
                        leased.extend(gateway.lease_due(1_000, 4, 60_000, 100, 0).expect("a lease").into_iter().map(|d| d.delivery_id));
                    }
                    leased
                })
            })
            .collect();
        let mut leased: Vec<String> = dispatchers.into_iter().flat_map(|t| t.join().expect("a dispatcher")).collect();
        let total = leased.len();
        leased.sort();
        leased.dedup();
        assert_eq!((total, leased.len()), (60, 60), "{name}: every delivery leased once, by one gateway");
        // a final failure to the system subscription: the delivery in OTHER's slot, the
        // event in the system tenant's, the counters and the auto-disable in the system's
        let due = gateways[1].lease_due(61_001, 100, 60_000, 100, 0).unwrap();
        let exhausted = due.iter().find(|d| d.event_tenant == OTHER).expect("a system delivery of OTHER's event").clone();
        let failed = Attempt { status: Some(500), elapsed_ms: 1, error: Some("HTTP 500".into()) };
        assert_eq!(gateways[1].record_attempt(&exhausted, &failed, 62_000).unwrap(), "FAILED");
        let stored = unit(&backend, OTHER, |tx| tx.delivery(OTHER, &exhausted.delivery_id)).unwrap().unwrap();
        assert_eq!(stored.status, DeliveryStatus::Failed);
        let sub = unit(&backend, SYSTEM_TENANT, |tx| webhooks::load(tx, "whsub_system")).unwrap().unwrap();
        assert_eq!((sub.status, sub.consecutive_failures), (SubscriptionStatus::Disabled, 1), "{name}");
        let system_events = EventFilter { tenant_id: Some(SYSTEM_TENANT.into()), limit: 10, ..EventFilter::default() };
        let types: Vec<String> = unit(&backend, TENANT, |tx| tx.matching_events(&system_events, 0, 10))
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap()["event_type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["webhook.disabled", "system.webhook_delivery_failed"], "{name}: newest first");
        // the retention sweep across tenants
        assert_eq!(gateways[0].sweep_deliveries(62_001, 100).unwrap(), 1, "{name}");
    }
}

// ---- tenants and API keys ----

use crate::cycles::{Tenant, TenantStatus};

/// An ACTIVE budget of `allocated` at `scope` in `unit`, nothing held.
fn budget_row(scope: &str, unit: Unit, allocated: i64) -> crate::ledger::BudgetRow {
    crate::ledger::BudgetRow::active(scope, unit, format!("ldg_{scope}_{}", unit.as_str()), allocated, 0)
}

fn tenant_record(id: &str, observe: bool) -> Tenant {
    let mut record = serde_json::json!({
        "tenant_id": id, "name": format!("{id} inc"), "status": "ACTIVE",
        "default_commit_overage_policy": "ALLOW_IF_AVAILABLE", "default_reservation_ttl_ms": 60_000,
        "max_reservation_ttl_ms": 3_600_000, "max_reservation_extensions": 10,
        "created_at": "2026-11-29T00:00:00.000Z",
    });
    if observe {
        record["observe_mode"] = "OBSERVE".into();
    }
    serde_json::from_value(record).unwrap()
}

fn api_key(id: &str, tenant: &str, hash: &str) -> StoredApiKey {
    StoredApiKey {
        key_id: id.into(),
        tenant_id: tenant.into(),
        key_hash: hash.into(),
        status: "ACTIVE".into(),
        expires_at_ms: 1_000_000,
        role: Some("operator".into()),
        principal: Some(format!("{id}-name")),
        body: serde_json::json!({"key_id": id, "tenant_id": tenant, "key_prefix": "cyc_live_0123ab", "name": format!("{id}-name"),
            "permissions": [], "status": "ACTIVE", "created_at": "2026-11-29T00:00:00.000Z", "expires_at": "2026-11-29T00:16:40.000Z"})
        .to_string(),
    }
}

#[test]
fn tenant_records_are_listed_by_id_and_the_ledger_reads_their_status_and_mode() {
    on_every_backend(|b| {
        assert_eq!(unit(b, TENANT, |tx| tx.tenant_record(TENANT)).unwrap(), None);
        for (id, observe) in [(OTHER, false), (TENANT, true)] {
            unit(b, id, |tx| tx.save_tenant_record(&tenant_record(id, observe))).unwrap();
        }
        assert_eq!(unit(b, TENANT, |tx| tx.tenant_record(TENANT)).unwrap(), Some(tenant_record(TENANT, true)));
        let ids: Vec<String> = unit(b, TENANT, |tx| tx.tenant_records()).unwrap().into_iter().map(|t| t.tenant_id).collect();
        assert_eq!(ids, [TENANT, OTHER]);
        let seen = unit(b, TENANT, |tx| tx.tenant(TENANT)).unwrap().expect("the ledger's view");
        assert_eq!((seen.status.as_str(), seen.observe), ("ACTIVE", true));
        let suspended = Tenant { status: TenantStatus::Suspended, observe_mode: None, ..tenant_record(TENANT, true) };
        unit(b, TENANT, |tx| tx.save_tenant_record(&suspended)).unwrap();
        let seen = unit(b, TENANT, |tx| tx.tenant(TENANT)).unwrap().expect("the ledger's view");
        assert_eq!((seen.status.as_str(), seen.observe), ("SUSPENDED", false));
        assert_eq!(unit(b, TENANT, |tx| tx.tenant_records()).unwrap().len(), 2, "a replacement is not a second tenant");
    });
}

#[test]
fn api_keys_are_found_by_id_and_by_hash_whichever_tenant_and_a_taken_id_or_hash_is_refused() {
    on_every_backend(|b| {
        for (id, tenant, hash) in [("key_b", TENANT, "h-b"), ("key_a", TENANT, "h-a"), ("key_c", OTHER, "h-c")] {
            unit(b, tenant, |tx| tx.insert_api_key(&api_key(id, tenant, hash))).unwrap();
        }
        assert!(unit(b, TENANT, |tx| tx.insert_api_key(&api_key("key_a", TENANT, "h-z"))).is_err(), "a taken id");
        assert!(unit(b, TENANT, |tx| tx.insert_api_key(&api_key("key_z", TENANT, "h-a"))).is_err(), "a taken hash");
        assert!(unit(b, TENANT, |tx| tx.api_key("key_z")).unwrap().is_none(), "nothing of a refused insert");
        let ids = |tenant: Option<&'static str>| -> Vec<String> {
            unit(b, TENANT, |tx| tx.api_keys(tenant)).unwrap().into_iter().map(|k| k.key_id).collect()
        };
        assert_eq!(ids(Some(TENANT)), ["key_a", "key_b"]);
        assert_eq!(ids(None), ["key_a", "key_b", "key_c"]);
        assert_eq!(unit(b, TENANT, |tx| tx.api_key("key_c")).unwrap(), Some(api_key("key_c", OTHER, "h-c")), "another tenant's, by id");
        assert_eq!(unit(b, OTHER, |tx| tx.api_key_by_hash("h-a")).unwrap().map(|k| k.key_id).as_deref(), Some("key_a"));
        assert!(unit(b, TENANT, |tx| tx.api_key_by_hash("h-none")).unwrap().is_none());
        let revoked = StoredApiKey {
            status: "REVOKED".into(),
            body: "{}".into(),
            principal: Some("renamed".into()),
            key_hash: "h-forged".into(),
            expires_at_ms: 9,
            ..api_key("key_a", TENANT, "h-a")
        };
        unit(b, TENANT, |tx| tx.save_api_key(&revoked)).unwrap();
        let saved = unit(b, TENANT, |tx| tx.api_key("key_a")).unwrap().unwrap();
        assert_eq!((saved.status.as_str(), saved.body.as_str(), saved.principal.as_deref()), ("REVOKED", "{}", Some("renamed")));
        assert_eq!((saved.key_hash.as_str(), saved.expires_at_ms), ("h-a", 1_000_000), "a save changes the status, record and principal only");
    });
}

#[test]
fn closing_a_tenant_releases_its_holds_closes_its_budgets_disables_its_webhooks_and_revokes_its_keys() {
    on_every_backend(|b| {
        unit(b, TENANT, |tx| tx.save_tenant_record(&tenant_record(TENANT, false))).unwrap();
        let budget = budget_row(&format!("tenant:{TENANT}"), Unit::UsdMicrocents, 1_000);
        unit(b, TENANT, |tx| tx.insert_budget(TENANT, &budget)).unwrap();
        let req: crate::cycles::ReserveRequest = serde_json::from_value(serde_json::json!({
            "idempotency_key": "r1", "subject": {"tenant": TENANT}, "action": {"kind": "llm.call", "name": "x"},
            "estimate": {"unit": "USD_MICROCENTS", "amount": 300},
        }))
        .unwrap();
        let hash = crate::ledger::request_hash(&req, "").unwrap();
        let held = unit(b, TENANT, |tx| crate::ledger::reserve(tx, TENANT, &req, &hash, 10)).unwrap();
        let id = held.reservation_id.expect("a hold");
        assert_eq!(unit(b, TENANT, |tx| tx.budget(TENANT, &budget.scope, Unit::UsdMicrocents)).unwrap().unwrap().reserved, 300);
        unit(b, TENANT, |tx| webhooks::save(tx, &subscription("whsub_t", TENANT, &[EventType::ReservationDenied]))).unwrap();
        unit(b, TENANT, |tx| tx.insert_api_key(&api_key("key_ok", TENANT, "h-ok"))).unwrap();
        let unreadable = StoredApiKey { body: "not json".into(), ..api_key("key_bad", TENANT, "h-bad") };
        unit(b, TENANT, |tx| tx.insert_api_key(&unreadable)).unwrap();
        unit(b, TENANT, |tx| {
            let mut t = tx.tenant_record(TENANT)?.expect("the tenant");
            t.status = TenantStatus::Closed;
            tx.save_tenant_record(&t)?;
            crate::tenancy::close_cascade(tx, TENANT, 100)
        })
        .unwrap();
        let r = unit(b, TENANT, |tx| tx.reservation(&id)).unwrap().unwrap();
        assert_eq!((r.status.as_str(), r.finalized_at_ms), ("RELEASED", Some(100)));
        let after = unit(b, TENANT, |tx| tx.budget(TENANT, &budget.scope, Unit::UsdMicrocents)).unwrap().unwrap();
        assert_eq!((after.reserved, after.status.as_str()), (0, "CLOSED"));
        let sub = unit(b, TENANT, |tx| webhooks::load(tx, "whsub_t")).unwrap().unwrap();
        assert_eq!(sub.status, SubscriptionStatus::Disabled);
        for key in ["key_ok", "key_bad"] {
            assert_eq!(unit(b, TENANT, |tx| tx.api_key(key)).unwrap().unwrap().status, "REVOKED", "{key}");
        }
        assert_eq!(unit(b, TENANT, |tx| tx.tenant(TENANT)).unwrap().unwrap().status, "CLOSED", "the ledger sees the close");
        let all = EventFilter { tenant_id: Some(TENANT.into()), sort_dir: SortDir::Asc, limit: 10, ..EventFilter::default() };
        let types: Vec<String> = unit(b, TENANT, |tx| tx.matching_events(&all, 0, 10))
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap()["event_type"].as_str().unwrap().to_string())
            .filter(|t| t.contains("cascade"))
            .collect();
        assert_eq!(types, ["webhook.disabled_via_tenant_cascade", "api_key.revoked_via_tenant_cascade", "api_key.revoked_via_tenant_cascade"]);
    });
}

// ---- the unit of work's rollback, the warnings listing and the action mask's budgets ----

#[test]
fn a_unit_rolled_back_part_way_commits_only_what_it_writes_afterwards() {
    on_every_backend(|b| {
        let sub = subscription("whsub_t", TENANT, &[EventType::ReservationDenied]);
        unit(b, TENANT, |tx| webhooks::save(tx, &sub)).unwrap();
        let signer = KeyPair::from_secret(&[6; 32]);
        let ((), seal) = sealed(b, TENANT, |tx| {
            registry::upsert(tx, TENANT, &agent("before", 400.0), 1)?;
            let stored = StoredDelegation { request_hash: "h".into(), response: "{}".into(), trace_seq: None };
            assert!(tx.insert_delegation_response(TENANT, "k", &stored, 1)?);
            log::emit(tx, log::NewEvent::new(EventType::ReservationDenied, TENANT, data()), 5)?;
            traces::append(tx, &trace_event(TENANT, "c1", 1), &signer)?;
            webhooks::delete(tx, &sub)?;
            assert!(webhooks::load(tx, "whsub_t")?.is_none(), "the unit's own delete");
            assert_eq!(tx.subscriptions(Some(TENANT), None)?.len(), 0, "and its set change");
            tx.rollback()?;
            assert!(tx.agent(TENANT, "before")?.is_none(), "its writes are gone at once");
            assert!(webhooks::load(tx, "whsub_t")?.is_some(), "and its delete");
            assert_eq!(tx.subscriptions(Some(TENANT), None)?.len(), 1, "and its set change");
            assert_eq!(tx.matching_events(&EventFilter { limit: 10, ..EventFilter::default() }, 0, 10)?.len(), 0, "and its event");
            assert!(tx.trace_head(TENANT, "c1")?.is_none(), "and its trace event");
            registry::upsert(tx, TENANT, &agent("after", 500.0), 1)
        })
        .unwrap();
        assert!(seal.is_none(), "nothing left to seal");
        assert!(unit(b, TENANT, |tx| tx.trace_events(TENANT, "c1")).unwrap().is_empty());
        let ids: Vec<String> = unit(b, TENANT, |tx| tx.agents(TENANT)).unwrap().into_iter().map(|a| a.agent_id).collect();
        assert_eq!(ids, ["after"]);
        assert!(unit(b, TENANT, |tx| tx.delegation_response(TENANT, "k")).unwrap().is_none());
        let all = EventFilter { limit: 10, ..EventFilter::default() };
        assert_eq!(unit(b, TENANT, |tx| tx.matching_events(&all, 0, 10)).unwrap().len(), 0, "no event");
        assert!(unit(b, TENANT, |tx| webhooks::load(tx, "whsub_t")).unwrap().is_some(), "the subscription stands");
        assert_eq!(deliveries(b, &sub, &DeliveryFilter::default()).len(), 0, "no delivery");
    });
}

#[test]
fn warnings_are_listed_newest_first_per_tenant() {
    on_every_backend(|b| {
        let signer = KeyPair::from_secret(&[5; 32]);
        for (tenant, n, decision) in [(TENANT, 1, "allow"), (TENANT, 2, "warning"), (OTHER, 1, "warning"), (TENANT, 3, "warning"), (TENANT, 4, "deny")] {
            let event = NewEvent { decision, ..trace_event(tenant, "c1", n) };
            sealed(b, tenant, |tx| traces::append(tx, &event, &signer)).unwrap();
        }
        let depths = |limit: usize| -> Vec<i64> { unit(b, TENANT, |tx| tx.warning_events(TENANT, limit)).unwrap().iter().map(|r| r.depth).collect() };
        assert_eq!(depths(10), [3, 2]);
        assert_eq!(depths(1), [3]);
        assert_eq!(unit(b, OTHER, |tx| traces::warnings(tx, OTHER, 10)).unwrap().len(), 1);
    });
}

#[test]
fn the_action_masks_budgets_are_the_tenants_toolset_budgets_of_the_unit() {
    on_every_backend(|b| {
        let prefix = format!("tenant:{TENANT}/toolset:");
        for (scope, unit) in [
            (format!("{prefix}web"), Unit::RiskPoints),
            (format!("{prefix}code"), Unit::RiskPoints),
            (format!("{prefix}web"), Unit::UsdMicrocents),
            (format!("tenant:{TENANT}/toolset;x"), Unit::RiskPoints),
            (format!("tenant:{TENANT}/toolsetx"), Unit::RiskPoints),
            (format!("tenant:{TENANT}"), Unit::RiskPoints),
        ] {
            let row = budget_row(&scope, unit, 10);
            self::unit(b, TENANT, |tx| tx.insert_budget(TENANT, &row)).unwrap();
        }
        unit(b, OTHER, |tx| tx.insert_budget(OTHER, &budget_row(&format!("tenant:{OTHER}/toolset:web"), Unit::RiskPoints, 10))).unwrap();
        let scopes: Vec<String> =
            unit(b, TENANT, |tx| tx.budgets_with_prefix(TENANT, Unit::RiskPoints, &prefix)).unwrap().into_iter().map(|b| b.scope).collect();
        assert_eq!(scopes, [format!("{prefix}code"), format!("{prefix}web")]);
    });
}

#[test]
fn leasing_fails_every_stale_delivery_and_is_not_held_up_by_a_paused_subscription() {
    on_every_backend(|b| {
        let denied = [EventType::ReservationDenied];
        let paused = subscription("whsub_paused", TENANT, &denied);
        unit(b, TENANT, |tx| webhooks::save(tx, &paused)).unwrap();
        // more stale deliveries than one lease fails up front
        unit(b, TENANT, |tx| {
            for at in 0..1_010 {
                log::emit(tx, log::NewEvent::new(EventType::ReservationDenied, TENANT, data()), 100 + at)?;
            }
            Ok(())
        })
        .unwrap();
        assert!(lease(b, 10_000, 10, 10, 5_000).is_empty(), "none sent");
        let failed = deliveries(b, &paused, &DeliveryFilter { status: Some("FAILED".into()), ..DeliveryFilter::default() });
        assert_eq!(failed.len(), 1_010, "every one failed as stale");
        // 40 owed to a paused subscription ahead of one to an active one
        unit(b, TENANT, |tx| {
            for at in 0..40 {
                log::emit(tx, log::NewEvent::new(EventType::ReservationDenied, TENANT, data()), 20_000 + at)?;
            }
            Ok(())
        })
        .unwrap();
        let paused = Subscription { status: SubscriptionStatus::Paused, ..paused };
        unit(b, TENANT, |tx| webhooks::save(tx, &paused)).unwrap();
        let active = subscription("whsub_active", TENANT, &denied);
        unit(b, TENANT, |tx| webhooks::save(tx, &active)).unwrap();
        unit(b, TENANT, |tx| log::emit(tx, log::NewEvent::new(EventType::ReservationDenied, TENANT, data()), 30_000)).unwrap();
        let leased = lease(b, 30_001, 1, 1, 0);
        assert_eq!(leased.iter().map(|d| d.subscription.subscription_id.as_str()).collect::<Vec<_>>(), ["whsub_active"]);
    });
}
