//! The SQLite WAL stays bounded under load: writes that never pause and readers that always
//! read. In a process of its own, because the restart it checks waits a bounded time for
//! readers to leave the WAL, and inside the library's test binary the other tests' threads
//! descheduled a reader mid-read for longer than that (the mechanism itself, step by step, is
//! `store::tests::a_restart_waits_out_readers_and_is_tried_again_after_the_next_checkpoint`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use sbd_gateway::store::{Store, SyncMode};

/// With writes that never pause and readers that always read, the WAL is still started
/// over: it stays within a few times the restart length instead of growing with everything
/// written (with PASSIVE checkpoints alone, readers that always read kept it growing).
///
/// The store restarts at 16 MiB here, not at its default 128 MiB. At the default the test
/// had to write 640 MiB in about 2 s, and it failed now and then with the WAL past its bound
/// (one CI run, and once in about 30 local runs); the likely cause is the checkpointer, which
/// learns the WAL's length only after its PASSIVE checkpoint and fsyncs, falling behind on
/// this machine's disk. At 16 MiB the run writes 375 MiB in small checkpoints: the WAL
/// peaked at 79-120 MiB in five runs, against a bound of 281 MiB; with the restart disabled
/// it reaches 448 MiB.
#[test]
fn the_wal_stays_bounded_under_writes_and_reads_that_never_pause() {
    const RESTART_FRAMES: u64 = 4096; // 16 MiB
    const BLOB: i64 = 16 * 1024;
    const WRITES: usize = 24_000; // 375 MiB in all, 23 restart lengths
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_with_wal_restart(dir.path(), SyncMode::Normal, RESTART_FRAMES).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(store.run(|c| Ok(c.execute_batch("CREATE TABLE scratch (id INTEGER PRIMARY KEY, body BLOB)")?))).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let wal_path = dir.path().join("sbd.sqlite3-wal");
    let peak = {
        let (done, wal_path) = (Arc::clone(&done), wal_path.clone());
        thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0));
                thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    // point reads, as the gateway's are (a whole-table count, longer with every write,
    // outlasted the restart's wait under the suite's load and let the WAL reach 480 MiB)
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    store.read(|c| Ok(c.query_row("SELECT MAX(id) FROM scratch", [], |r| r.get::<_, Option<i64>>(0))?)).unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    runtime.block_on(async {
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for _ in 0..WRITES / 4 {
                        store.run(|c| Ok(c.execute("INSERT INTO scratch (body) VALUES (zeroblob(?1))", [BLOB])?)).await.unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    });
    done.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 100, "the readers ran throughout: {reads} reads");
    let wal = std::fs::metadata(&wal_path).expect("the store is open, in WAL mode").len();
    let peak = peak.join().unwrap().max(wal);
    let written = WRITES as u64 * BLOB as u64;
    // a soft bound (about 17 restart lengths): a restart that readers hold off waits for the
    // next checkpoint, and on a busy machine a reader can be descheduled mid-read for longer
    // than the restart waits; without restarts the WAL holds everything written
    assert!(peak < written / 4 * 3, "the WAL peaked at {} MiB of {} MiB written", peak >> 20, written >> 20);
    // the bound above already needs a restart (without one the WAL holds everything written);
    // how many fit in the run depends on how often the checkpointer got the CPU (a CI run
    // under load fitted one), so only that one is asserted: the retry itself is pinned step by
    // step in `store::tests`
    let restarts = store.stats().wal_restarts.load(Ordering::Relaxed);
    assert!(restarts >= 1, "the WAL started over {restarts} times");
}
