//! The `[cost]` and `[overheads]` sections of a scenario: their keys as written, their
//! defaults and their validation into a [`CostSource`] and [`Overheads`].
//!
//! A run has exactly one cost model: a profile (a built-in name or a CSV path) or the
//! analytic estimate. Which GPU the cluster has follows from it (`cluster::config`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::analytic::Analytic;
use super::profile::ProfileTable;
use super::{CostModel, Overheads};
use crate::error::{Error, InputError, Result};
use crate::time::Nanos;

/// `[cost]` as written: one of the two keys.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostSection {
    /// Built-in profile name or CSV path.
    pub profile: Option<String>,
    /// Use the analytic model instead of a profile: `{ model = "flux1-dev", gpu = "h100" }`.
    pub analytic: Option<AnalyticSection>,
}

/// `[cost] analytic = { model, gpu }`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalyticSection {
    pub model: String,
    pub gpu: String,
}

/// Where a run's cost model comes from.
#[derive(Clone, Debug)]
pub enum CostSource {
    Profile(ProfileTable),
    Analytic(Analytic),
}

impl CostSource {
    pub fn model(&self) -> &dyn CostModel {
        match self {
            CostSource::Profile(p) => p,
            CostSource::Analytic(a) => a,
        }
    }

    /// The GPU type the costs describe (`h100`): the cluster's GPU type must be it.
    pub fn gpu(&self) -> &str {
        match self {
            CostSource::Profile(p) => p.gpu(),
            CostSource::Analytic(a) => &a.gpu.name,
        }
    }

    /// The model the costs describe (`flux1-dev`, `sd3-medium`).
    pub fn model_name(&self) -> &str {
        match self {
            CostSource::Profile(p) => p.model(),
            CostSource::Analytic(a) => &a.model.name,
        }
    }
}

impl CostSection {
    /// Whether this section chooses a cost source; a layer that does replaces the lower
    /// layers' `[cost]` whole (the two keys exclude each other).
    pub fn chooses(&self) -> bool {
        self.profile.is_some() || self.analytic.is_some()
    }

    /// The cost source; a profile is read (or found built in) here.
    pub fn build(&self, source: &str) -> Result<CostSource> {
        match (&self.analytic, &self.profile) {
            (Some(_), Some(_)) => Err(Error::at_key(
                source,
                "cost",
                "gives both `profile` and `analytic`; a run has one cost model",
            )),
            (Some(a), _) => Ok(CostSource::Analytic(Analytic::preset(&a.model, &a.gpu)?)),
            (None, Some(p)) => Ok(CostSource::Profile(load_profile(p).map_err(
                |e| match e {
                    Error::Config { message, hint } => {
                        let e = InputError::new(source, message).field("cost.profile");
                        Error::Input(match hint {
                            Some(h) => e.hint(h),
                            None => e,
                        })
                    }
                    other => other,
                },
            )?)),
            (None, None) => Err(Error::at_key(
                source,
                "cost",
                "give `profile` (a built-in name or CSV path) or `analytic`",
            )),
        }
    }
}

/// `[overheads]` as written; a key left out takes [`Overheads::default`], the one source of
/// the defaults (`scenarios/default.toml` repeats them, checked by a test).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OverheadsSection {
    pub text_encoder_ms: Option<f64>,
    pub vae_decode_ms_per_1k_tokens: Option<f64>,
    pub remap_fraction: Option<f64>,
    pub group_setup_ms: Option<f64>,
    pub group_setup_on_regroup: Option<bool>,
    pub dispatch_ms: Option<f64>,
    /// Moving a latent to another node, milliseconds (default 0.2, an estimate).
    pub node_handoff_ms: Option<f64>,
}

impl OverheadsSection {
    pub fn build(&self, source: &str) -> Result<Overheads> {
        let defaults = Overheads::default();
        let ms = |field: &str, v: Option<f64>, default: Nanos| -> Result<Nanos> {
            let Some(v) = v else {
                return Ok(default);
            };
            Nanos::try_from_secs(v / 1e3).ok_or_else(|| {
                Error::at_key(
                    source,
                    field,
                    format!(
                        "expected a non-negative number of milliseconds, got {v}",
                        v = crate::error::show_number(v)
                    ),
                )
            })
        };
        let remap_fraction = self.remap_fraction.unwrap_or(defaults.remap_fraction);
        if !(remap_fraction.is_finite() && remap_fraction >= 0.0) {
            return Err(Error::at_key(
                source,
                "overheads.remap_fraction",
                format!(
                    "expected a non-negative fraction, got {remap_fraction}",
                    remap_fraction = crate::error::show_number(remap_fraction)
                ),
            ));
        }
        Ok(Overheads {
            text_encoder: ms(
                "overheads.text_encoder_ms",
                self.text_encoder_ms,
                defaults.text_encoder,
            )?,
            vae_decode_per_1k_tokens: ms(
                "overheads.vae_decode_ms_per_1k_tokens",
                self.vae_decode_ms_per_1k_tokens,
                defaults.vae_decode_per_1k_tokens,
            )?,
            remap_fraction,
            group_setup: ms(
                "overheads.group_setup_ms",
                self.group_setup_ms,
                defaults.group_setup,
            )?,
            group_setup_on_regroup: self
                .group_setup_on_regroup
                .unwrap_or(defaults.group_setup_on_regroup),
            dispatch: ms("overheads.dispatch_ms", self.dispatch_ms, defaults.dispatch)?,
            node_handoff: ms(
                "overheads.node_handoff_ms",
                self.node_handoff_ms,
                defaults.node_handoff,
            )?,
        })
    }
}

/// Whether a scenario value names a file (relative ones are anchored to the scenario's
/// directory) rather than a built-in.
pub fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.contains('\\') || s.ends_with(".csv") || s.ends_with(".toml")
}

/// A built-in profile by name, or a CSV file by path.
pub fn load_profile(name_or_path: &str) -> Result<ProfileTable> {
    if let Some(p) = ProfileTable::builtin(name_or_path) {
        return Ok(p);
    }
    if looks_like_path(name_or_path) || Path::new(name_or_path).exists() {
        return ProfileTable::load(Path::new(name_or_path));
    }
    Err(Error::config_hint(
        format!("`{name_or_path}` is neither a built-in profile nor a file"),
        format!(
            "built-in profiles: {}; or give a path to a profile CSV",
            ProfileTable::builtin_names().join(", ")
        ),
    ))
}
