//! `sbd train` and `sbd theory` end to end at small sizes, and the trained policy they write
//! used by `sbd eval`.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use std::process::{Command, Output};

use sbd_e2e::{ScratchDir, allowed_request};
use serde_json::Value;

fn sbd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sbd")).args(args).output().expect("run sbd")
}

fn succeed(args: &[&str]) -> String {
    let output = sbd(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "status {:?}, stderr:\n{stderr}", output.status);
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

fn fail(args: &[&str]) -> String {
    let output = sbd(args);
    assert!(!output.status.success(), "`sbd {}` should fail", args.join(" "));
    assert!(output.stdout.is_empty(), "a failure printed to stdout");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "not one error line: {stderr}"
    );
    stderr
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const SMALL: &[&str] = &[
    "train",
    "--domain",
    "finance",
    "--outer-steps",
    "3",
    "--inner-steps",
    "3",
    "--batch",
    "32",
    "--width",
    "16",
    "--quiet",
];

#[test]
fn train_writes_log_plot_weights_policy_and_summary_and_the_policy_decides() {
    let dir = ScratchDir::new("train-finance");
    let out = dir.path().join("run");
    let out_str = out.to_str().expect("utf-8 path");
    let mut args = SMALL.to_vec();
    args.extend(["--out", out_str]);
    let output = sbd(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "status {:?}, stderr:\n{stderr}", output.status);
    // Nothing of sbd's own (a Vulkan driver probed for `--backend auto` may print its own).
    assert!(
        !stderr.contains("backend:") && !stderr.contains("training SBD") && !stderr.contains("outer steps"),
        "--quiet printed the banner: {stderr}"
    );
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    assert!(stdout.contains("Safety Rate") && stdout.contains("Cohen's d"), "{stdout}");

    let log = std::fs::read_to_string(out.join("log.jsonl")).expect("log");
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 3);
    for key in ["l_meta", "l_safety", "l_eff", "safety_rate", "mean_lambda", "mean_alpha"] {
        assert!(lines.iter().all(|l| l[key].is_number()), "log lacks {key}");
    }
    let png = std::fs::read(out.join("loss.png")).expect("plot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "loss.png is not a PNG");
    let summary = read_json(&out.join("summary.json"));
    let sr = summary["test"]["sbd"]["safety_rate"].as_f64().expect("safety rate");
    assert!((0.0..=1.0).contains(&sr));
    assert_eq!(summary["config"]["width"], 16);

    // the written policy loads its weights and grants carry the learned choices
    let mut request = allowed_request();
    request.state = vec![0.0; 64];
    request.state[..7].copy_from_slice(&[0.01, 0.05, 0.25, 0.08, 0.1, 0.9, 0.18]);
    let request_path = dir.write("request.json", &serde_json::to_string(&request).expect("JSON"));
    let verdict: Value = serde_json::from_str(&succeed(&[
        "eval",
        "--policy",
        out.join("policy.toml").to_str().expect("utf-8"),
        "--request",
        request_path.to_str().expect("utf-8"),
    ]))
    .expect("verdict JSON");
    let grant = &verdict["allow"];
    let sub_agent = grant["sub_agent"].as_str().expect("an allow with a sub-agent");
    assert!(["momentum", "mean-reversion", "risk-parity"].contains(&sub_agent), "{sub_agent}");
    let lambda = grant["lambda"].as_f64().expect("lambda");
    assert!(lambda > 0.0 && lambda < 1.0);
}

#[test]
fn theory_quick_reports_all_three_validations() {
    let dir = ScratchDir::new("theory-finance");
    let out = dir.path().join("theory");
    let stdout = succeed(&[
        "theory",
        "--domain",
        "finance",
        "--quick",
        "--quiet",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    for needle in ["Theorem 4.4", "Theorem 4.6", "Proposition 4.8", "Spearman"] {
        assert!(stdout.contains(needle), "missing {needle}:\n{stdout}");
    }
    let report = read_json(&out.join("theory.json"));
    assert_eq!(report["monotonicity"]["safety_rates"].as_array().map(Vec::len), Some(5));
    assert_eq!(report["convergence"]["distances"].as_array().map(Vec::len), Some(51));
    for length in report["accountability"]["per_length"].as_array().expect("per length") {
        assert_eq!(length["violations"], 0);
        assert_eq!(length["chains"], 1000);
    }
    for plot in ["convergence.png", "monotonicity.png", "theory.md"] {
        assert!(out.join(plot).is_file(), "{plot} missing");
    }
}

#[test]
fn bad_training_input_is_one_clear_error() {
    let dir = ScratchDir::new("train-errors");
    let out = dir.path().join("run");
    let out_str = out.to_str().expect("utf-8");

    let mut args = SMALL.to_vec();
    args.extend(["--out", out_str, "--delta", "2"]);
    assert!(fail(&args).contains("invalid training configuration"));

    let mut args = SMALL.to_vec();
    args.extend(["--out", out_str, "--data", "/nonexistent-sbd-data"]);
    assert!(fail(&args).contains("sp500_constituents_daily.csv.gz"));

    std::fs::create_dir_all(dir.path().join("garbled")).expect("mkdir");
    std::fs::write(dir.path().join("garbled/sp500_constituents_daily.csv.gz"), b"not gzip").expect("write");
    std::fs::write(dir.path().join("garbled/sp500_index_daily.csv.gz"), b"not gzip").expect("write");
    let garbled = dir.path().join("garbled");
    let mut args = SMALL.to_vec();
    args.extend(["--out", out_str, "--data", garbled.to_str().expect("utf-8")]);
    assert!(fail(&args).contains("sp500_constituents_daily.csv.gz"));

    let request = dir.write("request.json", &serde_json::to_string(&allowed_request()).expect("JSON"));
    let missing =
        dir.write("missing.toml", "name = \"m\"\nversion = \"1\"\n[sbd]\nmodel_file = \"nope.postcard\"\n");
    let error = fail(&[
        "eval",
        "--policy",
        missing.to_str().expect("utf-8"),
        "--request",
        request.to_str().expect("utf-8"),
    ]);
    assert!(error.contains("nope.postcard"), "{error}");
    dir.write("garbage.postcard", "definitely not postcard weights");
    let garbage = dir
        .write("garbage.toml", "name = \"g\"\nversion = \"1\"\n[sbd]\nmodel_file = \"garbage.postcard\"\n");
    let error = fail(&[
        "eval",
        "--policy",
        garbage.to_str().expect("utf-8"),
        "--request",
        request.to_str().expect("utf-8"),
    ]);
    assert!(error.contains("not a trained SBD model"), "{error}");
}

#[test]
fn the_committed_finance_policy_replays_with_learned_choices() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/finance");
    let out = succeed(&[
        "replay",
        "--json",
        "--policy",
        root.join("policy.toml").to_str().expect("utf-8"),
        "--scenario",
        root.join("scenario.json").to_str().expect("utf-8"),
    ]);
    let trace: Value = serde_json::from_str(&out).expect("trace JSON");
    let grants: Vec<&Value> =
        trace.as_array().expect("array").iter().map(|event| &event["verdict"]["allow"]).collect();
    assert_eq!(grants.len(), 3);
    let lambda = |i: usize| grants[i]["lambda"].as_f64().expect("an allow with lambda");
    for grant in &grants {
        let agent = grant["sub_agent"].as_str().expect("sub-agent");
        assert!(["momentum", "mean-reversion", "risk-parity"].contains(&agent), "{agent}");
    }
    // the trained meta-weight network raises lambda in the COVID crash over calm 2018
    assert!(lambda(1) > lambda(0), "COVID lambda {} <= calm lambda {}", lambda(1), lambda(0));
}

#[test]
fn the_backend_flag_names_what_runs_and_both_backends_train() {
    let dir = ScratchDir::new("train-backends");
    // "" is no flag at all: the default is auto
    for (backend, expected) in [
        ("cpu", "backend: cpu (chosen)"),
        ("gpu", "backend: gpu on Vulkan"),
        ("auto", "(auto: "),
        ("", "(auto: "),
    ] {
        if backend == "gpu" && !sbd_train_gpu::testing::gpu_or_skip("sbd train --backend gpu") {
            continue;
        }
        let out = dir.path().join(if backend.is_empty() { "default" } else { backend });
        // Without --quiet: the backend line is part of the banner --quiet silences.
        let mut args: Vec<&str> = SMALL.iter().copied().filter(|a| *a != "--quiet").collect();
        if !backend.is_empty() {
            args.extend(["--backend", backend]);
        }
        args.extend(["--out", out.to_str().expect("utf-8")]);
        let output = sbd(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "--backend {backend}: {stderr}");
        assert!(stderr.contains(expected), "--backend {backend} did not say what runs: {stderr}");
        assert!(out.join("model.postcard").is_file());
    }
    let error = fail(&["theory", "--domain", "finance", "--quick", "--backend", "gpu"]);
    assert!(error.contains("CPU trainer"), "{error}");
}

#[test]
fn experiment_quick_writes_the_report_with_every_verdict() {
    let scratch = ScratchDir::new("experiment-quick");
    let out = scratch.path().join("report");
    let out_arg = out.to_string_lossy().to_string();
    let stdout = succeed(&["experiment", "--domain", "education", "--quick", "--seeds", "1", "--out", &out_arg, "--quiet"]);
    assert!(stdout.contains("H-Edu-1") && stdout.contains("H-Edu-2") && stdout.contains("F4"), "{stdout}");
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(report.contains("SYNTHETIC"), "the education data is labelled synthetic");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["domains"][0]["name"], "education");
    for plot in ["pareto-education.png", "alpha-at-risk.png", "convergence.png"] {
        let bytes = std::fs::read(out.join(plot)).expect(plot);
        assert!(bytes.starts_with(b"\x89PNG"), "{plot} is not a PNG");
    }
}

#[test]
fn experiment_under_the_uncapped_reading_says_so_and_records_it() {
    let scratch = ScratchDir::new("experiment-uncapped");
    let out = scratch.path().join("report");
    let out_arg = out.to_string_lossy().to_string();
    let args = ["experiment", "--domain", "education", "--quick", "--seeds", "1", "--caps", "uncapped", "--out", &out_arg, "--quiet"];
    succeed(&args);
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(report.contains("caps that are not the thresholds"), "the report names its reading");
    assert_eq!(read_json(&out.join("results.json"))["config"]["caps"], "Uncapped");
    let refused = sbd(&["experiment", "--domain", "education", "--quick", "--caps", "none", "--out", &out_arg]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("--caps") && stderr.contains("uncapped"), "{stderr}");
}

#[test]
fn experiment_refuses_bad_sizes_with_one_error_line() {
    let scratch = ScratchDir::new("experiment-bad");
    let out = scratch.path().to_string_lossy().to_string();
    let stderr = fail(&["experiment", "--domain", "finance", "--quick", "--width", "0", "--out", &out]);
    assert!(stderr.contains("width"), "{stderr}");
    let stderr = fail(&["experiment", "--domain", "finance", "--quick", "--jobs", "0", "--out", &out]);
    assert!(stderr.contains("job"), "{stderr}");
}
