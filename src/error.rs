//! The error type every fallible public function returns.
//!
//! Errors are values that tell the user what went wrong *and where* (file, line, field) and,
//! when a fix is known, what to do about it. Nothing in the crate panics on user input; `main`
//! prints the error and exits with a non-zero status.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A problem with one piece of user input: a trace row, a profile row, a scenario key.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The file (or `<embedded ...>` for built-in data) the input came from.
    pub source: String,
    /// 1-based line number, when known.
    pub line: Option<u64>,
    /// Column or key name, when known.
    pub field: Option<String>,
    /// What is wrong, stating what was expected.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl InputError {
    pub fn new(source: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            source: source.into(),
            line: None,
            field: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn line(mut self, line: u64) -> InputError {
        self.line = Some(line);
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> InputError {
        self.field = Some(field.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> InputError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every way a `tetriserve` command can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed or inconsistent input data.
    #[error("{0}")]
    Input(InputError),
    /// A configuration that cannot be run (e.g. SP degree 8 on a 4-GPU node).
    #[error("{message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Config {
        message: String,
        hint: Option<String>,
    },
    /// The cost model cannot give a step time it can justify.
    #[error("cost model: {0}")]
    Cost(String),
    /// A policy returned a decision the engine refuses to apply, or stopped making progress.
    /// This is a bug in the policy, reported instead of silently producing wrong numbers.
    #[error("policy `{policy}`: {message}")]
    Policy { policy: String, message: String },
    /// The executor (simulated or real hardware) failed.
    #[error("executor: {0}")]
    Executor(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The executor failed in the middle of a run; what had finished is kept.
    #[error(
        "{cause}\n  the run stopped there; {finished} request(s) had finished and are kept in the outputs"
    )]
    Interrupted {
        cause: Box<Error>,
        partial: PartialRun,
        finished: usize,
    },
}

/// The records of a run an executor failure stopped, carried by [`Error::Interrupted`].
///
/// Erased here: the records type lives in `metrics`, which depends on `cluster` and
/// `workload`, which return this module's errors, so naming it here would close an import
/// circle. `metrics` gives it its typed face: `PartialRun::new` takes a `RunRecords`, and the
/// value dereferences to one.
pub struct PartialRun(pub(crate) Box<dyn std::any::Any + Send + Sync>);

impl Error {
    pub fn config(message: impl Into<String>) -> Error {
        Error::Config {
            message: message.into(),
            hint: None,
        }
    }

    pub fn config_hint(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Config {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A number as messages show it: plainly when that is short (`2.5`, `1000`), else in
/// scientific notation (`1e300`, not three hundred digits; `1e-12`).
pub fn show_number(x: f64) -> String {
    let a = x.abs();
    if x.is_finite() && a != 0.0 && !(1e-6..1e16).contains(&a) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// The most a file of each kind may hold: past these, reading stops and the file is refused.
pub mod limits {
    /// Traces and imported logs (a trace of 10 million rows is about 0.5 GiB).
    pub const TRACE_BYTES: u64 = 1 << 30;
    /// Profiles, scenarios and run or sweep results.
    pub const SMALL_BYTES: u64 = 256 << 20;
}

/// Reads the text file `path` of at most `limit` bytes. A larger one, an endless stream (a
/// FIFO, `/dev/zero`) or a binary file (a NUL byte) is refused without reading much further.
pub fn read_text(path: &std::path::Path, limit: u64, what: &str) -> Result<String> {
    use std::io::Read;
    let refuse = |message: String| -> Error {
        InputError::new(path.display().to_string(), message)
            .hint("check that the path names the intended file")
            .into()
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        if chunk[..n].contains(&0) {
            return Err(refuse(format!(
                "the {what} holds a NUL byte: it is not a text file"
            )));
        }
        bytes.extend_from_slice(&chunk[..n]);
        if bytes.len() as u64 > limit {
            return Err(refuse(format!(
                "the {what} is larger than {} MiB, the most this program reads",
                limit >> 20
            )));
        }
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        )
    })
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Error {
        Error::Input(e)
    }
}

impl Error {
    /// A bad value of one key of a configuration file: `source: field `key`: message`. The
    /// scenario's sections report through it, so that every key error reads the same.
    pub fn at_key(source: &str, key: &str, message: impl Into<String>) -> Error {
        Error::Input(InputError::new(source, message).field(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_short() {
        for (x, shown) in [
            (1e300, "1e300"),
            (-1.5e300, "-1.5e300"),
            (1e-300, "1e-300"),
            (2.5, "2.5"),
            (3_600_000.0, "3600000"),
            (0.0, "0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(show_number(x), shown);
        }
    }

    #[test]
    fn input_error_names_file_line_and_field() {
        let e = InputError::new("traces/a.csv", "expected a number, got `abc`")
            .line(7)
            .field("arrival_s")
            .hint("arrival_s is seconds since the start of the trace");
        assert_eq!(
            e.to_string(),
            "traces/a.csv:7: field `arrival_s`: expected a number, got `abc`\n  hint: arrival_s is seconds since the start of the trace"
        );
    }

    #[test]
    fn reading_stops_at_the_limit_and_at_binary_content() {
        let dir = std::env::temp_dir().join(format!("tetriserve-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.csv");
        std::fs::write(&p, "a".repeat(100)).unwrap();
        assert_eq!(read_text(&p, 100, "trace").unwrap().len(), 100);
        let e = read_text(&p, 99, "trace").unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        std::fs::write(&p, "id,arrival_s\n0,\0\n").unwrap();
        let e = read_text(&p, 1 << 20, "trace").unwrap_err().to_string();
        assert!(e.contains("NUL byte"), "{e}");
        std::fs::write(&p, [0x66u8, 0xff, 0x0a]).unwrap();
        assert!(read_text(&p, 1 << 20, "trace").is_err(), "not UTF-8");
        if std::path::Path::new("/dev/zero").exists() {
            let e = read_text(std::path::Path::new("/dev/zero"), 1 << 30, "trace").unwrap_err();
            assert!(e.to_string().contains("NUL byte"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
