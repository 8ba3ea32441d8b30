//! End-to-end tests of the `sbd` binary: the demo, eval, replay, info and reasons commands, and
//! how bad input is reported (non-zero status, nothing on stdout, one `error: ` line on stderr).
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sbd_e2e::{ScratchDir, allowed_request};
use serde_json::Value;

fn sbd<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_sbd")).args(args).output().expect("run sbd")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// Runs `sbd args` and expects success, returning stdout.
fn succeed<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = sbd(args);
    assert!(output.status.success(), "status {:?}, stderr:\n{}", output.status, stderr(&output));
    stdout(&output)
}

/// Runs a decision (`sbd eval`) and expects exit status `status` (0 allow, 3 escalate, 4 deny).
fn decide<I, S>(args: I, status: i32) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = sbd(args);
    assert_eq!(output.status.code(), Some(status), "stderr:\n{}", stderr(&output));
    stdout(&output)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo_scenario() -> PathBuf {
    workspace_root().join("policies/scenarios/demo.json")
}

/// Asserts that `needles` occur in `haystack` in this order.
fn assert_in_order(haystack: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        match haystack[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("`{needle}` missing (or out of order) after byte {from} of:\n{haystack}"),
        }
    }
}

/// Asserts the bad-input contract: failure status, empty stdout, exactly one `error: ` line on
/// stderr mentioning every one of `mentions`.
fn assert_one_line_error(output: &Output, mentions: &[&str]) {
    let (out, err) = (stdout(output), stderr(output));
    assert!(!output.status.success(), "succeeded; stdout:\n{out}");
    assert_eq!(output.status.code(), Some(1), "stderr:\n{err}");
    assert_eq!(out, "", "stdout should be empty");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr, got {}:\n{err}", lines.len());
    assert!(lines[0].starts_with("error: "), "{err}");
    for mention in mentions {
        assert!(lines[0].contains(mention), "stderr does not mention `{mention}`:\n{err}");
    }
}

fn request_json(request: &sbd_policy::Request) -> String {
    serde_json::to_string_pretty(request).expect("request serializes")
}

#[test]
fn demo_shows_every_verdict_and_the_trace() {
    let out = succeed(["demo"]);
    assert_in_order(
        &out,
        &[
            "hop 1  orchestrator -> refund-agent",
            "ALLOW    to `refund-agent`",
            "hop 3  ledger-agent -> orchestrator",
            "DENY     delegation-cycle (1002)",
            "hop 4  ledger-agent -> fx-agent",
            "DENY     budget-widened (2001)",
            "hop 5  ledger-agent -> fx-agent",
            "ALLOW    to `fx-agent`",
            "WARNING depth-warning (1101)",
            "hop 6  fx-agent -> audit-agent",
            "ESCALATE to human `risk-officer`: depth-limit-escalation (5001)",
            "hop 7  refund-agent -> intern-bot",
            "ESCALATE to agent `supervisor-bot`: trust-escalation (5003)",
            "hop 8  refund-agent -> audit-agent",
            "ESCALATE to human `risk-officer`: low-alpha-review (5002)",
            "delegation trace (AG-396 4.6):",
            "deny delegation-cycle",
            "deny budget-widened",
            "escalate depth-limit-escalation",
            "escalate trust-escalation",
            "escalate low-alpha-review",
        ],
    );
    assert_eq!(out.matches("ALLOW ").count(), 3, "{out}");
    assert_eq!(out.matches("DENY ").count(), 2, "{out}");
    assert_eq!(out.matches("ESCALATE ").count(), 3, "{out}");
    assert!(out.contains("policy `default` 0.1.0"), "{out}");
}

#[test]
fn demo_json_is_a_trace_of_eight_events() {
    let trace = json(&succeed(["demo", "--json"]));
    let events = trace.as_array().expect("the trace is an array");
    assert_eq!(events.len(), 8);
    let mut kinds = Vec::new();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["hop"], i + 1);
        let verdict = event["verdict"].as_object().expect("verdict is an object");
        let keys: Vec<&str> = verdict.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 1, "hop {}: {keys:?}", i + 1);
        assert!(["allow", "escalate", "deny"].contains(&keys[0]), "hop {}: {keys:?}", i + 1);
        kinds.push(keys[0].to_string());
    }
    assert_eq!(kinds, ["allow", "allow", "deny", "deny", "allow", "escalate", "escalate", "escalate"]);
    assert_eq!(events[2]["verdict"]["deny"]["code"], 1002);
    assert_eq!(events[2]["verdict"]["deny"]["reason"], "delegation-cycle");
    assert_eq!(events[6]["verdict"]["escalate"]["target"]["agent"], "supervisor-bot");
    assert_eq!(events[5]["verdict"]["escalate"]["target"]["human"], "risk-officer");
}

#[test]
fn eval_decides_one_request_and_a_batch() {
    let scratch = ScratchDir::new("eval");
    let one = scratch.write("one.json", &request_json(&allowed_request()));
    let verdict = json(&succeed([Path::new("eval"), Path::new("--request"), &one]));
    let allow = verdict.get("allow").unwrap_or_else(|| panic!("not an allow: {verdict}"));
    assert_eq!(verdict.as_object().map(|o| o.len()), Some(1));
    assert_eq!(allow["sub_agent"], "fx-agent");
    assert_eq!(allow["depth"], 3);

    let mut cycle = allowed_request();
    cycle.to.id = "orchestrator".into();
    let batch = serde_json::to_string(&vec![allowed_request(), cycle]).expect("serializes");
    let two = scratch.write("two.json", &batch);
    let verdicts = json(&decide([Path::new("eval"), Path::new("-r"), &two], 4));
    let verdicts = verdicts.as_array().expect("a batch answers with an array");
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts[0].get("allow").is_some(), "{}", verdicts[0]);
    assert_eq!(verdicts[1]["deny"]["reason"], "delegation-cycle", "{}", verdicts[1]);
}

#[test]
fn eval_policy_option_switches_trust_escalation_to_denial() {
    let scratch = ScratchDir::new("eval-policy");
    let mut weak = allowed_request();
    weak.to.trust = 100; // T0, below the T1 a low-risk task requires
    let request = scratch.write("weak.json", &request_json(&weak));

    let default = json(&decide([Path::new("eval"), Path::new("--request"), &request], 3));
    assert_eq!(default["escalate"]["reason"], "trust-escalation", "{default}");
    assert_eq!(default["escalate"]["code"], 5003);

    let policy = scratch.write(
        "deny.toml",
        "name = \"strict-trust\"\nversion = \"1\"\n\n[trust]\non_insufficient = \"deny\"\n",
    );
    let denied =
        json(&decide([Path::new("eval"), Path::new("--policy"), &policy, Path::new("--request"), &request], 4));
    assert_eq!(denied["deny"]["reason"], "trust-insufficient", "{denied}");
    assert_eq!(denied["deny"]["code"], 3001);

    // The same policy still allows the request whose executor is trusted enough.
    let fine = scratch.write("fine.json", &request_json(&allowed_request()));
    let allowed = json(&succeed([Path::new("eval"), Path::new("-p"), &policy, Path::new("-r"), &fine]));
    assert!(allowed.get("allow").is_some(), "{allowed}");
}

#[test]
fn replay_of_the_demo_scenario_matches_demo() {
    let scenario = demo_scenario();
    // The demo runs on the current clock; one fixed instant makes two runs comparable.
    let now = Path::new("1800000000000");
    let demo = succeed([Path::new("demo"), Path::new("--now"), now]);
    let replayed = succeed([Path::new("replay"), Path::new("--scenario"), &scenario, Path::new("--now"), now]);
    assert_eq!(replayed, demo);
    let demo_json = json(&succeed([Path::new("demo"), Path::new("--json"), Path::new("--now"), now]));
    let replayed_json = json(&succeed([
        Path::new("replay"),
        Path::new("-s"),
        &scenario,
        Path::new("--json"),
        Path::new("--now"),
        now,
    ]));
    assert_eq!(replayed_json, demo_json);
}

#[test]
fn the_demo_runs_on_the_current_clock() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let trace = json(&succeed(["demo", "--json"]));
    let first = u128::from(trace[0]["at"].as_u64().expect("at"));
    // Hop 1 is one second after the scenario's start, which is the moment of the run.
    assert!(first >= before + 1000 && first < before + 600_000, "hop 1 at {first}, run at {before}");
    let expires = u128::from(trace[0]["request"]["parent_mandate"]["expires_at"].as_u64().expect("expires_at"));
    assert!(expires > first, "the demo's mandate has already expired");
}

#[test]
fn info_names_the_default_policy_and_component() {
    let info = json(&succeed(["info"]));
    assert_eq!(info["policy"]["name"], "default");
    assert_eq!(info["policy"]["version"], "0.1.0");
    let component = info["component_sha256"].as_str().expect("component_sha256 is a string");
    assert_eq!(component.len(), 64);
    assert!(component.bytes().all(|b| b.is_ascii_hexdigit()), "{component}");
    let config = info["policy"]["config_digest"].as_str().expect("config_digest is a string");
    assert_eq!(config.len(), 64);
    assert_ne!(config, component);
}

#[test]
fn reasons_lists_every_code() {
    let out = succeed(["reasons"]);
    let line_of = |code: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(code))
            .unwrap_or_else(|| panic!("no line for {code}:\n{out}"))
    };
    assert!(line_of("1002").contains("delegation-cycle"));
    assert!(line_of("9001").contains("policy-fault"));
    assert!(line_of("5003").contains("trust-escalation"));
    // A header plus one line per reason.
    assert_eq!(out.lines().count(), sbd_policy::Reason::ALL.len() + 1);
}

#[test]
fn a_missing_request_file_is_one_error_line() {
    let scratch = ScratchDir::new("missing");
    let missing = scratch.path().join("no-such-request.json");
    let output = sbd([Path::new("eval"), Path::new("--request"), &missing]);
    assert_one_line_error(&output, &["no-such-request.json"]);
}

#[test]
fn a_request_file_that_is_not_json_is_one_error_line() {
    let scratch = ScratchDir::new("not-json");
    let path = scratch.write("garbage.json", "this is { not json\n");
    let output = sbd([Path::new("eval"), Path::new("--request"), &path]);
    assert_one_line_error(&output, &["garbage.json", "not JSON"]);
}

#[test]
fn json_that_is_not_a_request_is_one_error_line() {
    let scratch = ScratchDir::new("not-request");
    let path = scratch.write("wrong.json", "{\"hello\": \"world\"}\n");
    let output = sbd([Path::new("eval"), Path::new("--request"), &path]);
    assert_one_line_error(&output, &["wrong.json", "not a delegation request", "from"]);
}

#[test]
fn a_policy_with_an_unknown_field_is_one_error_line() {
    let scratch = ScratchDir::new("unknown-field");
    let request = scratch.write("one.json", &request_json(&allowed_request()));
    let policy = scratch.write("typo.toml", "name = \"p\"\nversion = \"1\"\nmax_depht = 3\n");
    let output = sbd([Path::new("eval"), Path::new("--policy"), &policy, Path::new("--request"), &request]);
    assert_one_line_error(&output, &["typo.toml", "max_depht"]);
}

#[test]
fn a_policy_with_max_depth_zero_is_one_error_line() {
    let scratch = ScratchDir::new("max-depth-zero");
    let request = scratch.write("one.json", &request_json(&allowed_request()));
    let policy = scratch.write("shallow.toml", "name = \"p\"\nversion = \"1\"\n\n[depth]\nmax_depth = 0\n");
    let output = sbd([Path::new("eval"), Path::new("--policy"), &policy, Path::new("--request"), &request]);
    assert_one_line_error(&output, &["shallow.toml", "depth.max_depth"]);
}

#[test]
fn a_scenario_hop_from_an_agent_without_a_mandate_is_one_error_line() {
    let scratch = ScratchDir::new("no-mandate");
    let text = std::fs::read_to_string(demo_scenario()).expect("demo scenario readable");
    let mut scenario = json(&text);
    let hops = scenario["hops"].as_array_mut().expect("hops");
    // Hop 2 now comes from the ledger agent, which never received a mandate.
    hops.truncate(2);
    hops[1]["from"] = "ledger-agent".into();
    hops[1]["to"] = "fx-agent".into();
    let path = scratch.write("orphan.json", &scenario.to_string());
    let output = sbd([Path::new("replay"), Path::new("--scenario"), &path]);
    assert_one_line_error(&output, &["hop 2", "ledger-agent", "holds no mandate"]);
}

#[test]
fn help_lists_the_subcommands_and_options() {
    let help = succeed(["--help"]);
    for command in ["demo", "eval", "replay", "info", "reasons"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(command)), "no `{command}` in:\n{help}");
    }
    let eval = succeed(["eval", "--help"]);
    for option in ["--request", "--policy", "--component", "--cache-dir"] {
        assert!(eval.contains(option), "no `{option}` in:\n{eval}");
    }
}

// ---- conventions (issue 17): stdin, formats, exit statuses, pipes, colour, check, test ----

/// Runs `sbd args` with `input` on stdin.
fn sbd_with_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sbd"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sbd");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("sbd output")
}

#[test]
fn a_dash_reads_the_request_from_stdin() {
    let output = sbd_with_stdin(&["eval", "--request", "-"], &request_json(&allowed_request()));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(json(&stdout(&output)).get("allow").is_some());
    let output = sbd_with_stdin(&["eval", "-r", "-"], "{\"frmo\": 1}");
    assert_one_line_error(&output, &["standard input", "unknown field `frmo`"]);
}

#[test]
fn the_exit_status_reflects_the_verdict_and_text_format_renders_it() {
    let scratch = ScratchDir::new("exit-status");
    let mut cycle = allowed_request();
    cycle.to.id = "orchestrator".into();
    let mut weak = allowed_request();
    weak.to.trust = 100;
    for (name, requests, status, text) in [
        ("allow.json", vec![allowed_request()], 0, "ALLOW"),
        ("escalate.json", vec![weak.clone()], 3, "ESCALATE"),
        ("deny.json", vec![cycle.clone()], 4, "DENY"),
        ("batch.json", vec![allowed_request(), cycle, weak], 4, "request 3:"),
    ] {
        let body = if requests.len() == 1 {
            request_json(&requests[0])
        } else {
            serde_json::to_string(&requests).expect("json")
        };
        let path = scratch.write(name, &body);
        let output = sbd([Path::new("eval"), Path::new("-r"), &path]);
        assert_eq!(output.status.code(), Some(status), "{name}: {}", stderr(&output));
        let output = sbd([Path::new("eval"), Path::new("-r"), &path, Path::new("--format"), Path::new("text")]);
        assert_eq!(output.status.code(), Some(status), "{name}");
        assert!(stdout(&output).contains(text), "{name}: {}", stdout(&output));
    }
}

#[test]
fn a_request_without_the_state_the_policy_reads_is_denied_as_state_invalid() {
    let scratch = ScratchDir::new("no-state");
    let mut request = allowed_request();
    request.state.clear();
    let path = scratch.write("no-state.json", &request_json(&request));
    let output = sbd([Path::new("eval"), Path::new("-r"), &path]);
    assert_eq!(output.status.code(), Some(4));
    let verdict = json(&stdout(&output));
    assert_eq!(verdict["deny"]["reason"], "state-invalid", "{verdict}");
    let message = verdict["deny"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("has 0 features") && message.contains("at least 1"), "{message}");
}

#[test]
fn bad_request_values_are_reported_with_their_json_path() {
    let scratch = ScratchDir::new("json-path");
    let mut value: Value = serde_json::to_value(allowed_request()).expect("json");
    value["task"]["risk"] = "hgh".into();
    let path = scratch.write("risk.json", &value.to_string());
    let output = sbd([Path::new("eval"), Path::new("-r"), &path]);
    assert_one_line_error(&output, &["$.task.risk", "unknown variant `hgh`", "`critical`"]);
    let mut value: Value = serde_json::to_value(allowed_request()).expect("json");
    value["task"]["completable_localy"] = false.into();
    let path = scratch.write("typo.json", &value.to_string());
    let output = sbd([Path::new("eval"), Path::new("-r"), &path]);
    assert_one_line_error(&output, &["$.task", "unknown field `completable_localy`"]);
}

#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    let scratch = ScratchDir::new("closed-pipe");
    // Far more than a pipe buffer (64 KiB), so the writer certainly meets the closed pipe.
    let batch = serde_json::to_string(&vec![allowed_request(); 400]).expect("json");
    let path = scratch.write("batch.json", &batch);
    for args in [vec!["eval", "-r", path.to_str().expect("utf-8")], vec!["reasons"], vec!["demo", "--json"]] {
        let output = Command::new("bash")
            .arg("-c")
            .arg(r#""$0" "$@" | head -c 10 >/dev/null; exit "${PIPESTATUS[0]}""#)
            .arg(env!("CARGO_BIN_EXE_sbd"))
            .args(&args)
            .output()
            .expect("bash");
        let err = stderr(&output);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn every_result_command_has_json_and_text_formats() {
    let reasons = json(&succeed(["reasons", "--format", "json"]));
    assert_eq!(reasons.as_array().map(Vec::len), Some(sbd_policy::Reason::ALL.len()));
    assert_eq!(reasons[0]["code"].as_u64().map(|c| c > 0), Some(true));
    let info = succeed(["info", "--format", "text"]);
    assert!(info.contains("policy") && info.contains("default 0.1.0"), "{info}");
    let demo = json(&succeed(["demo", "--format", "json", "--now", "1800000000000"]));
    assert_eq!(demo.as_array().map(Vec::len), Some(8));
    assert!(sbd(["demo", "--json", "--format", "text"]).status.code() == Some(2), "conflicting flags are a usage error");
}

#[test]
fn check_validates_each_kind_of_file_and_fails_with_status_5() {
    let scratch = ScratchDir::new("check");
    let root = workspace_root();
    let good = [root.join("policies/default.toml"), demo_scenario(), root.join("policies/canary/default.json")];
    let request = scratch.write("request.json", &request_json(&allowed_request()));
    let mut args: Vec<PathBuf> = vec![PathBuf::from("check")];
    args.extend(good.iter().cloned());
    args.push(request.clone());
    let out = succeed(&args);
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), 4, "{out}");
    for (kind, line) in ["policy", "scenario", "canary", "request"].iter().zip(out.lines()) {
        assert!(line.contains(kind), "{line}");
    }
    let bad_policy = scratch.write("bad.toml", "name = \"p\"\nversion = \"1\"\n[depth]\nmax_depht = 3\n");
    let bad_scenario = scratch.write("bad.json", "{\"hops\": [], \"name\": 1}");
    let output = sbd([Path::new("check"), &bad_policy, &bad_scenario, &request]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("FAIL policy") && out.contains("max_depht"), "{out}");
    assert!(out.contains("FAIL scenario"), "{out}");
    assert!(out.contains("ok   request"), "{out}");
    let checked = json(&stdout(&sbd([Path::new("check"), Path::new("--format"), Path::new("json"), &bad_policy])));
    assert_eq!(checked[0]["ok"], false);
}

#[test]
fn test_runs_a_scenarios_expectations_as_assertions() {
    let out = succeed([Path::new("test"), &demo_scenario()]);
    assert!(out.contains("8 passed, 0 failed"), "{out}");
    assert_eq!(out.matches("PASS ").count(), 8, "{out}");

    let scratch = ScratchDir::new("test-fail");
    let mut scenario = json(&std::fs::read_to_string(demo_scenario()).expect("demo"));
    scenario["hops"][2]["expect"] = serde_json::json!({"decision": "allow"});
    let path = scratch.write("wrong.json", &scenario.to_string());
    let output = sbd([Path::new("test"), &path, Path::new("--quiet")]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("FAIL") && out.contains("hop 3: expected allow, got deny delegation-cycle"), "{out}");
    assert!(out.contains("7 passed, 1 failed") && !out.contains("PASS"), "{out}");

    let mut bare = json(&std::fs::read_to_string(demo_scenario()).expect("demo"));
    for hop in bare["hops"].as_array_mut().expect("hops") {
        hop.as_object_mut().expect("hop").remove("expect");
    }
    let path = scratch.write("bare.json", &bare.to_string());
    assert_one_line_error(&sbd([Path::new("test"), &path]), &["no `expect` entries"]);
}

/// Risk-tightened authority (`sbd.risk_bands`): `sbd demo risk-depth` replays the stress
/// scenario on its policy, and `sbd test` passes it on that policy but not on the default one,
/// which has no bands.
#[test]
fn the_risk_depth_demo_shortens_the_chain_under_stress() {
    let now = Path::new("1800000000000");
    let out = succeed([Path::new("demo"), Path::new("risk-depth"), Path::new("--now"), now]);
    assert_in_order(
        &out,
        &[
            "policy `risk-depth` 0.1.0",
            "hop 3  pricing-agent -> fx-agent",
            "ALLOW    to `fx-agent`",
            "hop 4  pricing-agent -> fx-agent",
            "ESCALATE to human `risk-officer`: risk-depth-escalation (5004)",
            "hop 5  pricing-agent -> fx-agent",
            "ALLOW    to `fx-agent`",
            "WARNING depth-warning (1101)",
            "hop 6  fx-agent -> hedge-agent",
            "DENY     delegator-terminal (1004)",
            "hop 7  orchestrator -> audit-agent",
            "ESCALATE to human `risk-officer`: low-alpha-review (5002)",
        ],
    );
    let policy = workspace_root().join("policies/risk-depth.toml");
    let scenario = workspace_root().join("policies/scenarios/risk-depth.json");
    let replayed =
        succeed([Path::new("replay"), Path::new("-p"), &policy, Path::new("-s"), &scenario, Path::new("--now"), now]);
    assert_eq!(replayed, out);

    let passed = succeed([Path::new("test"), Path::new("-p"), &policy, &scenario]);
    assert!(passed.contains("7 passed, 0 failed"), "{passed}");
    // The same policy without its bands allows the stressed hop 3 and the stressed hop 1, and
    // grants the elevated hop 3 the untightened limit (no warning, depth left for hop 6): only
    // the three calm hops still pass.
    let text = std::fs::read_to_string(&policy).expect("policies/risk-depth.toml");
    let unbanded = text.split("[[sbd.risk_bands]]").next().expect("the text before the bands");
    assert!(unbanded.len() < text.len(), "policies/risk-depth.toml lists risk bands");
    let scratch = ScratchDir::new("risk-depth-unbanded");
    let unbanded = scratch.write("unbanded.toml", unbanded);
    let output = sbd([Path::new("test"), Path::new("-p"), &unbanded, &scenario, Path::new("--quiet")]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let failed = stdout(&output);
    assert!(failed.contains("hop 4: expected escalate risk-depth-escalation, got allow"), "{failed}");
    assert!(failed.contains("hop 7: expected escalate low-alpha-review, got allow"), "{failed}");
    assert!(failed.contains("3 passed, 4 failed"), "{failed}");
}

#[test]
fn schema_prints_the_committed_files_and_completions_are_generated() {
    let request = succeed(["schema", "request"]);
    let committed = std::fs::read_to_string(workspace_root().join("schema/request.schema.json")).expect("schema");
    assert_eq!(request, committed);
    let bash = succeed(["completions", "bash"]);
    assert!(bash.contains("_sbd()") && bash.contains("eval"), "{bash}");
}

#[test]
fn serve_reports_a_taken_port_once_and_logs_without_colour_when_redirected() {
    use std::io::{BufRead, BufReader};
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let scratch = ScratchDir::new("serve");
    let data = scratch.path().join("data");
    let output = sbd([Path::new("serve"), Path::new("--addr"), Path::new(&addr), Path::new("--data-dir"), &data]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(&addr), "{err}");
    assert_eq!(err.matches("in use").count(), 1, "the cause is printed twice: {err}");
    assert!(!err.contains('\u{1b}'), "ANSI escapes in redirected output: {err:?}");
    drop(taken);

    // A running server's log lines, redirected: no colour (with and without NO_COLOR).
    let mut child = Command::new(env!("CARGO_BIN_EXE_sbd"))
        .args([Path::new("serve"), Path::new("--addr"), Path::new("127.0.0.1:0"), Path::new("--data-dir"), &data])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sbd serve");
    let mut lines = Vec::new();
    let reader = BufReader::new(child.stderr.take().expect("stderr"));
    for line in reader.lines() {
        let line = line.expect("stderr line");
        let done = line.starts_with("sbd: listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = lines.join("\n");
    assert!(log.contains("sbd gateway listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a redirected log: {log:?}");
}
