//! The analytic roofline cost model.
// STUB: to be implemented.

use crate::cluster::Link;
use crate::cost::CostModel;
use crate::error::Result;
use crate::time::Nanos;
use crate::workload::Resolution;

/// Roofline estimate for a model shape on a GPU type.
#[derive(Clone, Debug)]
pub struct Analytic {}

impl Analytic {
    /// A preset by names: model `flux1-dev` | `sd3-medium`, GPU `h100` | `h200` | `a40`.
    pub fn preset(model: &str, gpu: &str) -> Result<Analytic> {
        let _ = (model, gpu);
        unimplemented!()
    }
}

impl CostModel for Analytic {
    fn step_time(&self, res: Resolution, degree: u32, batch: u32, link: Link) -> Result<Nanos> {
        let _ = (res, degree, batch, link);
        unimplemented!()
    }

    fn describe(&self) -> String {
        unimplemented!()
    }
}
