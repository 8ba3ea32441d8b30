//! Fault injection: deliberately broken components (endless loop, trap, panic, huge
//! allocation, stack overflow, malformed verdicts) always fail closed with `policy-fault`, and
//! the host goes on to serve the next request correctly.
#![allow(clippy::expect_used, clippy::panic, reason = "test and benchmark set-up fails loudly")]

use sbd_e2e::{FAULTY_COMPONENT, allowed_request};
use sbd_policy::{Policy, PolicyConfig, Reason, Request, Verdict};
use sbd_runtime::{CallPath, LoadedPolicy, PolicyRuntime, RuntimeError, RuntimeLimits};

fn runtime() -> PolicyRuntime {
    PolicyRuntime::new(RuntimeLimits::default()).expect("engine")
}

fn faulty(runtime: &PolicyRuntime, kind: &str) -> LoadedPolicy {
    let component = runtime.load_component(FAULTY_COMPONENT).expect("faulty component loads");
    runtime.instantiate(&component, format!("fault:{kind}").as_bytes()).expect("fault config accepted")
}

fn trigger() -> Request {
    let mut request = allowed_request();
    request.task.id = "inject-fault".into();
    request
}

/// What the faulty component computes for requests that do not trigger its fault.
fn expected(request: &Request) -> Verdict {
    Policy::new(PolicyConfig::named("faulty", "0")).expect("valid").evaluate(request)
}

fn assert_fails_closed_then_recovers(kind: &str, cause: &str) {
    let runtime = runtime();
    let policy = faulty(&runtime, kind);
    for path in [CallPath::Typed, CallPath::Encoded, CallPath::Json] {
        let before = policy.stats();
        let verdict = policy.evaluate_via(path, &trigger());
        let Verdict::Deny(denial) = &verdict else {
            panic!("`{kind}` over {path:?} was not denied: {verdict:?}")
        };
        assert_eq!(denial.reason, Reason::PolicyFault, "{kind} over {path:?}");
        assert!(
            denial.message.contains(cause),
            "`{kind}` over {path:?}: {:?} should mention {cause:?}",
            denial.message
        );

        // The host keeps serving, from a fresh instance, with correct answers.
        for _ in 0..3 {
            let next = allowed_request();
            let verdict = policy.evaluate_via(path, &next);
            assert!(verdict.is_allow(), "`{kind}` over {path:?}: next request got {verdict:?}");
            assert_eq!(verdict, expected(&next));
        }
        let after = policy.stats();
        assert_eq!(after.faults, before.faults + 1, "{kind} over {path:?}");
        assert_eq!(after.decisions, before.decisions + 4, "{kind} over {path:?}");
        // A call that failed inside the instance drops it: exactly one fresh instance served
        // the three calls after it (this thread's slot kept it). An instance that answered
        // with a malformed verdict ran to completion and is kept.
        let fresh = u64::from(!denial.message.contains("malformed verdict"));
        assert_eq!(after.instances_created, before.instances_created + fresh, "{kind} over {path:?}");
    }
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline() {
    assert_fails_closed_then_recovers("endless-loop", "call deadline");
}

#[test]
fn a_trap_fails_closed() {
    assert_fails_closed_then_recovers("trap", "trapped");
}

#[test]
fn a_panic_fails_closed() {
    assert_fails_closed_then_recovers("panic", "trapped");
}

#[test]
fn a_huge_allocation_hits_the_memory_limit() {
    assert_fails_closed_then_recovers("huge-allocation", "memory limit");
}

#[test]
fn a_stack_overflow_fails_closed() {
    assert_fails_closed_then_recovers("stack-overflow", "trapped");
}

#[test]
fn an_alpha_outside_the_unit_interval_is_malformed() {
    assert_fails_closed_then_recovers("alpha-out-of-range", "`alpha` is 1.5");
}

#[test]
fn a_widened_child_mandate_is_malformed() {
    assert_fails_closed_then_recovers("widened-mandate", "wider than the parent");
}

#[test]
fn an_unknown_reason_code_is_malformed() {
    assert_fails_closed_then_recovers("unknown-code", "malformed verdict");
}

#[test]
fn a_batch_with_too_few_verdicts_denies_the_whole_batch() {
    let runtime = runtime();
    let policy = faulty(&runtime, "short-batch");
    let requests = vec![allowed_request(), allowed_request(), allowed_request()];
    for path in [CallPath::Typed, CallPath::Encoded, CallPath::Json] {
        let verdicts = policy.evaluate_batch_via(path, &requests);
        assert_eq!(verdicts.len(), 3);
        for verdict in &verdicts {
            assert_eq!(verdict.reason(), Some(Reason::PolicyFault), "{path:?}: {verdict:?}");
        }
    }
    // Single typed calls (`evaluate`, not `evaluate-batch`) are unaffected and correct.
    assert_eq!(policy.evaluate_via(CallPath::Typed, &requests[0]), expected(&requests[0]));
}

#[test]
fn a_fault_in_a_batch_denies_that_batch_only() {
    let runtime = runtime();
    let policy = faulty(&runtime, "trap");
    for path in [CallPath::Typed, CallPath::Encoded, CallPath::Json] {
        let faults_before = policy.stats().faults;
        let verdicts = policy.evaluate_batch_via(path, &[allowed_request(), trigger()]);
        assert!(verdicts.iter().all(|v| v.reason() == Some(Reason::PolicyFault)), "{path:?}: {verdicts:?}");
        assert_eq!(policy.stats().faults, faults_before + 1, "one failed call is one fault");
        let verdicts = policy.evaluate_batch_via(path, &[allowed_request(), allowed_request()]);
        assert!(verdicts.iter().all(Verdict::is_allow), "{path:?}: {verdicts:?}");
    }
}

#[test]
fn a_rejected_configuration_is_an_error_at_load() {
    let runtime = runtime();
    let component = runtime.load_component(sbd_runtime::DEFAULT_COMPONENT).expect("loads");
    let error = runtime.instantiate(&component, b"\xff\xff not postcard").err();
    assert!(matches!(error, Some(RuntimeError::ConfigRejected(_))), "{error:?}");

    let mut invalid = PolicyConfig::named("bad", "1");
    invalid.depth.max_depth = 0;
    let bytes = sbd_policy::config::PolicyConfig::to_bytes(&invalid).expect("encodes");
    let message = runtime.instantiate(&component, &bytes).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("depth.max_depth"), "{message}");

    let faulty_component = runtime.load_component(FAULTY_COMPONENT).expect("loads");
    let error = runtime.instantiate(&faulty_component, b"fault:no-such-fault").err();
    assert!(matches!(error, Some(RuntimeError::ConfigRejected(_))), "{error:?}");
}

#[test]
fn bytes_that_are_not_a_policy_component_are_refused() {
    let runtime = runtime();
    let error = runtime.load_component(b"definitely not wasm").err();
    assert!(matches!(error, Some(RuntimeError::InvalidComponent(_))), "{error:?}");
    // A valid but empty component: it exports no policy.
    let empty_component = b"\0asm\x0d\x00\x01\x00";
    let error = runtime.load_component(empty_component).err();
    assert!(matches!(error, Some(RuntimeError::WrongInterface(_))), "{error:?}");
}

#[test]
fn the_json_text_path_checks_the_answer_and_fails_closed() {
    let runtime = runtime();
    let read = |text: &str| -> Vec<Verdict> {
        if text.starts_with('[') {
            serde_json::from_str(text).expect("verdicts")
        } else {
            vec![serde_json::from_str(text).expect("a verdict")]
        }
    };
    let json = |r: &Request| serde_json::to_string(r).expect("JSON");
    // A widened mandate passes the component's own rules but not the host's check.
    let policy = faulty(&runtime, "widened-mandate");
    let one = read(&policy.evaluate_json(&json(&trigger())));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].reason(), Some(Reason::PolicyFault), "{one:?}");
    let batch = read(&policy.evaluate_json(&format!("[{},{}]", json(&allowed_request()), json(&trigger()))));
    assert_eq!(batch.len(), 2);
    assert!(batch.iter().all(|v| v.reason() == Some(Reason::PolicyFault)), "{batch:?}");
    // A trap answers every request of the call, and the next call is served.
    let policy = faulty(&runtime, "trap");
    let batch = read(&policy.evaluate_json(&format!("[{},{}]", json(&trigger()), json(&allowed_request()))));
    assert!(batch.iter().all(|v| v.reason() == Some(Reason::PolicyFault)), "{batch:?}");
    let next = read(&policy.evaluate_json(&json(&allowed_request())));
    assert_eq!(next, vec![expected(&allowed_request())]);
    // Unreadable text is denied, not a fault: the check accepts a denial for it.
    let faults = policy.stats().faults;
    let unreadable = read(&policy.evaluate_json("[oops"));
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].reason(), Some(Reason::RequestMalformed));
    let bad_field = read(&policy.evaluate_json(r#"{"from": 3}"#));
    assert_eq!(bad_field[0].reason(), Some(Reason::RequestMalformed), "{bad_field:?}");
    assert_eq!(policy.stats().faults, faults);
    // An array longer than the batch bound is refused whole, not split or sent.
    let limits = RuntimeLimits { max_batch: 2, ..RuntimeLimits::default() };
    let small = PolicyRuntime::new(limits).expect("engine");
    let component = small.load_component(sbd_runtime::DEFAULT_COMPONENT).expect("component");
    let policy = small.instantiate(&component, &PolicyConfig::named("p", "1").to_bytes().expect("bytes")).expect("policy");
    let three = format!("[{0},{0},{0}]", json(&allowed_request()));
    let refused = read(&policy.evaluate_json(&three));
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|v| v.reason() == Some(Reason::RequestMalformed)), "{refused:?}");
    let two = read(&policy.evaluate_json(&format!("[{0},{0}]", json(&allowed_request()))));
    assert!(two.iter().all(Verdict::is_allow), "{two:?}");
}
