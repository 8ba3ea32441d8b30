//! The evaluation: the pre-registered experiment and its verdicts, the section 6.6 checks,
//! statistics, the oracle frontier, reports and plots.

pub mod analysis;
pub mod checkpoint;
pub mod domain;
pub mod experiment;
pub mod experiment_report;
pub mod oracle;
pub mod report;
pub mod rolling;
pub mod stats;
pub mod summary;
pub mod theory;
