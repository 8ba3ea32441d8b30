//! The whole pre-registered evaluation at quick sizes: every domain, method, delta and seed
//! runs, every hypothesis gets a verdict, and the report is written.

use sbd_train::eval::experiment::{self, DomainChoice, ExperimentConfig, Method};
use sbd_train::eval::analysis;
use sbd_train::eval::experiment_report::{self, ReportMeta};

#[test]
fn the_quick_protocol_runs_end_to_end_and_reports_every_verdict() -> Result<(), Box<dyn std::error::Error>> {
    let domains = experiment::load_domains(DomainChoice::All, true)?;
    let names: Vec<&str> = domains.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["finance", "medical", "medical-mimic4-demo", "education"]);
    assert!(domains.iter().any(|d| d.provenance().starts_with("SYNTHETIC")), "education is labelled synthetic");

    // a candidate is feasible only if its deployed decisions and its stochastic policy both
    // reach 1 - delta; among infeasible ones the safer ranks higher
    assert_eq!(experiment::tuning_score(1.0, 0.96, 0.7, 0.05), 0.7);
    assert!(experiment::tuning_score(1.0, 0.90, 0.9, 0.05) < 0.0, "the stochastic policy breaks the constraint");
    assert!(experiment::tuning_score(0.90, 1.0, 0.9, 0.05) < experiment::tuning_score(0.94, 1.0, 0.1, 0.05));
    let config = ExperimentConfig { seeds: vec![0], ..ExperimentConfig::quick() };
    let results = experiment::run(&domains, &config, &|_, _| {})?;
    // per domain and seed: 11 delta-dependent methods (SBD-AL, SBD-AL-direct, Tabular-context,
    // Global-Lagrangian and Best-fixed-lambda included) x 5 deltas + 3 without
    assert_eq!(results.runs.len(), domains.len() * (11 * 5 + 3));
    // the random search: the same budget for every tuned method on every domain, candidate 0
    // the defaults, and each run used its method's chosen values
    assert_eq!(results.tuning.len(), domains.len() * Method::TUNED.len() * config.tuning_budget);
    for d in &domains {
        for method in Method::TUNED {
            let trials: Vec<_> = results.tuning.iter().filter(|t| t.domain == d.name() && t.method == method).collect();
            assert_eq!(trials.len(), config.tuning_budget);
            let (_, _, chosen) = results.chosen.iter().find(|(n, m, _)| n == d.name() && *m == method).ok_or("no choice")?;
            let best = trials.iter().map(|t| t.score).fold(f64::NEG_INFINITY, f64::max);
            assert!(trials.iter().any(|t| t.hyper == *chosen && t.score == best), "{} {:?}", d.name(), method);
        }
        // the ablations take SBD's values
        let of = |m: Method| results.chosen.iter().find(|(n, x, _)| n == d.name() && *x == m).map(|c| c.2);
        assert_eq!(of(Method::NoOuter), of(Method::Sbd));
        // and SBD-AL's direct form, SBD-AL's
        assert_eq!(of(Method::SbdAlDirect), of(Method::SbdAl));
    }
    for run in &results.runs {
        assert!((0.0..=1.0).contains(&run.safety_rate), "{run:?}");
        assert!((0.0..=1.0).contains(&run.task_efficiency), "{run:?}");
        assert!((0.0..=1.0).contains(&run.accountability_entropy), "{run:?}");
        assert!((0.0..=1.0).contains(&run.stochastic_safety_rate), "{run:?}");
    }
    // the realisations show in the decisions: alpha 0.5 is one bit of accountability entropy,
    // discrete alphas none, and MaAS-style takes one decision for every state
    for run in &results.runs {
        match run.method {
            Method::FixedAlpha => assert!((run.accountability_entropy - 1.0).abs() < 1e-12),
            Method::MarlVanilla | Method::Cpo | Method::DiscreteAlpha => assert_eq!(run.accountability_entropy, 0.0),
            Method::Maas => assert!([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0].iter().any(|a| (run.mean_alpha - a).abs() < 1e-9)),
            _ => {}
        }
    }
    let analysis = analysis::analyse(&results, &domains, &config);
    let ids: Vec<&str> = analysis.verdicts.iter().map(|v| v.id.as_str()).collect();
    for id in ["H-Med-1", "H-Med-2", "H-Fin-1", "H-Fin-2", "H-Edu-1", "H-Edu-2", "F1", "F2", "F3", "F4", "Ablation order (6.5)", "C-context", "C-delta", "AL-SEA", "AL-global", "AL-tabular", "AL-direct", "H-Med-1 control: untrained", "H-Fin-1 control: shuffled", "H-Edu-1 control: untrained", "H-Edu-1 control: shuffled"] {
        assert!(ids.contains(&id), "no verdict for {id}: {ids:?}");
    }
    // both SBD and SBD-AL get every hypothesis; tested verdicts carry a Holm-adjusted p no
    // smaller than their own, and hold only below the level
    for id in ["H-Med-1", "H-Fin-1", "H-Edu-1", "F1", "F2", "C-context"] {
        for who in ["SBD", "SBD-AL (ours)"] {
            assert!(analysis.verdicts.iter().any(|v| v.id == id && v.method == who), "{id} for {who}");
        }
    }
    for v in &analysis.verdicts {
        if v.p_value.is_finite() {
            assert!(v.p_holm >= v.p_value - 1e-12 && v.p_holm <= 1.0, "{v:?}");
            if v.holds {
                assert!(v.p_holm < analysis::ALPHA, "{v:?}");
            }
        } else {
            assert_eq!(v.holds, v.point_holds, "{v:?}");
        }
    }
    // SBD-AL and the tabular baseline measured every context they constrain
    for run in results.runs.iter().filter(|r| matches!(r.method, Method::SbdAl | Method::TabularContext)) {
        assert!(!run.extras.contexts.is_empty(), "{run:?}");
    }
    // the H-*-1 controls ran through the same statistic on the SBD runs
    for run in results.runs.iter().filter(|r| r.method == Method::Sbd) {
        assert!(run.extras.h1.is_some() && run.extras.h1_init.is_some() && run.extras.h1_shuffled.is_some(), "{run:?}");
    }
    let dir = std::env::temp_dir().join(format!("sbd-experiment-test-{}", std::process::id()));
    let meta = ReportMeta { command: "test".into(), started: "now".into(), machine: "test".into(), mode: "quick".into() };
    let files = experiment_report::write(&dir, &domains, &config, &results, &analysis, &meta)?;
    for file in &files {
        let bytes = std::fs::read(dir.join(file))?;
        assert!(bytes.len() > 100, "{file} is empty");
    }
    let report = std::fs::read_to_string(dir.join("report.md"))?;
    assert!(report.contains("SYNTHETIC") && report.contains("H-Edu-2") && report.contains("SBD-NoConstraint"));
    assert!(report.contains("SBD-AL (ours)") && report.contains("Does delta bind?"));
    assert!(report.contains("Oracle frontier (closed form") && report.contains("Oracle frontier: none for finance"));
    assert!(report.contains("Equal tuning on validation") && report.contains("Holm") && report.contains("block-bootstrap"));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json"))?)?;
    assert_eq!(json["results"]["runs"].as_array().map(Vec::len), Some(results.runs.len()));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
