//! Benchmarks for the decision point: `decision.rs` (criterion: decisions natively, through the
//! component and with Cedar), `interleaved.rs` (component-to-native ratios measured in
//! alternating rounds), `load.rs`, `bundle.rs` and `training.rs`; `report.py` prints the ratio
//! table in the README. This library holds the set-up the benches share.

use sbd_policy::{Policy, PolicyConfig, Request};
use sbd_runtime::{LoadedPolicy, PolicyComponent, PolicyRuntime, RuntimeError};

/// What went wrong setting up a benchmark case.
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

/// The trained finance policy of `policies/finance` (phi and pi at width 256), natively and
/// inside `component`, and the request both decide: an allow at the state the
/// standardisation maps to zero (every feature at its training mean).
pub fn learned_case(runtime: &PolicyRuntime, component: &PolicyComponent) -> Result<(Policy, LoadedPolicy, Request), SetupError> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/finance");
    let text = std::fs::read_to_string(format!("{dir}/policy.toml"))?;
    let mut table: toml::Table = toml::from_str(&text)?;
    if let Some(sbd) = table.get_mut("sbd").and_then(toml::Value::as_table_mut) {
        sbd.remove("model_file");
    }
    let mut config: PolicyConfig = table.try_into()?;
    let weights = std::fs::read(format!("{dir}/model.postcard"))?;
    let model: sbd_policy::learned::LearnedModel = postcard::from_bytes(&weights)?;
    let state: Vec<f64> = model.state_shift.iter().map(|&x| f64::from(x)).collect();
    config.sbd.model = Some(model);
    let native = Policy::new(config.clone())?;
    let wasm = runtime.instantiate(component, &config.to_bytes()?).map_err(|e: RuntimeError| Box::new(e) as SetupError)?;
    let request = Request { state, ..sbd_e2e::allowed_request() };
    let verdict = native.evaluate(&request);
    if !verdict.is_allow() {
        return Err(format!("the learned policy should allow the bench request: {verdict:?}").into());
    }
    if verdict != wasm.evaluate(&request) {
        return Err("native and component disagree on the learned request".into());
    }
    Ok((native, wasm, request))
}
