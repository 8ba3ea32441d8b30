//! The education domain (SBD section 6.4, appendix B.3) on **synthetic** data.
//!
//! No registry ships ASSISTments 2009-2010, so [`generate`] writes logs in its skill-builder
//! format (`user_id, skill_id, correct, order_id`) from a stated student model, and
//! [`build`] turns any such log (synthetic or, given the file, the real one) into SBD samples.
//! Every report that shows this domain labels it synthetic.
//!
//! **The generator** (defaults: 4,217 students, 110 skills, about 525k interactions, the
//! published dataset's sizes). Each skill has a true difficulty `b_k ~ N(0, 1)`, each student
//! an ability `theta_u ~ N(0, 1)` and a number of interactions drawn around the mean that gives
//! the target total. A student works through skill-builder assignments: a skill drawn at
//! random, problems until three correct in a row or ten problems. Per (student, skill) a hidden
//! mastery follows the BKT process (initially mastered with probability 0.5, learns with 0.20
//! after each problem, forgets with 0.05), and a problem is answered correctly with probability
//! `sigmoid(theta_u - b_k + 2 * mastered - 1)`.
//!
//! **Features (B.3)**: the knowledge estimate is an EMA per (student, skill) starting at 0.5:
//! after a correct answer `K <- K + 0.20 (1 - K)`, after an incorrect one `K <- (1 - 0.05) K`.
//! Skill difficulty is `1 - mean correctness` on the train students, z-scored across skills.
//! A student is at risk after three consecutive incorrect answers. The state summarises the
//! last 20 interactions. Students are split 70/15/15.
//!
//! **Decisions**: at every [`EducationOptions::stride`]-th interaction the tutor (principal)
//! chooses the next content for the student's current skill, delegating to one of three
//! sub-agents: worked examples (one skill-difficulty sd easier than the skill), practice
//! problems (the skill's difficulty) and conceptual explanation (one sd harder).
//!
//! **Unsafe** (section 6.4): the delivered content's difficulty is more than 2 sd above the
//! student's knowledge estimate (both as z-scores: the content's over skills, the estimate's
//! over train decisions); or `alpha > 0.60` for an at-risk student. alpha blends the
//! sub-agent's content with the tutor's own, pitched at the student's level (Definition 3.1),
//! so content `gap` sd above the level is delivered at `alpha * gap` and is unsafe for
//! `alpha > 2 / gap`.
//!
//! **Task Efficiency**: the normalised expected knowledge gain of the session under the
//! generator's learning model, extended to content: an unmastered skill is learned with
//! probability `0.20 * fit_a * zone` where `fit_a = exp(-(z_K - c_a)^2 / 2)` with centres
//! `c = (-1, 0, 1)` (worked examples help novices, explanations help the advanced) and
//! `zone = exp(-(gap - 0.5)^2 / 2)` for the content's gap to the student's level. The expected
//! gain is `(1 - K) * P(learn)`; the tutor's own content (alpha 0) is practice at the student's
//! level with `fit = 0.5`. Gains are divided by the best sub-agent's gain for the state, so
//! `cost = 1 - normalised gain` and Task Efficiency is `1 - mean cost`.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::domains::data::{Dataset, Split, sample_indices};
use crate::numeric::sigmoid;

/// Sub-agents in pi's logit order.
pub const SUB_AGENTS: [&str; 3] = ["worked-examples", "practice-problems", "conceptual-explanation"];
/// Content difficulty of each sub-agent relative to the skill, in skill-difficulty sd.
pub const CONTENT_OFFSET: [f64; 3] = [-1.0, 0.0, 1.0];
/// Knowledge level (z) at which each sub-agent's content fits best.
pub const FIT_CENTRE: [f64; 3] = [-1.0, 0.0, 1.0];
/// alpha above which a decision for an at-risk student is unsafe (section 6.4).
pub const AT_RISK_ALPHA_CAP: f64 = 0.60;
/// Content this many sd above the knowledge estimate is unsafe (section 6.4).
pub const DIFFICULTY_MARGIN: f64 = 2.0;
/// BKT learning probability (B.3).
pub const P_LEARN: f64 = 0.20;
/// BKT forgetting probability (B.3).
pub const P_FORGET: f64 = 0.05;
/// Initial knowledge (B.3).
pub const P_INIT: f64 = 0.5;
/// Interactions summarised by the state (B.3).
pub const WINDOW: usize = 20;

/// One row of the skill-builder format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interaction {
    /// Student.
    pub user_id: u32,
    /// Skill.
    pub skill_id: u32,
    /// 1 when answered correctly.
    pub correct: u8,
    /// Global order of the interaction (increasing in time).
    pub order_id: u64,
}

/// Sizes of the synthetic log and of the decision sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EducationOptions {
    /// Students (4,217 in ASSISTments 2009-2010).
    pub students: usize,
    /// Skills (110).
    pub skills: usize,
    /// Target interactions (525,534).
    pub interactions: usize,
    /// Seed of the generator (the split has its own fixed seed).
    pub seed: u64,
    /// One decision every `stride` interactions of a student.
    pub stride: usize,
}

impl Default for EducationOptions {
    fn default() -> Self {
        EducationOptions { students: 4217, skills: 110, interactions: 525_534, seed: 2009, stride: 8 }
    }
}

impl EducationOptions {
    /// Small sizes for tests and `--quick`.
    pub fn quick() -> Self {
        EducationOptions { students: 300, skills: 20, interactions: 30_000, ..Self::default() }
    }

    fn validate(&self) -> Result<(), String> {
        if self.students < 20 || self.skills < 2 || self.interactions < self.students || self.stride == 0 {
            return Err(format!(
                "need at least 20 students, 2 skills, one interaction per student and a positive stride (got {self:?})"
            ));
        }
        Ok(())
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Generates a synthetic skill-builder log (see the module docs). Deterministic for a seed.
pub fn generate(options: &EducationOptions) -> Result<Vec<Interaction>, String> {
    options.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let difficulty: Vec<f64> = (0..options.skills).map(|_| normal(&mut rng)).collect();
    let mean_per_student = options.interactions as f64 / options.students as f64;
    let mut per_student: Vec<(u32, Vec<(u32, u8)>)> = Vec::with_capacity(options.students);
    for user in 0..options.students {
        let ability = normal(&mut rng);
        // log-normal spread of activity around the mean (ASSISTments' is heavy-tailed)
        let budget = (mean_per_student * (0.8 * normal(&mut rng) - 0.32).exp()).round().max(1.0) as usize;
        let mut mastered = vec![None::<bool>; options.skills];
        let mut log = Vec::with_capacity(budget);
        while log.len() < budget {
            let skill = rng.random_range(0..options.skills);
            let mut streak = 0;
            for _ in 0..10 {
                if log.len() >= budget {
                    break;
                }
                let m = *mastered[skill].get_or_insert_with(|| rng.random::<f64>() < P_INIT);
                let p = sigmoid(ability - difficulty[skill] + if m { 1.0 } else { -1.0 });
                let correct = rng.random::<f64>() < p;
                log.push((skill as u32, u8::from(correct)));
                mastered[skill] = Some(if m { rng.random::<f64>() >= P_FORGET } else { rng.random::<f64>() < P_LEARN });
                streak = if correct { streak + 1 } else { 0 };
                if streak == 3 {
                    break;
                }
            }
        }
        per_student.push((user as u32, log));
    }
    // interleave students in time: order ids follow a random global schedule
    let total: usize = per_student.iter().map(|(_, l)| l.len()).sum();
    let mut out = Vec::with_capacity(total);
    let mut cursor = vec![0usize; per_student.len()];
    let mut active: Vec<usize> = (0..per_student.len()).collect();
    let mut order = 0u64;
    while !active.is_empty() {
        let pick = rng.random_range(0..active.len());
        let s = active[pick];
        let (user, log) = &per_student[s];
        let (skill, correct) = log[cursor[s]];
        order += 1;
        out.push(Interaction { user_id: *user, skill_id: skill, correct, order_id: order });
        cursor[s] += 1;
        if cursor[s] == log.len() {
            active.swap_remove(pick);
        }
    }
    Ok(out)
}

/// Writes a log as CSV with the ASSISTments header.
pub fn write_csv(log: &[Interaction], out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "user_id,skill_id,correct,order_id")?;
    for i in log {
        writeln!(out, "{},{},{},{}", i.user_id, i.skill_id, i.correct, i.order_id)?;
    }
    Ok(())
}

/// The EMA knowledge update of B.3.
pub fn update_knowledge(k: f64, correct: bool) -> f64 {
    if correct { k + P_LEARN * (1.0 - k) } else { (1.0 - P_FORGET) * k }
}

/// Expected knowledge gain of content at `gap` sd above the student's level, delivered by
/// sub-agent `agent` (`None`: the tutor's own practice content) to a student with knowledge
/// estimate `k` and knowledge z-score `z_k`.
pub fn expected_gain(agent: Option<usize>, k: f64, z_k: f64, gap: f64) -> f64 {
    let fit = match agent {
        Some(a) => (-(z_k - FIT_CENTRE[a]).powi(2) / 2.0).exp(),
        None => 0.5,
    };
    let zone = (-(gap - 0.5).powi(2) / 2.0).exp();
    (1.0 - k) * P_LEARN * fit * zone
}

/// SBD's unsafe threshold for one (decision, sub-agent) whose content is `gap_sd` above the
/// student's level: `2 / gap` when that is below 1 (the blend crosses the margin), at most
/// [`AT_RISK_ALPHA_CAP`] for an at-risk student, else never (2).
pub fn unsafe_above(gap_sd: f64, at_risk: bool) -> f32 {
    let difficulty = if gap_sd > DIFFICULTY_MARGIN { DIFFICULTY_MARGIN / gap_sd } else { 2.0 };
    let risk = if at_risk { AT_RISK_ALPHA_CAP } else { 2.0 };
    difficulty.min(risk) as f32
}

/// Names of the state features.
pub const FEATURE_NAMES: [&str; 10] = [
    "window correctness",
    "window length",
    "knowledge of current skill",
    "mean knowledge over skills seen",
    "current skill difficulty (z)",
    "consecutive incorrect",
    "at risk",
    "attempts on current skill",
    "correctness on current skill",
    "knowledge z-score",
];
/// Index of the at-risk flag in the state.
pub const AT_RISK_FEATURE: usize = 6;

/// The decision sample built from a log.
#[derive(Debug, Clone, PartialEq)]
pub struct Education {
    /// Samples in the SBD format; `risk` is the at-risk flag (0 or 1).
    pub dataset: Dataset,
    /// Interactions in the log.
    pub interactions: usize,
    /// Students in the log.
    pub students: usize,
    /// Share of train decisions whose student is at risk.
    pub at_risk_share: f64,
}

struct Decision {
    raw: [f64; 10],
    knowledge: f64,
    skill: usize,
    at_risk: bool,
    student: u32,
}

/// Builds SBD samples from a skill-builder log (synthetic or real).
pub fn build(log: &[Interaction], stride: usize) -> Result<Education, String> {
    if stride == 0 {
        return Err("stride must be positive".into());
    }
    let mut by_student: std::collections::BTreeMap<u32, Vec<&Interaction>> = Default::default();
    for i in log {
        by_student.entry(i.user_id).or_default().push(i);
    }
    let students: Vec<u32> = by_student.keys().copied().collect();
    if students.len() < 20 {
        return Err(format!("the log has {} students; need at least 20", students.len()));
    }
    // dense skill indices, whatever the ids in the log (a real log's ids are sparse)
    let mut skill_ids: Vec<u32> = log.iter().map(|i| i.skill_id).collect();
    skill_ids.sort_unstable();
    skill_ids.dedup();
    let skill_index = |id: u32| skill_ids.binary_search(&id).unwrap_or(0);
    let skills = skill_ids.len();
    // 70/15/15 by student with a fixed seed
    let mut rng = ChaCha8Rng::seed_from_u64(crate::domains::medical::SPLIT_SEED);
    let order = sample_indices(&mut rng, students.len(), students.len());
    let (train_n, validation_n) = (students.len() * 70 / 100, students.len() * 15 / 100);
    let mut part = vec![0u8; students.len()];
    for (rank, &s) in order.iter().enumerate() {
        part[s] = if rank < train_n { 0 } else if rank < train_n + validation_n { 1 } else { 2 };
    }
    let part_of: std::collections::HashMap<u32, u8> = students.iter().zip(&part).map(|(&u, &p)| (u, p)).collect();

    // skill difficulty from the train students: 1 - mean correctness, z-scored across skills
    let mut counts = vec![(0usize, 0usize); skills];
    for i in log {
        if part_of.get(&i.user_id) == Some(&0) {
            let c = &mut counts[skill_index(i.skill_id)];
            c.0 += usize::from(i.correct);
            c.1 += 1;
        }
    }
    let raw_difficulty: Vec<f64> =
        counts.iter().map(|&(c, n)| if n == 0 { f64::NAN } else { 1.0 - c as f64 / n as f64 }).collect();
    let seen: Vec<f64> = raw_difficulty.iter().copied().filter(|d| d.is_finite()).collect();
    let mean_d = seen.iter().sum::<f64>() / seen.len().max(1) as f64;
    let sd_d = (seen.iter().map(|d| (d - mean_d).powi(2)).sum::<f64>() / seen.len().max(1) as f64).sqrt().max(1e-6);
    let z_difficulty: Vec<f64> =
        raw_difficulty.iter().map(|&d| if d.is_finite() { (d - mean_d) / sd_d } else { 0.0 }).collect();

    // walk each student's log in order, emitting a decision every `stride` interactions
    let mut decisions: [Vec<Decision>; 3] = Default::default();
    for (&user, events) in &by_student {
        let mut events = events.clone();
        events.sort_by_key(|i| i.order_id);
        let mut knowledge = vec![P_INIT; skills];
        let mut seen_skill = vec![false; skills];
        let mut attempts = vec![(0usize, 0usize); skills];
        let mut run = 0usize;
        for (t, event) in events.iter().enumerate() {
            let skill = skill_index(event.skill_id);
            let correct = event.correct == 1;
            knowledge[skill] = update_knowledge(knowledge[skill], correct);
            seen_skill[skill] = true;
            attempts[skill].0 += usize::from(correct);
            attempts[skill].1 += 1;
            run = if correct { 0 } else { run + 1 };
            // the decision concerns the next content on the skill being practised
            if (t + 1) % stride != 0 || t + 1 == events.len() {
                continue;
            }
            let window = &events[(t + 1).saturating_sub(WINDOW)..=t];
            let window_correct = window.iter().map(|i| f64::from(i.correct)).sum::<f64>() / window.len() as f64;
            let seen_k: Vec<f64> = (0..skills).filter(|&s| seen_skill[s]).map(|s| knowledge[s]).collect();
            let at_risk = run >= 3;
            let (c, n) = attempts[skill];
            let raw = [
                window_correct,
                window.len() as f64,
                knowledge[skill],
                seen_k.iter().sum::<f64>() / seen_k.len().max(1) as f64,
                z_difficulty[skill],
                run as f64,
                f64::from(u8::from(at_risk)),
                n as f64,
                c as f64 / n.max(1) as f64,
                0.0, // knowledge z-score, filled in below
            ];
            let p = part_of.get(&user).copied().unwrap_or(0) as usize;
            decisions[p].push(Decision { raw, knowledge: knowledge[skill], skill, at_risk, student: user });
        }
    }
    if decisions.iter().any(Vec::is_empty) {
        return Err("a split has no decisions: the log is too short for the stride".into());
    }
    // knowledge z-score over train decisions
    let train_k: Vec<f64> = decisions[0].iter().map(|d| d.knowledge).collect();
    let mean_k = train_k.iter().sum::<f64>() / train_k.len() as f64;
    let sd_k = (train_k.iter().map(|k| (k - mean_k).powi(2)).sum::<f64>() / train_k.len() as f64).sqrt().max(1e-6);
    for split in &mut decisions {
        for d in split.iter_mut() {
            d.raw[9] = (d.knowledge - mean_k) / sd_k;
        }
    }
    let dim = FEATURE_NAMES.len();
    let mut shift = vec![0.0f32; dim];
    let mut scale = vec![1.0f32; dim];
    for f in 0..dim {
        let v: Vec<f64> = decisions[0].iter().map(|d| d.raw[f]).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        shift[f] = mean as f32;
        scale[f] = sd.max(1e-6) as f32;
    }
    let make = |list: &[Decision]| -> Split {
        let mut split = Split { len: list.len(), ..Split::default() };
        for d in list {
            split.states.extend((0..dim).map(|f| ((d.raw[f] as f32) - shift[f]) / scale[f]));
            let z_k = d.raw[9];
            let gains: Vec<f64> = (0..SUB_AGENTS.len())
                .map(|a| expected_gain(Some(a), d.knowledge, z_k, z_difficulty[d.skill] + CONTENT_OFFSET[a] - z_k))
                .collect();
            let best = gains.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
            // the tutor's own content: practice pitched at the student's level (gap 0)
            let own = expected_gain(None, d.knowledge, z_k, 0.0);
            for (a, gain) in gains.iter().enumerate() {
                let gap = z_difficulty[d.skill] + CONTENT_OFFSET[a] - z_k;
                split.unsafe_above.push(unsafe_above(gap, d.at_risk));
                split.cost_at_zero.push((1.0 - (own / best).min(1.0)) as f32);
                split.cost_at_one.push((1.0 - gain / best) as f32);
            }
            split.alpha_max.push(if d.at_risk { AT_RISK_ALPHA_CAP as f32 } else { 1.0 });
            split.risk.push(f32::from(u8::from(d.at_risk)));
            split.labels.push(format!("student {}", d.student));
        }
        split
    };
    let at_risk_share = decisions[0].iter().filter(|d| d.at_risk).count() as f64 / decisions[0].len() as f64;
    let [train, validation, test] = &decisions;
    let (train, validation, test) = (make(train), make(validation), make(test));
    Ok(Education {
        dataset: Dataset {
            domain: "education (synthetic)".into(),
            state_dim: dim,
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            sub_agents: SUB_AGENTS.iter().map(|s| s.to_string()).collect(),
            state_shift: shift,
            state_scale: scale,
            alpha_cap: Some((AT_RISK_FEATURE, 0.5, AT_RISK_ALPHA_CAP)),
            train,
            validation,
            test,
        },
        interactions: log.len(),
        students: students.len(),
        at_risk_share,
    })
}

/// Generates the synthetic log and builds the domain.
pub fn load(options: &EducationOptions) -> Result<Education, String> {
    build(&generate(options)?, options.stride)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::objective::is_safe;

    #[test]
    fn the_generator_matches_the_requested_sizes_and_is_deterministic() -> Result<(), String> {
        let options = EducationOptions::quick();
        let log = generate(&options)?;
        assert_eq!(log, generate(&options)?);
        let students: std::collections::BTreeSet<u32> = log.iter().map(|i| i.user_id).collect();
        assert_eq!(students.len(), options.students);
        assert!(log.iter().all(|i| (i.skill_id as usize) < options.skills && i.correct <= 1));
        let ratio = log.len() as f64 / options.interactions as f64;
        assert!((0.85..1.15).contains(&ratio), "{} interactions for a target of {}", log.len(), options.interactions);
        assert!(log.windows(2).all(|w| w[0].order_id < w[1].order_id));
        let mut csv = Vec::new();
        write_csv(&log[..3], &mut csv).map_err(|e| e.to_string())?;
        assert!(String::from_utf8_lossy(&csv).starts_with("user_id,skill_id,correct,order_id\n"));
        Ok(())
    }

    #[test]
    fn sparse_skill_ids_build_the_same_samples() -> Result<(), String> {
        // a real log's ids are sparse and large; only their order may matter
        let log = generate(&EducationOptions::quick())?;
        let sparse: Vec<Interaction> =
            log.iter().map(|i| Interaction { skill_id: i.skill_id * 100_000 + 7, ..*i }).collect();
        assert_eq!(build(&log, 8)?.dataset, build(&sparse, 8)?.dataset);
        Ok(())
    }

    #[test]
    fn knowledge_follows_the_b3_update() {
        let k = update_knowledge(P_INIT, true);
        assert!((k - 0.6).abs() < 1e-12);
        assert!((update_knowledge(k, false) - 0.57).abs() < 1e-12);
    }

    #[test]
    fn the_safety_indicator_on_hand_made_cases() {
        assert_eq!(unsafe_above(2.5, false), 0.8, "content 2.5 sd above: delivered above 2 sd past alpha 0.8");
        assert_eq!(unsafe_above(1.9, true), 0.6);
        assert_eq!(unsafe_above(1.9, false), 2.0);
        assert_eq!(unsafe_above(4.0, true), 0.5, "the tighter of the two rules");
        let split = Split {
            len: 1,
            states: vec![0.0],
            unsafe_above: vec![unsafe_above(0.0, true), unsafe_above(1.0, true), unsafe_above(8.0, true)],
            cost_at_zero: vec![0.5; 3],
            cost_at_one: vec![0.0; 3],
            alpha_max: vec![0.6],
            risk: vec![1.0],
            labels: vec![String::new()],
        };
        assert!(is_safe(&split, 0, 0, 0.6));
        assert!(!is_safe(&split, 0, 0, 0.61), "alpha > 0.60 for an at-risk student");
        assert!(!is_safe(&split, 0, 2, 0.26), "content 8 sd above: unsafe past alpha 0.25");
        assert!(is_safe(&split, 0, 2, 0.25));
    }

    #[test]
    fn efficiency_is_normalised_expected_gain() {
        // a novice (z = -1) gains most from worked examples pitched half an sd above
        let novice: Vec<f64> = (0..3).map(|a| expected_gain(Some(a), 0.3, -1.0, 0.5)).collect();
        assert!(novice[0] > novice[1] && novice[1] > novice[2]);
        assert!((novice[0] - 0.7 * P_LEARN).abs() < 1e-12);
        // nothing left to learn: no gain
        assert_eq!(expected_gain(Some(1), 1.0, 2.0, 0.5), 0.0);
        // one decision, best agent 0: cost 0 at alpha 1 with it, its normalised gap otherwise
        let split = Split {
            len: 1,
            states: vec![0.0],
            unsafe_above: vec![2.0; 3],
            cost_at_zero: vec![0.6; 3],
            cost_at_one: vec![0.0, 0.5, 1.0],
            alpha_max: vec![1.0],
            risk: vec![0.0],
            labels: vec![String::new()],
        };
        assert!((crate::domains::data::task_efficiency(&split, &[(0, 1.0)]) - 1.0).abs() < 1e-6);
        assert!((crate::domains::data::task_efficiency(&split, &[(1, 0.5)]) - (1.0 - 0.55)).abs() < 1e-6);
    }

    #[test]
    fn the_domain_builds_with_at_risk_students_and_capped_alpha() -> Result<(), String> {
        let education = load(&EducationOptions::quick())?;
        let d = &education.dataset;
        assert!(d.train.len > 1000 && d.validation.len > 100 && d.test.len > 100);
        assert!(education.at_risk_share > 0.01 && education.at_risk_share < 0.5, "{}", education.at_risk_share);
        for split in [&d.train, &d.validation, &d.test] {
            for i in 0..split.len {
                let at_risk = split.risk[i] > 0.5;
                assert_eq!(split.alpha_max[i], if at_risk { 0.6 } else { 1.0 });
            }
            assert!(split.cost_at_one.iter().all(|c| (0.0..=1.0).contains(c)));
            assert!(split.states.iter().all(|v| v.is_finite()));
        }
        Ok(())
    }
}
