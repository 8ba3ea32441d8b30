//! A configured policy running in component instances, failing closed.
//!
//! Each call takes an idle instance (or makes one), arms its epoch deadline, calls, and puts it
//! back. An instance that faulted is dropped, never reused: after a trap its state is unknown.
//!
//! Idle instances live first in a per-thread slot (no lock: a thread takes its own instance
//! out of its own slot), then in a shared pool behind a mutex for the rare call that finds its
//! slot empty or occupied (a thread's first call, or more threads than slots).

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use thread_local::ThreadLocal;

use sbd_policy::{Mandate, Outcome, PolicyInfo, Reason, Request, TrustDelta, Verdict, wire};
use wasmtime::component::ResourceAny;
use wasmtime::{Store, StoreLimitsBuilder, Trap};

use crate::convert::{self, DelegationPolicyComponent, GuestDelegationPolicy, HostState};
use crate::error::RuntimeError;
use crate::runtime::{PolicyComponent, Shared};
use crate::verify::check_verdict;

/// One ready instance: its store, its exports, and the policy resource built in it.
struct Instance {
    store: Store<HostState>,
    bindings: DelegationPolicyComponent,
    policy: ResourceAny,
}

impl Instance {
    /// Calls `f` with the policy's exports, the store and the policy resource.
    fn with<T>(
        &mut self,
        f: impl FnOnce(GuestDelegationPolicy<'_>, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<T>,
    ) -> wasmtime::Result<T> {
        f(self.bindings.sbd_delegation_policy().delegation_policy(), &mut self.store, self.policy)
    }
}

/// How a request crosses into the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPath {
    /// The typed WIT records, as any component-model host calls it (`evaluate`,
    /// `evaluate-batch`).
    Typed,
    /// One postcard buffer each way (`evaluate-encoded`); several times cheaper, and only
    /// possible when the component speaks this host's `sbd_policy::wire` version.
    Encoded,
    /// One JSON string each way (`evaluate-json`), the path the Python and JS bindings take;
    /// here so that every test and benchmark of the other paths covers it too.
    Json,
}

/// Counters of what a loaded policy has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyStats {
    /// Requests decided (including fault denials).
    pub decisions: u64,
    /// Calls that faulted and were answered with `policy-fault`.
    pub faults: u64,
    /// Instances created, including the first.
    pub instances_created: u64,
}

/// A policy component instantiated with one configuration. Thread-safe: concurrent callers
/// each get their own instance from the pool.
pub struct LoadedPolicy {
    shared: Arc<Shared>,
    component: PolicyComponent,
    config: Vec<u8>,
    /// Each thread's own idle instance: the hot path, taken and returned without a lock.
    slots: ThreadLocal<Cell<Option<Instance>>>,
    /// How many slots hold an instance (bounded, with the pool, by `max_idle_instances`).
    parked: AtomicUsize,
    /// Idle instances no slot could take.
    idle: Mutex<Vec<Instance>>,
    info: PolicyInfo,
    path: CallPath,
    decisions: AtomicU64,
    faults: AtomicU64,
    instances_created: AtomicU64,
}

thread_local! {
    /// Each thread's buffer for encoding requests, reused across calls.
    static REQUEST_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest request buffer kept for reuse; a larger batch's buffer is freed after its call.
const MAX_KEPT_BUFFER: usize = 64 << 10;

/// Why a call failed; always answered by failing closed.
struct Fault(String);

impl LoadedPolicy {
    pub(crate) fn new(
        shared: Arc<Shared>,
        component: PolicyComponent,
        config: Vec<u8>,
    ) -> Result<Self, RuntimeError> {
        let mut loaded = LoadedPolicy {
            shared,
            component,
            config,
            slots: ThreadLocal::new(),
            parked: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            info: PolicyInfo {
                name: String::new(),
                version: String::new(),
                config_digest: String::new(),
                max_depth: 0,
                wire_version: 0,
            },
            path: CallPath::Typed,
            decisions: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            instances_created: AtomicU64::new(0),
        };
        let mut first = loaded.create_instance()?;
        first.store.set_epoch_deadline(loaded.shared.limits.deadline_ticks());
        let info = first
            .with(|guest, store, policy| guest.call_info(store, policy))
            .map_err(RuntimeError::Startup)?;
        loaded.info = convert::info_from(info);
        if loaded.info.wire_version == wire::WIRE_VERSION {
            loaded.path = CallPath::Encoded;
        }
        loaded.checkin(first);
        Ok(loaded)
    }

    /// Name, version and configuration digest, as the component reported them at load.
    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    /// Hex SHA-256 of the component this policy runs in.
    pub fn component_digest(&self) -> &str {
        self.component.digest()
    }

    /// What this policy has done so far.
    pub fn stats(&self) -> PolicyStats {
        PolicyStats {
            decisions: self.decisions.load(Ordering::Relaxed),
            faults: self.faults.load(Ordering::Relaxed),
            instances_created: self.instances_created.load(Ordering::Relaxed),
        }
    }

    /// The path [`LoadedPolicy::evaluate`] takes: encoded when the component speaks this
    /// host's wire version, typed otherwise.
    pub fn call_path(&self) -> CallPath {
        self.path
    }

    /// Decides one delegation. Never fails: a trap, timeout, memory exhaustion or malformed
    /// verdict is answered with a `policy-fault` denial, and the next call gets a fresh instance.
    pub fn evaluate(&self, request: &Request) -> Verdict {
        self.evaluate_via(self.path, request)
    }

    /// [`LoadedPolicy::evaluate`] over a chosen path (tests compare the two).
    pub fn evaluate_via(&self, path: CallPath, request: &Request) -> Verdict {
        // One request: the batch path's bookkeeping (chunks, refusals, re-assembly) skipped.
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if let Some(refusal) = self.refuse_oversized(request) {
            return refusal;
        }
        match self.decide(path, std::slice::from_ref(request)).map(|mut verdicts| verdicts.pop()) {
            Ok(Some(verdict)) => verdict,
            Ok(None) => self.fail_closed(Fault("no verdict".into())),
            Err(fault) => self.fail_closed(fault),
        }
    }

    /// Decides many delegations in as few calls as the batch limit allows; verdict i answers
    /// request i. A fault denies every request of the call it happened in.
    pub fn evaluate_batch(&self, requests: &[Request]) -> Vec<Verdict> {
        self.evaluate_batch_via(self.path, requests)
    }

    /// [`LoadedPolicy::evaluate_batch`] over a chosen path.
    pub fn evaluate_batch_via(&self, path: CallPath, requests: &[Request]) -> Vec<Verdict> {
        let mut verdicts = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(self.shared.limits.max_batch.max(1)) {
            self.decisions.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            // Requests over the host's own limits never reach the guest.
            let refusals: Vec<Option<Verdict>> = chunk.iter().map(|r| self.refuse_oversized(r)).collect();
            let admitted: Cow<'_, [Request]> = if refusals.iter().all(Option::is_none) {
                Cow::Borrowed(chunk)
            } else {
                chunk.iter().zip(&refusals).filter(|(_, r)| r.is_none()).map(|(q, _)| q.clone()).collect()
            };
            // A fault is one failed call: counted once, its denial given to every request in it.
            let (mut decided, fault_denial) = match self.decide(path, &admitted) {
                Ok(decided) => (decided.into_iter(), None),
                Err(fault) => (Vec::new().into_iter(), Some(self.fail_closed(fault))),
            };
            for refusal in refusals {
                let verdict = match (refusal, &fault_denial) {
                    (Some(refusal), _) => refusal,
                    (None, Some(denial)) => denial.clone(),
                    // `decide` checked that there is one verdict per admitted request.
                    (None, None) => {
                        decided.next().unwrap_or_else(|| self.fail_closed(Fault("no verdict".into())))
                    }
                };
                verdicts.push(verdict);
            }
        }
        verdicts
    }

    /// One call over `path` for `requests`, with every verdict checked against its request.
    fn decide(&self, path: CallPath, requests: &[Request]) -> Result<Vec<Verdict>, Fault> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let verdicts = match path {
            CallPath::Typed => self.call_typed(requests),
            CallPath::Encoded => self.call_encoded(requests),
            CallPath::Json => self.call_json(requests),
        }?;
        if verdicts.len() != requests.len() {
            return Err(Fault(format!("{} verdicts for {} requests", verdicts.len(), requests.len())));
        }
        for (request, verdict) in requests.iter().zip(&verdicts) {
            check_verdict(request, verdict).map_err(|e| Fault(format!("malformed verdict: {e}")))?;
        }
        Ok(verdicts)
    }

    fn call_typed(&self, requests: &[Request]) -> Result<Vec<Verdict>, Fault> {
        let wit_requests: Vec<_> = requests.iter().map(convert::request_to).collect();
        let raw = if let [single] = wit_requests.as_slice() {
            vec![self.call(|guest, store, policy| guest.call_evaluate(store, policy, single))?]
        } else {
            self.call(|guest, store, policy| guest.call_evaluate_batch(store, policy, &wit_requests))?
        };
        raw.into_iter()
            .map(|v| convert::verdict_from(v).map_err(|e| Fault(format!("malformed verdict: {e}"))))
            .collect()
    }

    fn call_encoded(&self, requests: &[Request]) -> Result<Vec<Verdict>, Fault> {
        // The request bytes go into this thread's reused buffer, not a fresh allocation.
        let bytes = wire::encode_requests_into(requests, REQUEST_BUFFER.take())
            .map_err(|e| Fault(format!("cannot encode the requests: {e}")))?;
        let answer = self.call(|guest, store, policy| guest.call_evaluate_encoded(store, policy, &bytes));
        if bytes.capacity() <= MAX_KEPT_BUFFER {
            REQUEST_BUFFER.set(bytes);
        }
        wire::decode_verdicts(&answer?).map_err(|e| Fault(format!("malformed verdict: {e}")))
    }

    /// Decides delegations given as JSON text through the component's `evaluate-json` (one
    /// string in, one out; see the WIT): a request object gets a verdict object, an array an
    /// array, and a request that cannot be read a `request-malformed` denial naming its JSON
    /// path. Like [`LoadedPolicy::evaluate`] it never fails: the answer is re-checked against
    /// the requests ([`check_verdict`]), and a fault or a malformed answer is answered with
    /// `policy-fault` denials, one per request.
    ///
    /// The text crosses in one call, so an array longer than the runtime's `max_batch` is
    /// refused (`request-malformed`, every request) rather than split; the host's own chain
    /// length limit is not applied to text (the component's, 254 links, is).
    pub fn evaluate_json(&self, requests: &str) -> String {
        let batch = sbd_policy::json::is_array_text(requests);
        let count = json_request_count(requests);
        self.decisions.fetch_add(count.unwrap_or(1) as u64, Ordering::Relaxed);
        let max = self.shared.limits.max_batch.max(1);
        if let Some(n) = count.filter(|&n| n > max) {
            let refusal = Verdict::deny(
                Reason::RequestMalformed,
                format!("{n} requests in one JSON call; this host accepts at most {max} (`max_batch`)"),
            );
            return serde_json::to_string(&vec![refusal; n]).unwrap_or_default();
        }
        let answer = self
            .call(|guest, store, policy| guest.call_evaluate_json(store, policy, requests))
            .and_then(|text| match sbd_policy::verify::check_json(requests, &text) {
                Ok(()) => Ok(text),
                Err(why) => Err(Fault(format!("malformed verdict: {why}"))),
            });
        answer.unwrap_or_else(|fault| {
            let denial = self.fail_closed(fault);
            let written = if batch {
                // text that opens an array but is none is answered with one denial
                serde_json::to_string(&vec![denial; count.unwrap_or(1)])
            } else {
                serde_json::to_string(&denial)
            };
            written.unwrap_or_default()
        })
    }

    fn call_json(&self, requests: &[Request]) -> Result<Vec<Verdict>, Fault> {
        let unwritable = |e: serde_json::Error| Fault(format!("cannot write the requests as JSON: {e}"));
        let malformed = |e: sbd_policy::json::JsonError| Fault(format!("malformed verdict: {e}"));
        if let [single] = requests {
            let text = serde_json::to_string(single).map_err(unwritable)?;
            let answer = self.call(|guest, store, policy| guest.call_evaluate_json(store, policy, &text))?;
            Ok(vec![sbd_policy::json::from_str(&answer).map_err(malformed)?])
        } else {
            let text = serde_json::to_string(requests).map_err(unwritable)?;
            let answer = self.call(|guest, store, policy| guest.call_evaluate_json(store, policy, &text))?;
            sbd_policy::json::from_str(&answer).map_err(malformed)
        }
    }

    /// The narrowest child mandate within `parent` and `requested`, computed by the policy.
    pub fn narrow(&self, parent: &Mandate, requested: &Mandate) -> Result<Mandate, RuntimeError> {
        let (parent, requested) = (convert::mandate_to(parent), convert::mandate_to(requested));
        self.call(|guest, store, policy| guest.call_narrow(store, policy, &parent, &requested))
            .map(convert::mandate_from)
            .map_err(|Fault(why)| RuntimeError::Fault(why))
    }

    /// Trust changes for `chain` (originator first) after a task ends, per the policy's
    /// penalty-propagation setting.
    pub fn trust_deltas(&self, chain: &[String], outcome: Outcome) -> Result<Vec<TrustDelta>, RuntimeError> {
        let outcome = convert::outcome_to(outcome);
        self.call(|guest, store, policy| guest.call_trust_deltas(store, policy, chain, outcome))
            .map(|deltas| deltas.into_iter().map(convert::trust_delta_from).collect())
            .map_err(|Fault(why)| RuntimeError::Fault(why))
    }

    /// The host's own chain-length limit, checked before the request crosses into the guest.
    fn refuse_oversized(&self, request: &Request) -> Option<Verdict> {
        let limit = self.shared.limits.max_chain_len;
        (request.chain.len() > limit).then(|| {
            Verdict::deny(
                Reason::RequestMalformed,
                format!("the chain has {} links; this host accepts at most {limit}", request.chain.len()),
            )
        })
    }

    fn fail_closed(&self, Fault(why): Fault) -> Verdict {
        self.faults.fetch_add(1, Ordering::Relaxed);
        Verdict::deny(Reason::PolicyFault, format!("policy `{}` failed closed: {why}", self.info.name))
    }

    /// Runs `f` on a pooled instance under the call deadline; a failed instance is dropped.
    fn call<T>(
        &self,
        f: impl FnOnce(GuestDelegationPolicy<'_>, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<T>,
    ) -> Result<T, Fault> {
        let mut instance = match self.checkout() {
            Some(instance) => instance,
            None => self.create_instance().map_err(|e| Fault(format!("cannot start an instance: {e}")))?,
        };
        instance.store.set_epoch_deadline(self.shared.limits.deadline_ticks());
        match instance.with(f) {
            Ok(value) => {
                self.checkin(instance);
                Ok(value)
            }
            Err(error) => Err(Fault(self.describe(&error))),
        }
    }

    fn describe(&self, error: &wasmtime::Error) -> String {
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                format!("it ran past its {:?} call deadline", self.shared.limits.call_timeout)
            }
            Some(trap) => format!("it trapped: {trap}"),
            None if format!("{error:#}").contains("growing memory") => {
                format!("it exceeded its {} byte memory limit", self.shared.limits.memory_bytes)
            }
            None => format!("{error:#}"),
        }
    }

    /// This thread's idle instance, else one from the shared pool.
    fn checkout(&self) -> Option<Instance> {
        if let Some(instance) = self.slots.get().and_then(Cell::take) {
            self.parked.fetch_sub(1, Ordering::Relaxed);
            return Some(instance);
        }
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    /// Parks a healthy instance in this thread's slot, else in the shared pool, else drops it:
    /// at most `max_idle_instances` are kept in slots and at most as many in the pool.
    fn checkin(&self, instance: Instance) {
        let max = self.shared.limits.max_idle_instances;
        let slot = self.slots.get_or(|| Cell::new(None));
        let instance = match slot.take() {
            None if self.parked.fetch_add(1, Ordering::Relaxed) < max => {
                slot.set(Some(instance));
                return;
            }
            None => {
                self.parked.fetch_sub(1, Ordering::Relaxed);
                instance
            }
            // Occupied (a nested call on this thread): keep the parked one, pool this one.
            Some(parked) => {
                slot.set(Some(parked));
                instance
            }
        };
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < max {
            idle.push(instance);
        }
    }

    fn create_instance(&self) -> Result<Instance, RuntimeError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.shared.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.shared.engine, HostState { limits });
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(self.shared.limits.deadline_ticks());
        let bindings = self.component.pre.instantiate(&mut store).map_err(RuntimeError::Startup)?;
        let created = bindings
            .sbd_delegation_policy()
            .delegation_policy()
            .call_create(&mut store, &self.config)
            .map_err(RuntimeError::Startup)?;
        let policy = created.map_err(|e| RuntimeError::ConfigRejected(e.message))?;
        self.instances_created.fetch_add(1, Ordering::Relaxed);
        Ok(Instance { store, bindings, policy })
    }
}

/// How many requests `evaluate-json` text holds (an array's length, else one), for counting
/// decisions and for answering a fault with one denial per request.
fn json_request_count(text: &str) -> Option<usize> {
    if !sbd_policy::json::is_array_text(text) {
        return None;
    }
    sbd_policy::json::from_str::<Vec<serde_json::Value>>(text).ok().map(|items| items.len())
}
