//! The ledger's rules, checked on every [`LedgerStore`] backend by the same functions: the
//! embedded SQLite store (an in-memory database with the real schema) and [`MemoryLedger`].

use rusqlite::Connection;
use serde_json::{json, Value};

use super::memory::MemoryLedger;
use super::*;
use crate::cycles::{CommitRequest, ReleaseRequest, ReserveRequest};

/// A backend under test: the ledger's store plus what the tests need to arrange.
trait Backend: LedgerStore {
    fn set_tenant(&self, tenant: &str, status: &str);
    /// The types of the events emitted so far.
    fn event_types(&self) -> Vec<String>;
}

impl Backend for Connection {
    fn set_tenant(&self, tenant: &str, status: &str) {
        self.execute("INSERT OR REPLACE INTO tenants (tenant_id, status, body) VALUES (?1, ?2, '{}')", [tenant, status])
            .expect("tenant row");
    }

    fn event_types(&self) -> Vec<String> {
        let mut stmt = self.prepare("SELECT event_type FROM events").expect("events table");
        stmt.query_map([], |r| r.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
    }
}

impl Backend for MemoryLedger {
    fn set_tenant(&self, tenant: &str, status: &str) {
        MemoryLedger::set_tenant(self, tenant, status);
    }

    fn event_types(&self) -> Vec<String> {
        MemoryLedger::event_types(self).into_iter().map(String::from).collect()
    }
}

/// Runs `check` on every backend, naming the backend in a failure.
fn on_every_backend(check: fn(&dyn Backend)) {
    let sqlite = Connection::open_in_memory().expect("in-memory SQLite");
    crate::store::migrate(&sqlite).expect("schema");
    let backends: [(&str, Box<dyn Backend>); 2] = [("sqlite", Box::new(sqlite)), ("memory", Box::new(MemoryLedger::default()))];
    for (name, backend) in backends {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&*backend))) {
            eprintln!("the check failed on the {name} backend");
            std::panic::resume_unwind(panic);
        }
    }
}

const TENANT: &str = "acme";
const ROOT: &str = "tenant:acme";
const WORKSPACE: &str = "tenant:acme/workspace:prod";

fn add_budget(store: &dyn LedgerStore, scope: &str, allocated: i64, overdraft: i64, policy: Option<OveragePolicy>) {
    let budget = BudgetRow {
        scope: scope.into(),
        unit: Unit::UsdMicrocents,
        ledger_id: format!("ldg_{scope}"),
        allocated,
        reserved: 0,
        spent: 0,
        debt: 0,
        overdraft_limit: overdraft,
        is_over_limit: false,
        status: "ACTIVE".into(),
        commit_overage_policy: policy,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    store.insert_budget(TENANT, &budget).expect("budget");
}

fn budget(store: &dyn LedgerStore, scope: &str) -> BudgetRow {
    store.budget(TENANT, scope, Unit::UsdMicrocents).expect("read").expect("budget exists")
}

fn reserve_request(key: &str, amount: i64, extra: Value) -> ReserveRequest {
    let mut body = json!({
        "idempotency_key": key,
        "subject": {"tenant": TENANT, "workspace": "prod"},
        "action": {"kind": "llm.call", "name": "summarise"},
        "estimate": {"unit": "USD_MICROCENTS", "amount": amount},
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    serde_json::from_value(body).expect("a valid ReserveRequest")
}

fn reserve_at(store: &dyn LedgerStore, req: &ReserveRequest, now: i64) -> ApiResult<Reserved> {
    reserve(store, TENANT, req, &request_hash(req, "").expect("hash"), now)
}

fn commit_at(store: &dyn LedgerStore, id: &str, key: &str, amount: i64, now: i64) -> ApiResult<Value> {
    let req: CommitRequest =
        serde_json::from_value(json!({"idempotency_key": key, "actual": {"unit": "USD_MICROCENTS", "amount": amount}}))
            .expect("a valid CommitRequest");
    commit(store, TENANT, id, &req, &request_hash(&req, id).expect("hash"), now).and_then(raise_deferred)
}

fn code_of<T: std::fmt::Debug>(result: ApiResult<T>) -> ErrorCode {
    result.expect_err("the operation must be refused").code
}

#[test]
fn a_hold_lands_on_every_derived_scope_and_a_smaller_commit_returns_the_rest() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        add_budget(store, WORKSPACE, 500, 0, None);
        let held = reserve_at(store, &reserve_request("r1", 300, json!({})), 10).expect("reserved");
        let id = held.reservation_id.expect("not a dry run");
        for scope in [ROOT, WORKSPACE] {
            assert_eq!(budget(store, scope).reserved, 300, "{scope}");
        }
        let body = commit_at(store, &id, "c1", 200, 20).expect("committed");
        assert_eq!(body["charged"]["amount"], 200);
        assert_eq!(body["released"]["amount"], 100);
        for (scope, allocated) in [(ROOT, 1_000), (WORKSPACE, 500)] {
            let b = budget(store, scope);
            assert_eq!((b.reserved, b.spent, b.debt), (0, 200, 0), "{scope}");
            assert_eq!(b.remaining(), allocated - 200, "remaining = allocated - spent - reserved - debt at {scope}");
        }
        assert_eq!(store.reservation(&id).expect("read").expect("kept").status, "COMMITTED");
    });
}

#[test]
fn a_hold_beyond_the_tightest_scope_is_refused_and_holds_nothing() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        add_budget(store, WORKSPACE, 500, 0, None);
        let refused = reserve_at(store, &reserve_request("r1", 600, json!({})), 10).expect_err("over the workspace");
        assert_eq!(refused.code, ErrorCode::BudgetExceeded);
        let details = refused.details.expect("deny details");
        assert_eq!(details["deny_detail"]["blocked_by_scope"], WORKSPACE);
        assert_eq!(details["remaining"], 500);
        for scope in [ROOT, WORKSPACE] {
            assert_eq!(budget(store, scope).reserved, 0, "{scope}");
        }
    });
}

#[test]
fn a_retry_answers_the_first_response_and_a_changed_request_under_its_key_is_refused() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        let first = reserve_at(store, &reserve_request("r1", 300, json!({})), 10).expect("reserved");
        let retry = reserve_at(store, &reserve_request("r1", 300, json!({})), 11).expect("replayed");
        assert_eq!(first.reservation_id, retry.reservation_id);
        assert_eq!(budget(store, ROOT).reserved, 300, "the retry holds nothing more");
        let changed = reserve_at(store, &reserve_request("r1", 301, json!({})), 12);
        assert_eq!(code_of(changed), ErrorCode::IdempotencyMismatch);
    });
}

#[test]
fn a_commit_over_the_hold_follows_the_overage_policy() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 100, 50, None);
        let overdraft = json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"});
        let id = reserve_at(store, &reserve_request("r1", 100, overdraft), 10).expect("reserved").reservation_id;
        let id = id.expect("not a dry run");
        commit_at(store, &id, "c1", 130, 20).expect("within the overdraft limit");
        let b = budget(store, ROOT);
        assert_eq!((b.spent, b.debt, b.reserved), (100, 30, 0));

        // the debt counts against what is left: nothing more can be held
        assert_eq!(code_of(reserve_at(store, &reserve_request("r2", 10, json!({})), 30)), ErrorCode::BudgetExceeded);
    });
}

#[test]
fn a_commit_over_the_hold_under_reject_is_refused_and_changes_nothing() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 100, 0, None);
        let reject = json!({"overage_policy": "REJECT"});
        let id = reserve_at(store, &reserve_request("r1", 100, reject), 10).expect("reserved").reservation_id;
        let id = id.expect("not a dry run");
        assert_eq!(code_of(commit_at(store, &id, "c1", 130, 20)), ErrorCode::BudgetExceeded);
        let b = budget(store, ROOT);
        assert_eq!((b.reserved, b.spent, b.debt), (100, 0, 0));
        assert_eq!(store.reservation(&id).expect("read").expect("kept").status, "ACTIVE");
    });
}

#[test]
fn an_expired_hold_returns_to_the_budget_and_cannot_be_committed() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        let req = reserve_request("r1", 300, json!({"ttl_ms": 1_000, "grace_period_ms": 0}));
        let id = reserve_at(store, &req, 0).expect("reserved").reservation_id.expect("not a dry run");
        assert_eq!(sweep_expired(store, 500, 100).expect("sweep"), 0, "not yet expired");
        assert_eq!(sweep_expired(store, 1_001, 100).expect("sweep"), 1);
        assert_eq!(budget(store, ROOT).reserved, 0);
        assert_eq!(store.reservation(&id).expect("read").expect("kept").status, "EXPIRED");
        assert!(store.event_types().iter().any(|t| t == "reservation.expired"), "{:?}", store.event_types());
        assert_eq!(code_of(commit_at(store, &id, "c1", 100, 1_002)), ErrorCode::ReservationExpired);
    });
}

#[test]
fn a_released_reservation_is_final() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        let id = reserve_at(store, &reserve_request("r1", 300, json!({})), 0).expect("reserved").reservation_id;
        let id = id.expect("not a dry run");
        let req = ReleaseRequest { idempotency_key: "x1".into(), reason: None };
        release(store, TENANT, &id, &req, &request_hash(&req, &id).expect("hash"), 5).and_then(raise_deferred).expect("released");
        assert_eq!(budget(store, ROOT).reserved, 0);
        assert_eq!(code_of(commit_at(store, &id, "c1", 100, 6)), ErrorCode::ReservationFinalized);
    });
}

#[test]
fn a_closed_or_suspended_tenant_holds_nothing() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        store.set_tenant(TENANT, "CLOSED");
        assert_eq!(code_of(reserve_at(store, &reserve_request("r1", 1, json!({})), 0)), ErrorCode::TenantClosed);
        store.set_tenant(TENANT, "SUSPENDED");
        assert_eq!(code_of(reserve_at(store, &reserve_request("r2", 1, json!({})), 0)), ErrorCode::Forbidden);
        store.set_tenant(TENANT, "SOMETHING");
        assert_eq!(code_of(reserve_at(store, &reserve_request("r3", 1, json!({})), 0)), ErrorCode::InternalError, "an unreadable status fails closed");
        assert_eq!(budget(store, ROOT).reserved, 0);
    });
}

#[test]
fn the_listing_pages_newest_first() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        let ids: Vec<String> = (1..=3)
            .map(|i| {
                let req = reserve_request(&format!("r{i}"), 1, json!({}));
                reserve_at(store, &req, i).expect("reserved").reservation_id.expect("not a dry run")
            })
            .collect();
        let page = |cursor: Option<&str>| {
            let filter = ListFilter { limit: Some(2), cursor: cursor.map(String::from), ..ListFilter::default() };
            list_reservations(store, TENANT, &filter).expect("listed")
        };
        let listed = |body: &Value| -> Vec<String> {
            body["reservations"].as_array().expect("array").iter().map(|r| r["reservation_id"].as_str().unwrap_or("").to_string()).collect()
        };
        let first = page(None);
        assert_eq!(listed(&first), [ids[2].clone(), ids[1].clone()]);
        assert_eq!(first["has_more"], true);
        let second = page(first["next_cursor"].as_str());
        assert_eq!(listed(&second), [ids[0].clone()]);
        assert_eq!(second["has_more"], false);
    });
}
