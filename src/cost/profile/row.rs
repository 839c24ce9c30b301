//! A profile's rows: the validated row the reader produces, and the key the table looks rows
//! up by. Their own file so that the reader (`parse.rs`) and the table (`mod.rs`) both depend
//! on them and not on each other.

use crate::cluster::Link;
use crate::workload::Resolution;

/// The lookup key of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) res: Resolution,
    pub(super) degree: u32,
    pub(super) batch: u32,
    pub(super) link: Link,
}

/// One validated row of a profile.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    pub res: Resolution,
    pub degree: u32,
    pub batch: u32,
    pub link: Link,
    /// Mean step time, milliseconds (positive, finite).
    pub step_ms: f64,
    /// Standard deviation of the step time, milliseconds, when measured.
    pub std_ms: Option<f64>,
    /// Where the number came from (`analytic-estimate`, a measurement run's name, ...).
    pub source: Option<String>,
    /// 1-based line of the row in its file.
    pub line: u64,
}
