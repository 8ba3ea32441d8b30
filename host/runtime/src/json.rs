//! Strict JSON reading: [`sbd_policy::json`], re-exported so hosts keep one import path. The
//! component's JSON exports parse with the same code.

pub use sbd_policy::json::*;
