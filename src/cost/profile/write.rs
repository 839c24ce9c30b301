//! Writing a profile CSV: the one writer of the format [`parse`](super::parse) reads, used by
//! everything that makes a profile (the analytic model's generated tables, `tetriserve
//! profile`, the real node's calibration, [`ProfileTable::to_csv`](super::ProfileTable::to_csv)).
//!
//! One writer keeps the header, the column order, the quoting and the number format in one
//! place, so a table another part of the crate writes is one the reader takes. A file is `#`
//! comment lines, [`PROFILE_HEADER`], then one row per configuration; rows may be interleaved
//! with comments, and each can be flushed as it is written (a measurement run that dies keeps
//! the rows it measured).

use std::io;

use crate::cluster::Link;
use crate::workload::Resolution;

/// The CSV header every written profile has: every column the reader knows, in this order.
pub const PROFILE_HEADER: &str =
    "model,gpu,width,height,sp_degree,batch,step_ms,std_ms,source,link";

/// How times (`step_ms`, `std_ms`) are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Rust's shortest form that reads back to the same value: a table written and read again
    /// is the same table.
    Exact,
    /// Four decimals of a millisecond (0.1 us), for measured and generated tables: more than a
    /// step time justifies, and byte-for-byte deterministic.
    Fixed4,
}

/// One row to write (the table's model and GPU are the writer's).
#[derive(Clone, Copy, Debug)]
pub struct CsvRow<'a> {
    pub res: Resolution,
    pub degree: u32,
    pub batch: u32,
    pub step_ms: f64,
    /// Empty when `None`.
    pub std_ms: Option<f64>,
    /// Where the number came from; empty for none.
    pub source: &'a str,
    pub link: Link,
}

/// Writes one profile (one model on one GPU) to `W`.
pub struct ProfileCsv<W: io::Write> {
    out: W,
    model: String,
    gpu: String,
    precision: Precision,
}

impl<W: io::Write> ProfileCsv<W> {
    /// Writes `comments` (a `# ` line each) and the header.
    pub fn new(
        mut out: W,
        model: &str,
        gpu: &str,
        precision: Precision,
        comments: &[&str],
    ) -> io::Result<Self> {
        for c in comments {
            writeln!(out, "# {c}")?;
        }
        writeln!(out, "{PROFILE_HEADER}")?;
        Ok(ProfileCsv {
            out,
            model: csv_field(model),
            gpu: csv_field(gpu),
            precision,
        })
    }

    /// A `# ` comment line between rows (the reader skips it).
    pub fn comment(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "# {text}")
    }

    /// One row.
    pub fn row(&mut self, r: &CsvRow) -> io::Result<()> {
        let ms = |x: f64| match self.precision {
            Precision::Exact => x.to_string(),
            Precision::Fixed4 => format!("{x:.4}"),
        };
        writeln!(
            self.out,
            "{},{},{},{},{},{},{},{},{},{}",
            self.model,
            self.gpu,
            r.res.width,
            r.res.height,
            r.degree,
            r.batch,
            ms(r.step_ms),
            r.std_ms.map(ms).unwrap_or_default(),
            csv_field(r.source),
            r.link
        )
    }

    /// Flushes the output (what is written so far is a profile the reader takes, once it has
    /// a row).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A whole profile as text: `comments`, the header, `rows`.
pub fn profile_csv<'a>(
    model: &str,
    gpu: &str,
    precision: Precision,
    comments: &[&str],
    rows: impl IntoIterator<Item = CsvRow<'a>>,
) -> String {
    let write = || -> io::Result<Vec<u8>> {
        let mut w = ProfileCsv::new(Vec::new(), model, gpu, precision, comments)?;
        for r in rows {
            w.row(&r)?;
        }
        Ok(w.into_inner())
    };
    // Writing to memory cannot fail, and every piece written is UTF-8.
    String::from_utf8(write().expect("writing to memory")).expect("UTF-8")
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::profile::ProfileTable;

    #[test]
    fn rows_read_back_as_written_in_both_precisions() {
        let row = CsvRow {
            res: Resolution::new(512, 256),
            degree: 2,
            batch: 1,
            step_ms: 12.345678,
            std_ms: None,
            source: "a, \"quoted\" run",
            link: Link::Pcie,
        };
        let exact = profile_csv("m", "g", Precision::Exact, &["why"], [row]);
        assert_eq!(
            exact,
            format!(
                "# why\n{PROFILE_HEADER}\nm,g,512,256,2,1,12.345678,,\"a, \"\"quoted\"\" run\",pcie\n"
            )
        );
        let t = ProfileTable::parse(&exact, "<exact>").unwrap();
        assert_eq!(t.rows()[0].step_ms, 12.345678);
        assert_eq!(t.rows()[0].source.as_deref(), Some("a, \"quoted\" run"));
        let fixed = profile_csv(
            "m",
            "g",
            Precision::Fixed4,
            &[],
            [CsvRow {
                std_ms: Some(0.25),
                ..row
            }],
        );
        assert!(
            fixed.ends_with(",12.3457,0.2500,\"a, \"\"quoted\"\" run\",pcie\n"),
            "{fixed}"
        );
        assert_eq!(
            ProfileTable::parse(&fixed, "<fixed>").unwrap().rows()[0].std_ms,
            Some(0.25)
        );
    }
}
