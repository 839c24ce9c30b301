//! Any text fed to the importers of other tools' traces, in every format: an error or a
//! workload, never a panic; and whatever imports, the trace CSV it becomes reads back exactly
//! (an importer never writes what the trace reader would refuse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetriserve::workload::import::{Format, ImportOptions, import};
use tetriserve::workload::mix::{Sampling, parse_mix};
use tetriserve::workload::trace::{SloDefaults, parse_trace, to_csv};
use tetriserve::workload::SloBases;

/// Format names picked by the first byte (`vllm-omni` reads both its JSONL and `.txt` forms).
const FORMATS: [&str; 2] = ["vllm-omni", "alibaba-genai"];
/// Time scales, extremes included: the importer must refuse what it cannot represent.
const SCALES: [f64; 6] = [1.0, 4.0, 0.25, 1e-300, 1e300, 1e-9];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Ok(format) = FORMATS[usize::from(pick) % FORMATS.len()].parse::<Format>() else {
        return;
    };
    let opts = ImportOptions {
        format,
        time_scale: SCALES[usize::from(pick >> 2) % SCALES.len()],
        mix: parse_mix("uniform").expect("a built-in mix"),
        sampling: Sampling::default(),
        seed: u64::from(pick),
        steps: 28,
        slo: SloDefaults { bases: SloBases::paper(), scale: 1.0 },
    };
    if let Ok(w) = import(text, "fuzz.trace", &opts) {
        let again = parse_trace(&to_csv(&w), "again.csv", None).expect("an imported trace reads back");
        assert_eq!(again, w);
    }
});
