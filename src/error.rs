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
        partial: Box<crate::metrics::RunRecords>,
        finished: usize,
    },
}

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

impl From<InputError> for Error {
    fn from(e: InputError) -> Error {
        Error::Input(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
