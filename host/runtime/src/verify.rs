//! The verdict check the runtime applies to every answer: [`sbd_policy::verify`], the one
//! implementation, which the component also exports for the other bindings.

pub use sbd_policy::verify::check_verdict;
