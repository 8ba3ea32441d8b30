//! Builds the policy component (`guest/component`) so the runtime can embed it as the default.
fn main() {
    sbd_guest_build::build_component("sbd-component", &[], "sbd_policy.wasm");
}
