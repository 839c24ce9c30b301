//! Any text fed to the profile parser, then lookups of arbitrary resolutions: errors, never
//! panics, and every time returned is positive and finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetriserve::cluster::Link;
use tetriserve::cost::CostModel;
use tetriserve::cost::profile::ProfileTable;
use tetriserve::workload::Resolution;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = ProfileTable::parse(text, "fuzz.csv") {
        for px in [16u32, 256, 384, 768, 1024, 1536, 2048, 4096] {
            for k in [1, 2, 3, 4, 8] {
                if let Ok(t) = p.step_time(Resolution::new(px, px / 16 * 16), k, 1, Link::NvLink) {
                    assert!(t.0 > 0, "a zero step time");
                }
            }
        }
    }
});
