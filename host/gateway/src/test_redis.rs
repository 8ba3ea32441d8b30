//! Redis for the tests: a `redis-server`, or a three-node Redis Cluster, of a test's own on
//! loopback, started where this machine has the binaries (`.ci/run` installs them and sets
//! [`REQUIRE_REDIS_VAR`]), shared by every suite that runs its checks on the Redis backend.
//!
//! One source for the library's own tests and the HTTP suites in `tests/` (they include this
//! file as `common::test_redis`): it names the library `sbd_gateway`, the dependency there and
//! the library itself here (`extern crate self as sbd_gateway` in `lib.rs`).

use std::io::Write as _;
use std::process::{Child, Command, Stdio};

/// A Redis of the test's own on loopback, stopped when dropped: one `redis-server` on a free
/// port, or a three-node Redis Cluster. Its keys go under a prefix of its own too, so tests
/// running in parallel never share state.
pub(crate) struct RedisDeployment {
    children: Vec<Child>,
    /// What `RedisLedger::open` takes.
    pub url: String,
    /// The key prefix the test's stores use.
    pub prefix: String,
    /// The cluster's node files.
    _dir: Option<tempfile::TempDir>,
}

/// The variable that turns a missing `redis-server` (or `redis-cli`, for the cluster) from a
/// skip into a failure (`.ci/run` sets it after installing them).
pub(crate) const REQUIRE_REDIS_VAR: &str = "SBD_REQUIRE_REDIS";

/// Stops the servers started so far when a start fails half-way.
struct Started(Vec<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port whose Cluster bus port (+10000) is free too.
fn free_port() -> Result<u16, String> {
    for _ in 0..100 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free pair of loopback ports".into())
}

/// Starts `redis-server` on `port` with `extra` arguments and waits until it answers.
fn start_server(port: u16, extra: &[&str]) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server: {e}"))?;
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    for _ in 0..200 {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Err(format!("redis-server exited at start on port {port}"));
        }
        if client.get_connection().is_ok_and(|mut c| ::redis::cmd("PING").query::<String>(&mut c).is_ok()) {
            return Ok(child);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("redis-server on port {port} did not answer within 5 s"))
}

impl RedisDeployment {
    /// One server, or says why not (no `redis-server` on the PATH).
    pub(crate) fn start() -> Result<RedisDeployment, String> {
        let mut last = String::new();
        // a port found free may be taken by a parallel test's server before ours binds it:
        // then ours exits, and another port is tried
        for _ in 0..5 {
            let port = free_port()?;
            match start_server(port, &[]) {
                Ok(child) => {
                    let url = format!("redis://127.0.0.1:{port}/");
                    let prefix = format!("sbd-test-{port}");
                    return Ok(RedisDeployment { children: vec![child], url, prefix, _dir: None });
                }
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    /// A three-node Redis Cluster (no replicas) made with `redis-cli --cluster create`, or
    /// says why not.
    pub(crate) fn start_cluster() -> Result<RedisDeployment, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut last = String::new();
        'attempt: for _ in 0..5 {
            let mut started = Started(Vec::new());
            let mut nodes = Vec::new();
            for _ in 0..3 {
                let port = free_port()?;
                let config = dir.path().join(format!("nodes-{port}.conf"));
                let config = config.to_string_lossy().into_owned();
                match start_server(port, &["--cluster-enabled", "yes", "--cluster-config-file", &config]) {
                    Ok(child) => started.0.push(child),
                    Err(why) => {
                        last = why;
                        continue 'attempt;
                    }
                }
                nodes.push(format!("127.0.0.1:{port}"));
            }
            let created = Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&nodes)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("cannot run redis-cli: {e}"))?;
            if !created.success() {
                last = format!("redis-cli --cluster create failed: {created}");
                continue;
            }
            // every node must see every slot served before the cluster takes commands
            for node in &nodes {
                let client = ::redis::Client::open(format!("redis://{node}/")).map_err(|e| e.to_string())?;
                let ok = (0..400).any(|_| {
                    let info: String = client.get_connection().and_then(|mut c| ::redis::cmd("CLUSTER").arg("INFO").query(&mut c)).unwrap_or_default();
                    let ok = info.contains("cluster_state:ok");
                    if !ok {
                        std::thread::sleep(std::time::Duration::from_millis(25));
                    }
                    ok
                });
                if !ok {
                    last = format!("the cluster did not reach cluster_state:ok at {node} within 10 s");
                    continue 'attempt;
                }
            }
            let url = format!("{}{}", sbd_gateway::ledger::redis::CLUSTER_SCHEME, nodes.join(","));
            let prefix = format!("sbd-test-{}", nodes.join("-").replace([':', '.'], ""));
            let children = std::mem::take(&mut started.0);
            return Ok(RedisDeployment { children, url, prefix, _dir: Some(dir) });
        }
        Err(last)
    }
}

impl Drop for RedisDeployment {
    fn drop(&mut self) {
        drop(Started(std::mem::take(&mut self.children)));
    }
}

/// The Redis deployments this machine can start: one server and a three-node cluster, each
/// named. One that cannot start is left out after a visible notice, unless
/// [`REQUIRE_REDIS_VAR`] is 1 (then the test fails instead).
#[allow(clippy::panic)] // a test that requires Redis fails here when it cannot have one
pub(crate) fn redis_deployments() -> Vec<(&'static str, RedisDeployment)> {
    let mut out = Vec::new();
    type Start = fn() -> Result<RedisDeployment, String>;
    let starts: [(&'static str, Start); 2] = [("redis", RedisDeployment::start), ("redis-cluster", RedisDeployment::start_cluster)];
    for (name, start) in starts {
        match start() {
            Ok(deployment) => out.push((name, deployment)),
            Err(why) if std::env::var(REQUIRE_REDIS_VAR).is_ok_and(|v| v.trim() == "1") => {
                panic!("{name}: {why}, and {REQUIRE_REDIS_VAR}=1 requires the Redis backend (install redis-server and redis-tools)")
            }
            Err(why) => {
                // Straight to the stderr handle: the harness captures `eprintln!` of a passing test.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: the {name} backend ({why}; install redis-server and redis-tools, or set {REQUIRE_REDIS_VAR}=1 to fail instead)"
                );
            }
        }
    }
    out
}
