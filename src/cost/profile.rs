//! Profile tables: measured or generated per-step times read from CSV.
// STUB: to be implemented.

use std::path::Path;

use crate::cluster::Link;
use crate::cost::CostModel;
use crate::error::Result;
use crate::time::Nanos;
use crate::workload::Resolution;

/// A per-step time table for one (model, GPU) pair.
#[derive(Clone, Debug)]
pub struct ProfileTable {}

impl ProfileTable {
    /// Parses CSV text (`model,gpu,width,height,sp_degree,batch,step_ms[,std_ms][,source][,link]`).
    pub fn parse(text: &str, source: &str) -> Result<ProfileTable> {
        let _ = (text, source);
        unimplemented!()
    }

    pub fn load(path: &Path) -> Result<ProfileTable> {
        let _ = path;
        unimplemented!()
    }

    /// A profile shipped inside the binary, by name (`h100-flux1-dev`, `a40-sd3-medium`).
    pub fn builtin(name: &str) -> Option<ProfileTable> {
        let _ = name;
        unimplemented!()
    }

    /// Names of the built-in profiles.
    pub fn builtin_names() -> &'static [&'static str] {
        &["h100-flux1-dev", "a40-sd3-medium"]
    }

    pub fn model(&self) -> &str {
        unimplemented!()
    }

    pub fn gpu(&self) -> &str {
        unimplemented!()
    }
}

impl CostModel for ProfileTable {
    fn step_time(&self, res: Resolution, degree: u32, batch: u32, link: Link) -> Result<Nanos> {
        let _ = (res, degree, batch, link);
        unimplemented!()
    }

    fn describe(&self) -> String {
        unimplemented!()
    }
}
