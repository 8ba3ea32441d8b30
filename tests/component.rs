//! The built component itself: a valid component that exports the policy interface and
//! imports no functions at all (no WASI, no clock, no I/O).
#![allow(clippy::expect_used, clippy::panic, reason = "test and benchmark set-up fails loudly")]

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Config, Engine};

fn imported_functions(bytes: &[u8]) -> Vec<String> {
    let engine = Engine::new(&Config::new()).expect("engine");
    let component = Component::new(&engine, bytes).expect("the component is valid");
    let ty = component.component_type();
    let mut functions = Vec::new();
    for (name, item) in ty.imports(&engine) {
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                for (export, item) in instance.exports(&engine) {
                    if matches!(item.ty, ComponentItem::ComponentFunc(_) | ComponentItem::CoreFunc(_)) {
                        functions.push(format!("{name}#{export}"));
                    }
                }
            }
            ComponentItem::ComponentFunc(_) | ComponentItem::CoreFunc(_) => functions.push(name.to_string()),
            _ => {}
        }
    }
    functions
}

#[test]
fn the_policy_component_imports_no_functions() {
    assert_eq!(imported_functions(sbd_runtime::DEFAULT_COMPONENT), Vec::<String>::new());
}

#[test]
fn the_policy_component_exports_the_policy_interface() {
    let engine = Engine::new(&Config::new()).expect("engine");
    let component = Component::new(&engine, sbd_runtime::DEFAULT_COMPONENT).expect("valid");
    let exports: Vec<String> =
        component.component_type().exports(&engine).map(|(name, _)| name.to_string()).collect();
    assert_eq!(exports, ["sbd:delegation/policy@0.1.0"]);
}

#[test]
fn the_policy_component_is_small() {
    // LTO, strip, panic abort. A jump here means something heavy (formatting machinery, std)
    // slipped into the guest. The canonical agent id (sbd_policy::identity: NFKC, case
    // folding, general category, scripts) took it from 139,919 to 317,417 bytes: about 137 KB
    // of Unicode data and 40 KB of code. Building for speed (opt-level 3 and simd128 instead
    // of opt-level s, issue 18: a 1.2x faster allow, 2x faster learned inference) took it from
    // 335,450 to 451,919 bytes. Reading JSON and TOML inside the component (issue 17:
    // `create-from-text`, `evaluate-json`, `check-verdict`, so the Python and JS bindings keep
    // no copies of the contract) took it to about 1,080,000: serde_path_to_error's tracking
    // of every type's reader is the largest part (a quarter of the code), the TOML parser next.
    let size = sbd_runtime::DEFAULT_COMPONENT.len();
    assert!(size < 1152 * 1024, "component is {size} bytes");
}

/// The Python wheel and the npm package carry the release component so that they work without
/// Rust (issue 17): the committed bytes must be the ones this build produced (the guest build
/// is reproducible). After a change under `guest/` or `wit/`, `bindings/update-component.sh`
/// refreshes them (and jco's output in `bindings/js/generated/`, which `.ci/run` checks).
#[test]
fn the_packaged_component_is_this_build() {
    let packaged: &[u8] = include_bytes!("../bindings/python/src/sbd_policy/data/sbd_component.wasm");
    assert!(
        packaged == sbd_runtime::DEFAULT_COMPONENT,
        "bindings/python/src/sbd_policy/data/sbd_component.wasm ({} bytes) is not the component this build produced ({} bytes): run bindings/update-component.sh",
        packaged.len(),
        sbd_runtime::DEFAULT_COMPONENT.len()
    );
}
