//! The embedded store: one SQLite file in WAL mode, its schema, and the single writer thread
//! that applies every state change in group-committed transactions.
//!
//! Every job runs on the writer thread inside a savepoint of the current batch transaction:
//! a job that returns an error is rolled back alone, so bad input never changes state. The
//! batch commits once for up to [`MAX_BATCH`] jobs, and only then are the jobs answered: a
//! caller never sees a success that is not in the database file.
//!
//! Reads that decide nothing on their own (the facts a delegation is evaluated on, which the
//! write job checks again where it matters) run on read-only connections beside the writer
//! ([`Store::read`]): WAL readers see the last committed batch and never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{GatewayError, GatewayResult};
use crate::traces::{self, Seal};
use crate::util::now_ms;

/// How many jobs one transaction may carry.
pub const MAX_BATCH: usize = 256;

/// How the writer syncs: `Normal` survives a crash of the process (the WAL is in the OS),
/// `Full` also a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// `PRAGMA synchronous=NORMAL`.
    #[default]
    Normal,
    /// `PRAGMA synchronous=FULL`.
    Full,
}

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory `{path}`: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite refused to open or migrate the file.
    #[error("cannot open the store `{path}`: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the store writer thread: {0}")]
    Thread(std::io::Error),
}

/// Called once the batch is settled: whether it committed, and the seal signing the trace
/// events it appended (if any).
type Reply = Box<dyn FnOnce(bool, Option<&Arc<Seal>>) + Send>;
/// Runs inside the batch's transaction; `None` when the transaction could not begin (the job
/// must not touch the database then: outside a transaction its own savepoint would commit).
type Job = Box<dyn FnOnce(Option<&Connection>) -> Reply + Send>;

/// A hook [`Store::run_then`] runs on the writer thread once a job's batch has committed.
type AfterCommit<T> = Box<dyn FnOnce(&T) + Send>;

/// A handle on the store; cheap to clone. Dropping every handle stops the writer after it has
/// finished the queued jobs.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
    stats: Arc<Stats>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

/// How many idle read connections the store keeps open.
const MAX_IDLE_READERS: usize = 8;

/// How long a connection waits on a lock before it answers busy (`PRAGMA busy_timeout`).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The settings of every connection besides its busy timeout: a 16 MiB page cache,
/// temporary tables in memory.
const CONNECTION_PRAGMAS: &str = "PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY;";

/// How many prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 256;

/// Sets up any connection of the store: the busy timeout, the per-connection pragmas, the
/// statement cache, and the query planner stability guarantee (QPSG). Without QPSG, SQLite
/// marks a statement to be prepared again whenever a bound value changes if its planner
/// looked at that value (some of its optimisations read bound values), so a cached key-range
/// read (`budgets_with_prefix`, run by every delegation) was parsed and planned anew on each
/// run. With QPSG a statement is planned once, without the values. The store's statements
/// are key lookups and ranges; the plan of its one `ORDER BY ... LIMIT ?` query (the events
/// window) is the same with and without QPSG (`EXPLAIN QUERY PLAN`).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // every statement the gateway runs stays prepared (rusqlite keeps 16 by default, fewer
    // than the reads and writes of one delegation, so the least recent were parsed again)
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(CONNECTION_PRAGMAS)
}

/// What the writer has done: jobs, committed batches, time inside jobs and commits.
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs run.
    pub jobs: AtomicU64,
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Nanoseconds spent running jobs.
    pub job_nanos: AtomicU64,
    /// Nanoseconds spent in COMMIT.
    pub commit_nanos: AtomicU64,
    /// The WAL's length in frames at the last checkpoint (the checkpointer's count; the
    /// writer starts the WAL over past its restart length, [`WAL_RESTART_FRAMES`] by default).
    pub wal_frames: AtomicU64,
    /// Times the writer started the WAL over.
    pub wal_restarts: AtomicU64,
    /// Nanoseconds the writer spent in WAL restarts, refused ones included (every write
    /// waits meanwhile).
    pub wal_restart_nanos: AtomicU64,
}

/// The schema (every table and index), applied at each open; `CREATE ... IF NOT EXISTS`.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budgets (
    tenant_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    unit TEXT NOT NULL,
    ledger_id TEXT NOT NULL,
    allocated INTEGER NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0,
    spent INTEGER NOT NULL DEFAULT 0,
    debt INTEGER NOT NULL DEFAULT 0,
    overdraft_limit INTEGER NOT NULL DEFAULT 0,
    is_over_limit INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    commit_overage_policy TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, scope, unit)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    unit TEXT NOT NULL,
    amount INTEGER NOT NULL,
    committed INTEGER,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    grace_ms INTEGER NOT NULL,
    finalized_at_ms INTEGER,
    extensions INTEGER NOT NULL DEFAULT 0,
    overage_policy TEXT NOT NULL,
    scope_path TEXT NOT NULL,
    scopes TEXT NOT NULL,
    budgeted TEXT NOT NULL,
    idempotency_key TEXT,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    metadata TEXT,
    committed_metadata TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_active ON reservations (status, expires_at_ms);
CREATE INDEX IF NOT EXISTS reservations_tenant ON reservations (tenant_id, created_at_ms);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (tenant_id, endpoint, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    amount INTEGER NOT NULL,
    charged INTEGER NOT NULL,
    scopes TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trace_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    delegator TEXT NOT NULL,
    delegate TEXT NOT NULL,
    depth INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    decision TEXT NOT NULL,
    reason_code INTEGER,
    policy_version TEXT NOT NULL,
    body TEXT NOT NULL,
    pos INTEGER,
    prev_hash TEXT,
    hash TEXT,
    key_id TEXT,
    signature TEXT,
    seal_id INTEGER,
    leaf INTEGER
);
CREATE INDEX IF NOT EXISTS trace_events_chain ON trace_events (tenant_id, chain_id, seq);
CREATE INDEX IF NOT EXISTS trace_events_warnings ON trace_events (tenant_id, seq) WHERE decision = 'warning';
CREATE TABLE IF NOT EXISTS trace_heads (
    tenant_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    count INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, chain_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trace_seals (
    seal_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size INTEGER NOT NULL,
    root TEXT NOT NULL,
    leaves BLOB NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS trace_seals_no_update BEFORE UPDATE ON trace_seals
    BEGIN SELECT RAISE(ABORT, 'trace seals are append-only'); END;
CREATE TRIGGER IF NOT EXISTS trace_seals_no_delete BEFORE DELETE ON trace_seals
    BEGIN SELECT RAISE(ABORT, 'trace seals are append-only'); END;
CREATE TRIGGER IF NOT EXISTS trace_events_no_update BEFORE UPDATE ON trace_events
    BEGIN SELECT RAISE(ABORT, 'trace events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS trace_events_no_delete BEFORE DELETE ON trace_events
    BEGIN SELECT RAISE(ABORT, 'trace events are append-only'); END;
CREATE TABLE IF NOT EXISTS agent_trust (
    tenant_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    score REAL NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, agent)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS escalation_targets (
    tenant_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    trust INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS escalations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    expires_at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS escalations_pending ON escalations (status, expires_at_ms);
"#;

impl Store {
    /// Opens (creating if needed) `data_dir/sbd.sqlite3`, migrates it and starts the writer.
    pub fn open(data_dir: &Path, sync: SyncMode) -> Result<Store, StoreError> {
        Store::open_with_wal_restart(data_dir, sync, WAL_RESTART_FRAMES)
    }

    /// [`Store::open`] with the WAL started over past `restart_frames` frames (4 KiB each)
    /// instead of [`WAL_RESTART_FRAMES`], and cut back to that length after a restart. For
    /// tests that show the WAL bounded without writing gigabytes: at the default length a
    /// checkpoint's fsync on a slow disk can outlast a fast writer's next 500 MiB.
    pub fn open_with_wal_restart(data_dir: &Path, sync: SyncMode, restart_frames: u64) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
        let path = data_dir.join("sbd.sqlite3");
        let sqlite = |source| StoreError::Sqlite { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(sqlite)?;
        let sync_pragma = match sync {
            SyncMode::Normal => "NORMAL",
            SyncMode::Full => "FULL",
        };
        configure(&conn).map_err(sqlite)?;
        conn.execute_batch(&format!("PRAGMA journal_mode=WAL; PRAGMA synchronous={sync_pragma}; PRAGMA foreign_keys=ON;"))
            .map_err(sqlite)?;
        migrate(&conn).map_err(sqlite)?;
        // Checkpoints (the only fsync under synchronous=NORMAL) run on their own thread and
        // connection, off the writer's path.
        let size_limit = wal_size_limit(restart_frames);
        conn.execute_batch(&format!("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit={size_limit}")).map_err(sqlite)?;
        let checkpointer = Connection::open(&path).map_err(sqlite)?;
        configure(&checkpointer).map_err(sqlite)?;
        let stats = Arc::new(Stats::default());
        let alive = Arc::downgrade(&stats);
        thread::Builder::new()
            .name("sbd-store-checkpoint".into())
            .spawn(move || checkpoints(checkpointer, alive))
            .map_err(StoreError::Thread)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let writer_stats = Arc::clone(&stats);
        thread::Builder::new()
            .name("sbd-store-writer".into())
            .spawn(move || writer(conn, queue, &writer_stats, restart_frames))
            .map_err(StoreError::Thread)?;
        Ok(Store { jobs, path, stats, readers: Arc::new(Mutex::new(Vec::new())) })
    }

    /// Runs the read-only `f` on a reader connection, on the calling thread (a few point
    /// lookups cost less than a hand-off to another thread), inside one read transaction: all
    /// of `f`'s statements see the same committed batch (a chain's events and its signed head
    /// never come from two different commits). SQLite refuses a write (`query_only`).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> GatewayResult<T>) -> GatewayResult<T> {
        let idle = self.readers.lock().map_err(|_| GatewayError::internal("the store's reader pool is poisoned"))?.pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn)?;
                conn.execute_batch("PRAGMA query_only=1")?;
                conn
            }
        };
        // BEGIN and ROLLBACK as cached statements: `Connection::unchecked_transaction` parses
        // both anew on every read
        conn.prepare_cached("BEGIN")?.execute([])?;
        let result = f(&conn);
        // a read-only transaction just ends; a connection that cannot end it is not reused
        let ended = conn.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([])).is_ok();
        if ended
            && let Ok(mut idle) = self.readers.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(conn);
        }
        result
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer thread inside the current batch; answers after the batch is
    /// durable. An `Err` from `f` rolls back `f`'s own changes only.
    pub async fn run<T, F>(&self, f: F) -> GatewayResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> GatewayResult<T> + Send + 'static,
    {
        Ok(self.submit(f, None).await?.0)
    }

    /// Like [`Store::run`], and once `f`'s batch has committed, runs `after` with `f`'s answer
    /// on the writer thread, before the answer is sent. Jobs commit in order, so in-memory
    /// state that `after` changes follows the database in the same order: two handlers that
    /// change one key cannot leave the cache holding the older change. Not run when `f` fails
    /// or the batch does not commit; run when `f` answers `Ok` after undoing its own writes
    /// ([`rollback_job`]), so such an `f` must answer what `after` should see. A panic in
    /// `after` is caught and logged, so it cannot stop the writer.
    pub async fn run_then<T, F, A>(&self, f: F, after: A) -> GatewayResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> GatewayResult<T> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        Ok(self.submit(f, Some(Box::new(after))).await?.0)
    }

    /// Like [`Store::run`], and also returns the seal that signs the trace events of the batch
    /// `f` ran in (`None` when the batch appended none): what a receipt is made from.
    pub async fn run_sealed<T, F>(&self, f: F) -> GatewayResult<(T, Option<Arc<Seal>>)>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> GatewayResult<T> + Send + 'static,
    {
        self.submit(f, None).await
    }

    /// Queues `f` for the writer and waits for its batch; `after` as in [`Store::run_then`].
    async fn submit<T, F>(
        &self,
        f: F,
        after: Option<AfterCommit<T>>,
    ) -> GatewayResult<(T, Option<Arc<Seal>>)>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> GatewayResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<GatewayResult<(T, Option<Arc<Seal>>)>>();
        // The request's ids and caller, for the events the job emits on the writer thread.
        let origin = crate::events::Origin::capture();
        let job: Job = Box::new(move |conn: Option<&Connection>| -> Reply {
            let result = match conn {
                Some(conn) => origin.scope(|| in_savepoint(conn, f)),
                None => Err(GatewayError::internal("the store could not begin a transaction")),
            };
            Box::new(move |committed: bool, seal: Option<&Arc<Seal>>| {
                let answer = match (committed, result) {
                    (true, r) => r.map(|t| {
                        if let Some(after) = after
                            && std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| after(&t))).is_err()
                        {
                            tracing::error!("an after-commit hook panicked; the batch stays committed");
                        }
                        (t, seal.cloned())
                    }),
                    (false, Ok(_)) => Err(GatewayError::internal("the batch transaction did not commit")),
                    (false, Err(e)) => Err(e),
                };
                let _ = tx.send(answer);
            })
        });
        self.jobs.send(job).map_err(|_| GatewayError::internal("the store writer has stopped"))?;
        rx.await.map_err(|_| GatewayError::internal("the store writer dropped a job"))?
    }
}

/// Brings a database to the current schema: every table and index, and the columns added
/// since the first release.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    migrate_trace_columns(conn)?;
    conn.execute_batch(SCHEMA)?;
    for schema in [
        crate::repo::sqlite::ESCROW_SCHEMA,
        crate::repo::sqlite::REGISTRY_SCHEMA,
        crate::repo::sqlite::DELEGATION_SCHEMA,
        crate::events::SCHEMA,
        crate::webhooks::SCHEMA,
    ] {
        conn.execute_batch(schema)?;
    }
    add_columns(conn)?;
    own_root_holds(conn)
}

/// Root-grant holds recorded before they carried an owner get theirs
/// ([`crate::ledger::ROOT_GRANT_HOLD`]), so no API key can settle them through the reservation
/// endpoints. A grant unit names the hold of its root grant.
fn own_root_holds(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE reservations SET owner_key = ?1 WHERE owner_key IS NULL \
         AND id IN (SELECT reservation_id FROM grant_units WHERE reservation_id IS NOT NULL)",
        [crate::ledger::ROOT_GRANT_HOLD],
    )?;
    Ok(())
}

/// Columns added after the first schema, added idempotently on open (`ALTER TABLE ... ADD
/// COLUMN` where `PRAGMA table_info` does not list them yet).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // The principal of an API key: its role (NULL: a key from before roles, an `agent`) and
    // its name.
    ("api_keys", "role", "TEXT"),
    ("api_keys", "principal", "TEXT"),
    // The API key that created a reservation (NULL: made by the gateway itself or before
    // this column existed).
    ("reservations", "owner_key", "TEXT"),
    // The trace event a stored delegation response's receipt is made from (NULL: stored
    // before seals, with its receipt in the text).
    ("delegation_requests", "trace_seq", "INTEGER"),
];

fn add_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, ty) in ADDED_COLUMNS {
        let exists = conn
            .prepare(&format!("PRAGMA table_info({table})"))?
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .any(|c| c == column);
        if !exists {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
        }
    }
    Ok(())
}

/// A store written before the trace was hash-chained: adds the proof columns (its old events
/// stay unsealed, and `GET /v1/chains/{id}` reports such a chain as broken at its first one).
fn migrate_trace_columns(conn: &Connection) -> rusqlite::Result<()> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trace_events')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(());
    }
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('trace_events')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, ty) in [
        ("pos", "INTEGER"),
        ("prev_hash", "TEXT"),
        ("hash", "TEXT"),
        ("key_id", "TEXT"),
        ("signature", "TEXT"),
        ("seal_id", "INTEGER"),
        ("leaf", "INTEGER"),
    ] {
        if !columns.iter().any(|c| c == name) {
            conn.execute_batch(&format!("ALTER TABLE trace_events ADD COLUMN {name} {ty}"))?;
        }
    }
    Ok(())
}

thread_local! {
    /// The trace leaves waiting for the batch's seal when the running job began (`None`
    /// outside a job).
    static JOB_MARK: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    /// Set when a job's savepoint could not be rolled back or released: the batch cannot tell
    /// which writes are whose, so the writer rolls all of it back.
    static POISONED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Undoes every write the running job made so far; the job then returns normally (its
/// answer is sent once the batch commits). For a job that finds, at its last write, that a
/// concurrent twin committed first and answers with the twin's result instead.
pub fn rollback_job(conn: &Connection) -> GatewayResult<()> {
    let mark = JOB_MARK.with(std::cell::Cell::get).ok_or_else(|| GatewayError::internal("rollback_job outside a store job"))?;
    traces::truncate_pending(mark);
    if let Err(e) = conn.prepare_cached("ROLLBACK TO job").and_then(|mut s| s.execute([])) {
        POISONED.with(|p| p.set(true));
        return Err(e.into());
    }
    Ok(())
}

/// Runs `f` as one job: in a savepoint, undone whole if it fails, with [`rollback_job`]
/// available to it.
pub(crate) fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> GatewayResult<T>) -> GatewayResult<T> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    let mark = traces::pending_len();
    JOB_MARK.with(|m| m.set(Some(mark)));
    let result = f(conn);
    JOB_MARK.with(|m| m.set(None));
    if result.is_err() {
        traces::truncate_pending(mark);
        if conn.prepare_cached("ROLLBACK TO job").and_then(|mut s| s.execute([])).is_err() {
            POISONED.with(|p| p.set(true));
        }
    }
    if conn.prepare_cached("RELEASE job").and_then(|mut s| s.execute([])).is_err() {
        POISONED.with(|p| p.set(true));
    }
    result
}

/// The WAL length, in frames (pages), past which the writer starts the WAL over from its
/// beginning: 32,768 frames of 4 KiB, 128 MiB.
///
/// A PASSIVE checkpoint copies the WAL into the database but never resets it, and SQLite
/// restarts a WAL only when no reader still reads from it; with the facts of every delegation
/// read on reader connections, some reader always is. Under sustained load the WAL then grew
/// without bound (to 1.9 GB in 12 s of the load example), every write landing in new blocks
/// of the file. So the writer, between two batches, runs a RESTART checkpoint: it copies what
/// the PASSIVE ones left, waits (the busy handler) until the readers have moved to the
/// database file (reads are short) and makes the next transaction start the WAL over. Run
/// from the checkpointer's connection instead, it starved: the writer took the write lock
/// back between its batches before the checkpoint could, and the WAL still reached 470 MB.
/// The writer waits for the database file's fsync meanwhile, so this runs only this often
/// (at 32 MiB it stalled every 200 ms under load, and the load example's p99 rose by a
/// quarter).
pub const WAL_RESTART_FRAMES: u64 = 32_768;

/// What a reset WAL file is cut back to (`PRAGMA journal_size_limit`), in bytes: the restart
/// length of `restart_frames` 4 KiB frames, so the file's blocks stay allocated for the next
/// round.
fn wal_size_limit(restart_frames: u64) -> u64 {
    restart_frames.saturating_mul(4096)
}

/// Copies the WAL into the database file every 200 ms (PASSIVE: never blocks the writer) and
/// tells the writer how long the WAL is; stops once the store and its writer are gone.
///
/// (Catch-up passes before telling the writer, so its RESTART copies less, cut the restart's
/// stall from 20-30 ms to about 8 ms under the load example, but at `tests/wal.rs`'s write
/// rate they delayed the restart enough that the WAL passed that test's bound: not kept,
/// docs/performance.md.)
fn checkpoints(conn: Connection, alive: std::sync::Weak<Stats>) {
    while let Some(stats) = alive.upgrade() {
        drop(stats);
        thread::sleep(std::time::Duration::from_millis(200));
        // (busy, frames in the WAL, frames copied)
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1)) {
            Ok(frames) => {
                if let Some(stats) = alive.upgrade() {
                    stats.wal_frames.store(u64::try_from(frames).unwrap_or(0), Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "store: checkpoint failed"),
        }
    }
}

/// How long the writer waits for readers to leave the WAL before it gives a restart up until
/// the next checkpoint (a long read, such as a large export, must not hold every write back).
const WAL_RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Starts the WAL over when the checkpointer found it past `restart_frames` (by default
/// [`WAL_RESTART_FRAMES`]); run by the writer between batches. A restart that readers keep
/// from finishing is tried again after the next checkpoint, not at the next batch.
fn restart_wal_if_long(conn: &Connection, stats: &Stats, restart_frames: u64) {
    if stats.wal_frames.load(Ordering::Relaxed) < restart_frames {
        return;
    }
    stats.wal_frames.store(0, Ordering::Relaxed);
    let restart = || -> rusqlite::Result<bool> {
        conn.busy_timeout(WAL_RESTART_WAIT)?;
        // (busy, frames in the WAL, frames copied): busy 1 when a reader held on
        let busy = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| row.get::<_, i64>(0));
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(busy? == 0)
    };
    let started = Instant::now();
    let restarted = restart();
    stats.wal_restart_nanos.fetch_add(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    match restarted {
        Ok(true) => {
            stats.wal_restarts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(false) => tracing::debug!("store: readers kept the WAL from starting over; tried again after the next checkpoint"),
        Err(e) => tracing::warn!(error = %e, "store: WAL restart failed"),
    }
}

fn writer(conn: Connection, queue: mpsc::Receiver<Job>, stats: &Stats, restart_frames: u64) {
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        restart_wal_if_long(&conn, stats, restart_frames);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "store: cannot begin a transaction");
            first(None)(false, None);
            continue;
        }
        let started = Instant::now();
        POISONED.with(|p| p.set(false));
        traces::discard_pending();
        replies.push(first(Some(&conn)));
        while replies.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => replies.push(job(Some(&conn))),
                Err(_) => break,
            }
        }
        let ran = Instant::now();
        // One signature for every trace event of the batch, in the batch's transaction.
        let sealed = if POISONED.with(std::cell::Cell::get) {
            traces::discard_pending();
            Err(GatewayError::internal("a job's savepoint could not be undone or released"))
        } else {
            traces::seal_pending(&conn, now_ms())
        };
        let (committed, seal) = match sealed {
            Ok(seal) => match conn.execute_batch("COMMIT") {
                Ok(()) => (true, seal),
                Err(e) => {
                    tracing::error!(error = %e, "store: commit failed; the batch is rolled back");
                    let _ = conn.execute_batch("ROLLBACK");
                    (false, None)
                }
            },
            Err(e) => {
                tracing::error!(error = %e.message, "store: the batch cannot be sealed; it is rolled back");
                let _ = conn.execute_batch("ROLLBACK");
                (false, None)
            }
        };
        stats.jobs.fetch_add(replies.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.job_nanos.fetch_add(nanos(ran - started), Ordering::Relaxed);
        stats.commit_nanos.fetch_add(nanos(ran.elapsed()), Ordering::Relaxed);
        for reply in replies.drain(..) {
            reply(committed, seal.as_ref());
        }
    }
    // Every handle is gone: checkpoint so the next start opens a compact file.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Reads one optional setting.
pub fn setting(conn: &Connection, name: &str) -> GatewayResult<Option<String>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Writes setting `name` unless it is set already; answers the value it holds afterwards.
pub fn claim_setting(conn: &Connection, name: &str, value: &str) -> GatewayResult<String> {
    conn.prepare_cached("INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING")?.execute([name, value])?;
    setting(conn, name)?.ok_or_else(|| GatewayError::internal(format!("the setting `{name}` was claimed but is not stored")))
}

/// Removes setting `name` if it still holds `value` (a claim undone); answers whether it did.
pub fn unclaim_setting(conn: &Connection, name: &str, value: &str) -> GatewayResult<bool> {
    Ok(conn.prepare_cached("DELETE FROM settings WHERE name = ?1 AND value = ?2")?.execute([name, value])? > 0)
}

/// Writes one setting.
pub fn set_setting(conn: &Connection, name: &str, value: &str) -> GatewayResult<()> {
    conn.prepare_cached("INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value")?
        .execute([name, value])?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A cached statement runs as prepared whatever is bound to it. Without the query planner
    /// stability guarantee SQLite re-prepared a statement whose planner had looked at a bound
    /// value: the key-range read of the action mask, run by every delegation, was prepared
    /// again on every run and cost about an eighth of the gateway's CPU under load.
    #[test]
    fn a_cached_statement_is_not_prepared_again_for_new_bound_values() {
        use crate::ledger::store::LedgerStore;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SyncMode::Normal).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let reads = |c: &Connection| -> GatewayResult<i32> {
            for prefix in ["tenant:t/workspace:a", "tenant:t/workspace:b", "tenant:u", "tenant:t/toolset:x", ""] {
                c.budgets_with_prefix("t", crate::cycles::Unit::Tokens, prefix)?;
            }
            Ok(c.prepare_cached(crate::ledger::sqlite::BUDGETS_WITH_PREFIX_SQL)?.get_status(rusqlite::StatementStatus::RePrepare))
        };
        assert_eq!(store.read(reads).unwrap(), 0, "on a reader connection");
        assert_eq!(runtime.block_on(store.run(reads)).unwrap(), 0, "on the writer's connection");
    }

    /// The restart's contract, step by step and without racing the scheduler: a reader still
    /// in the WAL holds a restart off (the writer gives it up after [`WAL_RESTART_WAIT`]
    /// instead of waiting on), and the first batch after the next checkpoint tries again and
    /// starts the WAL over once the reader has gone. The load
    /// test of the same mechanism is `tests/wal.rs`, in a process of its own.
    #[test]
    fn a_restart_waits_out_readers_and_is_tried_again_after_the_next_checkpoint() {
        const BLOB: i64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SyncMode::Normal).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let write = |blob: i64| runtime.block_on(store.run(move |c| Ok(c.execute("INSERT INTO scratch (body) VALUES (zeroblob(?1))", [blob])?))).unwrap();
        runtime.block_on(store.run(|c| Ok(c.execute_batch("CREATE TABLE scratch (id INTEGER PRIMARY KEY, body BLOB)")?))).unwrap();
        write(0);
        let restarts = || store.stats().wal_restarts.load(Ordering::Relaxed);
        // the next checkpoint has counted at least `frames` (the writer zeroes the count when it tries)
        let counted = |frames: u64| {
            let deadline = Instant::now() + std::time::Duration::from_secs(30);
            while store.stats().wal_frames.load(Ordering::Relaxed) < frames {
                assert!(Instant::now() < deadline, "no checkpoint counted the WAL within 30 s");
                thread::sleep(std::time::Duration::from_millis(20));
            }
        };
        // a reader whose snapshot stays in the WAL until it is rolled back
        let reader = Connection::open(dir.path().join("sbd.sqlite3")).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        reader.query_row("SELECT COUNT(*) FROM scratch", [], |r| r.get::<_, i64>(0)).unwrap();
        let frames_per_blob = (BLOB as u64).div_ceil(4096);
        for _ in 0..WAL_RESTART_FRAMES / frames_per_blob + 2 {
            write(BLOB);
        }
        counted(WAL_RESTART_FRAMES);
        let waited = Instant::now();
        write(0);
        assert!(waited.elapsed() >= WAL_RESTART_WAIT, "the writer tried a restart and waited for the reader");
        assert_eq!(restarts(), 0, "the reader held the restart off");
        reader.execute_batch("ROLLBACK").unwrap();
        counted(WAL_RESTART_FRAMES);
        write(0);
        assert_eq!(restarts(), 1, "the first batch after the next checkpoint started the WAL over");
        write(0);
        let wal = std::fs::metadata(dir.path().join("sbd.sqlite3-wal")).unwrap().len();
        let limit = wal_size_limit(WAL_RESTART_FRAMES);
        assert!(wal <= limit, "the restarted WAL was cut back to {limit} bytes: {wal}");
    }

    /// A store written before root-grant holds had an owner: opening it gives each such hold
    /// the gateway's owner, and leaves a key's reservation and an older ownerless one alone.
    #[test]
    fn opening_a_store_gives_its_root_grant_holds_their_owner() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let reservation = |id: &str, owner: Option<&str>| {
            conn.execute(
                "INSERT INTO reservations (id, tenant_id, status, unit, amount, created_at_ms, expires_at_ms, grace_ms, \
                 overage_policy, scope_path, scopes, budgeted, subject, action, owner_key) \
                 VALUES (?1, 't', 'ACTIVE', 'TOKENS', 5, 0, 1, 0, 'REJECT', 'tenant:t', '[]', '[]', '{}', '{}', ?2)",
                rusqlite::params![id, owner],
            )
            .unwrap();
        };
        reservation("rsv_root", None);
        reservation("rsv_key", Some("key_a"));
        reservation("rsv_old", None);
        conn.execute("INSERT INTO grant_units (grant_id, unit, granted, reservation_id) VALUES ('g', 'TOKENS', 5, 'rsv_root')", [])
            .unwrap();
        migrate(&conn).unwrap();
        let owner = |id: &str| -> Option<String> {
            conn.query_row("SELECT owner_key FROM reservations WHERE id = ?1", [id], |r| r.get(0)).unwrap()
        };
        assert_eq!(owner("rsv_root").as_deref(), Some(crate::ledger::ROOT_GRANT_HOLD));
        assert_eq!(owner("rsv_key").as_deref(), Some("key_a"));
        assert_eq!(owner("rsv_old"), None);
    }

    /// A store from before chain ids were a tenant's own: opening it replaces the global
    /// one-root-per-chain index, so another tenant may root a chain of the same id while a
    /// second root of one tenant's chain is still refused.
    #[test]
    fn opening_a_store_scopes_its_one_root_per_chain_index_to_the_tenant() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn.execute_batch(
            "DROP INDEX grants_one_root_per_tenant_chain; \
             CREATE UNIQUE INDEX grants_one_root_per_chain ON grants (chain_id) WHERE parent_id IS NULL;",
        )
        .unwrap();
        let root = |grant: &str, tenant: &str| {
            conn.execute(
                "INSERT INTO grants (grant_id, tenant_id, chain_id, parent_id, holder, depth, status, expires_at_ms, created_at_ms) \
                 VALUES (?1, ?2, 'c', NULL, 'a', 0, 'ACTIVE', 1, 0)",
                rusqlite::params![grant, tenant],
            )
        };
        root("g1", "t1").unwrap();
        assert!(root("g2", "t2").is_err(), "the former index is global");
        migrate(&conn).unwrap();
        root("g2", "t2").unwrap();
        assert!(root("g3", "t1").is_err(), "one root per chain within a tenant");
    }

    /// `run_then`'s hook runs after a commit, in commit order, before the answer; never for a
    /// failed job.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_commit_hooks_run_in_commit_order_and_only_for_committed_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), SyncMode::Normal).unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
        let mut handles = Vec::new();
        for i in 0..40i64 {
            let (store, seen) = (store.clone(), seen.clone());
            handles.push(tokio::spawn(async move {
                let answer = store
                    .run_then(
                        move |conn| {
                            if i % 10 == 9 {
                                return Err(GatewayError::invalid("refused"));
                            }
                            conn.execute("INSERT INTO settings (name, value) VALUES (?1, 'v')", [format!("k{i}")])?;
                            // the row's position in commit order
                            Ok(conn.query_row("SELECT COUNT(*) FROM settings WHERE name LIKE 'k%'", [], |r| r.get::<_, i64>(0))?)
                        },
                        {
                            let seen = seen.clone();
                            move |position: &i64| seen.lock().unwrap().push(*position)
                        },
                    )
                    .await;
                if let Ok(position) = answer {
                    assert!(seen.lock().unwrap().contains(&position), "the hook ran before the answer");
                }
                answer.is_ok()
            }));
        }
        let mut committed = 0;
        for h in handles {
            committed += usize::from(h.await.unwrap());
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!((committed, seen.len()), (36, 36), "one hook per committed job, none for the 4 refused");
        assert_eq!(seen, (1..=36).collect::<Vec<i64>>(), "hooks ran in commit order");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_batch_cannot_begin_writes_nothing() {
        // Outside a transaction a job's own savepoint would commit on its release: the writer
        // must answer such a job with an error without running it.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SyncMode::Normal).unwrap();
        let other = Connection::open(dir.path().join("sbd.sqlite3")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // The writer's BEGIN IMMEDIATE waits out the busy timeout (5 s), then fails.
        let result = store
            .run(|conn| {
                conn.execute("INSERT INTO settings (name, value) VALUES ('probe', 'written')", [])?;
                Ok(())
            })
            .await;
        assert!(result.is_err(), "a job without a transaction must fail");
        other.execute_batch("ROLLBACK").unwrap();
        let written: i64 = store
            .read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM settings WHERE name = 'probe'", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(written, 0, "nothing of the job may stay");
        // The store still works once the lock is gone.
        store.run(|conn| Ok(conn.execute("INSERT INTO settings (name, value) VALUES ('probe', 'ok')", [])?)).await.unwrap();
    }
}
