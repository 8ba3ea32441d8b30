//! Build-script helper: compiles a guest crate of this workspace into a WebAssembly component
//! (`wasm32-wasip2`, `guest` profile) so host crates can embed it with `include_bytes!`.
//!
//! The nested cargo uses its own target directory (`target/guest-build`), so it never waits on
//! the lock of the outer build, and it is told to rerun only when the guest sources or the WIT
//! contract change.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every guest is built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Code-generation flags for every guest build.
///
/// - `+simd128`: 128-bit SIMD (a finished WebAssembly 2.0 feature that wasmtime, Node and
///   browsers run), so the learned policy's dense layers vectorise as they do natively.
/// - `-disable-lsr`: LLVM's loop strength reduction rewrites the dense kernel's addresses
///   into fresh pointer arithmetic without the `inbounds` that lets the WebAssembly back end
///   put a constant into a load's `offset`, so every load became `i32.add` + `v128.load`.
///   Cranelift cannot fold a wrapping 32-bit add into the x86 address and spent an extra
///   `lea` per load. Without LSR the loads carry their offsets; the learned policy's
///   component-to-native ratio went from 1.63-1.94x to 1.41-1.66x (the `interleaved` bench,
///   docs/performance.md), with allows and denials unchanged within the bench's noise.
pub const GUEST_RUSTFLAGS: &str = "-Ctarget-feature=+simd128 -Cllvm-args=-disable-lsr";

/// Builds workspace package `package` (a `cdylib` under `guest/`) with cargo `features` into a
/// component and copies it to `$OUT_DIR/<out_name>`, returning that path. Panics with the compiler's message on
/// failure: it only runs inside build scripts, where a panic is how a failure is reported.
#[allow(clippy::panic, clippy::expect_used, reason = "build scripts report failure by panicking")]
pub fn build_component(package: &str, features: &[&str], out_name: &str) -> PathBuf {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = find_workspace_root(&manifest_dir);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // One target directory per feature set, so variants never rebuild over each other.
    let variant = if features.is_empty() { "default".to_string() } else { features.join("+") };
    let target_dir = workspace.join("target").join("guest-build").join(variant);

    for watched in ["wit", "guest", "Cargo.toml", "Cargo.lock", "rust-toolchain.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }

    ensure_target_installed();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--package", package, "--target", GUEST_TARGET, "--profile", "guest"])
        .arg("--target-dir")
        .arg(&target_dir);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    // The outer build's flags and wrappers are for the host target; keep them out.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
    ] {
        command.env_remove(var);
    }
    // Set here, the one build path, so the committed component and a fresh build agree.
    command.env(format!("CARGO_TARGET_{}_RUSTFLAGS", GUEST_TARGET.to_uppercase().replace('-', "_")), GUEST_RUSTFLAGS);
    let status = command.status().expect("cannot start cargo to build the guest component");
    if !status.success() {
        panic!("building guest component `{package}` for {GUEST_TARGET} failed ({status})");
    }

    let artifact =
        target_dir.join(GUEST_TARGET).join("guest").join(format!("{}.wasm", package.replace('-', "_")));
    let dest = out_dir.join(out_name);
    std::fs::copy(&artifact, &dest)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", artifact.display(), dest.display()));
    dest
}

/// rust-toolchain.toml lists the guest target, but rustup installs listed targets only when it
/// installs the toolchain itself; on a machine that already had the toolchain the target is
/// missing. Add it (through rustup, for the active toolchain) rather than fail with "can't find
/// crate for `core`".
#[allow(clippy::panic, reason = "build scripts report failure by panicking")]
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = sysroot.is_some_and(|root| root.join("lib/rustlib").join(GUEST_TARGET).is_dir());
    if installed {
        return;
    }
    println!(
        "cargo:warning=installing the {GUEST_TARGET} target with rustup (listed in rust-toolchain.toml)"
    );
    let added = Command::new("rustup").args(["target", "add", GUEST_TARGET]).status();
    if !added.is_ok_and(|status| status.success()) {
        panic!(
            "the {GUEST_TARGET} target is missing and rustup could not add it; run `rustup target add {GUEST_TARGET}`"
        );
    }
}

fn find_workspace_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| dir.join("wit").is_dir() && dir.join("Cargo.toml").is_file())
        .map_or_else(|| start.to_path_buf(), Path::to_path_buf)
}
