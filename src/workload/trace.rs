//! The trace CSV format: `id,arrival_s,width,height,steps,slo_s`.
// STUB: to be implemented.

use std::path::Path;

use crate::error::Result;
use crate::workload::{SloBases, Workload};

/// Where deadlines come from when a trace row has no `slo_s`.
#[derive(Clone, Debug, PartialEq)]
pub struct SloDefaults {
    pub bases: SloBases,
    pub scale: f64,
}

/// Parses trace CSV text. `source` names the file in errors. Rows without `slo_s` (or a trace
/// without that column) take `scale * base(resolution)` from `slo`; with neither, it is an error.
pub fn parse_trace(text: &str, source: &str, slo: Option<&SloDefaults>) -> Result<Workload> {
    let _ = (text, source, slo);
    unimplemented!()
}

/// Reads a trace file.
pub fn load_trace(path: &Path, slo: Option<&SloDefaults>) -> Result<Workload> {
    let _ = (path, slo);
    unimplemented!()
}

/// Renders a workload as trace CSV (with `slo_s`), byte-identical for identical workloads.
pub fn to_csv(workload: &Workload) -> String {
    let _ = workload;
    unimplemented!()
}
