//! Importers for other tools' request traces, turned into this project's [`Workload`].
//!
//! Two formats are read, both leniently in what they ignore and strictly in what they need:
//!
//! - **`vllm-omni`**: the heterogeneous DiT trace replayed by vLLM-Omni's diffusion serving
//!   benchmark (`--dataset trace`): one JSON object per line with `width`, `height`,
//!   `num_inference_steps`, optional `slo_ms`, and an arrival time in seconds (`arrival`,
//!   `arrival_s` or `timestamp`). Other keys (`prompt`, `seed`, `fps`, `num_frames`) are
//!   ignored; video requests (`num_frames` > 1) are refused, this simulator serves images.
//! - **`alibaba-genai`**: a CSV export of a GenAI serving trace with one row per request: an
//!   arrival timestamp in seconds (`timestamp`, `arrival_time`, `submit_time` or `time`) and,
//!   when present, the step count (`num_inference_steps`, `steps` or `inference_steps`; else the
//!   scenario's steps). Such traces carry no resolutions, so they are drawn from the chosen mix
//!   with the scenario's seed (stratified or i.i.d., as the scenario says).
//!
//! Arrivals are made relative to the first one and divided by `time_scale` (2.0 replays the
//! trace at twice its rate). Rows are sorted by arrival (stable, so equal times keep file
//! order): production exports are often grouped by worker, not by time. A request without an
//! SLO gets the scenario's `scale x base(resolution)`.

use crate::error::{InputError, Result};
use crate::time::Nanos;
use crate::workload::generate::stream_rng;
use crate::workload::mix::{Mix, Sampling};
use crate::workload::trace::SloDefaults;
use crate::workload::{Request, RequestId, Resolution, Workload};

/// A trace format this module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    VllmOmni,
    AlibabaGenai,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Format, String> {
        match s {
            "vllm-omni" => Ok(Format::VllmOmni),
            "alibaba-genai" => Ok(Format::AlibabaGenai),
            other => Err(format!(
                "unknown trace format `{other}`; expected vllm-omni or alibaba-genai"
            )),
        }
    }
}

/// What an import needs besides the file.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub format: Format,
    /// Replay at this many times the trace's rate (> 0).
    pub time_scale: f64,
    /// Resolutions for formats without them.
    pub mix: Mix,
    pub sampling: Sampling,
    pub seed: u64,
    /// Steps for rows without a step count.
    pub steps: u32,
    /// Deadlines for rows without an SLO.
    pub slo: SloDefaults,
}

/// One parsed row before arrivals are rebased and resolutions assigned.
struct Row {
    line: u64,
    arrival_s: f64,
    resolution: Option<Resolution>,
    steps: u32,
    slo_s: Option<f64>,
}

/// Reads `text` (from `source`, for messages) in `opts.format`.
pub fn import(text: &str, source: &str, opts: &ImportOptions) -> Result<Workload> {
    if !(opts.time_scale.is_finite() && opts.time_scale > 0.0) {
        return Err(
            InputError::new(source, "the time scale must be a positive number")
                .field("--time-scale")
                .into(),
        );
    }
    let mut rows = match opts.format {
        Format::VllmOmni => vllm_omni_rows(text, source)?,
        Format::AlibabaGenai => alibaba_rows(text, source, opts.steps)?,
    };
    if rows.is_empty() {
        return Err(InputError::new(source, "the trace has no requests").into());
    }
    rows.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    let first = rows[0].arrival_s;
    let mut drawn = if rows.iter().any(|r| r.resolution.is_none()) {
        let mut rng = stream_rng(opts.seed, "import-resolutions");
        opts.mix
            .sample(rows.len(), opts.sampling, &mut rng)
            .into_iter()
    } else {
        Vec::new().into_iter()
    };
    let mut requests = Vec::with_capacity(rows.len());
    for (i, r) in rows.into_iter().enumerate() {
        let resolution = match r.resolution {
            Some(res) => res,
            None => drawn.next().ok_or_else(|| {
                InputError::new(source, "the mix gave no resolution").hint("check --mix")
            })?,
        };
        let horizon_hint = "times must lie within the simulator's horizon (2^62 ns, about 146 years) after the first request";
        let arrival = Nanos::try_from_secs((r.arrival_s - first) / opts.time_scale)
            .ok_or_else(|| {
                InputError::new(
                    source,
                    format!(
                        "the arrival {:?} s after the first request (time scale {:?}) cannot be represented",
                        r.arrival_s - first,
                        opts.time_scale
                    ),
                )
                .line(r.line)
                .field("arrival")
                .hint(horizon_hint)
            })?;
        let slo = match r.slo_s {
            Some(s) => Nanos::try_from_secs(s)
                .filter(|t| *t > Nanos::ZERO)
                .ok_or_else(|| {
                    InputError::new(
                        source,
                        format!("an SLO of {s} s is not a positive time the simulator can hold"),
                    )
                    .line(r.line)
                    .field("slo")
                    .hint("SLOs must be at least 1 ns and below the horizon of about 146 years")
                })?,
            None => opts.slo.bases.scaled(resolution, opts.slo.scale).ok_or_else(|| {
                InputError::new(
                    source,
                    format!(
                        "no SLO for {resolution} (the row has none and the scenario has no base for it)"
                    ),
                )
                .line(r.line)
                .hint("add slo_ms to the row, or an SLO base for this resolution to the scenario")
            })?,
        };
        requests.push(Request {
            id: RequestId(0),
            label: i as u64,
            arrival,
            resolution,
            steps: r.steps,
            deadline: arrival.checked_add(slo).ok_or_else(|| {
                InputError::new(source, "arrival + SLO lies beyond the simulator's horizon")
                    .line(r.line)
                    .field("slo")
                    .hint(horizon_hint)
            })?,
        });
    }
    Ok(Workload::from_requests(requests))
}

fn vllm_omni_rows(text: &str, source: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i as u64 + 1;
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |field: &str, msg: String| InputError::new(source, msg).line(n).field(field);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            InputError::new(source, format!("not a JSON object: {e}"))
                .line(n)
                .hint("vllm-omni traces have one JSON object per line")
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| InputError::new(source, "expected a JSON object").line(n))?;
        let num = |key: &str| obj.get(key).and_then(serde_json::Value::as_f64);
        let uint = |key: &str| -> Result<u32> {
            let x =
                num(key).ok_or_else(|| err(key, format!("missing or not a number: `{key}`")))?;
            if x.fract() != 0.0 || x < 1.0 || x > f64::from(u32::MAX) {
                return Err(
                    err(key, format!("`{key}` must be a positive integer, got {x}")).into(),
                );
            }
            Ok(x as u32)
        };
        if let Some(f) = num("num_frames")
            && f > 1.0
        {
            return Err(err(
                "num_frames",
                format!("a video request ({f} frames); this simulator serves images"),
            )
            .into());
        }
        let resolution = Resolution {
            width: uint("width")?,
            height: uint("height")?,
        };
        resolution.validate().map_err(|m| err("width", m))?;
        let steps = uint("num_inference_steps")?;
        if steps == 0 || steps > crate::workload::MAX_STEPS {
            return Err(err(
                "num_inference_steps",
                format!(
                    "expected 1 to {} steps, got {steps}",
                    crate::workload::MAX_STEPS
                ),
            )
            .into());
        }
        let key = ["arrival", "arrival_s", "timestamp"]
            .into_iter()
            .find(|k| obj.contains_key(*k))
            .ok_or_else(|| {
                err("arrival", "no arrival time".into())
                    .hint("give each request `arrival` (seconds since the start)")
            })?;
        let arrival_s = num(key)
            .filter(|x| x.is_finite())
            .ok_or_else(|| err(key, format!("`{key}` is not a number")))?;
        let slo_s = match obj.get("slo_ms") {
            None | Some(serde_json::Value::Null) => None,
            Some(_) => {
                let ms = num("slo_ms")
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| err("slo_ms", "`slo_ms` must be a positive number".into()))?;
                Some(ms / 1000.0)
            }
        };
        rows.push(Row {
            line: n,
            arrival_s,
            resolution: Some(resolution),
            steps,
            slo_s,
        });
    }
    Ok(rows)
}

fn alibaba_rows(text: &str, source: &str, default_steps: u32) -> Result<Vec<Row>> {
    let text = text.trim_start_matches('\u{feff}');
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| InputError::new(source, format!("unreadable header: {e}")).line(1))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let find = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| header.iter().position(|h| h == n))
    };
    let time_names = ["timestamp", "arrival_time", "submit_time", "time"];
    let time = find(&time_names).ok_or_else(|| {
        InputError::new(source, "no arrival time column")
            .line(1)
            .hint(format!("name it one of: {}", time_names.join(", ")))
    })?;
    let steps_col = find(&["num_inference_steps", "steps", "inference_steps"]);
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            InputError::new(source, format!("malformed CSV: {e}")).line(line)
        })?;
        let n = rec.position().map_or(0, |p| p.line());
        let cell = |c: usize, name: &str| {
            rec.get(c).ok_or_else(|| {
                InputError::new(source, format!("missing `{name}` cell"))
                    .line(n)
                    .field(name)
            })
        };
        let t = cell(time, &header[time])?;
        let arrival_s: f64 = t
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| {
                InputError::new(source, format!("`{t}` is not a number of seconds"))
                    .line(n)
                    .field(header[time].as_str())
            })?;
        let steps = match steps_col {
            None => default_steps,
            Some(c) => {
                let s = cell(c, &header[c])?;
                s.parse::<u32>()
                    .ok()
                    .filter(|x| (1..=crate::workload::MAX_STEPS).contains(x))
                    .ok_or_else(|| {
                        InputError::new(
                            source,
                            format!(
                                "`{s}` is not a step count from 1 to {}",
                                crate::workload::MAX_STEPS
                            ),
                        )
                        .line(n)
                        .field(header[c].as_str())
                    })?
            }
        };
        rows.push(Row {
            line: n,
            arrival_s,
            resolution: None,
            steps,
            slo_s: None,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SloBases;

    fn opts(format: Format, time_scale: f64) -> ImportOptions {
        ImportOptions {
            format,
            time_scale,
            mix: Mix::Uniform(crate::workload::mix::paper_resolutions()),
            sampling: Sampling::Stratified,
            seed: 7,
            steps: 28,
            slo: SloDefaults {
                bases: SloBases::paper(),
                scale: 1.0,
            },
        }
    }

    #[test]
    fn vllm_omni_rows_keep_their_fields_and_rebase_time() {
        let text = r#"{"prompt": "a cat", "width": 512, "height": 512, "num_inference_steps": 20, "slo_ms": 2500, "arrival": 10.5}
{"width": 1024, "height": 1024, "num_inference_steps": 28, "arrival": 10.0}
"#;
        let w = import(text, "t.jsonl", &opts(Format::VllmOmni, 2.0)).unwrap();
        // Sorted by arrival: the 1024 px row (t = 10.0) first, at 0; the other at 0.5 / 2.
        let r = &w.requests;
        assert_eq!(r[0].resolution, Resolution::square(1024));
        assert_eq!(r[0].arrival, Nanos(0));
        assert_eq!(r[0].steps, 28);
        // No slo_ms: the scenario's base for 1024 px applies.
        assert_eq!(
            r[0].slo(),
            SloBases::paper().scaled(r[0].resolution, 1.0).unwrap()
        );
        assert_eq!(r[1].arrival, Nanos::from_millis(250.0));
        assert_eq!(r[1].slo(), Nanos::from_millis(2500.0));
        assert_eq!(r[1].steps, 20);
    }

    #[test]
    fn vllm_omni_errors_name_the_line_and_field() {
        let e = import(
            "{\"width\": 512, \"height\": 512, \"arrival\": 0}\n",
            "t.jsonl",
            &opts(Format::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("t.jsonl") && e.contains("num_inference_steps"),
            "{e}"
        );
        let e = import(
            "{\"width\": 512, \"height\": 512, \"num_inference_steps\": 4, \"arrival\": 0}\nnot json\n",
            "t.jsonl",
            &opts(Format::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":2"), "{e}");
        let e = import(
            "{\"width\": 512, \"height\": 512, \"num_inference_steps\": 4, \"num_frames\": 49, \"arrival\": 0}\n",
            "t.jsonl",
            &opts(Format::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("video"), "{e}");
        // A resolution the scenario has no SLO base for, and no slo_ms.
        let e = import(
            "{\"width\": 1024, \"height\": 768, \"num_inference_steps\": 4, \"arrival\": 0}\n",
            "t.jsonl",
            &opts(Format::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.jsonl:1") && e.contains("no SLO"), "{e}");
    }

    #[test]
    fn alibaba_rows_get_resolutions_from_the_mix() {
        let mut text = String::from("request_id,timestamp,model,num_inference_steps\n");
        for i in 0..40 {
            text.push_str(&format!(
                "r{i},{},flux,{}\n",
                1000.0 + f64::from(i) * 3.0,
                20 + i % 3
            ));
        }
        let w = import(&text, "g.csv", &opts(Format::AlibabaGenai, 1.5)).unwrap();
        assert_eq!(w.len(), 40);
        // Stratified over four resolutions: ten each, in some order.
        for res in crate::workload::mix::paper_resolutions() {
            assert_eq!(
                w.requests.iter().filter(|r| r.resolution == res).count(),
                10
            );
        }
        assert_eq!(w.requests[1].arrival, Nanos::from_secs(2.0));
        assert_eq!(w.requests[2].steps, 22);
        // The same seed draws the same resolutions.
        let again = import(&text, "g.csv", &opts(Format::AlibabaGenai, 1.5)).unwrap();
        assert_eq!(again.requests, w.requests);
        // No steps column: the scenario's steps.
        let w = import(
            "timestamp\n5\n6\n",
            "g.csv",
            &opts(Format::AlibabaGenai, 1.0),
        )
        .unwrap();
        assert!(w.requests.iter().all(|r| r.steps == 28));
    }

    #[test]
    fn alibaba_errors_name_the_line_and_field() {
        let e = import("id,when\n1,2\n", "g.csv", &opts(Format::AlibabaGenai, 1.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no arrival time column"), "{e}");
        let e = import(
            "timestamp,steps\n1,28\nsoon,28\n",
            "g.csv",
            &opts(Format::AlibabaGenai, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("g.csv:3") && e.contains("timestamp"), "{e}");
        let e = import("timestamp\n1\n", "g.csv", &opts(Format::AlibabaGenai, 0.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("time scale"), "{e}");
    }

    #[test]
    fn times_the_simulator_cannot_hold_are_refused_not_clamped() {
        let row = |arrival: &str, slo: &str| {
            format!(
                r#"{{"width": 512, "height": 512, "num_inference_steps": 20, "arrival": {arrival}{slo}}}"#
            )
        };
        let v = opts(Format::VllmOmni, 1.0);
        // An SLO that rounds to 0 ns.
        let e = import(&row("0", r#", "slo_ms": 1e-9"#), "t.jsonl", &v).unwrap_err();
        assert!(e.to_string().contains("t.jsonl:1"), "{e}");
        // Arrivals whose difference overflows.
        let text = format!("{}\n{}\n", row("-1e308", ""), row("1e308", ""));
        let e = import(&text, "t.jsonl", &v).unwrap_err();
        assert!(
            e.to_string().contains("t.jsonl:2") && e.to_string().contains("horizon"),
            "{e}"
        );
        // A time scale that sends the second arrival past the horizon.
        let text = format!("{}\n{}\n", row("0", ""), row("1", ""));
        let e = import(&text, "t.jsonl", &opts(Format::VllmOmni, 1e-300)).unwrap_err();
        assert!(e.to_string().contains("horizon"), "{e}");
        // An ordinary one still reads.
        assert_eq!(import(&text, "t.jsonl", &v).unwrap().len(), 2);
    }
}
