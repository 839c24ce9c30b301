//! Simulated (and measured) time as integer nanoseconds.
//!
//! Every instant and duration in the engine, the policies and the records is a [`Nanos`].
//! Integer time makes runs bit-for-bit reproducible: no float epsilon decides which of two
//! events comes first. Floats appear only at the boundaries (parsing seconds from a trace,
//! printing seconds in a report), through the conversions below.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A point in time or a duration, in nanoseconds since the start of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);
    pub const MAX: Nanos = Nanos(u64::MAX);
    /// The simulator's horizon, 2^62 ns (about 146 years): every time read from input, and
    /// every instant a run reaches, lies below it. Inputs are refused beyond it, and a run
    /// whose clock would pass it fails; so the sum of any two valid times fits in a `u64`
    /// and no result can be a silently saturated time.
    pub const HORIZON: Nanos = Nanos(1 << 62);

    /// Converts seconds to nanoseconds, rounding to the nearest nanosecond.
    ///
    /// Returns `None` for negative, non-finite or values at or beyond [`Nanos::HORIZON`], so
    /// that callers parsing user input can report the offending field instead of panicking.
    pub fn try_from_secs(secs: f64) -> Option<Nanos> {
        let ns = (secs * 1e9).round();
        if !ns.is_finite() || ns < 0.0 || ns >= Nanos::HORIZON.0 as f64 {
            return None;
        }
        Some(Nanos(ns as u64))
    }

    /// `self + other` if it stays below [`Nanos::HORIZON`].
    pub fn checked_add(self, other: Nanos) -> Option<Nanos> {
        self.0
            .checked_add(other.0)
            .filter(|&t| t < Nanos::HORIZON.0)
            .map(Nanos)
    }

    /// `self * k` if it stays below [`Nanos::HORIZON`].
    pub fn checked_times(self, k: u64) -> Option<Nanos> {
        self.0
            .checked_mul(k)
            .filter(|&t| t < Nanos::HORIZON.0)
            .map(Nanos)
    }

    /// Like [`Nanos::try_from_secs`] for values the program itself computed; saturates.
    pub fn from_secs(secs: f64) -> Nanos {
        Nanos::try_from_secs(secs).unwrap_or(if secs > 0.0 { Nanos::MAX } else { Nanos::ZERO })
    }

    pub fn from_millis(ms: f64) -> Nanos {
        Nanos::from_secs(ms / 1e3)
    }

    pub fn as_secs(self) -> f64 {
        self.0 as f64 / 1e9
    }

    pub fn as_millis(self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub fn saturating_sub(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(other.0))
    }

    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }

    /// `self * k`, saturating (a duration of `k` equal steps).
    ///
    /// Saturation is safe only where the result is *compared* with a time of the run: every
    /// such time lies below [`Nanos::HORIZON`] < `u64::MAX`, so a saturated product (or sum,
    /// see `Add`) compares with it exactly as the true value would. That is how policies use
    /// it (e.g. "does now + 28 steps pass the deadline?"). A value that *becomes* a time of the
    /// run (a work's end, a wake-up) goes through [`checked_times`](Nanos::checked_times) /
    /// [`checked_add`](Nanos::checked_add) in the engine and executors, and fails past the
    /// horizon instead.
    pub fn times(self, k: u64) -> Nanos {
        Nanos(self.0.saturating_mul(k))
    }

    /// Exact decimal seconds (`"12.000000500"`), used in output files so that records are
    /// byte-identical across platforms (no float formatting involved).
    pub fn secs_string(self) -> String {
        let mut s = String::with_capacity(24);
        self.push_secs(&mut s);
        s
    }

    /// Appends [`secs_string`](Nanos::secs_string) to `out` (what output files use: a run
    /// writes millions of times, and formatting machinery would dominate).
    pub fn push_secs(self, out: &mut String) {
        push_uint(out, self.0 / 1_000_000_000);
        out.push('.');
        let frac = self.0 % 1_000_000_000;
        let mut digits = [b'0'; 9];
        let mut v = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend(digits.iter().map(|&b| char::from(b)));
    }
}

/// Appends the decimal digits of `v` to `out` (as `write!(out, "{v}")` would, faster).
pub fn push_uint(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&b| char::from(b)));
}

impl Add for Nanos {
    type Output = Nanos;
    /// Saturating, for comparisons against times of the run (see [`Nanos::times`]); the
    /// engine computes the run's own instants with `checked_add`.
    fn add(self, rhs: Nanos) -> Nanos {
        self.saturating_add(rhs)
    }
}

impl AddAssign for Nanos {
    fn add_assign(&mut self, rhs: Nanos) {
        *self = *self + rhs;
    }
}

impl Sub for Nanos {
    type Output = Nanos;
    /// Saturating: a negative duration is a logic error that must not wrap around.
    fn sub(self, rhs: Nanos) -> Nanos {
        self.saturating_sub(rhs)
    }
}

impl Nanos {
    /// Seconds read from a file (a trace cell, a run directory's column) as integer
    /// nanoseconds; `Err` says what was expected. A plain decimal with at most nine
    /// fractional digits is converted exactly, without `f64`, so that what
    /// [`Nanos::secs_string`] wrote reads back bit for bit; other numeric forms (`1e3`, more
    /// decimals) go through `f64` and are rounded to the nanosecond. Every reader of seconds
    /// uses this one, so all accept the same forms and refuse the same values.
    pub fn parse_secs(cell: &str) -> Result<Nanos, String> {
        if let Some(ns) = exact_decimal_ns(cell) {
            return ns.ok_or_else(|| {
                format!("`{cell}` seconds is too large to represent; expected less than 4611686018.427387904 (2^62 ns, about 146 years, the simulator's horizon)")
            });
        }
        let x: f64 = cell
            .parse()
            .map_err(|_| format!("expected a number of seconds, got `{cell}`"))?;
        if !x.is_finite() {
            return Err(format!("expected a finite number of seconds, got `{cell}`"));
        }
        if x < 0.0 {
            return Err(format!("expected a number of seconds >= 0, got `{cell}`"));
        }
        Nanos::try_from_secs(x).ok_or_else(|| {
            format!("`{cell}` seconds is too large to represent; expected less than 4611686018.427387904 (2^62 ns, about 146 years, the simulator's horizon)")
        })
    }
}

/// `Some(Some(ns))` for a plain decimal (`12`, `12.5`, `.5`, `12.000000500`) with at most
/// nine fractional digits; `Some(None)` if it has that form but overflows; `None` for any
/// other form (left to the `f64` path).
fn exact_decimal_ns(cell: &str) -> Option<Option<Nanos>> {
    let bytes = cell.as_bytes();
    let (int_len, whole) = leading_digits(bytes);
    let (end, frac_len, frac) = match bytes.get(int_len) {
        Some(b'.') => {
            let (frac_len, frac) = leading_digits(&bytes[int_len + 1..]);
            (int_len + 1 + frac_len, frac_len, frac)
        }
        _ => (int_len, 0, Some(0)),
    };
    if end != bytes.len() || (int_len == 0 && frac_len == 0) || frac_len > 9 {
        return None;
    }
    let Some(whole) = whole else {
        return Some(None);
    };
    // At most nine digits: no overflow.
    let frac_ns = frac? * 10u64.pow(9 - frac_len as u32);
    Some(
        whole
            .checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(frac_ns))
            .filter(|&ns| ns < Nanos::HORIZON.0)
            .map(Nanos),
    )
}

/// The number of ASCII digits `bytes` starts with, and their value (`None` if it overflows).
fn leading_digits(bytes: &[u8]) -> (usize, Option<u64>) {
    let len = bytes
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(bytes.len());
    let digits = &bytes[..len];
    let value = if len <= 19 {
        // Below 10^19: fits, so no checks in the loop.
        Some(digits.iter().fold(0, |v, d| v * 10 + u64::from(d - b'0')))
    } else {
        digits.iter().try_fold(0u64, |v, d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    };
    (len, value)
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saturated sums and products compare with any time below the horizon as the true
    /// (unbounded) values would: the property policies rely on when they use `+` and `times`.
    #[test]
    fn saturated_results_compare_exactly_with_times_below_the_horizon() {
        let deadline = Nanos(Nanos::HORIZON.0 - 1);
        let mut below = 0;
        for step in [Nanos(1_000), Nanos(1 << 40), Nanos(u64::MAX / 3)] {
            for k in [1u64, 3, 4, 1 << 21, 1 << 40, u64::MAX] {
                let exact = u128::from(step.0) * u128::from(k);
                assert_eq!(step.times(k) > deadline, exact > u128::from(deadline.0));
                let sum = u128::from(step.0) + exact;
                assert_eq!(
                    step + step.times(k) > deadline,
                    sum > u128::from(deadline.0)
                );
                below += usize::from(sum <= u128::from(deadline.0));
            }
        }
        assert!(below > 0, "some cases must fit below the horizon");
        assert_eq!(Nanos(5).times(3), Nanos(15));
        assert_eq!(Nanos(u64::MAX / 3).checked_times(4), None);
    }

    #[test]
    fn seconds_round_trip_to_nearest_nanosecond() {
        assert_eq!(Nanos::try_from_secs(1.5), Some(Nanos(1_500_000_000)));
        assert_eq!(Nanos::try_from_secs(0.1 + 0.2), Some(Nanos(300_000_000)));
        assert_eq!(Nanos::try_from_secs(-1.0), None);
        assert_eq!(Nanos::try_from_secs(f64::NAN), None);
        assert_eq!(Nanos::try_from_secs(f64::INFINITY), None);
    }

    #[test]
    fn exact_decimal_formatting() {
        assert_eq!(Nanos(12_000_000_500).secs_string(), "12.000000500");
        assert_eq!(Nanos(7).secs_string(), "0.000000007");
        // The hand-written digits agree with the formatter everywhere, extremes included.
        for v in [
            0,
            9,
            10,
            999_999_999,
            1_000_000_000,
            123_456_789_012,
            u64::MAX,
        ] {
            let t = Nanos(v);
            assert_eq!(
                t.secs_string(),
                format!("{}.{:09}", v / 1_000_000_000, v % 1_000_000_000)
            );
            let mut s = String::from("x");
            push_uint(&mut s, v);
            assert_eq!(s, format!("x{v}"));
        }
    }

    #[test]
    fn times_at_or_beyond_the_horizon_are_refused() {
        // 2^62 ns = 4,611,686,018.427387904 s.
        assert!(Nanos::try_from_secs(4_611_686_018.0).is_some());
        assert_eq!(Nanos::try_from_secs(4_611_686_019.0), None);
        assert_eq!(Nanos::try_from_secs(18_446_744_073.7), None);
        let big = Nanos(Nanos::HORIZON.0 - 10);
        assert_eq!(big.checked_add(Nanos(9)), Some(Nanos(Nanos::HORIZON.0 - 1)));
        assert_eq!(big.checked_add(Nanos(10)), None);
        assert_eq!(Nanos(1 << 40).checked_times(1 << 21), Some(Nanos(1 << 61)));
        assert_eq!(Nanos(1 << 40).checked_times(1 << 22), None);
        assert_eq!(Nanos(u64::MAX).checked_times(2), None);
    }

    #[test]
    fn seconds_are_parsed_exactly() {
        assert_eq!(Nanos::parse_secs("12.000000500"), Ok(Nanos(12_000_000_500)));
        assert_eq!(Nanos::parse_secs(".5"), Ok(Nanos(500_000_000)));
        assert_eq!(Nanos::parse_secs("3."), Ok(Nanos(3_000_000_000)));
        assert_eq!(Nanos::parse_secs("1e3"), Ok(Nanos(1_000_000_000_000)));
        assert_eq!(
            Nanos::parse_secs("4611686018.427387903"),
            Ok(Nanos(Nanos::HORIZON.0 - 1))
        );
        assert!(
            Nanos::parse_secs("4611686018.427387904").is_err(),
            "the horizon itself"
        );
        assert!(Nanos::parse_secs("18446744073.709551615").is_err());
        assert!(Nanos::parse_secs("18446744073.709551616").is_err());
        assert!(Nanos::parse_secs(".").is_err());
        assert!(Nanos::parse_secs("").is_err());
    }

    /// [`exact_decimal_ns`] written the obvious way: split at the dot, check, parse each part.
    fn reference_exact_decimal_ns(cell: &str) -> Option<Option<Nanos>> {
        let (int, frac) = cell.split_once('.').unwrap_or((cell, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || frac.len() > 9 {
            return None;
        }
        let whole = if int.is_empty() {
            Ok(0)
        } else {
            int.parse::<u64>()
        };
        let Ok(whole) = whole else {
            return Some(None);
        };
        let frac_ns = if frac.is_empty() {
            0
        } else {
            frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32)
        };
        Some(
            whole
                .checked_mul(1_000_000_000)
                .and_then(|ns| ns.checked_add(frac_ns))
                .filter(|&ns| ns < Nanos::HORIZON.0)
                .map(Nanos),
        )
    }

    proptest::proptest! {
        #[test]
        fn exact_decimals_match_splitting_at_the_dot(cell in "[0-9.]{0,24}|[0-9]{0,3}[.e+-][0-9]{0,3}") {
            proptest::prop_assert_eq!(exact_decimal_ns(&cell), reference_exact_decimal_ns(&cell));
        }

    }

    #[test]
    fn subtraction_saturates() {
        assert_eq!(Nanos(3) - Nanos(5), Nanos::ZERO);
    }
}
