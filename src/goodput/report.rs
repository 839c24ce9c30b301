//! The reports of capacity planning's searches: one ordered list of named fields (the search,
//! the load, the answer, attainment and cost there and one step below), printed as a sentence
//! for people, one JSON object or one CSV header and row. The three share the fields, so a
//! tool reading the JSON and a spreadsheet reading the CSV see the same figures.

use super::{Criterion, GpuSearch, Load, Measure, Planner, RateSearch, SearchEnd};

/// A search's report: one ordered list of named fields, printed as a line for people, one
/// JSON object or one CSV row (the same fields in all three).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub fields: Vec<(&'static str, FieldValue)>,
    /// The sentence for people.
    pub line: String,
}

/// A field of a [`Report`].
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Text(String),
    Number(f64),
    Count(u64),
    None,
}

impl FieldValue {
    fn opt(v: Option<f64>) -> FieldValue {
        v.map_or(FieldValue::None, FieldValue::Number)
    }

    fn json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(s) => serde_json::Value::from(s.as_str()),
            FieldValue::Number(x) => serde_json::Number::from_f64(*x)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            FieldValue::Count(n) => serde_json::Value::from(*n),
            FieldValue::None => serde_json::Value::Null,
        }
    }

    fn cell(&self) -> String {
        match self {
            FieldValue::Text(s) if s.contains([',', '"', '\n']) => {
                format!("\"{}\"", s.replace('"', "\"\""))
            }
            FieldValue::Text(s) => s.clone(),
            FieldValue::Number(x) => format!("{x}"),
            FieldValue::Count(n) => n.to_string(),
            FieldValue::None => String::new(),
        }
    }
}

impl Report {
    /// One JSON object, fields in report order.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\n");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            let sep = if i + 1 < self.fields.len() { "," } else { "" };
            s.push_str(&format!("  \"{k}\": {}{sep}\n", v.json()));
        }
        s.push_str("}\n");
        s
    }

    /// A header and one row; empty cells for figures that do not apply.
    pub fn to_csv(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|(k, _)| *k).collect();
        let cells: Vec<String> = self.fields.iter().map(|(_, v)| v.cell()).collect();
        format!("{}\n{}\n", names.join(","), cells.join(","))
    }
}

/// The load's fields and a phrase for people.
fn load_fields(planner: &Planner) -> (Vec<(&'static str, FieldValue)>, String) {
    match &planner.load {
        Load::Generated { seeds } => {
            let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
            (
                vec![
                    ("load", FieldValue::Text("generated".into())),
                    ("log_rate_per_min", FieldValue::None),
                    ("seeds", FieldValue::Text(list.join(";"))),
                    ("runs_per_point", FieldValue::Count(seeds.len() as u64)),
                ],
                format!("seeds {}", list.join(",")),
            )
        }
        Load::Log {
            path, rate_per_min, ..
        } => (
            vec![
                ("load", FieldValue::Text(format!("log:{}", path.display()))),
                ("log_rate_per_min", FieldValue::Number(*rate_per_min)),
                ("seeds", FieldValue::None),
                ("runs_per_point", FieldValue::Count(1)),
            ],
            format!("log {} at {:.2} req/min", path.display(), rate_per_min),
        ),
    }
}

/// The load of a plan in a few words (for chart titles).
pub fn load_phrase(planner: &Planner) -> String {
    load_fields(planner).1
}

impl Report {
    /// Appends the stability check: the answer again with `requests` per run (`answer`, as a
    /// number), whether it holds, and both answers as people read them (`(before, again)`);
    /// `within` says what "the same" allowed.
    pub fn add_stability(
        &mut self,
        requests: usize,
        answer: Option<f64>,
        stable: bool,
        (before, again): (String, String),
        within: &str,
    ) {
        self.fields.extend([
            (
                "stability_requests_per_run",
                FieldValue::Count(requests as u64),
            ),
            ("stability_answer", FieldValue::opt(answer)),
            ("stable", FieldValue::Text(stable.to_string())),
        ]);
        let said = if stable {
            format!("stable: with {requests} requests per seed the answer is again {again}{within}")
        } else {
            format!(
                "NOT stable: with {requests} requests per seed the answer is {again} (was {before}); trust the longer runs, and check again at --requests {}",
                requests * 2
            )
        };
        self.line.push_str(&format!("\n  {said}"));
    }
}

/// The fields of a measure, each name prefixed (`at_`, `below_`); `None` gives empty fields.
fn measure_fields<T>(
    prefix: &'static str,
    m: Option<&(T, Measure)>,
) -> Vec<(&'static str, FieldValue)> {
    let names: [&'static str; 15] = match prefix {
        "at" => [
            "slo_attainment",
            "requests",
            "met",
            "gpu_hours_busy",
            "gpu_hours_provisioned",
            "usd",
            "usd_per_1k_met_images",
            "energy_wh",
            "wh_per_met_image",
            "ci95_low",
            "ci95_high",
            "worst_seed_attainment",
            "per_seed_attainment",
            "per_resolution_attainment",
            "worst_resolution",
        ],
        _ => [
            "below_slo_attainment",
            "below_requests",
            "below_met",
            "below_gpu_hours_busy",
            "below_gpu_hours_provisioned",
            "below_usd",
            "below_usd_per_1k_met_images",
            "below_energy_wh",
            "below_wh_per_met_image",
            "below_ci95_low",
            "below_ci95_high",
            "below_worst_seed_attainment",
            "below_per_seed_attainment",
            "below_per_resolution_attainment",
            "below_worst_resolution",
        ],
    };
    let values = match m {
        None => vec![FieldValue::None; 15],
        Some((_, m)) => {
            let (low, high) = m.ci95_bounds();
            [
                FieldValue::Number(m.slo_attainment),
                FieldValue::Count(m.requests as u64),
                FieldValue::Count(m.met as u64),
            ]
            .into_iter()
            .chain(m.cost_values().map(FieldValue::opt))
            .chain([
                FieldValue::Number(low),
                FieldValue::Number(high),
                FieldValue::opt(m.worst_run()),
                FieldValue::Text(
                    m.per_run
                        .iter()
                        .map(|a| format!("{a}"))
                        .collect::<Vec<_>>()
                        .join(";"),
                ),
                FieldValue::Text(
                    m.per_resolution
                        .iter()
                        .map(|c| format!("{}={}", c.resolution, c.attainment()))
                        .collect::<Vec<_>>()
                        .join(";"),
                ),
                m.worst_resolution().map_or(FieldValue::None, |c| {
                    FieldValue::Text(c.resolution.to_string())
                }),
            ])
            .collect()
        }
    };
    names.into_iter().zip(values).collect()
}

/// Attainment at a point for people: the mean, its 95% CI over the seeds (when there are
/// several), and each resolution's.
fn attainment_phrase(m: &Measure) -> String {
    let mut s = format!("{:.1}%", m.slo_attainment * 100.0);
    if m.runs > 1 {
        let (low, high) = m.ci95_bounds();
        s.push_str(&format!(
            ", 95% CI {:.1}-{:.1}% over {} seeds, worst seed {:.1}%",
            low * 100.0,
            high * 100.0,
            m.runs,
            m.worst_run().unwrap_or(0.0) * 100.0
        ));
    }
    if m.per_resolution.len() > 1 {
        let each: Vec<String> = m
            .per_resolution
            .iter()
            .map(|c| format!("{} {:.1}%", c.resolution, c.attainment() * 100.0))
            .collect();
        s.push_str(&format!("; by resolution {}", each.join(", ")));
    }
    s
}

/// The cost of a measure, for people.
fn cost_phrase(m: &Measure) -> String {
    let mut s = format!(
        "{:.3} busy / {:.3} provisioned GPU-h per run",
        m.gpu_hours_busy, m.gpu_hours_provisioned
    );
    if let Some(usd) = m.cost.usd_per_1k_met_images {
        s.push_str(&format!(", ${usd:.2} per 1,000 met images"));
    }
    if let Some(wh) = m.cost.wh_per_met_image {
        s.push_str(&format!(", {wh:.1} Wh per met image"));
    }
    s
}

/// Whether the answer is unsure: the target lies inside the 95% CI of the mean at the answer,
/// so another set of seeds could put it on the other side. Only the mean criterion can
/// answer inside its own interval.
fn unsure(planner: &Planner, target: f64, m: &Measure) -> bool {
    planner.criterion == Criterion::Mean && m.runs > 1 && m.slo_attainment - m.ci95 < target
}

/// The warning for an unsure answer, for people.
const UNSURE: &str = "\n  unsure: the target lies inside the 95% CI there, so other seeds may well miss it; --criterion ci-lower answers with 95% confidence (or add --seeds)";

/// The criterion in a sentence; nothing for the default mean.
fn criterion_phrase(planner: &Planner) -> String {
    match planner.criterion {
        Criterion::Mean => String::new(),
        c => format!(" ({})", c.phrase()),
    }
}

/// The report of a [`rate_search`] with `planner` on `gpus` GPUs.
pub fn rate_report(
    planner: &Planner,
    target: f64,
    gpus: u32,
    range: (f64, f64),
    r: &RateSearch,
) -> Report {
    let (load, load_phrase) = load_fields(planner);
    let log = matches!(planner.load, Load::Log { .. });
    let (rate, scale) = match &r.best {
        None => (None, None),
        Some((x, _)) => (Some(planner.rate_at(*x)), log.then_some(*x)),
    };
    let mut fields = vec![
        ("search", FieldValue::Text("rate".into())),
        ("policy", FieldValue::Text(planner.policy.clone())),
        ("target", FieldValue::Number(target)),
        (
            "criterion",
            FieldValue::Text(planner.criterion.name().into()),
        ),
        ("gpus", FieldValue::Count(u64::from(gpus))),
    ];
    fields.extend(load);
    fields.extend([
        ("outcome", FieldValue::Text(r.outcome.name().into())),
        ("goodput_rate_per_min", FieldValue::opt(rate)),
        ("goodput_scale", FieldValue::opt(scale)),
        (
            "rate_per_min_per_gpu",
            FieldValue::opt(rate.map(|r| r / f64::from(gpus))),
        ),
        ("range_min", FieldValue::Number(range.0)),
        ("range_max", FieldValue::Number(range.1)),
        ("points", FieldValue::Count(r.points as u64)),
    ]);
    let doubt = r
        .best
        .as_ref()
        .is_some_and(|(_, m)| unsure(planner, target, m));
    fields.push(("target_within_ci", FieldValue::Text(doubt.to_string())));
    fields.extend(measure_fields("at", r.best.as_ref()));
    let who = format!("{} on {gpus} GPUs", planner.policy);
    let crit = criterion_phrase(planner);
    let pct = target * 100.0;
    let line = match (&r.best, r.outcome) {
        (None, _) => {
            let there = r.missed.as_ref().map_or_else(String::new, |(_, m)| {
                format!("; {} there", attainment_phrase(m))
            });
            match &planner.load {
                Load::Log { .. } => format!(
                    "{who}: below {pct:.0}% SLO attainment{crit} even at {}x the log's rate ({load_phrase}{there})",
                    range.0
                ),
                Load::Generated { .. } => format!(
                    "{who}: below {pct:.0}% SLO attainment{crit} even at {} req/min ({load_phrase}{there})",
                    range.0
                ),
            }
        }
        (Some((x, m)), outcome) => {
            let held = match &planner.load {
                Load::Log { .. } => format!(
                    "holds {x:.2}x the log's rate ({:.1} req/min)",
                    planner.rate_at(*x)
                ),
                Load::Generated { .. } => format!("goodput {x:.2} req/min"),
            };
            let top = if outcome == SearchEnd::AtTop {
                "; at the top of the search range, raise it to look further"
            } else {
                ""
            };
            format!(
                "{who}: {held} at {pct:.0}% SLO attainment{crit} ({} there; {load_phrase}); {}{top}",
                attainment_phrase(m),
                cost_phrase(m)
            )
        }
    };
    let line = if doubt { line + UNSURE } else { line };
    Report { fields, line }
}

/// The report of a [`gpu_search`] for the load at `x`.
pub fn gpu_report(planner: &Planner, target: f64, x: f64, r: &GpuSearch) -> Report {
    let (load, load_phrase) = load_fields(planner);
    let log = matches!(planner.load, Load::Log { .. });
    let sizes: Vec<String> = r.candidates.iter().map(u32::to_string).collect();
    let mut fields = vec![
        (
            "search",
            FieldValue::Text(match planner.pool() {
                None => "gpus".into(),
                Some(p) => format!("{}_gpus", p.name()),
            }),
        ),
        ("policy", FieldValue::Text(planner.policy.clone())),
        ("target", FieldValue::Number(target)),
        (
            "criterion",
            FieldValue::Text(planner.criterion.name().into()),
        ),
    ];
    fields.extend(load);
    fields.extend([
        ("rate_per_min", FieldValue::Number(planner.rate_at(x))),
        (
            "scale",
            if log {
                FieldValue::Number(x)
            } else {
                FieldValue::None
            },
        ),
        ("outcome", FieldValue::Text(r.outcome.name().into())),
        (
            "gpus",
            r.best
                .as_ref()
                .map_or(FieldValue::None, |(g, _)| FieldValue::Count(u64::from(*g))),
        ),
        (
            "below_gpus",
            r.below
                .as_ref()
                .map_or(FieldValue::None, |(g, _)| FieldValue::Count(u64::from(*g))),
        ),
        ("candidates", FieldValue::Text(sizes.join(";"))),
        ("points", FieldValue::Count(r.points as u64)),
    ]);
    let doubt = r
        .best
        .as_ref()
        .is_some_and(|(_, m)| unsure(planner, target, m));
    fields.push(("target_within_ci", FieldValue::Text(doubt.to_string())));
    fields.extend(measure_fields("at", r.best.as_ref()));
    fields.extend(measure_fields("below", r.below.as_ref()));
    let load_at = if log {
        format!(
            "{x}x the log's rate ({:.1} req/min; {load_phrase})",
            planner.rate_at(x)
        )
    } else {
        format!("{x} req/min ({load_phrase})")
    };
    let pct = target * 100.0;
    let crit = criterion_phrase(planner);
    let largest = r.candidates.last().copied().unwrap_or(0);
    let noun = planner.gpus_noun();
    let line = match (&r.best, &r.below) {
        (None, below) => format!(
            "{}: below {pct:.0}% SLO attainment{crit} at {load_at} even on {largest} {noun} ({} there); raise --max-gpus{}",
            planner.policy,
            below
                .as_ref()
                .map_or_else(|| "0.0%".to_string(), |(_, m)| attainment_phrase(m)),
            if planner.pool().is_some() {
                ", or grow what this pool feeds: the denoising cluster or the other pool may be what falls short"
            } else {
                ""
            }
        ),
        (Some((g, m)), below) => {
            let step = match below {
                Some((b, bm)) => match bm
                    .worst_resolution()
                    .filter(|_| bm.per_resolution.len() > 1)
                {
                    Some(w) => format!(
                        "{:.1}% on {b} {noun}, where {} met {:.1}%",
                        bm.slo_attainment * 100.0,
                        w.resolution,
                        w.attainment() * 100.0
                    ),
                    None => format!("{:.1}% on {b} {noun}", bm.slo_attainment * 100.0),
                },
                None => "the smallest size tried".to_string(),
            };
            format!(
                "{}: {g} {noun} hold {load_at} at {pct:.0}% SLO attainment{crit} ({} there; {step}); {}",
                planner.policy,
                attainment_phrase(m),
                cost_phrase(m)
            )
        }
    };
    let line = if doubt { line + UNSURE } else { line };
    Report { fields, line }
}
