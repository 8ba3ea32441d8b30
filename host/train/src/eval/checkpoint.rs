//! Checkpoints for long experiments: every finished tuning candidate, run and theory check is
//! appended to one file as soon as it completes, so an experiment that is killed (a device
//! lease running out, a CI timeout) resumes where it stopped instead of starting over.
//!
//! The file is a sequence of records, each a little-endian `u32` length and the record's
//! postcard bytes (postcard keeps every `f64` bit for bit, NaN included, so a resumed
//! experiment's results equal an uninterrupted one's). The first record names the experiment:
//! its configuration, domains and the build that ran it. A file written by another experiment
//! is refused, never mixed in. A record cut short by a kill is dropped and the file trimmed to
//! the last whole record.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::domain::Domain;
use super::experiment::{DomainTheory, ExperimentConfig, RunResult, TuningTrial};
use crate::error::TrainError;

/// One line of the checkpoint. The index is the item's place in the experiment's fixed order
/// (candidates, jobs, domains), which the identity pins.
#[derive(Serialize, Deserialize)]
enum Record {
    Header { identity: String },
    Tuning { index: u32, trial: TuningTrial },
    Run { index: u32, result: RunResult },
    Theory { index: u32, theory: DomainTheory },
}

/// Finished items, by index.
#[derive(Default)]
struct Done {
    tuning: BTreeMap<u32, TuningTrial>,
    runs: BTreeMap<u32, RunResult>,
    theory: BTreeMap<u32, DomainTheory>,
}

/// An open checkpoint file.
pub struct Checkpoint {
    path: PathBuf,
    file: Mutex<File>,
    done: Done,
}

impl Checkpoint {
    /// The identity of an experiment: its whole configuration (`Debug` prints every `f64`
    /// exactly) except the number of worker threads, which changes no result, its domains with
    /// their split sizes, and `build`, which names the code (a resumed run must not mix
    /// results of two builds).
    pub fn identity(config: &ExperimentConfig, domains: &[Box<dyn Domain>], build: &str) -> String {
        let config = ExperimentConfig { jobs: 0, ..config.clone() };
        let domains: Vec<String> = domains
            .iter()
            .map(|d| {
                format!(
                    "{}:{}/{}/{}",
                    d.name(), d.dataset().train.len, d.dataset().validation.len, d.dataset().test.len
                )
            })
            .collect();
        format!("sbd-experiment-checkpoint-v1|{build}|{}|{config:?}", domains.join(","))
    }

    /// Opens the checkpoint at `path` for the experiment `identity`: resumes from it when it
    /// was written by the same experiment, creates it when absent, and refuses one written by
    /// another experiment or build.
    pub fn open(path: &Path, identity: &str) -> Result<Checkpoint, TrainError> {
        let io = |source| TrainError::Io { path: path.display().to_string(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut done = Done::default();
        let mut at = 0;
        let mut header = None;
        while let Some((record, next)) = next_record(&bytes, at) {
            match record {
                Record::Header { identity } => header = header.or(Some(identity)),
                Record::Tuning { index, trial } => {
                    done.tuning.insert(index, trial);
                }
                Record::Run { index, result } => {
                    done.runs.insert(index, result);
                }
                Record::Theory { index, theory } => {
                    done.theory.insert(index, theory);
                }
            }
            at = next;
        }
        match header {
            Some(found) if found != identity => {
                return Err(TrainError::Config(format!(
                    "the checkpoint `{}` belongs to another experiment (a different configuration, domain data or build); \
                     delete it to start over",
                    path.display()
                )));
            }
            Some(_) => {
                // a record cut short by a kill: drop it
                file.set_len(at as u64).map_err(io)?;
            }
            None => {
                file.set_len(0).map_err(io)?;
                done = Done::default();
            }
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let checkpoint = Checkpoint { path: path.to_path_buf(), file: Mutex::new(file), done };
        if header.is_none() {
            checkpoint.append(&Record::Header { identity: identity.to_owned() })?;
        }
        Ok(checkpoint)
    }

    /// How many finished items the file held when it was opened.
    pub fn resumed(&self) -> usize {
        self.done.tuning.len() + self.done.runs.len() + self.done.theory.len()
    }

    /// The tuning candidate `index`, if it finished before.
    pub fn tuning(&self, index: usize) -> Option<TuningTrial> {
        u32::try_from(index).ok().and_then(|i| self.done.tuning.get(&i)).cloned()
    }

    /// The run `index`, if it finished before.
    pub fn run(&self, index: usize) -> Option<RunResult> {
        u32::try_from(index).ok().and_then(|i| self.done.runs.get(&i)).cloned()
    }

    /// The theory check of domain `index`, if it finished before.
    pub fn theory(&self, index: usize) -> Option<DomainTheory> {
        u32::try_from(index).ok().and_then(|i| self.done.theory.get(&i)).cloned()
    }

    /// Records a finished tuning candidate.
    pub fn record_tuning(&self, index: usize, trial: &TuningTrial) -> Result<(), TrainError> {
        self.append(&Record::Tuning { index: self.index(index)?, trial: trial.clone() })
    }

    /// Records a finished run.
    pub fn record_run(&self, index: usize, result: &RunResult) -> Result<(), TrainError> {
        self.append(&Record::Run { index: self.index(index)?, result: result.clone() })
    }

    /// Records a finished theory check.
    pub fn record_theory(&self, index: usize, theory: &DomainTheory) -> Result<(), TrainError> {
        self.append(&Record::Theory { index: self.index(index)?, theory: theory.clone() })
    }

    fn index(&self, index: usize) -> Result<u32, TrainError> {
        u32::try_from(index).map_err(|_| TrainError::Config(format!("checkpoint index {index} does not fit")))
    }

    /// Writes one whole record (length and bytes in one write) under the lock.
    fn append(&self, record: &Record) -> Result<(), TrainError> {
        let body = postcard::to_allocvec(record)
            .map_err(|e| TrainError::Encoding(format!("checkpoint record: {e}")))?;
        let len = u32::try_from(body.len())
            .map_err(|_| TrainError::Encoding(format!("a checkpoint record of {} bytes", body.len())))?;
        let mut framed = Vec::with_capacity(body.len() + 4);
        framed.extend_from_slice(&len.to_le_bytes());
        framed.extend_from_slice(&body);
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(&framed)
            .map_err(|source| TrainError::Io { path: self.path.display().to_string(), source })
    }
}

/// The record at `at` and where the next one starts; `None` at the end or at a record cut
/// short (or unreadable), where reading stops.
fn next_record(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let head = bytes.get(at..at.checked_add(4)?)?;
    let len = usize::try_from(u32::from_le_bytes(head.try_into().ok()?)).ok()?;
    let end = at.checked_add(4)?.checked_add(len)?;
    let record = postcard::from_bytes(bytes.get(at + 4..end)?).ok()?;
    Some((record, end))
}
