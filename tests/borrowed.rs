//! The borrowed, zero-copy request view ([`sbd_policy::view`]) decides exactly as the owned
//! request: on generated requests reaching every reason code, the verdict decided from the
//! view decoded out of the wire bytes equals the verdict of `Policy::evaluate` on the owned
//! request, for every configuration, and the encoded path built on the view answers the same.
//!
//! Both run the same generic rules (`Delegation`), so this checks that the owned and the
//! borrowed implementations read a request alike; it cannot catch a change in a rule itself.
//! That is the job of the committed verdicts of `bindings/shared/expected.json`
//! (`tests/cross_language.rs`) and of the rules' own tests. The hand-written wire codec is held
//! to postcard's bytes and acceptance by the property tests at the end.
#![allow(clippy::expect_used, clippy::panic, reason = "test set-up fails loudly")]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use sbd_e2e::{configs, request, sample_requests};
use sbd_policy::view::RequestView;
use sbd_policy::{Policy, Reason, Request, Verdict, wire};

fn policies() -> &'static [Policy] {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| configs().into_iter().map(|c| Policy::new(c).expect("valid config")).collect())
}

/// The verdict from the borrowed view and the owned verdict, for `request` under `policy`.
fn both(policy: &Policy, request: &Request) -> (Verdict, Verdict) {
    let bytes = wire::encode_requests(std::slice::from_ref(request)).expect("encodes");
    let views = wire::decode_request_views(&bytes).expect("the view decodes what the owned encodes");
    assert_eq!(views.len(), 1);
    // The view holds the same request: converting it back re-encodes to the same bytes.
    assert_eq!(wire::encode_requests(&[views[0].to_request()]).expect("encodes"), bytes);
    (policy.evaluate_view(&views[0]), policy.evaluate(request))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn the_borrowed_view_decides_as_the_owned_request(request in request()) {
        for policy in policies() {
            let (borrowed, owned) = both(policy, &request);
            prop_assert_eq!(&borrowed, &owned, "config `{}`", policy.info().name);
            let bytes = wire::encode_requests(std::slice::from_ref(&request)).expect("encodes");
            let encoded = wire::decode_verdicts(&policy.evaluate_encoded(&bytes));
            prop_assert_eq!(encoded, Ok(vec![owned]), "config `{}`, encoded path", policy.info().name);
        }
    }
}

/// The comparison above means little unless the generated requests reach every rule through
/// the borrowed path: every reason code the rules give (all but those only a host decides,
/// [`Reason::decided_by_host`]) and an allow.
#[test]
fn the_borrowed_path_reaches_every_reason_code() {
    let requests = sample_requests(3_000, 11);
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for policy in policies() {
        for request in &requests {
            let (verdict, owned) = both(policy, request);
            assert_eq!(verdict, owned, "config `{}`", policy.info().name);
            *seen.entry(verdict.reason().map_or("allow", Reason::name)).or_default() += 1;
            if let Verdict::Allow(grant) = &verdict {
                for warning in &grant.warnings {
                    *seen.entry(warning.reason.name()).or_default() += 1;
                }
            }
        }
    }
    let never: Vec<&str> = Reason::ALL
        .iter()
        .filter(|r| !r.decided_by_host())
        .map(|r| r.name())
        .chain(["allow"])
        .filter(|name| !seen.contains_key(name))
        .collect();
    assert!(never.is_empty(), "never produced through the view: {never:?}; seen: {seen:?}");
}

/// Bytes that are not requests (cut short, another wire version, a string that is not UTF-8)
/// are refused by the view's decoder, as by postcard's.
#[test]
fn the_view_rejects_what_postcard_rejects() {
    let mut bytes = wire::encode_requests(&sample_requests(3, 5)).expect("encodes");
    assert!(wire::decode_request_views(&bytes).is_ok());
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        let short = &bytes[..cut];
        assert!(wire::decode_request_views(short).is_err(), "cut {cut}");
        assert!(postcard_views(short).is_none(), "cut {cut}");
    }
    bytes[0] = 9;
    assert!(wire::decode_request_views(&bytes).is_err_and(|e| e.contains("wire version 9")));
    // A string that is not UTF-8 is refused by both.
    let mut request = sample_requests(1, 5).remove(0);
    request.task.id = "\u{e9}\u{e9}".into();
    let mut bytes = wire::encode_requests(&[request]).expect("encodes");
    let at = bytes.windows(4).position(|w| w == "\u{e9}\u{e9}".as_bytes()).expect("the id is in the bytes");
    bytes[at] = 0xff;
    assert!(wire::decode_request_views(&bytes).is_err());
    assert!(postcard_views(&bytes).is_none());
}

/// Applies byte edits: (where, byte, kind) with kind 0 a changed byte, 1 a cut there, 2 an
/// inserted byte.
fn mutate(bytes: &mut Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) {
    for &(at, value, kind) in edits {
        let i = at.index(bytes.len().max(1));
        match kind {
            0 if !bytes.is_empty() => bytes[i] = value,
            1 => bytes.truncate(i),
            _ => bytes.insert(i.min(bytes.len()), value),
        }
    }
}

/// Postcard's serde decoding of request bytes: the reference the hand-written reader must
/// match, version check included.
fn postcard_views(bytes: &[u8]) -> Option<Vec<RequestView<'_>>> {
    let (version, views): (u32, Vec<RequestView<'_>>) = postcard::from_bytes(bytes).ok()?;
    (version == wire::WIRE_VERSION).then_some(views)
}

/// Requests as comparable bytes (a NaN in a state is not equal to itself).
fn reencoded(views: &[RequestView<'_>]) -> Vec<u8> {
    let owned: Vec<Request> = views.iter().map(RequestView::to_request).collect();
    postcard::to_allocvec(&(wire::WIRE_VERSION, owned)).expect("encodes")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// The hand-written writer produces postcard's serde bytes for `(WIRE_VERSION, requests)`.
    #[test]
    fn the_hand_written_encoding_is_postcards(requests in proptest::collection::vec(request(), 0..4)) {
        let reference = postcard::to_allocvec(&(wire::WIRE_VERSION, &requests)).expect("encodes");
        prop_assert_eq!(wire::encode_requests(&requests).expect("encodes"), reference);
    }

    /// Byte mutations (a changed byte, a cut, an inserted byte): the hand-written reader
    /// accepts exactly what postcard's deserializer accepts, and reads the same requests.
    #[test]
    fn the_hand_written_reader_accepts_what_postcard_accepts(
        requests in proptest::collection::vec(request(), 1..3),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let mut bytes = wire::encode_requests(&requests).expect("encodes");
        mutate(&mut bytes, &edits);
        let ours = wire::decode_request_views(&bytes).ok();
        let reference = postcard_views(&bytes);
        prop_assert_eq!(ours.is_some(), reference.is_some(), "accepted by one reader only: {:?}", bytes);
        if let (Some(ours), Some(reference)) = (ours, reference) {
            prop_assert_eq!(reencoded(&ours), reencoded(&reference));
        }
    }
}

/// Every verdict shape, from the policies deciding generated requests.
fn verdicts_of(requests: &[Request]) -> Vec<Verdict> {
    policies().iter().flat_map(|policy| requests.iter().map(|r| policy.evaluate(r))).collect()
}

/// Verdicts as comparable bytes through postcard's serde encoding.
fn reencoded_answer(answer: &Result<Vec<Verdict>, String>) -> Vec<u8> {
    postcard::to_allocvec(&(wire::WIRE_VERSION, answer)).expect("encodes")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The hand-written answer writer produces postcard's serde bytes, for verdicts of every
    /// shape and for the unreadable-requests answer.
    #[test]
    fn the_hand_written_answer_is_postcards(requests in proptest::collection::vec(request(), 0..3), why in ".{0,20}") {
        let verdicts = verdicts_of(&requests);
        let ok: Result<&[Verdict], &str> = Ok(&verdicts);
        prop_assert_eq!(wire::encode_verdicts(ok).expect("encodes"), postcard::to_allocvec(&(wire::WIRE_VERSION, ok)).expect("encodes"));
        let err: Result<&[Verdict], &str> = Err(&why);
        prop_assert_eq!(wire::encode_verdicts(err).expect("encodes"), postcard::to_allocvec(&(wire::WIRE_VERSION, err)).expect("encodes"));
    }

    /// Byte mutations of an answer: the hand-written reader accepts exactly what postcard's
    /// deserializer accepts (a reason's code and name must still agree), and reads the same.
    #[test]
    fn the_hand_written_answer_reader_accepts_what_postcard_accepts(
        requests in proptest::collection::vec(request(), 1..3),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let verdicts = verdicts_of(&requests);
        let mut bytes = wire::encode_verdicts(Ok(&verdicts)).expect("encodes");
        mutate(&mut bytes, &edits);
        let reference: Option<Result<Vec<Verdict>, String>> = postcard::from_bytes::<(u32, Result<Vec<Verdict>, String>)>(&bytes)
            .ok()
            .filter(|(version, _)| *version == wire::WIRE_VERSION)
            .map(|(_, answer)| answer);
        let ours = wire::decode_verdicts(&bytes);
        let undecodable = |answer: &Result<Vec<Verdict>, String>| {
            answer.as_ref().is_err_and(|e| e.starts_with("undecodable") || e.starts_with("wire version"))
        };
        match reference {
            None => prop_assert!(undecodable(&ours), "only ours accepted {:?}: {:?}", bytes, ours),
            Some(reference) => {
                prop_assert!(!undecodable(&ours), "only postcard accepted {:?}: {:?}", bytes, ours);
                prop_assert_eq!(reencoded_answer(&ours), reencoded_answer(&reference));
            }
        }
    }
}
