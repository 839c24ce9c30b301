//! Any text fed to the trace parser: an error or a valid workload, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetriserve::workload::SloBases;
use tetriserve::workload::trace::{SloDefaults, parse_trace, to_csv};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let slo = SloDefaults { bases: SloBases::paper(), scale: 1.0 };
    if let Ok(w) = parse_trace(text, "fuzz.csv", Some(&slo)) {
        // Whatever parses must round-trip exactly.
        let again = parse_trace(&to_csv(&w), "again.csv", None).expect("a written trace parses");
        assert_eq!(again, w);
    }
});
