//! Any text fed to the scenario parser and validator: an error or a runnable scenario.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tetriserve::scenario::{RawScenario, Scenario};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(raw) = RawScenario::parse(text, "fuzz.toml", Path::new(".")) else { return };
    let _ = Scenario::from_raw(raw.or(RawScenario::default_scenario()), "fuzz.toml");
});
