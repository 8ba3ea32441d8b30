//! The ledger's rules, checked on every [`LedgerStore`] backend by the same functions: the
//! embedded SQLite store (an in-memory database with the real schema, each operation in a
//! savepoint as on the writer thread), Redis (a `redis-server` started on loopback for the
//! test), a three-node Redis Cluster (started on loopback with `redis-cli --cluster create`)
//! and [`MemoryLedger`]. Both Redis deployments are skipped with a notice where they cannot be
//! started, unless `SBD_REQUIRE_REDIS=1`.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};

use rusqlite::Connection;
use serde_json::{json, Value};

use super::memory::MemoryLedger;
use super::redis::RedisLedger;
use crate::test_redis::{redis_deployments, RedisDeployment};
use super::commit as commit_rule;
use super::*;
use crate::cycles::{CommitRequest, ReleaseRequest, ReserveRequest};

/// A backend under test: runs one ledger operation atomically, and what the tests arrange.
trait Backend {
    /// Runs `op` as one unit of work: all of it or, when it fails, none of it.
    fn atomically(&self, op: &mut dyn FnMut(&dyn LedgerStore) -> GatewayResult<()>) -> GatewayResult<()>;
    fn set_tenant(&self, tenant: &str, status: &str);
    /// The types of the events emitted so far.
    fn event_types(&self) -> Vec<String>;
}

impl Backend for Connection {
    fn atomically(&self, op: &mut dyn FnMut(&dyn LedgerStore) -> GatewayResult<()>) -> GatewayResult<()> {
        self.execute_batch("SAVEPOINT op")?;
        let outcome = op(self);
        let end = if outcome.is_ok() { "RELEASE op" } else { "ROLLBACK TO op; RELEASE op" };
        self.execute_batch(end)?;
        outcome
    }

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
    fn atomically(&self, op: &mut dyn FnMut(&dyn LedgerStore) -> GatewayResult<()>) -> GatewayResult<()> {
        op(self)
    }

    fn set_tenant(&self, tenant: &str, status: &str) {
        MemoryLedger::set_tenant(self, tenant, status);
    }

    fn event_types(&self) -> Vec<String> {
        MemoryLedger::event_types(self).into_iter().map(String::from).collect()
    }
}

/// A Redis of the test's own ([`RedisDeployment`]) with a ledger on it.
struct RedisServer {
    ledger: RedisLedger,
    url: String,
    prefix: String,
    _deployment: RedisDeployment,
}

impl RedisServer {
    fn on(deployment: RedisDeployment) -> Result<RedisServer, String> {
        let ledger = RedisLedger::open(&deployment.url, &deployment.prefix).map_err(|e| e.message)?;
        Ok(RedisServer { ledger, url: deployment.url.clone(), prefix: deployment.prefix.clone(), _deployment: deployment })
    }

    fn command<T: ::redis::FromRedisValue>(&self, cmd: &mut ::redis::Cmd) -> T {
        self.ledger.query(cmd)
    }

    /// The key `rest` of `tenant`, as the backend names it.
    fn key(&self, tenant: &str, rest: &str) -> String {
        format!("{}:{{{tenant}}}:{rest}", self.prefix)
    }
}

impl Backend for RedisServer {
    fn atomically(&self, op: &mut dyn FnMut(&dyn LedgerStore) -> GatewayResult<()>) -> GatewayResult<()> {
        self.ledger.run(TENANT, |store| op(store))
    }

    fn set_tenant(&self, tenant: &str, status: &str) {
        let record = json!({"status": status}).to_string();
        let () = self.command(::redis::cmd("SET").arg(self.key(tenant, "tenant")).arg(record));
    }

    fn event_types(&self) -> Vec<String> {
        // in commit order: members are `AT:SEQ:ID`, and the ledger's tests may move time back
        let mut members: Vec<String> = self.command(::redis::cmd("ZRANGE").arg(self.key(TENANT, "evts")).arg(0).arg(-1));
        members.sort_by(|a, b| a.get(21..41).cmp(&b.get(21..41)));
        members
            .iter()
            .map(|m| {
                let event: String = self.command(::redis::cmd("GET").arg(self.key(TENANT, &format!("evt:{}", &m[42..]))));
                serde_json::from_str::<Value>(&event).ok().and_then(|e| e.get("event_type")?.as_str().map(String::from)).unwrap_or_default()
            })
            .collect()
    }
}

/// The Redis deployments this machine can start ([`redis_deployments`]), each with a ledger.
fn redis_backends() -> Vec<(&'static str, RedisServer)> {
    redis_deployments()
        .into_iter()
        .map(|(name, deployment)| (name, RedisServer::on(deployment).unwrap_or_else(|why| panic!("{name}: {why}"))))
        .collect()
}
/// Runs `check` on every backend, naming the backend in a failure.
fn on_every_backend(check: fn(&dyn Backend)) {
    let sqlite = Connection::open_in_memory().expect("in-memory SQLite");
    crate::store::migrate(&sqlite).expect("schema");
    let mut backends: Vec<(&str, Box<dyn Backend>)> =
        vec![("sqlite", Box::new(sqlite)), ("memory", Box::new(MemoryLedger::default()))];
    for (name, server) in redis_backends() {
        backends.push((name, Box::new(server)));
    }
    for (name, backend) in backends {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&*backend))) {
            let _ = writeln!(std::io::stderr(), "the check failed on the {name} backend");
            std::panic::resume_unwind(panic);
        }
    }
}

/// Runs `check` on every Redis deployment (one server, a cluster), naming it in a failure.
fn on_every_redis(check: fn(&RedisServer)) {
    for (name, server) in redis_backends() {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&server))) {
            let _ = writeln!(std::io::stderr(), "the check failed on the {name} backend");
            std::panic::resume_unwind(panic);
        }
    }
}

/// `op` as one unit of work on `backend`, with its result.
fn atomically<T>(backend: &dyn Backend, mut op: impl FnMut(&dyn LedgerStore) -> GatewayResult<T>) -> GatewayResult<T> {
    let mut result = None;
    backend.atomically(&mut |store| {
        result = Some(op(store)?);
        Ok(())
    })?;
    result.ok_or_else(|| GatewayError::internal("the operation did not run"))
}

const TENANT: &str = "acme";
const ROOT: &str = "tenant:acme";
const WORKSPACE: &str = "tenant:acme/workspace:prod";

/// An ACTIVE budget of `allocated` at `scope`, nothing held.
fn budget_row(scope: &str, allocated: i64) -> BudgetRow {
    BudgetRow::active(scope, Unit::UsdMicrocents, format!("ldg_{scope}"), allocated, 0)
}

fn add_budget(store: &dyn Backend, scope: &str, allocated: i64, overdraft: i64, policy: Option<OveragePolicy>) {
    let budget = BudgetRow { overdraft_limit: overdraft, commit_overage_policy: policy, ..budget_row(scope, allocated) };
    atomically(store, |s| s.insert_budget(TENANT, &budget)).expect("budget");
}

fn budget(store: &dyn Backend, scope: &str) -> BudgetRow {
    atomically(store, |s| s.budget(TENANT, scope, Unit::UsdMicrocents)).expect("read").expect("budget exists")
}

fn reservation(store: &dyn Backend, id: &str) -> Reservation {
    atomically(store, |s| s.reservation(id)).expect("read").expect("reservation exists")
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

fn reserve_at(store: &dyn Backend, req: &ReserveRequest, now: i64) -> GatewayResult<Reserved> {
    let hash = request_hash(req, "").expect("hash");
    atomically(store, |s| reserve(s, TENANT, req, &hash, now))
}

fn commit_at(store: &dyn Backend, id: &str, key: &str, amount: i64, now: i64) -> GatewayResult<crate::cycles::CommitResponse> {
    let req: CommitRequest =
        serde_json::from_value(json!({"idempotency_key": key, "actual": {"unit": "USD_MICROCENTS", "amount": amount}}))
            .expect("a valid CommitRequest");
    let hash = request_hash(&req, id).expect("hash");
    atomically(store, |s| commit(s, TENANT, id, &req, &hash, now)).and_then(Finished::into_result)
}

/// The idempotency digest is the SHA-256 of the path parameter, a newline and the body's JSON
/// with sorted keys (the text that `format!("{path}\n{value}")` of its `Value` gives): a
/// retry stays a replay across a gateway upgrade only while these bytes stay the same.
#[test]
fn the_request_digest_is_the_sorted_json_text_after_the_path_parameter() {
    let req = reserve_request("k1", 100, json!({"metadata": {"z": 1, "a": [true, null, "é\"\n"]}, "ttl_ms": 60000}));
    let value = serde_json::to_value(&req).expect("json");
    assert_eq!(request_hash(&req, "rsv_1").expect("hash"), crate::util::sha256_hex(format!("rsv_1\n{value}").as_bytes()));
    assert_eq!(request_hash(&req, "").expect("hash"), crate::util::sha256_hex(format!("\n{value}").as_bytes()));
    let text = value.to_string();
    assert!(text.find("\"action\"") < text.find("\"estimate\"") && text.find("\"a\"") < text.find("\"z\""), "sorted keys: {text}");
}

fn code_of<T: std::fmt::Debug>(result: GatewayResult<T>) -> ErrorCode {
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
        assert_eq!(body.charged.amount, 200);
        assert_eq!(body.released.map(|a| a.amount), Some(100));
        for (scope, allocated) in [(ROOT, 1_000), (WORKSPACE, 500)] {
            let b = budget(store, scope);
            assert_eq!((b.reserved, b.spent, b.debt), (0, 200, 0), "{scope}");
            assert_eq!(b.remaining(), allocated - 200, "remaining = allocated - spent - reserved - debt at {scope}");
        }
        assert_eq!(reservation(store, &id).status, "COMMITTED");
    });
}

#[test]
fn both_views_of_the_balances_page_the_tenants_budgets() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        add_budget(store, WORKSPACE, 500, 0, Some(OveragePolicy::Reject));
        reserve_at(store, &reserve_request("r1", 300, json!({})), 10).expect("reserved");
        let balances = |f: BalanceFilter| atomically(store, |s| get_balances(s, TENANT, &f));
        // the runtime's view, one item a page
        let runtime = |cursor: Option<&str>| BalanceFilter {
            tenant: Some(TENANT.into()),
            limit: Some(1),
            cursor: cursor.map(String::from),
            ..BalanceFilter::default()
        };
        let Ok(BalancesResponse::Runtime(first)) = balances(runtime(None)) else { panic!("not the runtime view") };
        assert_eq!((first.balances.len(), first.has_more, first.next_cursor.as_deref()), (1, true, Some("1")));
        let Ok(BalancesResponse::Runtime(second)) = balances(runtime(Some("1"))) else { panic!("not the runtime view") };
        assert_eq!((second.balances.len(), second.has_more, second.next_cursor), (1, false, None));
        let scopes: Vec<&str> = first.balances.iter().chain(&second.balances).map(|b| b.scope.as_str()).collect();
        assert_eq!(scopes, [ROOT, WORKSPACE]);
        // the admin plane's view: the whole BudgetLedger of each
        let admin = BalanceFilter { scope_prefix: Some(WORKSPACE.into()), ..BalanceFilter::default() };
        let Ok(BalancesResponse::Admin(page)) = balances(admin) else { panic!("not the admin view") };
        assert_eq!(page.balances.len(), 1);
        let ledger = &page.balances[0];
        assert_eq!((ledger.ledger_id.as_str(), ledger.tenant_id.as_str()), ("ldg_tenant:acme/workspace:prod", TENANT));
        assert_eq!((ledger.scope.as_str(), ledger.scope_path.as_str()), (WORKSPACE, WORKSPACE));
        assert_eq!((ledger.allocated.amount, ledger.reserved.amount, ledger.remaining.amount), (500, 300, 200));
        assert_eq!(ledger.commit_overage_policy, Some(OveragePolicy::Reject));
        assert_eq!(ledger.status, "ACTIVE");
        // mixing the views is refused
        let mixed = BalanceFilter { tenant: Some(TENANT.into()), unit: Some("USD_MICROCENTS".into()), ..BalanceFilter::default() };
        assert_eq!(code_of(balances(mixed)), ErrorCode::InvalidRequest);
    });
}

/// listBudgets' filters (AND, before paging), its sorts and its pages, and the 400s of its
/// parameters, on every backend.
#[test]
fn listing_budgets_filters_sorts_and_pages() {
    on_every_backend(|store| {
        let dev = "tenant:acme/workspace:dev";
        let rows = [
            BudgetRow { spent: 100, ..budget_row(ROOT, 1_000) },
            BudgetRow { spent: 400, commit_overage_policy: Some(OveragePolicy::Reject), ..budget_row(WORKSPACE, 500) },
            BudgetRow {
                unit: Unit::Tokens,
                spent: 90,
                debt: 50,
                overdraft_limit: 10,
                is_over_limit: true,
                status: "FROZEN".into(),
                ..budget_row(dev, 100)
            },
        ];
        for row in &rows {
            atomically(store, |s| s.insert_budget(TENANT, row)).expect("budget");
        }
        let list = |q: BudgetListQuery| atomically(store, |s| list_budgets(s, Some(TENANT), &q));
        let scopes = |q: BudgetListQuery| -> Vec<String> {
            list(q).expect("listed").ledgers.into_iter().map(|l| l.scope).collect()
        };
        let q = BudgetListQuery::default;
        // the default order: scope, then unit
        assert_eq!(scopes(q()), [ROOT, dev, WORKSPACE]);
        assert_eq!(scopes(BudgetListQuery { status: Some("FROZEN".into()), ..q() }), [dev]);
        assert_eq!(scopes(BudgetListQuery { has_debt: Some(true), ..q() }), [dev]);
        assert_eq!(scopes(BudgetListQuery { over_limit: Some(false), ..q() }), [ROOT, WORKSPACE]);
        assert_eq!(scopes(BudgetListQuery { unit: Some("TOKENS".into()), ..q() }), [dev]);
        // utilization: 0.1, 0.9 and 0.8; bounds inclusive
        assert_eq!(scopes(BudgetListQuery { utilization_min: Some(0.8), ..q() }), [dev, WORKSPACE]);
        assert_eq!(scopes(BudgetListQuery { utilization_min: Some(0.8), utilization_max: Some(0.8), ..q() }), [WORKSPACE]);
        // search: case-insensitive, tenant id or scope; empty is no filter
        assert_eq!(scopes(BudgetListQuery { search: Some("PROD".into()), ..q() }), [WORKSPACE]);
        assert_eq!(scopes(BudgetListQuery { search: Some("ACME".into()), ..q() }).len(), 3);
        assert_eq!(scopes(BudgetListQuery { search: Some(String::new()), ..q() }).len(), 3);
        // sorts: descending by default, ties in the default order
        let sorted = |key: &str, dir: Option<&str>| {
            scopes(BudgetListQuery { sort_by: Some(key.into()), sort_dir: dir.map(String::from), ..q() })
        };
        assert_eq!(sorted("utilization", None), [dev, WORKSPACE, ROOT]);
        assert_eq!(sorted("utilization", Some("asc")), [ROOT, WORKSPACE, dev]);
        assert_eq!(sorted("debt", None), [dev, ROOT, WORKSPACE]);
        assert_eq!(sorted("commit_overage_policy", Some("asc")), [ROOT, dev, WORKSPACE]);
        assert_eq!(sorted("unit", Some("asc")), [dev, ROOT, WORKSPACE]);
        // pages, cut after the filters and the sort
        let page = |cursor: Option<&str>| {
            list(BudgetListQuery { sort_by: Some("utilization".into()), limit: Some(2), cursor: cursor.map(String::from), ..q() })
                .expect("a page")
        };
        let first = page(None);
        assert_eq!((first.ledgers.len(), first.has_more, first.next_cursor.as_deref()), (2, true, Some("2")));
        let second = page(Some("2"));
        assert_eq!((second.ledgers.len(), second.has_more, second.next_cursor), (1, false, None));
        assert_eq!(second.ledgers[0].scope, ROOT);
        // the admin key's unscoped listing reaches the tenant's budgets too
        let every = atomically(store, |s| list_budgets(s, None, &q())).expect("listed");
        assert_eq!(every.ledgers.iter().map(|l| l.tenant_id.as_str()).collect::<Vec<_>>(), [TENANT; 3]);
        // bad parameters are 400s naming the parameter
        for (bad, name) in [
            (BudgetListQuery { utilization_min: Some(0.8), utilization_max: Some(0.2), ..q() }, "utilization_min"),
            (BudgetListQuery { utilization_max: Some(1.5), ..q() }, "utilization_max"),
            (BudgetListQuery { utilization_min: Some(f64::NAN), ..q() }, "utilization_min"),
            (BudgetListQuery { sort_by: Some("size".into()), ..q() }, "sort_by"),
            (BudgetListQuery { sort_by: Some("debt".into()), sort_dir: Some("up".into()), ..q() }, "sort_dir"),
            (BudgetListQuery { status: Some("OPEN".into()), ..q() }, "status"),
            (BudgetListQuery { unit: Some("EUR".into()), ..q() }, "unit"),
            (BudgetListQuery { search: Some("x".repeat(129)), ..q() }, "search"),
            (BudgetListQuery { limit: Some(0), ..q() }, "limit"),
            (BudgetListQuery { cursor: Some("next".into()), ..q() }, "cursor"),
        ] {
            let refused = list(bad).expect_err(name);
            assert_eq!(refused.code, ErrorCode::InvalidRequest, "{name}");
            assert!(refused.message.contains(&format!("`{name}`")), "{name}: {}", refused.message);
        }
        // a budget with nothing allocated has utilization 0
        let empty = BudgetRow { spent: 5, ..budget_row("tenant:acme/workspace:empty", 0) };
        atomically(store, |s| s.insert_budget(TENANT, &empty)).expect("budget");
        let idle = BudgetListQuery { utilization_max: Some(0.0), ..q() };
        assert_eq!(scopes(idle), ["tenant:acme/workspace:empty"]);
        let over = list(BudgetListQuery { limit: Some(1_000), ..q() }).expect("a page larger than 100 is cut, not refused");
        assert_eq!(over.ledgers.len(), 4);
    });
}

/// The admin key's unscoped listBudgets reaches every tenant's budgets on Redis, through the
/// cross-slot index of tenants with budgets.
#[test]
fn the_admin_listing_of_budgets_reaches_every_tenant_on_redis() {
    on_every_redis(|server| {
        for tenant in ["globex", TENANT] {
            let root = format!("tenant:{tenant}");
            server.ledger.run(tenant, |s| s.insert_budget(tenant, &budget_row(&root, 1_000))).expect("budget");
        }
        let every = server.ledger.run(TENANT, |s| list_budgets(s, None, &BudgetListQuery::default())).expect("listed");
        let listed: Vec<(&str, &str)> = every.ledgers.iter().map(|l| (l.tenant_id.as_str(), l.scope.as_str())).collect();
        assert_eq!(listed, [(TENANT, ROOT), ("globex", "tenant:globex")]);
    });
}

#[test]
fn a_hold_beyond_the_tightest_scope_is_refused_and_holds_nothing() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        add_budget(store, WORKSPACE, 500, 0, None);
        let refused = reserve_at(store, &reserve_request("r1", 600, json!({})), 10).expect_err("over the workspace");
        assert_eq!(refused.code, ErrorCode::BudgetExceeded);
        let Some(ErrorDetails::Budget { scope, remaining, requested, deny_detail }) = refused.details.as_deref() else {
            panic!("budget-refusal details: {:?}", refused.details)
        };
        assert_eq!((scope.as_str(), *remaining, *requested), (WORKSPACE, 500, 600));
        assert_eq!(deny_detail.blocked_by_scope.as_deref(), Some(WORKSPACE));
        assert_eq!(deny_detail.budget_remaining, Some(500));
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
        assert_eq!(reservation(store, &id).status, "ACTIVE");
    });
}

#[test]
fn an_expired_hold_returns_to_the_budget_and_cannot_be_committed() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        let req = reserve_request("r1", 300, json!({"ttl_ms": 1_000, "grace_period_ms": 0}));
        let id = reserve_at(store, &req, 0).expect("reserved").reservation_id.expect("not a dry run");
        assert_eq!(atomically(store, |s| sweep_expired(s, 500, 100)).expect("sweep"), 0, "not yet expired");
        assert_eq!(atomically(store, |s| sweep_expired(s, 1_001, 100)).expect("sweep"), 1);
        assert_eq!(budget(store, ROOT).reserved, 0);
        assert_eq!(reservation(store, &id).status, "EXPIRED");
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
        let hash = request_hash(&req, &id).expect("hash");
        atomically(store, |s| release(s, TENANT, &id, &req, &hash, 5)).and_then(Finished::into_result).expect("released");
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
            atomically(store, |s| list_reservations(s, TENANT, &filter)).expect("listed")
        };
        let listed = |body: &crate::cycles::ReservationListResponse| -> Vec<String> {
            body.reservations.iter().map(|r| r.reservation_id.clone()).collect()
        };
        let first = page(None);
        assert_eq!(listed(&first), [ids[2].clone(), ids[1].clone()]);
        assert!(first.has_more);
        let second = page(first.next_cursor.as_deref());
        assert_eq!(listed(&second), [ids[0].clone()]);
        assert!(!second.has_more);
        assert_eq!(second.next_cursor, None);
    });
}

#[test]
fn a_retried_commit_answers_the_first_response_and_charges_once() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        let id = reserve_at(store, &reserve_request("r1", 300, json!({})), 0).expect("reserved").reservation_id;
        let id = id.expect("not a dry run");
        let first = commit_at(store, &id, "c1", 250, 5).expect("committed");
        let retry = commit_at(store, &id, "c1", 250, 6).expect("replayed");
        assert_eq!(first, retry);
        assert_eq!(budget(store, ROOT).spent, 250, "charged once");
        assert_eq!(code_of(commit_at(store, &id, "c1", 251, 7)), ErrorCode::IdempotencyMismatch);
    });
}

#[test]
fn only_the_key_that_made_a_reservation_commits_it() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        let req = reserve_request("r1", 300, json!({}));
        let hash = request_hash(&req, "").expect("hash");
        let id = atomically(store, |s| reserve_as(s, TENANT, Some("key_a"), &req, &hash, 0))
            .expect("reserved")
            .reservation_id
            .expect("not a dry run");
        assert_eq!(reservation(store, &id).owner_key.as_deref(), Some("key_a"));
        let by = |key: &str, action| atomically(store, |s| check_owner(s, TENANT, &id, key, false, action));
        assert_eq!(code_of(by("key_b", OwnerAction::Commit)), ErrorCode::Forbidden);
        assert_eq!(code_of(by("key_b", OwnerAction::Release)), ErrorCode::Forbidden);
        by("key_a", OwnerAction::Commit).expect("the owner commits");
        let operator = atomically(store, |s| check_owner(s, TENANT, &id, "key_b", true, OwnerAction::Release));
        operator.expect("an operator releases another key's reservation");
        let other_tenant = atomically(store, |s| check_owner(s, "other", &id, "key_a", false, OwnerAction::Commit));
        assert_eq!(code_of(other_tenant), ErrorCode::Forbidden, "another tenant's reservation");
    });
}

/// A reservation id comes from the request path: one that names a backend's own index
/// (`rsv:created` beside `rsv:<id>` was one on Redis) is simply not found.
#[test]
fn a_reservation_id_that_names_an_index_is_simply_not_found() {
    on_every_backend(|store| {
        add_budget(store, ROOT, 1_000, 0, None);
        reserve_at(store, &reserve_request("r1", 1, json!({})), 0).expect("reserved");
        for id in ["created", "expiry", "id", ""] {
            assert!(atomically(store, |s| s.reservation(id)).expect("a lookup, not an error").is_none(), "`{id}`");
        }
    });
}

/// Several gateways on one Redis (one server, or a cluster): 8 clients, each with its own
/// connection, race 400 holds of 10 against a budget of 1,000. Exactly 100 succeed and the budget holds exactly 1,000.
#[test]
fn gateways_sharing_one_redis_never_oversubscribe_a_budget() {
    on_every_redis(|server| race_for_one_budget(server, 8));
}

/// The same race with the 8 clients in 2 gateways of 4 each: a gateway's clients queue at
/// its gate and hand the tenant's lock on between them, with the budget as the last of them
/// wrote it, while the other gateway waits for the lock (lock handoff).
#[test]
fn clients_that_hand_the_lock_on_never_oversubscribe_a_budget() {
    on_every_redis(|server| race_for_one_budget(server, 2));
}

/// 8 clients spread over `gateways` ledgers race 400 holds of 10 against a budget of 1,000.
fn race_for_one_budget(server: &RedisServer, gateways: usize) {
    add_budget(server, ROOT, 1_000, 0, None);
    let (url, prefix) = (server.url.clone(), server.prefix.clone());
    let ledgers: Vec<RedisLedger> = (0..gateways).map(|_| RedisLedger::open(&url, &prefix).expect("client")).collect();
    let outcomes: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let gateway = &ledgers[worker % gateways];
                scope.spawn(move || {
                    let (mut held, mut refused) = (0, 0);
                    for i in 0..50 {
                        let req = reserve_request(&format!("w{worker}-{i}"), 10, json!({}));
                        let hash = request_hash(&req, "").expect("hash");
                        match gateway.run(TENANT, |s| reserve(s, TENANT, &req, &hash, 0)) {
                            Ok(_) => held += 1,
                            Err(e) if e.code == ErrorCode::BudgetExceeded => refused += 1,
                            Err(e) => panic!("worker {worker}: {} {}", e.code.as_str(), e.message),
                        }
                    }
                    (held, refused)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });
    let held: usize = outcomes.iter().map(|o| o.0).sum();
    let refused: usize = outcomes.iter().map(|o| o.1).sum();
    assert_eq!((held, refused), (100, 300));
    let b = budget(server, ROOT);
    assert_eq!((b.reserved, b.remaining()), (1_000, 0));
}

/// A gateway that stalls past its lease loses the tenant's lock to another, which changes the
/// budget. The stalled attempt's write, computed from what it read before, must not land: the
/// commit is fenced on the lock's token, so the operation runs again on fresh data.
#[test]
fn a_holder_whose_lock_lapsed_writes_nothing_and_runs_again() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let budget_key = server.key(TENANT, &format!("budget:USD_MICROCENTS:{ROOT}"));
        let attempts = std::cell::Cell::new(0);
        server
            .ledger
            .run(TENANT, |s| {
                attempts.set(attempts.get() + 1);
                let mut b = s.budget(TENANT, ROOT, Unit::UsdMicrocents)?.expect("budget");
                if attempts.get() == 1 {
                    // another gateway, holding the lock now for 100 ms, holds 10
                    let () = server.command(::redis::cmd("SET").arg(server.key(TENANT, "lock")).arg("another").arg("PX").arg(100));
                    let theirs = BudgetRow { reserved: b.reserved + 10, ..b.clone() };
                    let () = server.command(::redis::cmd("SET").arg(&budget_key).arg(serde_json::to_string(&theirs).expect("json")));
                }
                b.reserved += 100;
                s.save_budget(TENANT, &b, 0)
            })
            .expect("the operation commits at its second attempt");
        assert_eq!(attempts.get(), 2, "the first attempt's commit was refused");
        assert_eq!(budget(server, ROOT).reserved, 110, "both holds, none lost");
    });
}

/// Runs `first` on `ledger`, and `second` on the same ledger from another thread that queues at
/// the tenant's gate while `first` holds the lock, so `first` hands the lock on to it. Answers
/// the second operation's result and how many attempts it took (its closure gets the attempt's
/// number, from 1).
fn hand_on<T: Send>(
    ledger: &RedisLedger,
    mut first: impl FnMut(&dyn LedgerStore) -> GatewayResult<()>,
    second: impl FnMut(&dyn LedgerStore, usize) -> GatewayResult<T> + Send,
) -> (GatewayResult<T>, usize) {
    let before = ledger.handed_on();
    let mut second = Some(second);
    let outcome = std::thread::scope(|scope| {
        let mut queued = None;
        ledger
            .run(TENANT, |s| {
                if let Some(mut second) = second.take() {
                    queued = Some(scope.spawn(move || {
                        let mut attempts = 0;
                        let result = ledger.run(TENANT, |s| {
                            attempts += 1;
                            second(s, attempts)
                        });
                        (result, attempts)
                    }));
                    let waited = std::time::Instant::now();
                    while ledger.waiting(TENANT) == 0 {
                        assert!(waited.elapsed() < std::time::Duration::from_secs(10), "the second operation never queued");
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
                first(s)
            })
            .expect("the first operation commits");
        queued.expect("spawned").join().expect("the second operation's thread")
    });
    assert!(ledger.handed_on() > before, "the second operation started under the handed-on lock");
    outcome
}

/// Adds `amount` to the root budget's `reserved`, as a rule would.
fn hold_on_root(s: &dyn LedgerStore, amount: i64) -> GatewayResult<()> {
    let mut b = s.budget(TENANT, ROOT, Unit::UsdMicrocents)?.expect("budget");
    b.reserved += amount;
    s.save_budget(TENANT, &b, 0)
}

/// A lock handed on to the next operation of the same gateway that lapses before that
/// operation commits (another gateway took it and changed the budget): the operation's
/// write, computed from the cached budget, must not land, and its second attempt takes the
/// lock afresh and reads the budget again instead of trusting what was handed on.
#[test]
fn a_handed_on_lock_that_lapsed_writes_nothing_and_its_cache_is_dropped() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let budget_key = server.key(TENANT, &format!("budget:USD_MICROCENTS:{ROOT}"));
        let (result, attempts) = hand_on(&server.ledger, |s| hold_on_root(s, 1), |s, attempt| {
            if attempt == 1 {
                // the handed-on lock lapses; another gateway holds 10
                let () = server.command(::redis::cmd("SET").arg(server.key(TENANT, "lock")).arg("another").arg("PX").arg(100));
                let mut theirs: BudgetRow = serde_json::from_str(&server.command::<String>(::redis::cmd("GET").arg(&budget_key))).expect("json");
                theirs.reserved += 10;
                let () = server.command(::redis::cmd("SET").arg(&budget_key).arg(serde_json::to_string(&theirs).expect("json")));
            }
            hold_on_root(s, 100)
        });
        result.expect("the second operation commits at its second attempt");
        assert_eq!(attempts, 2, "its first attempt's commit was refused");
        assert_eq!(budget(server, ROOT).reserved, 111, "every hold, none lost, none computed from the stale cache");
    });
}

/// The tenant record is the one key provisioning writes without the lock. A tenant closed
/// after an operation handed the lock on, but before the next one commits, must stop that
/// next one: it decided on the cached record, so its commit is refused, and its second
/// attempt reads the closed tenant and is refused.
#[test]
fn a_tenant_closed_during_a_handoff_holds_nothing_more() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let req = reserve_request("after-close", 10, json!({}));
        let hash = request_hash(&req, "").expect("hash");
        let (result, attempts) = hand_on(&server.ledger, |s| hold_on_root(s, 1), |s, attempt| {
            if attempt == 1 {
                server.set_tenant(TENANT, "CLOSED");
            }
            reserve(s, TENANT, &req, &hash, 0)
        });
        assert_eq!(code_of(result), ErrorCode::TenantClosed);
        assert_eq!(attempts, 2, "the reserve decided on the cached record was not committed");
        assert_eq!(budget(server, ROOT).reserved, 1, "only the first operation's hold");
    });
}

/// A refusal decided under a handed-on lock is decided again under a freshly taken one, so
/// it never rests on cached data alone.
#[test]
fn a_refusal_under_a_handed_on_lock_is_decided_again_on_a_fresh_lock() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let (result, attempts) = hand_on(&server.ledger, |s| hold_on_root(s, 1), |_, attempt| -> GatewayResult<()> {
            Err(GatewayError::invalid(format!("refused at attempt {attempt}")))
        });
        assert_eq!(result.expect_err("refused").message, "refused at attempt 2");
        assert_eq!(attempts, 2);
    });
}

/// A new record refused at the commit of an operation that ran under a handed-on lock is
/// decided again under a lock taken for it, as a refusal inside the operation is: here the
/// key is taken during the first attempt and free again by the second, which lands.
#[test]
fn a_commit_refused_under_a_handed_on_lock_runs_again_on_a_fresh_lock() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let reserved = reserve_at(server, &reserve_request("r1", 100, json!({})), 0).expect("reserved");
        let mut copy = reservation(server, reserved.reservation_id.as_deref().expect("an id"));
        copy.id = "rsv_handed".into();
        let key = server.key(TENANT, "rsv:id:rsv_handed");
        let (result, attempts) = hand_on(&server.ledger, |s| hold_on_root(s, 1), |s, attempt| {
            let () = if attempt == 1 {
                server.command(::redis::cmd("SET").arg(&key).arg("theirs"))
            } else {
                server.command(::redis::cmd("DEL").arg(&key))
            };
            s.insert_reservation(&copy)
        });
        result.expect("the second attempt lands");
        assert_eq!(attempts, 2, "the refused commit ran again");
        assert_eq!(reservation(server, "rsv_handed").amount, copy.amount);
    });
}

/// An operation queued at its tenant's gate waits no longer than the ledger's lock wait: it is
/// refused (nothing applied), it leaves the queue, and the gate keeps working.
#[test]
fn an_operation_queued_past_the_lock_wait_is_refused_and_leaves_the_queue() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let ledger = RedisLedger::open(&server.url, &server.prefix).expect("client").with_lock_wait(std::time::Duration::from_millis(200));
        let refused = std::thread::scope(|scope| {
            let mut queued = None;
            ledger
                .run(TENANT, |s| {
                    if queued.is_none() {
                        let ledger = &ledger;
                        queued = Some(scope.spawn(move || ledger.run(TENANT, |s| hold_on_root(s, 100))));
                        // hold the gate until the queued operation has given up
                        while !queued.as_ref().is_some_and(std::thread::ScopedJoinHandle::is_finished) {
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                    }
                    hold_on_root(s, 1)
                })
                .expect("the first operation commits");
            queued.expect("spawned").join().expect("thread")
        });
        assert_eq!(code_of(refused), ErrorCode::InternalError);
        assert_eq!(ledger.waiting(TENANT), 0, "it left the queue");
        ledger.run(TENANT, |s| hold_on_root(s, 10)).expect("the gate still admits");
        assert_eq!(budget(server, ROOT).reserved, 11, "nothing of the refused operation");
    });
}

/// A server that has not cached the commit script (a restart, `SCRIPT FLUSH`) still commits a
/// reservation, with its cross-tenant index entries, exactly once.
#[test]
fn a_commit_behind_index_writes_survives_a_server_without_the_script() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let () = server.command(::redis::cmd("SCRIPT").arg("FLUSH"));
        let req = reserve_request("after-flush", 10, json!({}));
        let hash = request_hash(&req, "").expect("hash");
        let id = atomically(server, |s| reserve(s, TENANT, &req, &hash, 0)).expect("reserved").reservation_id.expect("an id");
        assert_eq!(reservation(server, &id).amount, 10);
        assert_eq!(budget(server, ROOT).reserved, 10, "held once");
        let owner: Option<String> = server.command(::redis::cmd("GET").arg(format!("{}:rsv-tenant:{id}", server.prefix)));
        assert_eq!(owner.as_deref(), Some(TENANT), "the cross-tenant index landed with it");
    });
}

/// An operation holds one tenant's lock: a write to another tenant's keys (not serialised by
/// that tenant's lock, and in another Cluster slot) is refused whole, and the lock is freed.
#[test]
fn an_operation_writes_only_inside_its_locked_tenant() {
    on_every_redis(|server| {
        let other = BudgetRow { scope: "tenant:globex".into(), ..budget_row(ROOT, 1_000) };
        let refused = server.ledger.run(TENANT, |s| {
            s.insert_budget(TENANT, &budget_row(ROOT, 1_000))?;
            s.insert_budget("globex", &other)
        });
        assert_eq!(code_of(refused), ErrorCode::InternalError);
        for (tenant, scope) in [(TENANT, ROOT), ("globex", "tenant:globex")] {
            let exists: i64 = server.command(::redis::cmd("EXISTS").arg(server.key(tenant, &format!("budget:USD_MICROCENTS:{scope}"))));
            assert_eq!(exists, 0, "nothing of the refused operation landed ({scope})");
        }
        let locked: i64 = server.command(::redis::cmd("EXISTS").arg(server.key(TENANT, "lock")));
        assert_eq!(locked, 0, "a refused operation releases the lock at once");
    });
}

/// A new record's key is not read before it is written: the commit script refuses it if the
/// key exists. Here another writer (as a bug, or a gateway without the lock, would) takes a
/// reservation's key after the operation began: the commit writes nothing of the operation,
/// releases the lock rather than leaving it to lapse, and fails closed.
#[test]
fn a_new_record_whose_key_was_taken_meanwhile_writes_nothing_and_frees_the_lock() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let reserved = reserve_at(server, &reserve_request("r1", 100, json!({})), 0).expect("reserved");
        let mut copy = reservation(server, reserved.reservation_id.as_deref().expect("an id"));
        copy.id = "rsv_taken".into();
        let key = server.key(TENANT, "rsv:id:rsv_taken");
        let refused = server
            .ledger
            .run(TENANT, |s| {
                hold_on_root(s, 10)?;
                let () = server.command(::redis::cmd("SET").arg(&key).arg("theirs"));
                s.insert_reservation(&copy)
            })
            .expect_err("the commit refuses a taken key");
        // first, before any other unit of work would wait out a lock left behind
        let lock: Option<String> = server.command(::redis::cmd("GET").arg(server.key(TENANT, "lock")));
        assert_eq!(lock, None, "the lock was released, not left to lapse");
        // (the key is named in the server log; the caller sees an internal error)
        assert_eq!(refused.code, ErrorCode::InternalError);
        assert_eq!(budget(server, ROOT).reserved, 100, "the operation's hold did not land");
        let theirs: String = server.command(::redis::cmd("GET").arg(&key));
        assert_eq!(theirs, "theirs", "the other writer's value stands");
        // the same record under a free id lands
        copy.id = "rsv_free".into();
        server.ledger.run(TENANT, |s| s.insert_reservation(&copy)).expect("a free key is created");
        assert_eq!(reservation(server, "rsv_free").amount, copy.amount);
    });
}

/// An event whose id's tenant index already names another tenant (written without reading it
/// first, as a new record's is): the commit refuses it whole on one server (the script's
/// write-once check) and on a Cluster (the index write sent before the script), releases the
/// lock and writes none of the operation's keys.
#[test]
fn an_index_entry_naming_another_tenant_refuses_the_commit_and_frees_the_lock() {
    on_every_redis(|server| {
        add_budget(server, ROOT, 1_000, 0, None);
        let index = format!("{}:evt-tenant:evt_taken", server.prefix);
        let () = server.command(::redis::cmd("SET").arg(&index).arg("globex"));
        let row = crate::events::EventRow {
            event: crate::events::StoredEvent {
                event_id: "evt_taken".into(),
                tenant_id: TENANT.into(),
                event_type: crate::events::EventType::TenantUpdated,
                scope: None,
                trace_id: None,
                at_ms: 1,
                body: "{}".into(),
            },
            correlation_id: None,
            request_id: None,
        };
        let refused = server
            .ledger
            .run(TENANT, |s| {
                hold_on_root(s, 10)?;
                s.insert_event(&row)
            })
            .expect_err("the commit refuses an index entry of another tenant");
        // first, before any other unit of work would wait out a lock left behind
        let lock: Option<String> = server.command(::redis::cmd("GET").arg(server.key(TENANT, "lock")));
        assert_eq!(lock, None, "the lock was released, not left to lapse");
        assert_eq!(refused.code, ErrorCode::InternalError);
        assert_eq!(budget(server, ROOT).reserved, 0, "the operation's hold did not land");
        let event: Option<String> = server.command(::redis::cmd("GET").arg(server.key(TENANT, "evt:evt_taken")));
        assert_eq!(event, None, "the event was not written");
        let theirs: String = server.command(::redis::cmd("GET").arg(&index));
        assert_eq!(theirs, "globex", "the index entry stands");
        // the same event with its id free lands: the refusal above was the index's
        let _: () = server.command(::redis::cmd("DEL").arg(&index));
        server.ledger.run(TENANT, |s| s.insert_event(&row)).expect("the event lands once its index is free");
        let event: Option<String> = server.command(::redis::cmd("GET").arg(server.key(TENANT, "evt:evt_taken")));
        assert!(event.is_some(), "the event was written");
    });
}

/// The sweep walks every tenant with reservations, each under that tenant's own lock.
#[test]
fn the_redis_sweep_expires_every_tenants_holds() {
    on_every_redis(|server| {
        for tenant in [TENANT, "globex"] {
            let root = format!("tenant:{tenant}");
            server.ledger.run(tenant, |s| s.insert_budget(tenant, &budget_row(&root, 1_000))).expect("budget");
            let req: ReserveRequest = serde_json::from_value(json!({
                "idempotency_key": "r1",
                "subject": {"tenant": tenant},
                "action": {"kind": "llm.call", "name": "summarise"},
                "estimate": {"unit": "USD_MICROCENTS", "amount": 300},
                "ttl_ms": 1_000,
                "grace_period_ms": 0,
            }))
            .expect("a valid ReserveRequest");
            let hash = request_hash(&req, "").expect("hash");
            server.ledger.run(tenant, |s| reserve(s, tenant, &req, &hash, 0)).expect("reserved");
        }
        assert_eq!(server.ledger.sweep_expired(500, 100).expect("sweep"), 0, "not yet expired");
        assert_eq!(server.ledger.sweep_expired(1_001, 100).expect("sweep"), 2);
        for tenant in [TENANT, "globex"] {
            let root = format!("tenant:{tenant}");
            let b = server.ledger.run(tenant, |s| s.budget(tenant, &root, Unit::UsdMicrocents)).expect("read").expect("budget");
            assert_eq!(b.reserved, 0, "{tenant}'s hold came back");
        }
    });
}

/// A system-wide subscription's replay on Redis (queued tenant by tenant) is refused while
/// another replay of it holds the claim, and ends its own claim whatever its outcome.
#[test]
fn a_system_replay_is_refused_while_another_holds_its_claim() {
    on_every_redis(|server| {
        let claim = format!("{}:replay:whsub_x", server.prefix);
        let window = crate::webhooks::ReplayWindow { from_ms: 0, to_ms: 1_000, only: None, max_events: 10 };
        let _: () = server.command(::redis::cmd("SET").arg(&claim).arg("rpl_other"));
        let e = server.ledger.replay_system("whsub_x", &window, 2_000).expect_err("another holds the claim");
        assert_eq!(e.code, ErrorCode::ReplayInProgress, "{}", e.message);
        let held: Option<String> = server.command(::redis::cmd("GET").arg(&claim));
        assert_eq!(held.as_deref(), Some("rpl_other"), "another's claim is left alone");
        let _: () = server.command(::redis::cmd("DEL").arg(&claim));
        // no such subscription: refused at the selection, and the claim taken for it is ended
        let e = server.ledger.replay_system("whsub_x", &window, 2_000).expect_err("no such subscription");
        assert_eq!(e.code, ErrorCode::WebhookNotFound, "{}", e.message);
        let held: Option<String> = server.command(::redis::cmd("GET").arg(&claim));
        assert_eq!(held, None);
    });
}

/// The variable that carries a soak worker's orders (`URL|PREFIX|WORKER|OPS|LOG`) to the
/// worker process ([`soak_worker`]).
const SOAK_WORKER_VAR: &str = "SBD_LEDGER_SOAK_WORKER";

/// How many ledger operations the soak test spreads over its gateway processes: 100,000 in CI
/// (`.ci/run` sets it), 3,000 by default.
const SOAK_OPS_VAR: &str = "SBD_LEDGER_SOAK_OPS";

/// Not a check of its own: the entry point of one gateway process of
/// [`gateways_in_separate_processes_lose_nothing_to_a_kill_9`], which runs the test binary
/// again with `--ignored --exact` and [`SOAK_WORKER_VAR`] set. It reserves 10, then commits 7,
/// releases, or leaves the hold active (in turn), and appends a line to its log after each
/// answer, as a client that was told the outcome: `R id`, `C id`, `X id`, or `D` for a hold
/// refused for lack of budget.
#[test]
#[ignore = "run by the soak test as a separate process"]
fn soak_worker() {
    let Ok(orders) = std::env::var(SOAK_WORKER_VAR) else { return };
    let parts: Vec<&str> = orders.split('|').collect();
    let [url, prefix, worker, ops, log] = parts[..] else { panic!("{SOAK_WORKER_VAR}: URL|PREFIX|WORKER|OPS|LOG") };
    let ops: usize = ops.parse().expect("OPS");
    let gateway = RedisLedger::open(url, prefix).expect("client");
    let log = std::sync::Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log"));
    let tell = |line: String| log.lock().expect("log lock").write_all(format!("{line}\n").as_bytes()).expect("log line");
    // several clients per process, so its operations queue at the tenant's gate and hand the
    // lock on (the Redis backend's lock handoff)
    std::thread::scope(|scope| {
        for thread in 0..SOAK_THREADS {
            let (gateway, tell) = (&gateway, &tell);
            scope.spawn(move || soak_client(gateway, &format!("w{worker}-t{thread}"), ops / SOAK_THREADS, tell));
        }
    });
}

/// The client threads of one soak worker process.
const SOAK_THREADS: usize = 3;

/// One client of a soak worker: `ops` operations, its idempotency keys starting `name`.
fn soak_client(gateway: &RedisLedger, name: &str, ops: usize, tell: &dyn Fn(String)) {
    let (mut done, mut i) = (0, 0);
    while done < ops {
        let req = reserve_request(&format!("{name}-r{i}"), 10, json!({"ttl_ms": 3_600_000}));
        let hash = request_hash(&req, "").expect("hash");
        let now = crate::util::now_ms();
        match gateway.run(TENANT, |s| reserve(s, TENANT, &req, &hash, now)) {
            Ok(held) => {
                let id = held.reservation_id.expect("not a dry run");
                tell(format!("R {id}"));
                done += 1;
                match i % 3 {
                    0 => {
                        let commit: CommitRequest = serde_json::from_value(
                            json!({"idempotency_key": format!("{name}-c{i}"), "actual": {"unit": "USD_MICROCENTS", "amount": 7}}),
                        )
                        .expect("a valid CommitRequest");
                        let hash = request_hash(&commit, &id).expect("hash");
                        gateway.run(TENANT, |s| commit_rule(s, TENANT, &id, &commit, &hash, now)).and_then(Finished::into_result).expect("committed");
                        tell(format!("C {id}"));
                        done += 1;
                    }
                    1 => {
                        let release_req = ReleaseRequest { idempotency_key: format!("{name}-x{i}"), reason: None };
                        let hash = request_hash(&release_req, &id).expect("hash");
                        gateway.run(TENANT, |s| release(s, TENANT, &id, &release_req, &hash, now)).and_then(Finished::into_result).expect("released");
                        tell(format!("X {id}"));
                        done += 1;
                    }
                    _ => {}
                }
            }
            Err(e) if e.code == ErrorCode::BudgetExceeded => {
                tell("D".into());
                done += 1;
            }
            Err(e) => panic!("{name}: {} {}", e.code.as_str(), e.message),
        }
        i += 1;
    }
}

/// Several gateways for real: three processes share one budget on one Redis (and on a
/// three-node cluster) through [`soak_worker`], [`SOAK_OPS_VAR`] operations in all, with the
/// budget running out half-way; one process is killed with SIGKILL under load. Afterwards the
/// ledger must balance exactly: the budget's `reserved` is the sum of the ACTIVE holds, its
/// `spent` the sum of the commits, nothing is over the allocation, and every outcome a
/// process logged (it was told) is in the store as told.
#[test]
fn gateways_in_separate_processes_lose_nothing_to_a_kill_9() {
    on_every_redis(|server| {
        let ops: usize = std::env::var(SOAK_OPS_VAR).ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
        // a reserve is followed by a commit (7 spent), a release, or nothing (10 held): about
        // 5.7 consumed per 1.7 operations, so this runs out half-way
        let allocated = i64::try_from(ops).expect("ops") * 5 / 3;
        add_budget(server, ROOT, allocated, 0, None);
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = std::env::current_exe().expect("the test binary");
        let logs: Vec<std::path::PathBuf> = (0..3).map(|w| dir.path().join(format!("worker-{w}.log"))).collect();
        let mut workers: Vec<Child> = logs
            .iter()
            .enumerate()
            .map(|(w, log)| {
                Command::new(&exe)
                    .args(["--ignored", "--exact", "ledger::tests::soak_worker", "--nocapture", "--test-threads", "1"])
                    .env(SOAK_WORKER_VAR, format!("{}|{}|{w}|{}|{}", server.url, server.prefix, ops / 3, log.display()))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("a worker process")
            })
            .collect();
        // SIGKILL worker 0 once it is well under way
        let lines = |log: &std::path::Path| std::fs::read_to_string(log).map(|t| t.lines().count()).unwrap_or(0);
        while lines(&logs[0]) < ops / 30 {
            assert!(workers[0].try_wait().expect("wait").is_none(), "worker 0 ended before it could be killed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        workers[0].kill().expect("SIGKILL");
        let _ = workers[0].wait();
        for (w, worker) in workers.iter_mut().enumerate().skip(1) {
            assert!(worker.wait().expect("wait").success(), "worker {w} failed");
        }

        // the audit, read directly (every gateway has stopped)
        let ids: Vec<String> = server.command(::redis::cmd("ZRANGE").arg(server.key(TENANT, "rsv:created")).arg(0).arg(-1));
        let mut stored = std::collections::HashMap::new();
        for chunk in ids.chunks(1_000) {
            let keys: Vec<String> = chunk.iter().map(|id| server.key(TENANT, &format!("rsv:id:{id}"))).collect();
            let values: Vec<Option<String>> = server.command(::redis::cmd("MGET").arg(&keys));
            for (id, value) in chunk.iter().zip(values) {
                let r: Reservation = serde_json::from_str(&value.expect("an indexed reservation exists")).expect("stored JSON");
                stored.insert(id.clone(), r);
            }
        }
        let held: i64 = stored.values().filter(|r| r.status == "ACTIVE").map(|r| r.amount).sum();
        let spent: i64 = stored.values().filter(|r| r.status == "COMMITTED").map(|r| r.committed.unwrap_or(0)).sum();
        let b = budget(server, ROOT);
        assert_eq!(b.reserved, held, "reserved is exactly the ACTIVE holds");
        assert_eq!(b.spent, spent, "spent is exactly the commits");
        assert!(b.debt == 0 && b.remaining() >= 0, "nothing over the allocation: {b:?}");

        let (mut told, mut refused) = (0usize, 0usize);
        for log in &logs {
            for line in std::fs::read_to_string(log).expect("log").lines() {
                told += 1;
                let (status, id) = match line.split_once(' ') {
                    Some(("R", id)) => (None, id),
                    Some(("C", id)) => (Some("COMMITTED"), id),
                    Some(("X", id)) => (Some("RELEASED"), id),
                    _ => {
                        assert_eq!(line, "D", "a log line");
                        refused += 1;
                        continue;
                    }
                };
                let r = stored.get(id).unwrap_or_else(|| panic!("`{line}` was told but {id} is not stored"));
                if let Some(status) = status {
                    assert_eq!(r.status, status, "`{line}` was told");
                }
            }
        }
        assert!(refused > 0, "the budget ran out during the run");
        assert!(told >= ops / 2, "{told} outcomes told of {ops}");
    });
}
