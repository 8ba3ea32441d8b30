//! The data: one sample format and the three domains that fill it.

pub mod data;
pub mod education;
pub mod finance;
pub mod medical;
