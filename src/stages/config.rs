//! The `[stages]` section of a scenario: co-located or disaggregated encode and decode, the
//! pools' sizes and GPU types, and the link between them, with their defaults and validation
//! into a [`Deployment`].
//!
//! A disaggregated scenario keeps its `[overheads]` as the stages' service times: the text
//! encoder's time becomes the encode pool's per request, the VAE's per 1,000 tokens the decode
//! pool's, both measured on the cluster's GPU type. A pool of another type runs them slower or
//! faster by the ratio of the two types' dense bf16 peaks (an estimate: the encoders and the VAE
//! are compute-bound at these sizes).

use serde::{Deserialize, Serialize};

use super::{Deployment, Link, Pool, Pools};
use crate::cluster::{MAX_GPUS, OperatingCost};
use crate::cost::Overheads;
use crate::cost::analytic::GpuSpec;
use crate::error::{Error, Result};
use crate::time::Nanos;

/// GPUs per pool when the scenario gives none.
pub const DEFAULT_POOL_GPUS: u32 = 1;
/// The link between pools, GB/s: 400 Gb/s InfiniBand NDR (an assumption).
pub const DEFAULT_LINK_GB_PER_S: f64 = 50.0;
/// The link's latency per transfer, microseconds (an assumption).
pub const DEFAULT_LINK_LATENCY_US: f64 = 10.0;
/// A text embedding, MiB: T5-XXL's output for 512 tokens, 512 x 4096 bf16 values (FLUX.1-dev
/// and Wan2.1 both read 512 T5 tokens; CLIP's pooled 768 values are negligible).
pub const DEFAULT_EMBEDDING_MIB: f64 = 4.0;
/// A latent token's bytes: 16 latent channels x a 2 x 2 patch x 2 bytes (bf16), FLUX.1-dev's
/// and Wan2.1's patchified latents alike.
pub const DEFAULT_LATENT_BYTES_PER_TOKEN: u64 = 128;

/// The most a transfer may carry per request (an embedding: 1 GiB; a latent token: 1 MiB).
const MAX_EMBEDDING_MIB: f64 = 1024.0;
const MAX_LATENT_BYTES_PER_TOKEN: u64 = 1 << 20;
/// Link rates beyond 100 TB/s and latencies beyond a second are refused as typos.
const MAX_LINK_GB_PER_S: f64 = 100_000.0;
const MAX_LINK_LATENCY_US: f64 = 1e6;

/// `[stages]` as written: every key optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StagesSection {
    /// `colocated` (default) or `disaggregated`.
    pub mode: Option<String>,
    pub encode_gpus: Option<u32>,
    pub decode_gpus: Option<u32>,
    /// The pools' GPU types (default: the cluster's).
    pub encode_gpu: Option<String>,
    pub decode_gpu: Option<String>,
    pub link_gb_per_s: Option<f64>,
    pub link_latency_us: Option<f64>,
    pub embedding_mib: Option<f64>,
    pub latent_bytes_per_token: Option<u64>,
}

impl StagesSection {
    /// Whether the section asks for disaggregated stages (a bad mode is refused by `build`).
    pub fn disaggregated(&self) -> bool {
        self.mode.as_deref() == Some("disaggregated")
    }

    /// The deployment, for a cluster of `cluster_gpu` GPUs whose encoder and VAE times are
    /// `overheads`.
    pub fn build(
        &self,
        cluster_gpu: &str,
        overheads: &Overheads,
        source: &str,
    ) -> Result<Deployment> {
        match self.mode.as_deref().unwrap_or("colocated") {
            // Pool keys stay inactive: a file may describe its pools and a run put them back
            // on the denoising GPUs (`--stages colocated`) to compare.
            "colocated" => Ok(Deployment::Colocated),
            "disaggregated" => self
                .pools(cluster_gpu, overheads, source)
                .map(Deployment::Disaggregated),
            other => Err(Error::at_key(
                source,
                "stages.mode",
                format!("unknown mode `{other}`; expected `colocated` or `disaggregated`"),
            )),
        }
    }

    fn pools(&self, cluster_gpu: &str, overheads: &Overheads, source: &str) -> Result<Pools> {
        let count = |key: &str, v: Option<u32>| -> Result<u32> {
            let n = v.unwrap_or(DEFAULT_POOL_GPUS);
            if n == 0 || u64::from(n) > MAX_GPUS {
                return Err(Error::at_key(
                    source,
                    key,
                    format!("a pool needs 1 to {MAX_GPUS} GPUs, got {n}"),
                ));
            }
            Ok(n)
        };
        let ranged = |key: &str, v: f64, lo_exclusive: bool, max: f64, unit: &str| -> Result<f64> {
            let low_ok = if lo_exclusive { v > 0.0 } else { v >= 0.0 };
            if !(v.is_finite() && low_ok && v <= max) {
                let low = if lo_exclusive { "above 0" } else { "0" };
                return Err(Error::at_key(
                    source,
                    key,
                    format!(
                        "expected {low} to {max} {unit}, got {}",
                        crate::error::show_number(v)
                    ),
                ));
            }
            Ok(v)
        };
        // Time on a pool GPU = time on the cluster's GPU x (cluster peak / pool peak).
        let pool = |gpus_key: &str, gpus: Option<u32>, gpu_key: &str, gpu: &Option<String>| {
            let gpus = count(gpus_key, gpus)?;
            let gpu = gpu.clone().unwrap_or_else(|| cluster_gpu.to_string());
            let slowdown = if gpu == cluster_gpu {
                1.0
            } else {
                let peak = |name: &str| GpuSpec::preset(name).map(|g| g.peak_flops);
                match (peak(cluster_gpu), peak(&gpu)) {
                    (Some(c), Some(p)) => c / p,
                    _ => {
                        return Err(Error::at_key(
                            source,
                            gpu_key,
                            format!(
                                "a pool of `{gpu}` beside a cluster of `{cluster_gpu}` needs both types' peaks to scale the stage's time; known types: {}",
                                GpuSpec::PRESETS.join(", ")
                            ),
                        ));
                    }
                }
            };
            Ok::<_, Error>((
                Pool {
                    gpus,
                    operating: OperatingCost::default_for(&gpu),
                    gpu,
                },
                slowdown,
            ))
        };
        let (encode, encode_slowdown) = pool(
            "stages.encode_gpus",
            self.encode_gpus,
            "stages.encode_gpu",
            &self.encode_gpu,
        )?;
        let (decode, decode_slowdown) = pool(
            "stages.decode_gpus",
            self.decode_gpus,
            "stages.decode_gpu",
            &self.decode_gpu,
        )?;
        let scaled = |key: &str, t: Nanos, slowdown: f64| {
            Nanos::try_from_secs(t.as_secs() * slowdown).ok_or_else(|| {
                Error::at_key(
                    source,
                    key,
                    "the stage's time on this pool's GPU lies beyond the simulator's horizon",
                )
            })
        };
        let gb_per_s = ranged(
            "stages.link_gb_per_s",
            self.link_gb_per_s.unwrap_or(DEFAULT_LINK_GB_PER_S),
            true,
            MAX_LINK_GB_PER_S,
            "GB/s",
        )?;
        let latency_us = ranged(
            "stages.link_latency_us",
            self.link_latency_us.unwrap_or(DEFAULT_LINK_LATENCY_US),
            false,
            MAX_LINK_LATENCY_US,
            "microseconds",
        )?;
        let embedding_mib = ranged(
            "stages.embedding_mib",
            self.embedding_mib.unwrap_or(DEFAULT_EMBEDDING_MIB),
            false,
            MAX_EMBEDDING_MIB,
            "MiB",
        )?;
        let latent_bytes_per_token = self
            .latent_bytes_per_token
            .unwrap_or(DEFAULT_LATENT_BYTES_PER_TOKEN);
        if latent_bytes_per_token > MAX_LATENT_BYTES_PER_TOKEN {
            return Err(Error::at_key(
                source,
                "stages.latent_bytes_per_token",
                format!(
                    "expected at most {MAX_LATENT_BYTES_PER_TOKEN} bytes, got {latent_bytes_per_token}"
                ),
            ));
        }
        Ok(Pools {
            encode_time: scaled("stages.encode_gpu", overheads.text_encoder, encode_slowdown)?,
            decode_per_1k_tokens: scaled(
                "stages.decode_gpu",
                overheads.vae_decode_per_1k_tokens,
                decode_slowdown,
            )?,
            encode,
            decode,
            link: Link {
                // Bounded above: at most 1e14 bytes per second, at least 1.
                bytes_per_s: ((gb_per_s * 1e9).round() as u64).max(1),
                latency: Nanos::from_secs(latency_us / 1e6),
            },
            embedding_bytes: (embedding_mib * 1024.0 * 1024.0).round() as u64,
            latent_bytes_per_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overheads() -> Overheads {
        Overheads {
            text_encoder: Nanos(20_000_000),
            vae_decode_per_1k_tokens: Nanos(3_000_000),
            ..Overheads::default()
        }
    }

    #[test]
    fn colocated_is_the_default_and_leaves_pool_keys_inactive() {
        let s = StagesSection::default();
        assert_eq!(
            s.build("h100", &overheads(), "t.toml").unwrap(),
            Deployment::Colocated
        );
        let s = StagesSection {
            mode: Some("colocated".into()),
            decode_gpus: Some(0),
            ..Default::default()
        };
        assert_eq!(
            s.build("h100", &overheads(), "t.toml").unwrap(),
            Deployment::Colocated
        );
    }

    #[test]
    fn disaggregated_pools_take_the_overheads_as_service_times_scaled_by_gpu_peak() {
        let s = StagesSection {
            mode: Some("disaggregated".into()),
            encode_gpus: Some(2),
            decode_gpu: Some("a40".into()),
            ..Default::default()
        };
        let Deployment::Disaggregated(p) = s.build("h100", &overheads(), "t.toml").unwrap() else {
            panic!("disaggregated expected")
        };
        assert_eq!((p.encode.gpus, p.decode.gpus), (2, 1));
        assert_eq!(p.encode_time, Nanos(20_000_000));
        // 989 / 149.7 TFLOP/s: an A40 decodes 6.6x slower than an H100.
        let want = Nanos::from_secs(0.003 * 989e12 / 149.7e12);
        assert_eq!(p.decode_per_1k_tokens, want);
        assert_eq!(p.decode.operating, OperatingCost::default_for("a40"));
        assert_eq!(p.embedding_bytes, 4 << 20);
        assert_eq!(p.link.bytes_per_s, 50_000_000_000);
        assert_eq!(p.link.latency, Nanos(10_000));
    }

    #[test]
    fn every_bound_is_inclusive_and_one_past_it_is_refused() {
        let with = |f: &dyn Fn(&mut StagesSection)| {
            let mut s = StagesSection {
                mode: Some("disaggregated".into()),
                ..Default::default()
            };
            f(&mut s);
            s.build("h100", &overheads(), "t.toml")
        };
        type Edit<'a> = &'a dyn Fn(&mut StagesSection);
        let edges: [(&str, Edit, Edit); 7] = [
            (
                "stages.encode_gpus",
                &|s| s.encode_gpus = Some(65_536),
                &|s| s.encode_gpus = Some(65_537),
            ),
            ("stages.decode_gpus", &|s| s.decode_gpus = Some(1), &|s| {
                s.decode_gpus = Some(0)
            }),
            (
                "stages.link_gb_per_s",
                &|s| s.link_gb_per_s = Some(100_000.0),
                &|s| s.link_gb_per_s = Some(100_000.5),
            ),
            (
                "stages.link_latency_us",
                &|s| s.link_latency_us = Some(0.0),
                &|s| s.link_latency_us = Some(-0.5),
            ),
            (
                "stages.link_latency_us",
                &|s| s.link_latency_us = Some(1e6),
                &|s| s.link_latency_us = Some(1e6 + 1.0),
            ),
            (
                "stages.embedding_mib",
                &|s| s.embedding_mib = Some(1024.0),
                &|s| s.embedding_mib = Some(1024.5),
            ),
            (
                "stages.latent_bytes_per_token",
                &|s| s.latent_bytes_per_token = Some(1 << 20),
                &|s| s.latent_bytes_per_token = Some((1 << 20) + 1),
            ),
        ];
        for (key, ok, bad) in edges {
            assert!(with(ok).is_ok(), "{key}: the bound itself");
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        // The bounds as built: a second's latency, 1 GiB, 100 TB/s.
        let Deployment::Disaggregated(p) = with(&|s| {
            s.link_latency_us = Some(1e6);
            s.embedding_mib = Some(1024.0);
            s.link_gb_per_s = Some(100_000.0);
        })
        .unwrap() else {
            panic!("disaggregated")
        };
        assert_eq!(p.link.latency, Nanos(1_000_000_000));
        assert_eq!(p.embedding_bytes, 1 << 30);
        assert_eq!(p.link.bytes_per_s, 100_000_000_000_000);
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = [
            (
                StagesSection {
                    mode: Some("split".into()),
                    ..Default::default()
                },
                "stages.mode",
            ),
            (
                StagesSection {
                    mode: Some("disaggregated".into()),
                    encode_gpus: Some(0),
                    ..Default::default()
                },
                "stages.encode_gpus",
            ),
            (
                StagesSection {
                    mode: Some("disaggregated".into()),
                    link_gb_per_s: Some(0.0),
                    ..Default::default()
                },
                "stages.link_gb_per_s",
            ),
            (
                StagesSection {
                    mode: Some("disaggregated".into()),
                    embedding_mib: Some(f64::NAN),
                    ..Default::default()
                },
                "stages.embedding_mib",
            ),
            (
                StagesSection {
                    mode: Some("disaggregated".into()),
                    decode_gpu: Some("tpu".into()),
                    ..Default::default()
                },
                "stages.decode_gpu",
            ),
            (
                StagesSection {
                    mode: Some("disaggregated".into()),
                    latent_bytes_per_token: Some(u64::MAX),
                    ..Default::default()
                },
                "stages.latent_bytes_per_token",
            ),
        ];
        for (s, key) in bad {
            let e = s
                .build("h100", &overheads(), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
