//! The verdicts of the pre-registered evaluation: per-domain summaries over seeds and, for
//! every hypothesis and falsifiability criterion, a margin per seed with its bootstrap
//! interval, t-test and sign-flip p, Holm's adjustment across the report, and the H-*-1
//! controls (issue 16 item 4; the protocol is in docs/research.md).

use serde::Serialize;

use crate::eval::domain::{Domain, RiskClaim};
use crate::eval::experiment::*;
use crate::eval::stats;
/// A mean and standard deviation over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
}

impl MeanStd {
    fn of(values: &[f64]) -> MeanStd {
        let (mean, std) = stats::mean_std(values);
        MeanStd { mean, std }
    }
}

/// One method's figures on one domain, over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodSummary {
    /// Method.
    pub method: Method,
    /// Its name.
    pub name: String,
    /// Role in the design.
    pub role: Role,
    /// SR at the headline delta.
    pub safety_rate: MeanStd,
    /// TE at the headline delta.
    pub task_efficiency: MeanStd,
    /// Accountability Entropy at the headline delta.
    pub accountability_entropy: MeanStd,
    /// Mean alpha at the headline delta.
    pub mean_alpha: MeanStd,
    /// Mean lambda at the headline delta (NaN for methods without a per-state lambda).
    pub mean_lambda: MeanStd,
    /// SEA over the delta sweep, per seed then summarised.
    pub sea: MeanStd,
    /// SEA per seed.
    pub sea_per_seed: Vec<f64>,
    /// 95% bootstrap intervals over seeds of the mean SR, TE, SEA, AE, alpha and lambda.
    pub intervals: MetricIntervals,
    /// (delta, mean SR, mean TE) per delta, for the Pareto plot.
    pub curve: Vec<(f64, f64, f64)>,
}

/// 95% bootstrap intervals (2,000 resamples over seeds) of a method's mean metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricIntervals {
    /// Safety Rate at the headline delta.
    pub safety_rate: stats::Interval,
    /// Task Efficiency at the headline delta.
    pub task_efficiency: stats::Interval,
    /// SEA over the delta sweep.
    pub sea: stats::Interval,
    /// Accountability Entropy at the headline delta.
    pub accountability_entropy: stats::Interval,
    /// Mean alpha at the headline delta.
    pub mean_alpha: stats::Interval,
    /// Mean lambda at the headline delta.
    pub mean_lambda: stats::Interval,
}

/// A hypothesis or criterion with its statistic and verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Identifier (H-Med-1, F1, ...).
    pub id: String,
    /// Domain it is evaluated on.
    pub domain: String,
    /// Whose claim it is (SBD or SBD-AL (ours)).
    pub method: String,
    /// The paper's criterion, in words.
    pub criterion: String,
    /// What was measured (means with 95% bootstrap intervals over seeds).
    pub measured: String,
    /// The claim's margin per seed (positive where it holds), mean and 95% bootstrap interval
    /// over seeds; NaN for verdicts without a test across seeds.
    pub statistic: stats::Interval,
    /// One-sided t-test p-value of a positive mean margin across seeds (NaN: untested).
    pub p_value: f64,
    /// Holm-adjusted p-value across every tested verdict of the report.
    pub p_holm: f64,
    /// The verdict on means (or every seed) alone, as the earlier reports gave it.
    pub point_holds: bool,
    /// The verdict: Holm-adjusted p < 0.05 for tested verdicts (H-*-1 also needs both
    /// controls to hold), the point verdict otherwise. For hypotheses: supported. For F1-F4:
    /// true when the framework is NOT falsified.
    pub holds: bool,
}

/// Per-domain summaries and every verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Domain -> method summaries, in [`Method::ALL`] order.
    pub domains: Vec<(String, Vec<MethodSummary>)>,
    /// Every hypothesis and falsifiability verdict.
    pub verdicts: Vec<Verdict>,
}

fn runs_of<'a>(results: &'a Results, domain: &str, method: Method) -> Vec<&'a RunResult> {
    results.runs.iter().filter(|r| r.domain == domain && r.method == method).collect()
}

/// The run of a method at a delta (methods without delta answer for every delta).
fn at_delta<'a>(runs: &[&'a RunResult], delta: f64, seed: u64) -> Option<&'a RunResult> {
    runs.iter().copied().find(|r| r.seed == seed && r.delta.is_none_or(|d| d == delta))
}

/// Summarises runs and evaluates every hypothesis.
pub fn analyse(results: &Results, domains: &[Box<dyn Domain>], config: &ExperimentConfig) -> Analysis {
    let headline = config.headline_delta;
    let mut summaries = Vec::new();
    for domain in domains {
        let mut list = Vec::new();
        for method in Method::ALL {
            let runs = runs_of(results, domain.name(), method);
            let at: Vec<&RunResult> = config.seeds.iter().filter_map(|&s| at_delta(&runs, headline, s)).collect();
            let pick = |f: fn(&RunResult) -> f64| MeanStd::of(&at.iter().map(|r| f(r)).collect::<Vec<_>>());
            let sea_per_seed: Vec<f64> = config
                .seeds
                .iter()
                .map(|&seed| {
                    let points: Vec<(f64, f64)> = config
                        .deltas
                        .iter()
                        .filter_map(|&d| at_delta(&runs, d, seed).map(|r| (d, r)))
                        // feasible points only (issue 16): SR >= 1 - delta at the delta of the run
                        .filter(|(d, r)| r.safety_rate >= 1.0 - d)
                        .map(|(_, r)| (r.safety_rate, r.task_efficiency))
                        .collect();
                    safety_efficiency_area(&points)
                })
                .collect();
            let curve = config
                .deltas
                .iter()
                .map(|&d| {
                    let rs: Vec<&RunResult> = config.seeds.iter().filter_map(|&s| at_delta(&runs, d, s)).collect();
                    let mean = |f: fn(&RunResult) -> f64| stats::mean_std(&rs.iter().map(|r| f(r)).collect::<Vec<_>>()).0;
                    (d, mean(|r| r.safety_rate), mean(|r| r.task_efficiency))
                })
                .collect();
            let interval = |f: fn(&RunResult) -> f64| stats::mean_interval(&at.iter().map(|r| f(r)).collect::<Vec<_>>(), 17);
            let intervals = MetricIntervals {
                safety_rate: interval(|r| r.safety_rate),
                task_efficiency: interval(|r| r.task_efficiency),
                sea: stats::mean_interval(&sea_per_seed, 17),
                accountability_entropy: interval(|r| r.accountability_entropy),
                mean_alpha: interval(|r| r.mean_alpha),
                mean_lambda: interval(|r| r.mean_lambda),
            };
            list.push(MethodSummary {
                intervals,
                method,
                name: method.name().into(),
                role: method.role(),
                safety_rate: pick(|r| r.safety_rate),
                task_efficiency: pick(|r| r.task_efficiency),
                accountability_entropy: pick(|r| r.accountability_entropy),
                mean_alpha: pick(|r| r.mean_alpha),
                mean_lambda: pick(|r| r.mean_lambda),
                sea: MeanStd::of(&sea_per_seed),
                sea_per_seed,
                curve,
            });
        }
        summaries.push((domain.name().to_string(), list));
    }
    let verdicts = verdicts(results, domains, config, &summaries);
    Analysis { domains: summaries, verdicts }
}

/// The per-seed SEA of a method on a domain (in `config.seeds` order).
fn sea_of(summaries: &[(String, Vec<MethodSummary>)], domain: &str, method: Method) -> Vec<f64> {
    summaries
        .iter()
        .find(|(d, _)| d == domain)
        .and_then(|(_, l)| l.iter().find(|m| m.method == method))
        .map_or_else(Vec::new, |m| m.sea_per_seed.clone())
}

/// A claim tested across seeds: `margins` holds one value per seed, positive where the claim
/// holds on that seed; the verdict carries their mean with a 95% bootstrap interval, the
/// one-sided t-test p-value of mean > 0 (adjusted by Holm later) and the sign-flip p.
struct Claim<'a> {
    id: &'a str,
    domain: &'a str,
    method: Method,
    criterion: String,
    measured: String,
    margins: Vec<f64>,
    point_holds: bool,
}

fn tested(claim: Claim<'_>) -> Verdict {
    let statistic = stats::mean_interval(&claim.margins, 17);
    Verdict {
        id: claim.id.into(),
        domain: claim.domain.into(),
        method: claim.method.name().into(),
        criterion: claim.criterion,
        measured: format!("{}; sign-flip p {:.3}", claim.measured, stats::sign_flip_p(&claim.margins)),
        statistic,
        p_value: stats::one_sided_t_p(&claim.margins),
        p_holm: f64::NAN,
        point_holds: claim.point_holds,
        holds: claim.point_holds,
    }
}

/// A verdict without a test across seeds (one seed or a count): the point verdict stands.
fn untested(id: &str, domain: &str, method: &str, criterion: String, measured: String, holds: bool) -> Verdict {
    Verdict {
        id: id.into(),
        domain: domain.into(),
        method: method.into(),
        criterion,
        measured,
        statistic: stats::Interval::NAN,
        p_value: f64::NAN,
        p_holm: f64::NAN,
        point_holds: holds,
        holds,
    }
}

/// Family-wise level of the Holm-adjusted verdicts.
pub const ALPHA: f64 = 0.05;

fn verdicts(
    results: &Results,
    domains: &[Box<dyn Domain>],
    config: &ExperimentConfig,
    summaries: &[(String, Vec<MethodSummary>)],
) -> Vec<Verdict> {
    let headline = config.headline_delta;
    let mut verdicts = Vec::new();
    // (index of an H-*-1 row, indices of its two control rows)
    let mut controlled: Vec<(usize, [usize; 2])> = Vec::new();
    let headline_runs = |domain: &str, method: Method| -> Vec<&RunResult> {
        let runs = runs_of(results, domain, method);
        config.seeds.iter().filter_map(|&s| at_delta(&runs, headline, s)).collect()
    };
    let mean = |v: &[f64]| stats::mean_std(v).0;
    let diff = |a: &[f64], b: &[f64], scale: f64| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x - scale * y).collect() };
    let ci = |v: &[f64]| stats::mean_interval(v, 17).show(4);

    for domain in domains {
        let name = domain.name();
        // F3 / F4: one seed, no test
        if let Some(t) = results.theory.iter().find(|t| t.domain == name) {
            let m = &t.monotonicity;
            let join = |v: &[f64]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(", ");
            verdicts.push(untested(
                "F3",
                name,
                "SBD",
                "falsified if P(safe) is not monotone in a fixed lambda: Spearman(lambda, test SR) > 0.9 required; a constant SR leaves it undefined, which does not meet it (one seed)".into(),
                format!(
                    "lambda {:?}: SR {} (Spearman {:.3}); expected P(safe) {} (Spearman {:.3})",
                    m.lambdas,
                    join(&m.safety_rates),
                    m.spearman,
                    join(&m.expected_safety_rates),
                    m.spearman_expected
                ),
                m.pass,
            ));
            let c = &t.convergence;
            verdicts.push(untested(
                "F4",
                name,
                "SBD",
                "falsified if ||pi_t - pi*||^2 does not decay linearly (log-linear fit, R^2 > 0.95), pi* the optimum of the path's basin solved by L-BFGS to a gradient norm below 1e-6; not checked (and not passed) when pi* is not reached or the fitted steps cover less than one e-fold of the distance, where any smooth path is log-linear; the rate log(1 - eta mu) of Theorem 4.6 is reported, not tested (one seed)".into(),
                format!(
                    "pi* gradient norm {:.1e} after {} L-BFGS iterations ({}); log-distance slope {:.5} per step, R^2 {:.3}, distance at the end {:.3} of the start ({}); the theorem's rate {:.5} (measured / predicted {:.1})",
                    c.reference_gradient_norm,
                    c.reference_iterations,
                    if c.reference_converged { "converged" } else { "NOT converged: not checked" },
                    c.fit.slope,
                    c.fit.r_squared,
                    c.distance_ratio,
                    if c.informative { "at least one e-fold" } else { "less than one e-fold: not checked" },
                    c.predicted_slope,
                    c.fit.slope / c.predicted_slope
                ),
                c.pass,
            ));
        }
        for proposed in [Method::Sbd, Method::SbdAl] {
            let who = proposed.name();
            let ours = sea_of(summaries, name, proposed);
            // F1 / H-Med-2: beats every non-ablated baseline (intersection-union: the largest p)
            let mut parts = Vec::new();
            let mut worst: Option<(f64, Vec<f64>)> = None;
            let mut point = true;
            let mut worst_p = 0.0f64;
            for b in Method::BASELINES {
                let theirs = sea_of(summaries, name, b);
                let d = diff(&ours, &theirs, 1.0);
                point &= mean(&ours) > mean(&theirs);
                let p = stats::one_sided_t_p(&d);
                worst_p = worst_p.max(if p.is_nan() { 1.0 } else { p });
                parts.push(format!("{} {} (p {:.1e})", b.name(), ci(&d), p));
                if worst.as_ref().is_none_or(|(m, _)| mean(&d) < *m) {
                    worst = Some((mean(&d), d));
                }
            }
            let mut f1 = tested(Claim {
                id: "F1",
                domain: name,
                method: proposed,
                criterion: format!(
                    "falsified if {who}'s SEA is not strictly higher than every non-ablated baseline's (paired by seed; the claim's p is the largest)"
                ),
                measured: format!("SEA {} ; differences: {}", ci(&ours), parts.join(", ")),
                margins: worst.map(|w| w.1).unwrap_or_default(),
                point_holds: point,
            });
            f1.p_value = worst_p;
            if let Some(id) = domain.f1_also() {
                let mut h = f1.clone();
                h.id = id.into();
                h.criterion = format!("{who}'s SEA strictly higher than each non-ablated baseline");
                verdicts.push(h);
            }
            verdicts.push(f1);
            // F2
            let no_outer = sea_of(summaries, name, Method::NoOuter);
            verdicts.push(tested(Claim {
                id: "F2",
                domain: name,
                method: proposed,
                criterion: format!(
                    "falsified if SBD-NoOuter's SEA is within 1% of {who}'s, or above it (margin: SEA - 1.01 SEA(NoOuter))"
                ),
                measured: format!("SEA {} vs SBD-NoOuter {}", ci(&ours), ci(&no_outer)),
                margins: diff(&ours, &no_outer, 1.01),
                point_holds: mean(&ours) > 1.01 * mean(&no_outer),
            }));
            // ablation order
            let fixed = sea_of(summaries, name, Method::FixedLambda);
            let (a, b) = (diff(&ours, &fixed, 1.0), diff(&fixed, &no_outer, 1.0));
            let mut order = tested(Claim {
                id: "Ablation order",
                domain: name,
                method: proposed,
                criterion: format!("SEA({who}) > SEA(SBD-FixedLambda) > SEA(SBD-NoOuter) (both steps tested; the larger p)"),
                measured: format!("{} > {} > {}", ci(&ours), ci(&fixed), ci(&no_outer)),
                margins: a.clone(),
                point_holds: mean(&ours) > mean(&fixed) && mean(&fixed) > mean(&no_outer),
            });
            order.p_value = stats::one_sided_t_p(&a).max(stats::one_sided_t_p(&b));
            verdicts.push(order);

            let runs = headline_runs(name, proposed);
            // H-*-1 with its two controls, through the same statistic
            let h1: Vec<f64> = runs.iter().map(|r| r.extras.h1.unwrap_or(f64::NAN)).collect();
            let init: Vec<f64> = runs.iter().map(|r| r.extras.h1_init.unwrap_or(f64::NAN)).collect();
            let shuffled: Vec<f64> = runs.iter().map(|r| r.extras.h1_shuffled.unwrap_or(f64::NAN)).collect();
            let RiskClaim { id: h1_id, criterion: h1_criterion, threshold, point_holds: point } =
                domain.risk_claim(who, &runs);
            if h1.iter().any(|v| v.is_finite()) {
                let main = verdicts.len();
                verdicts.push(tested(Claim {
                    id: h1_id,
                    domain: name,
                    method: proposed,
                    criterion: format!("{h1_criterion}; holds only if it also beats both controls below"),
                    measured: format!("statistic {} (threshold {threshold})", ci(&h1)),
                    margins: h1.iter().map(|v| v - threshold).collect(),
                    point_holds: point,
                }));
                for (short, label, control) in
                    [("untrained", "untrained phi and pi", &init), ("shuffled", "shuffled risk labels", &shuffled)]
                {
                    let d = diff(&h1, control, 1.0);
                    verdicts.push(tested(Claim {
                        id: &format!("{h1_id} control: {short}"),
                        domain: name,
                        method: proposed,
                        criterion: format!("{h1_id}'s statistic above its value with {label} (paired by seed)"),
                        measured: format!("control {}; difference {}", ci(control), ci(&d)),
                        point_holds: mean(&d) > 0.0,
                        margins: d,
                    }));
                }
                controlled.push((main, [main + 1, main + 2]));
            }
            if let Some(claim) = domain.further_claim(who, &runs, &|method| headline_runs(name, method), &ci) {
                verdicts.push(tested(Claim {
                    id: claim.id,
                    domain: name,
                    method: proposed,
                    criterion: claim.criterion,
                    measured: claim.measured,
                    margins: claim.margins,
                    point_holds: claim.point_holds,
                }));
            }
            verdicts.extend(constraint_verdicts(results, name, proposed, config));
        }
        let al = sea_of(summaries, name, Method::SbdAl);
        let others = [
            ("AL-SEA", Method::Sbd, "SBD"),
            ("AL-global", Method::GlobalLagrangian, "Global-Lagrangian (one multiplier)"),
            ("AL-tabular", Method::TabularContext, "Tabular-context (one multiplier per context, no network)"),
            ("AL-direct", Method::SbdAlDirect, "SBD-AL-direct (ours: no hypergradient)"),
        ];
        for (id, method, label) in others {
            let other = &sea_of(summaries, name, method);
            verdicts.push(tested(Claim {
                id,
                domain: name,
                method: Method::SbdAl,
                criterion: format!("SBD-AL (ours) has a higher SEA than {label} (paired by seed)"),
                measured: format!("SEA {} vs {}", ci(&al), ci(other)),
                point_holds: mean(&al) > mean(other),
                margins: diff(&al, other, 1.0),
            }));
        }
    }
    // Holm across every tested verdict, then the controls gate the H-*-1 rows
    let adjusted = stats::holm(&verdicts.iter().map(|v| v.p_value).collect::<Vec<_>>());
    for (v, p) in verdicts.iter_mut().zip(adjusted) {
        v.p_holm = p;
        if p.is_finite() {
            v.holds = p < ALPHA;
        }
    }
    for (main, controls) in controlled {
        let ok = controls.iter().all(|&c| verdicts[c].holds);
        verdicts[main].holds &= ok;
    }
    // the MIMIC-IV demo is a second check of the medical domain, not a fourth domain
    let main: Vec<&str> = domains.iter().map(|d| d.name()).filter(|n| *n != "medical-mimic4-demo").collect();
    for proposed in [Method::Sbd, Method::SbdAl] {
        let rows = verdicts
            .iter()
            .filter(|v| v.id == "Ablation order" && v.method == proposed.name() && main.contains(&v.domain.as_str()));
        let (tested_count, point_count) =
            rows.fold((0, 0), |(t, p), v| (t + usize::from(v.holds), p + usize::from(v.point_holds)));
        let mut v = untested(
            "Ablation order (6.5)",
            "all",
            proposed.name(),
            "the ordering holds on at least two of the three domains".into(),
            format!(
                "holds on {tested_count} of {} domains with Holm-adjusted tests ({point_count} on means alone; {})",
                main.len(),
                main.join(", ")
            ),
            tested_count >= 2.min(main.len()),
        );
        v.point_holds = point_count >= 2.min(main.len());
        verdicts.push(v);
    }
    verdicts
}

/// The chance-constraint claims of issue 16 for one method on one domain: at the headline
/// delta every context's test P(unsafe) (stochastic policy) is within delta (margin per seed:
/// delta minus the worst context's rate; the Clopper-Pearson bounds reported); and TE rises
/// with delta (margin per seed: TE at the largest delta minus TE at the smallest).
fn constraint_verdicts(results: &Results, domain: &str, method: Method, config: &ExperimentConfig) -> Vec<Verdict> {
    let runs = runs_of(results, domain, method);
    let delta = config.headline_delta;
    let headline: Vec<&RunResult> = config.seeds.iter().filter_map(|&s| at_delta(&runs, delta, s)).collect();
    let mut cells = Vec::new();
    for k in 0..2 {
        let rates: Vec<f64> = headline
            .iter()
            .filter_map(|r| r.extras.contexts.iter().find(|c| c.context == k).map(|c| c.unsafe_rate))
            .collect();
        let bounds: Vec<f64> = headline
            .iter()
            .filter_map(|r| r.extras.contexts.iter().find(|c| c.context == k).map(|c| c.upper_bound))
            .collect();
        let mu: Vec<f64> = headline
            .iter()
            .filter_map(|r| r.extras.contexts.iter().find(|c| c.context == k).map(|c| c.mean_multiplier))
            .collect();
        if !rates.is_empty() {
            cells.push(format!(
                "ctx {k}: P(unsafe) {} (mean 95% Clopper-Pearson UB {:.3}, mean mu {:.2})",
                stats::mean_interval(&rates, 17).show(3),
                stats::mean_std(&bounds).0,
                stats::mean_std(&mu).0
            ));
        }
    }
    let worst: Vec<f64> = headline
        .iter()
        .map(|r| delta - r.extras.contexts.iter().map(|c| c.unsafe_rate).fold(0.0f64, f64::max))
        .collect();
    let (lo, hi) = (
        config.deltas.iter().copied().fold(f64::INFINITY, f64::min),
        config.deltas.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let te_at = |d: f64| -> Vec<f64> {
        config.seeds.iter().filter_map(|&s| at_delta(&runs, d, s)).map(|r| r.task_efficiency).collect()
    };
    let curve: Vec<String> =
        config.deltas.iter().map(|&d| format!("{d}: {}", stats::mean_interval(&te_at(d), 17).show(4))).collect();
    let rise: Vec<f64> = te_at(hi).iter().zip(te_at(lo)).map(|(h, l)| h - l).collect();
    vec![
        tested(Claim {
            id: "C-context",
            domain,
            method,
            criterion: format!(
                "{}: every context's test P(unsafe) of the stochastic policy <= delta = {delta} (margin: delta - worst context)",
                method.name()
            ),
            measured: if cells.is_empty() { "no runs".into() } else { cells.join("; ") },
            point_holds: !headline.is_empty() && worst.iter().all(|&m| m >= 0.0),
            margins: worst,
        }),
        tested(Claim {
            id: "C-delta",
            domain,
            method,
            criterion: format!("{}: TE rises with delta (margin: TE at delta {hi} - TE at delta {lo})", method.name()),
            measured: curve.join(", "),
            point_holds: stats::mean_std(&rise).0 > 1e-6,
            margins: rise,
        }),
    ]
}

