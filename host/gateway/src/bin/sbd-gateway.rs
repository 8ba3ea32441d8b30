//! `sbd-gateway`: the gateway alone (what `sbd serve` runs), for deployments and for the
//! crash test, which needs a binary of this package to kill.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut config = sbd_gateway::Config::default();
    let mut args = std::env::args().skip(1);
    let mut config_file: Option<PathBuf> = None;
    let mut data_dir: Option<PathBuf> = None;
    let mut addr: Option<String> = None;
    let mut store: Option<String> = None;
    let mut store_prefix: Option<String> = None;
    while let Some(a) = args.next() {
        let known = matches!(a.as_str(), "--config" | "--data-dir" | "--addr" | "--store" | "--store-prefix");
        if !known {
            eprintln!("sbd-gateway: unknown argument `{a}` (expected --config F, --data-dir D, --addr A, --store URL, --store-prefix P)");
            return ExitCode::from(2);
        }
        // a flag without its value is refused, not ignored (a gateway meant for a shared store
        // must not start on a store of its own)
        let Some(value) = args.next() else {
            eprintln!("sbd-gateway: `{a}` needs a value");
            return ExitCode::from(2);
        };
        match a.as_str() {
            "--config" => config_file = Some(PathBuf::from(value)),
            "--data-dir" => data_dir = Some(PathBuf::from(value)),
            "--addr" => addr = Some(value),
            "--store" => store = Some(value),
            _ => store_prefix = Some(value),
        }
    }
    if let Some(f) = config_file {
        match sbd_gateway::Config::from_file(&f) {
            Ok(c) => config = c,
            Err(e) => {
                eprintln!("sbd-gateway: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    if store.is_some() {
        config.store = store;
    }
    if let Some(p) = store_prefix {
        config.store_prefix = p;
    }
    if let Some(a) = addr {
        match a.parse() {
            Ok(a) => config.addr = a,
            Err(e) => {
                eprintln!("sbd-gateway: `{a}` is not a socket address: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sbd-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sbd_gateway::serve::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sbd-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
