//! Criterion benchmarks for the decision point; see `decision.rs` and `load.rs`, and
//! `report.py` for the ratio table in the README.
