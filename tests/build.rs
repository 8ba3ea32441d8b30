//! Builds the fault-injection variant of the policy component for the fault tests.
fn main() {
    sbd_guest_build::build_component("sbd-component", &["fault-injection"], "sbd_faulty.wasm");
}
