//! A killed experiment resumes from its checkpoint with the results of an uninterrupted run,
//! a record torn by the kill is dropped, and a checkpoint of another experiment is refused.

use sbd_train::eval::checkpoint::Checkpoint;
use sbd_train::eval::experiment::{self, DomainChoice, ExperimentConfig, Results};

/// The results without wall-clock times, as comparable text (NaN fields print as `null`).
fn timeless(results: &Results) -> Result<String, serde_json::Error> {
    let mut results = results.clone();
    results.seconds = 0.0;
    results.tuning_seconds = 0.0;
    for run in &mut results.runs {
        run.seconds = 0.0;
    }
    serde_json::to_string(&results)
}

#[test]
fn a_killed_experiment_resumes_to_the_same_results() -> Result<(), Box<dyn std::error::Error>> {
    let domains = experiment::load_domains(DomainChoice::Education, true)?;
    let config = ExperimentConfig { seeds: vec![0], tuning_budget: 2, jobs: 2, ..ExperimentConfig::quick() };
    let identity = Checkpoint::identity(&config, &domains, "test-build");
    let dir = std::env::temp_dir().join(format!("sbd-checkpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("checkpoint.postcard");
    let _ = std::fs::remove_file(&path);

    let uninterrupted = experiment::run(&domains, &config, &|_, _| {})?;
    let full = {
        let checkpoint = Checkpoint::open(&path, &identity)?;
        assert_eq!(checkpoint.resumed(), 0);
        experiment::run_checkpointed(&domains, &config, Some(&checkpoint), &|_, _| {})?
    };
    assert_eq!(timeless(&full)?, timeless(&uninterrupted)?, "checkpointing changes nothing");

    // A kill part-way: keep a little over half the file, so the last record is torn.
    let bytes = std::fs::read(&path)?;
    let items = uninterrupted.tuning.len() + uninterrupted.runs.len() + uninterrupted.theory.len();
    std::fs::write(&path, &bytes[..bytes.len() / 2 + 3])?;
    let resumed = {
        let checkpoint = Checkpoint::open(&path, &identity)?;
        let kept = checkpoint.resumed();
        assert!(kept > 0 && kept < items, "{kept} of {items} items survive the kill");
        experiment::run_checkpointed(&domains, &config, Some(&checkpoint), &|_, _| {})?
    };
    assert_eq!(timeless(&resumed)?, timeless(&uninterrupted)?, "the resumed experiment's results");
    // The torn record was trimmed and the rest appended: the file now holds everything once more.
    assert_eq!(Checkpoint::open(&path, &identity)?.resumed(), items);

    // Fewer worker threads change no result, so they may resume it.
    let fewer = ExperimentConfig { jobs: 1, ..config.clone() };
    assert_eq!(Checkpoint::identity(&fewer, &domains, "test-build"), identity);
    // Another configuration (or build) never reads this file.
    let other = ExperimentConfig { seeds: vec![1], ..config.clone() };
    let refused = Checkpoint::open(&path, &Checkpoint::identity(&other, &domains, "test-build")).err();
    assert!(refused.is_some_and(|e| e.to_string().contains("belongs to another experiment")));
    let rebuilt = Checkpoint::open(&path, &Checkpoint::identity(&config, &domains, "another-build")).err();
    assert!(rebuilt.is_some_and(|e| e.to_string().contains("belongs to another experiment")));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
