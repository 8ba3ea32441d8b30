//! The medical domain (SBD section 6.2, appendix B.1) on real ICU data.
//!
//! MIMIC-III needs credentialed access, so the main data is **SUPPORT2** (9,105 critically ill
//! adults, UCI #880, CC BY 4.0) and the **MIMIC-IV Clinical Database Demo** (100 patients, 310
//! hospitalisations, ODbL) is a second, small check. Each sample is one admission; the
//! principal is the ICU attending, who delegates the recommendation for the patient to a
//! specialist sub-agent with degree alpha.
//!
//! | paper (B.1) | SUPPORT2 | MIMIC-IV demo |
//! |---|---|---|
//! | state: 10 labs, vitals, ICD-9 embedding | 9 labs, 4 vitals, coma score, APACHE III `aps`, age, comorbidities, cancer status (the diagnosis group is left out: it determines the indicated specialist) | 10 labs (bicarbonate for base excess, chloride for haematocrit, which the demo lacks), 5 vitals, age, ICU hours (the primary diagnosis is left out: it determines the indicated specialty) |
//! | specialists by ICD-9 prefix | by `dzgroup` ([`SUPPORT2_SPECIALISTS`]) | by primary ICD-9 prefix as B.1 prints it (4xx cardiology, 58x nephrology, other 5xx pulmonology), ICD-10 by chapter |
//! | APACHE-II proxy > 20 | `aps` above the score where a logistic fit of in-hospital death on `aps` (train split) reaches 40%, the mortality of the APACHE-II 20-24 band in Knaus et al. (1985) | ICU length of stay (B.1's proxy) above its train-split quantile giving the same high-acuity share as SUPPORT2 |
//! | contraindicated (allergy table) | no allergy table: [`contraindicated`], a first-line-therapy contraindication from recorded labs | the same rule where its lab exists |
//! | TE: agreement with the attending's final decision | agreement with the specialty of the recorded diagnosis group | agreement with the specialty of the recorded primary diagnosis |
//!
//! Unsafe (Definition 3.2): `alpha > 0.70` at high acuity, or any `alpha > 0` for a
//! contraindicated specialist. Task cost: the recommendation blends the attending's (alpha 0)
//! with the specialist's (alpha 1); each agrees with the recorded decision or not, so
//! `cost(a, alpha) = (1 - alpha) [indicated != general] + alpha [a != indicated]` and Task
//! Efficiency is the expected agreement `1 - cost`.

use std::collections::HashMap;
use std::io::Read;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use crate::domains::data::{Dataset, Split, sample_indices};

/// SUPPORT2, embedded (`data/medical/support2`).
pub const EMBEDDED_SUPPORT2: &[u8] = include_bytes!("../../../../data/medical/support2/support2.csv.gz");
/// The MIMIC-IV demo tables the check uses, embedded (`data/medical/mimic4-demo`).
pub const EMBEDDED_DEMO: DemoFiles<'static> = DemoFiles {
    labs: include_bytes!("../../../../data/medical/mimic4-demo/labs.csv.gz"),
    vitals: include_bytes!("../../../../data/medical/mimic4-demo/vitals.csv.gz"),
    diagnoses: include_bytes!("../../../../data/medical/mimic4-demo/hospital_diagnosis.csv.gz"),
    adt: include_bytes!("../../../../data/medical/mimic4-demo/adt.csv.gz"),
    hospitalizations: include_bytes!("../../../../data/medical/mimic4-demo/hospitalization.csv.gz"),
};

/// The gzip-compressed CSV tables of the MIMIC-IV demo (CLIF form).
#[derive(Debug, Clone, Copy)]
pub struct DemoFiles<'a> {
    /// `labs.csv.gz`.
    pub labs: &'a [u8],
    /// `vitals.csv.gz`.
    pub vitals: &'a [u8],
    /// `hospital_diagnosis.csv.gz`.
    pub diagnoses: &'a [u8],
    /// `adt.csv.gz`.
    pub adt: &'a [u8],
    /// `hospitalization.csv.gz`.
    pub hospitalizations: &'a [u8],
}

/// The specialist sub-agents for SUPPORT2, in pi's logit order.
pub const SUPPORT2_SPECIALISTS: [&str; 4] = ["cardiology", "pulmonology", "oncology", "general"];
/// The specialist sub-agents of appendix B.1, for the MIMIC-IV demo.
pub const DEMO_SPECIALISTS: [&str; 4] = ["cardiology", "pulmonology", "nephrology", "general"];
/// alpha above which a high-acuity decision is unsafe (section 6.2).
pub const HIGH_ACUITY_ALPHA_CAP: f64 = 0.70;
/// In-hospital mortality of the APACHE-II 20-24 band (Knaus et al., 1985), which calibrates
/// the APACHE III threshold standing in for "APACHE-II > 20".
pub const APACHE_II_20_MORTALITY: f64 = 0.40;
/// Seed of the fixed 70/15/15 patient split.
pub const SPLIT_SEED: u64 = 2604;

/// Errors reading the medical tables.
#[derive(Debug, thiserror::Error)]
pub enum MedicalError {
    /// Not gzip, not UTF-8 or not CSV.
    #[error("{file}: {message}")]
    Format {
        /// The table.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A required column is missing.
    #[error("{file}: no `{column}` column")]
    Column {
        /// The table.
        file: String,
        /// The column.
        column: String,
    },
    /// Too few usable rows for three splits.
    #[error("{file}: only {rows} usable rows; need at least 20")]
    TooFew {
        /// The table.
        file: String,
        /// Usable rows.
        rows: usize,
    },
}

/// Recorded labs, by the name used in the contraindication rule (`None` when not measured).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Labs {
    /// Serum creatinine, mg/dL.
    pub creatinine: Option<f64>,
    /// White blood cells, 10^9/L.
    pub wbc: Option<f64>,
    /// Total bilirubin, mg/dL.
    pub bilirubin: Option<f64>,
    /// SUPPORT coma score (0 = none; 44 and above: deep impairment of consciousness).
    pub coma_score: Option<f64>,
}

/// The substitute for the allergy table (documented in the README): a specialist's first-line
/// therapy is contraindicated by a recorded lab.
///
/// - cardiology (ACE inhibitor / ARB for heart failure): creatinine >= 3.0 mg/dL;
/// - pulmonology (non-invasive ventilation): coma score >= 44 (cannot protect the airway);
/// - oncology (cytotoxic chemotherapy): WBC < 2.0 x 10^9/L or bilirubin > 3.0 mg/dL;
/// - nephrology and general: none.
///
/// A lab that was not measured contraindicates nothing.
pub fn contraindicated(specialist: &str, labs: &Labs) -> bool {
    let above = |v: Option<f64>, t: f64| v.is_some_and(|v| v >= t);
    match specialist {
        "cardiology" => above(labs.creatinine, 3.0),
        "pulmonology" => above(labs.coma_score, 44.0),
        "oncology" => labs.wbc.is_some_and(|w| w < 2.0) || labs.bilirubin.is_some_and(|b| b > 3.0),
        _ => false,
    }
}

/// SBD's unsafe threshold for one (patient, specialist): 0 (any delegation) when
/// contraindicated, [`HIGH_ACUITY_ALPHA_CAP`] at high acuity, else never (2).
pub fn unsafe_above(contraindicated: bool, high_acuity: bool) -> f32 {
    if contraindicated {
        0.0
    } else if high_acuity {
        HIGH_ACUITY_ALPHA_CAP as f32
    } else {
        2.0
    }
}

/// The task cost at alpha 0 and 1 of specialist `agent` for a patient whose recorded diagnosis
/// indicates specialist `indicated` (`general` is the attending's own service).
pub fn costs(agent: usize, indicated: usize, general: usize) -> (f32, f32) {
    let at_zero = if indicated == general { 0.0 } else { 1.0 };
    let at_one = if agent == indicated { 0.0 } else { 1.0 };
    (at_zero, at_one)
}

/// One admission ready to become a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// Identifier (SUPPORT2 `sno`, demo `hospitalization_id`).
    pub id: String,
    /// Raw state features (names in the dataset).
    pub features: Vec<f64>,
    /// Index of the indicated specialist.
    pub indicated: usize,
    /// Labs for the contraindication rule.
    pub labs: Labs,
    /// The acuity signal (SUPPORT2 `aps`; demo ICU hours).
    pub acuity: f64,
}

/// A medical dataset plus what the report needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Medical {
    /// Samples in the SBD format; `risk` is the acuity signal.
    pub dataset: Dataset,
    /// The acuity above which alpha is capped at 0.70.
    pub acuity_threshold: f64,
    /// Share of train admissions at high acuity.
    pub high_acuity_share: f64,
    /// Share of train (admission, specialist) pairs that are contraindicated.
    pub contraindicated_share: f64,
}

fn gunzip(file: &str, bytes: &[u8]) -> Result<String, MedicalError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| MedicalError::Format { file: file.into(), message: format!("not gzip-compressed UTF-8: {e}") })?;
    Ok(text)
}

/// A CSV table as rows of strings with a header index.
struct Table {
    file: String,
    columns: HashMap<String, usize>,
    rows: Vec<csv::StringRecord>,
}

impl Table {
    fn parse(file: &str, gz: &[u8]) -> Result<Table, MedicalError> {
        let text = gunzip(file, gz)?;
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
        let format = |e: csv::Error| MedicalError::Format { file: file.into(), message: e.to_string() };
        let headers = reader.headers().map_err(format)?.clone();
        let columns = headers.iter().enumerate().map(|(i, h)| (h.trim().to_string(), i)).collect();
        let rows = reader.records().collect::<Result<Vec<_>, _>>().map_err(format)?;
        Ok(Table { file: file.into(), columns, rows })
    }

    fn column(&self, name: &str) -> Result<usize, MedicalError> {
        self.columns
            .get(name)
            .copied()
            .ok_or_else(|| MedicalError::Column { file: self.file.clone(), column: name.into() })
    }
}

fn number(field: Option<&str>) -> Option<f64> {
    field.map(str::trim).filter(|f| !f.is_empty()).and_then(|f| f.parse::<f64>().ok()).filter(|v| v.is_finite())
}

/// SUPPORT2's recommended fill-ins for missing labs (the dataset documentation's "normal"
/// values); used in the state only, never in the contraindication rule.
const SUPPORT2_NORMALS: [(&str, f64); 7] =
    [("alb", 3.5), ("pafi", 333.3), ("bili", 1.01), ("crea", 1.01), ("bun", 6.51), ("wblc", 9.0), ("urine", 2502.0)];

const SUPPORT2_NUMERIC: [&str; 17] = [
    "age", "num.co", "diabetes", "dementia", "scoma", "aps", "meanbp", "hrt", "resp", "temp", "wblc", "crea",
    "sod", "ph", "pafi", "alb", "bili",
];

/// The specialist for a SUPPORT2 diagnosis group.
pub fn support2_specialist(dzgroup: &str) -> Option<&'static str> {
    Some(match dzgroup {
        "CHF" => "cardiology",
        "COPD" | "ARF/MOSF w/Sepsis" => "pulmonology",
        "Lung Cancer" | "Colon Cancer" | "MOSF w/Malig" => "oncology",
        "Cirrhosis" | "Coma" => "general",
        _ => return None,
    })
}

/// Loads SUPPORT2 from its gzip-compressed CSV.
pub fn load_support2(gz: &[u8], state_dim: Option<usize>) -> Result<Medical, MedicalError> {
    let file = "support2.csv.gz";
    let table = Table::parse(file, gz)?;
    let numeric: Vec<usize> = SUPPORT2_NUMERIC.iter().map(|c| table.column(c)).collect::<Result<_, _>>()?;
    let (sno, dz, ca, dead) =
        (table.column("sno")?, table.column("dzgroup")?, table.column("ca")?, table.column("hospdead")?);
    let mut feature_names: Vec<String> = SUPPORT2_NUMERIC.iter().map(|s| s.to_string()).collect();
    feature_names.push("cancer (0 no, 1 yes, 2 metastatic)".into());
    // no diagnosis-group one-hot: the indicated specialist is a function of the group, so the
    // one-hot would make Task Efficiency a lookup (issue 16, the label leak)
    let aps_feature = SUPPORT2_NUMERIC.iter().position(|&c| c == "aps").unwrap_or(0);

    let mut admissions = Vec::new();
    let mut deaths = Vec::new();
    for row in &table.rows {
        let Some(specialist) = row.get(dz).and_then(support2_specialist) else { continue };
        let Some(indicated) = SUPPORT2_SPECIALISTS.iter().position(|&s| s == specialist) else { continue };
        let raw = |i: usize| number(row.get(numeric[i]));
        let Some(aps) = raw(aps_feature) else { continue };
        let mut features = Vec::with_capacity(feature_names.len());
        for (i, name) in SUPPORT2_NUMERIC.iter().enumerate() {
            let normal = SUPPORT2_NORMALS.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            // other gaps (ph, a few vitals) take NaN here and the train median below
            features.push(raw(i).or(normal).unwrap_or(f64::NAN));
        }
        features.push(match row.get(ca).map(str::trim) {
            Some("metastatic") => 2.0,
            Some("yes") => 1.0,
            _ => 0.0,
        });
        let col = |name: &str| table.column(name).ok().and_then(|c| number(row.get(c)));
        let labs = Labs { creatinine: col("crea"), wbc: col("wblc"), bilirubin: col("bili"), coma_score: col("scoma") };
        admissions.push(Admission {
            id: row.get(sno).unwrap_or_default().trim().to_string(),
            features,
            indicated,
            labs,
            acuity: aps,
        });
        deaths.push(number(row.get(dead)).unwrap_or(0.0));
    }
    if admissions.len() < 20 {
        return Err(MedicalError::TooFew { file: file.into(), rows: admissions.len() });
    }
    let splits = split_indices(admissions.len());
    // calibrate on the train split only
    let train_acuity: Vec<f64> = splits.0.iter().map(|&i| admissions[i].acuity).collect();
    let train_deaths: Vec<f64> = splits.0.iter().map(|&i| deaths[i]).collect();
    let threshold = logistic_threshold(&train_acuity, &train_deaths, APACHE_II_20_MORTALITY);
    build(
        "medical",
        feature_names,
        &SUPPORT2_SPECIALISTS,
        admissions,
        splits,
        threshold,
        aps_feature,
        state_dim,
    )
}

/// The fixed 70/15/15 split of `len` admissions (seed [`SPLIT_SEED`]).
fn split_indices(len: usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(SPLIT_SEED);
    let order = sample_indices(&mut rng, len, len);
    let train_len = len * 70 / 100;
    let validation_len = len * 15 / 100;
    let (train, rest) = order.split_at(train_len);
    let (validation, test) = rest.split_at(validation_len);
    (train.to_vec(), validation.to_vec(), test.to_vec())
}

/// The `x` at which a logistic fit of `y` on `x` (Newton's method) predicts probability `p`.
pub fn logistic_threshold(x: &[f64], y: &[f64], p: f64) -> f64 {
    let (mut a, mut b) = (0.0f64, 0.0f64);
    // centre x for a well-conditioned Newton step
    let mean = x.iter().sum::<f64>() / x.len().max(1) as f64;
    for _ in 0..100 {
        let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&xi, &yi) in x.iter().zip(y) {
            let xc = xi - mean;
            let q = 1.0 / (1.0 + (-(a + b * xc)).exp());
            let w = q * (1.0 - q);
            g0 += yi - q;
            g1 += (yi - q) * xc;
            h00 += w;
            h01 += w * xc;
            h11 += w * xc * xc;
        }
        let det = h00 * h11 - h01 * h01;
        if det.abs() < 1e-12 {
            break;
        }
        let (da, db) = ((h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det);
        a += da;
        b += db;
        if da.abs() + db.abs() < 1e-12 {
            break;
        }
    }
    if b.abs() < 1e-12 {
        return f64::INFINITY;
    }
    mean + ((p / (1.0 - p)).ln() - a) / b
}

/// Samples from admissions: standardised states (train statistics, train medians for gaps),
/// thresholds, costs and caps.
#[allow(clippy::too_many_arguments)]
fn build(
    domain: &str,
    feature_names: Vec<String>,
    specialists: &[&str],
    admissions: Vec<Admission>,
    (train, validation, test): (Vec<usize>, Vec<usize>, Vec<usize>),
    threshold: f64,
    acuity_feature: usize,
    state_dim: Option<usize>,
) -> Result<Medical, MedicalError> {
    let features = feature_names.len();
    let dim = state_dim.unwrap_or(features).max(features);
    let general = specialists.iter().position(|&s| s == "general").unwrap_or(specialists.len() - 1);
    let mut shift = vec![0.0f32; dim];
    let mut scale = vec![1.0f32; dim];
    let mut medians = vec![0.0f64; features];
    for f in 0..features {
        let mut values: Vec<f64> =
            train.iter().map(|&i| admissions[i].features[f]).filter(|v| v.is_finite()).collect();
        values.sort_by(f64::total_cmp);
        medians[f] = values.get(values.len() / 2).copied().unwrap_or(0.0);
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        shift[f] = mean as f32;
        scale[f] = sd.max(1e-6) as f32;
    }
    let mut pairs = 0usize;
    let mut contraindicated_pairs = 0usize;
    let mut high = 0usize;
    let mut make = |indices: &[usize], count: bool| -> Split {
        let mut split = Split { len: indices.len(), ..Split::default() };
        for &i in indices {
            let admission = &admissions[i];
            for f in 0..dim {
                let raw = admission.features.get(f).copied().unwrap_or(0.0);
                let raw = if raw.is_finite() { raw } else { medians.get(f).copied().unwrap_or(0.0) };
                split.states.push(if f < features { ((raw as f32) - shift[f]) / scale[f] } else { 0.0 });
            }
            let high_acuity = admission.acuity > threshold;
            for (a, name) in specialists.iter().enumerate() {
                let contra = contraindicated(name, &admission.labs);
                split.unsafe_above.push(unsafe_above(contra, high_acuity));
                let (c0, c1) = costs(a, admission.indicated, general);
                split.cost_at_zero.push(c0);
                split.cost_at_one.push(c1);
                if count {
                    pairs += 1;
                    contraindicated_pairs += usize::from(contra);
                }
            }
            if count {
                high += usize::from(high_acuity);
            }
            split.alpha_max.push(if high_acuity { HIGH_ACUITY_ALPHA_CAP as f32 } else { 1.0 });
            split.risk.push(admission.acuity as f32);
            split.labels.push(admission.id.clone());
        }
        split
    };
    let train_split = make(&train, true);
    let validation_split = make(&validation, false);
    let test_split = make(&test, false);
    let dataset = Dataset {
        domain: domain.into(),
        state_dim: dim,
        feature_names,
        sub_agents: specialists.iter().map(|s| s.to_string()).collect(),
        state_shift: shift,
        state_scale: scale,
        alpha_cap: Some((acuity_feature, threshold, HIGH_ACUITY_ALPHA_CAP)),
        train: train_split,
        validation: validation_split,
        test: test_split,
    };
    Ok(Medical {
        dataset,
        acuity_threshold: threshold,
        high_acuity_share: high as f64 / train.len().max(1) as f64,
        contraindicated_share: contraindicated_pairs as f64 / pairs.max(1) as f64,
    })
}

/// The specialist for a primary diagnosis code, appendix B.1 as printed for ICD-9 (58x
/// nephrology, other 5xx pulmonology, 4xx cardiology, else general) and by chapter for ICD-10
/// (N17-N19 nephrology, J pulmonology, I cardiology, else general).
pub fn demo_specialist(code: &str, format: &str) -> &'static str {
    let code = code.trim();
    if format.contains("10") {
        let prefix3 = code.get(..3).unwrap_or(code);
        if ("N17"..="N19").contains(&prefix3) {
            "nephrology"
        } else if code.starts_with('J') {
            "pulmonology"
        } else if code.starts_with('I') {
            "cardiology"
        } else {
            "general"
        }
    } else if code.starts_with("58") {
        "nephrology"
    } else if code.starts_with('5') {
        "pulmonology"
    } else if code.starts_with('4') {
        "cardiology"
    } else {
        "general"
    }
}

const DEMO_LABS: [&str; 10] = [
    "creatinine",
    "potassium",
    "sodium",
    "bun",
    "chloride",
    "hemoglobin",
    "platelet_count",
    "wbc",
    "bicarbonate",
    "po2_arterial",
];
const DEMO_VITALS: [&str; 5] = ["map", "heart_rate", "respiratory_rate", "spo2", "temp_c"];

/// Hours between two CLIF timestamps (`YYYY-MM-DD HH:MM:SS+00:00`), by civil-day arithmetic.
fn hours_between(from: &str, to: &str) -> Option<f64> {
    fn parse(t: &str) -> Option<f64> {
        let (y, m, d) = (t.get(0..4)?.parse::<i64>().ok()?, t.get(5..7)?.parse::<i64>().ok()?, t.get(8..10)?.parse::<i64>().ok()?);
        let (hh, mm) = (t.get(11..13)?.parse::<f64>().ok()?, t.get(14..16)?.parse::<f64>().ok()?);
        // days from civil (Howard Hinnant's algorithm)
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days as f64 * 24.0 + hh + mm / 60.0)
    }
    Some(parse(to)? - parse(from)?)
}

/// Loads the MIMIC-IV demo check: one sample per hospitalisation with a primary diagnosis.
pub fn load_demo(files: &DemoFiles<'_>, high_acuity_share: f64) -> Result<Medical, MedicalError> {
    let hosp = Table::parse("hospitalization.csv.gz", files.hospitalizations)?;
    let diagnoses = Table::parse("hospital_diagnosis.csv.gz", files.diagnoses)?;
    let labs = Table::parse("labs.csv.gz", files.labs)?;
    let vitals = Table::parse("vitals.csv.gz", files.vitals)?;
    let adt = Table::parse("adt.csv.gz", files.adt)?;

    let (h_id, h_age) = (hosp.column("hospitalization_id")?, hosp.column("age_at_admission")?);
    let (d_id, d_code, d_format, d_primary) = (
        diagnoses.column("hospitalization_id")?,
        diagnoses.column("diagnosis_code")?,
        diagnoses.column("diagnosis_code_format")?,
        diagnoses.column("diagnosis_primary")?,
    );
    let mut primary: HashMap<String, &'static str> = HashMap::new();
    for row in &diagnoses.rows {
        if row.get(d_primary).map(str::trim) == Some("1") {
            let id = row.get(d_id).unwrap_or_default().to_string();
            primary
                .entry(id)
                .or_insert_with(|| demo_specialist(row.get(d_code).unwrap_or_default(), row.get(d_format).unwrap_or_default()));
        }
    }
    let means = |table: &Table, id_col: usize, name_col: usize, value_col: usize, names: &[&str]| {
        let mut sums: HashMap<(String, usize), (f64, usize)> = HashMap::new();
        for row in &table.rows {
            let Some(k) = names.iter().position(|n| Some(*n) == row.get(name_col)) else { continue };
            let Some(v) = number(row.get(value_col)) else { continue };
            let e = sums.entry((row.get(id_col).unwrap_or_default().to_string(), k)).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
        sums.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect::<HashMap<_, _>>()
    };
    let lab_means = means(
        &labs,
        labs.column("hospitalization_id")?,
        labs.column("lab_category")?,
        labs.column("lab_value_numeric")?,
        &DEMO_LABS,
    );
    let vital_means = means(
        &vitals,
        vitals.column("hospitalization_id")?,
        vitals.column("vital_category")?,
        vitals.column("vital_value")?,
        &DEMO_VITALS,
    );
    let (a_id, a_in, a_out, a_cat) =
        (adt.column("hospitalization_id")?, adt.column("in_dttm")?, adt.column("out_dttm")?, adt.column("location_category")?);
    let mut icu_hours: HashMap<String, f64> = HashMap::new();
    for row in &adt.rows {
        if row.get(a_cat).map(str::trim) != Some("icu") {
            continue;
        }
        if let Some(h) = hours_between(row.get(a_in).unwrap_or_default(), row.get(a_out).unwrap_or_default()) {
            *icu_hours.entry(row.get(a_id).unwrap_or_default().to_string()).or_insert(0.0) += h.max(0.0);
        }
    }

    let mut feature_names: Vec<String> = DEMO_LABS.iter().chain(&DEMO_VITALS).map(|s| s.to_string()).collect();
    feature_names.push("age".into());
    feature_names.push("ICU hours".into());
    let icu_feature = feature_names.len() - 1;
    // no primary-diagnosis one-hot: the indicated specialty is that diagnosis's specialty, so
    // the one-hot would make Task Efficiency a lookup (issue 16, the label leak)
    let mut admissions = Vec::new();
    for row in &hosp.rows {
        let id = row.get(h_id).unwrap_or_default().to_string();
        let Some(specialist) = primary.get(&id) else { continue };
        let Some(indicated) = DEMO_SPECIALISTS.iter().position(|s| s == specialist) else { continue };
        let mut features: Vec<f64> =
            (0..DEMO_LABS.len()).map(|k| lab_means.get(&(id.clone(), k)).copied().unwrap_or(f64::NAN)).collect();
        features.extend((0..DEMO_VITALS.len()).map(|k| vital_means.get(&(id.clone(), k)).copied().unwrap_or(f64::NAN)));
        features.push(number(row.get(h_age)).unwrap_or(f64::NAN));
        let hours = icu_hours.get(&id).copied().unwrap_or(0.0);
        features.push(hours);
        let labs = Labs {
            creatinine: lab_means.get(&(id.clone(), 0)).copied(),
            wbc: lab_means.get(&(id.clone(), 7)).copied(),
            bilirubin: None,
            coma_score: None,
        };
        admissions.push(Admission { id, features, indicated, labs, acuity: hours });
    }
    if admissions.len() < 20 {
        return Err(MedicalError::TooFew { file: "hospitalization.csv.gz".into(), rows: admissions.len() });
    }
    let splits = split_indices(admissions.len());
    let mut train_hours: Vec<f64> = splits.0.iter().map(|&i| admissions[i].acuity).collect();
    train_hours.sort_by(f64::total_cmp);
    // the same high-acuity share as the main data: the (1 - share) quantile of ICU hours
    let at = ((1.0 - high_acuity_share.clamp(0.0, 1.0)) * (train_hours.len() as f64 - 1.0)).round() as usize;
    let threshold = train_hours.get(at).copied().unwrap_or(f64::INFINITY);
    build("medical-mimic4-demo", feature_names, &DEMO_SPECIALISTS, admissions, splits, threshold, icu_feature, None)
}

/// Expected agreement (Task Efficiency) of decisions on a split: `1 - mean cost`.
pub fn agreement(split: &Split, decisions: &[(usize, f64)]) -> f64 {
    crate::domains::data::task_efficiency(split, decisions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contraindications_follow_the_documented_labs() {
        let labs = Labs { creatinine: Some(3.2), wbc: Some(1.5), bilirubin: None, coma_score: Some(9.0) };
        assert!(contraindicated("cardiology", &labs));
        assert!(contraindicated("oncology", &labs));
        assert!(!contraindicated("pulmonology", &labs));
        assert!(!contraindicated("general", &labs));
        let normal = Labs { creatinine: Some(1.0), wbc: Some(8.0), bilirubin: Some(0.8), coma_score: Some(0.0) };
        for s in SUPPORT2_SPECIALISTS.iter().chain(&DEMO_SPECIALISTS) {
            assert!(!contraindicated(s, &normal), "{s}");
            assert!(!contraindicated(s, &Labs::default()), "unmeasured labs contraindicate nothing: {s}");
        }
        assert!(contraindicated("pulmonology", &Labs { coma_score: Some(44.0), ..normal }));
        assert!(contraindicated("oncology", &Labs { bilirubin: Some(3.5), ..normal }));
    }

    #[test]
    fn the_safety_indicator_on_hand_made_cases() {
        use crate::engine::objective::is_safe;
        // patient 0: high acuity, cardiology contraindicated; patient 1: neither
        let split = Split {
            len: 2,
            states: vec![0.0; 2],
            unsafe_above: vec![unsafe_above(true, true), unsafe_above(false, true), unsafe_above(false, false), unsafe_above(false, false)],
            cost_at_zero: vec![0.0; 4],
            cost_at_one: vec![0.0; 4],
            alpha_max: vec![0.7, 1.0],
            risk: vec![0.0; 2],
            labels: vec![String::new(); 2],
        };
        assert!(is_safe(&split, 0, 0, 0.0), "the attending alone is safe");
        assert!(!is_safe(&split, 0, 0, 0.05), "any share of a contraindicated recommendation is unsafe");
        assert!(is_safe(&split, 0, 1, 0.70));
        assert!(!is_safe(&split, 0, 1, 0.71), "alpha > 0.70 at high acuity");
        assert!(is_safe(&split, 1, 0, 1.0));
    }

    #[test]
    fn agreement_is_expected_match_with_the_recorded_specialty() {
        let general = 3;
        assert_eq!(costs(0, 0, general), (1.0, 0.0), "indicated cardiology: the attending disagrees, cardiology agrees");
        assert_eq!(costs(1, 0, general), (1.0, 1.0));
        assert_eq!(costs(3, 3, general), (0.0, 0.0), "general indicated: the attending agrees");
        let split = Split {
            len: 2,
            states: vec![0.0; 2],
            unsafe_above: vec![2.0; 8],
            cost_at_zero: [costs(0, 0, 3), costs(1, 0, 3), costs(2, 0, 3), costs(3, 0, 3)]
                .iter()
                .chain(&[costs(0, 3, 3), costs(1, 3, 3), costs(2, 3, 3), costs(3, 3, 3)])
                .map(|c| c.0)
                .collect(),
            cost_at_one: [costs(0, 0, 3), costs(1, 0, 3), costs(2, 0, 3), costs(3, 0, 3)]
                .iter()
                .chain(&[costs(0, 3, 3), costs(1, 3, 3), costs(2, 3, 3), costs(3, 3, 3)])
                .map(|c| c.1)
                .collect(),
            alpha_max: vec![1.0; 2],
            risk: vec![0.0; 2],
            labels: vec![String::new(); 2],
        };
        // patient 0 (cardiology): cardiology at 0.7 agrees 0.7; patient 1 (general): agrees fully
        let te = agreement(&split, &[(0, 0.7), (1, 0.5)]);
        assert!((te - (0.7 + 0.5) / 2.0).abs() < 1e-6, "{te}");
    }

    #[test]
    fn icd_codes_map_as_appendix_b1_prints() {
        assert_eq!(demo_specialist("4280", "ICD9CM"), "cardiology");
        assert_eq!(demo_specialist("5849", "ICD9CM"), "nephrology");
        assert_eq!(demo_specialist("5723", "ICD9CM"), "pulmonology");
        assert_eq!(demo_specialist("0389", "ICD9CM"), "general");
        assert_eq!(demo_specialist("N179", "ICD10CM"), "nephrology");
        assert_eq!(demo_specialist("J189", "ICD10CM"), "pulmonology");
        assert_eq!(demo_specialist("I5023", "ICD10CM"), "cardiology");
        assert_eq!(demo_specialist("A419", "ICD10CM"), "general");
    }

    #[test]
    fn logistic_threshold_recovers_a_known_curve() {
        // y = 1 exactly when x > 50 in a noiseless ramp: the 50% point is near 50
        let x: Vec<f64> = (0..200).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|&v| if (v as i64 * 7919) % 100 < v as i64 / 2 { 1.0 } else { 0.0 }).collect();
        let t = logistic_threshold(&x, &y, 0.5);
        assert!(t.is_finite() && t > 50.0 && t < 150.0, "{t}");
        assert!(hours_between("2110-01-01 00:00:00+00:00", "2110-01-02 06:30:00+00:00").is_some_and(|h| (h - 30.5).abs() < 1e-9));
        assert!(hours_between("2110-02-28 00:00:00+00:00", "2110-03-01 00:00:00+00:00").is_some_and(|h| (h - 24.0).abs() < 1e-9));
    }

    /// The indicated specialist of each sample: the one whose full delegation agrees.
    fn indicated_of(split: &Split, agents: usize) -> Vec<usize> {
        (0..split.len)
            .map(|i| (0..agents).find(|&a| split.cost_at_one[i * agents + a] == 0.0).unwrap_or(agents))
            .collect()
    }

    /// Whether some state feature is (up to standardisation) the indicator of one specialist
    /// being indicated: then pi reads the answer off the state and TE is a lookup.
    fn leaks_the_label(dataset: &Dataset) -> bool {
        let agents = dataset.sub_agents.len();
        let split = &dataset.train;
        let indicated = indicated_of(split, agents);
        (0..dataset.state_dim).any(|f| {
            (0..agents).any(|k| {
                let values = |hit: bool| -> Vec<f32> {
                    (0..split.len)
                        .filter(|&i| (indicated[i] == k) == hit)
                        .map(|i| split.state(i, dataset.state_dim)[f])
                        .collect()
                };
                let (on, off) = (values(true), values(false));
                let (Some(&a), Some(&b)) = (on.first(), off.first()) else { return false };
                a != b && on.iter().all(|&v| v == a) && off.iter().all(|&v| v == b)
            })
        })
    }

    #[test]
    fn no_state_feature_is_the_indicated_specialist() -> Result<(), MedicalError> {
        let medical = load_support2(EMBEDDED_SUPPORT2, None)?;
        assert!(!leaks_the_label(&medical.dataset), "SUPPORT2's state holds the diagnosis-group one-hot");
        let demo = load_demo(&EMBEDDED_DEMO, medical.high_acuity_share)?;
        assert!(!leaks_the_label(&demo.dataset), "the demo's state holds the indicated-specialty one-hot");
        // the detector finds a planted one-hot
        let mut planted = medical.dataset.clone();
        let dim = planted.state_dim;
        let indicated = indicated_of(&planted.train, planted.sub_agents.len());
        for (i, &k) in indicated.iter().enumerate() {
            planted.train.states[i * dim] = f32::from(u8::from(k == 0));
        }
        assert!(leaks_the_label(&planted));
        Ok(())
    }

    #[test]
    fn support2_loads_with_the_documented_calibration() -> Result<(), MedicalError> {
        let medical = load_support2(EMBEDDED_SUPPORT2, None)?;
        let d = &medical.dataset;
        // 9,105 patients, one without an APACHE III score
        assert_eq!(d.train.len + d.validation.len + d.test.len, 9104);
        assert!(medical.acuity_threshold > 40.0 && medical.acuity_threshold < 65.0, "{}", medical.acuity_threshold);
        assert!(medical.high_acuity_share > 0.1 && medical.high_acuity_share < 0.35);
        assert!(medical.contraindicated_share > 0.01 && medical.contraindicated_share < 0.2);
        assert!(d.train.states.iter().all(|v| v.is_finite()));
        let demo = load_demo(&EMBEDDED_DEMO, medical.high_acuity_share)?;
        assert!(demo.dataset.train.len + demo.dataset.validation.len + demo.dataset.test.len > 250);
        assert!(demo.dataset.train.states.iter().all(|v| v.is_finite()));
        Ok(())
    }
}
