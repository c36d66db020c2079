//! Devices a tensor can live on.

use std::fmt;
use std::str::FromStr;

/// Where a tensor's storage lives and its kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory; kernels are plain Rust parallelised with rayon.
    #[default]
    Cpu,
}

impl Device {
    /// Number of worker threads the CPU kernels use (rayon's current pool).
    pub fn cpu_threads() -> usize {
        rayon::current_num_threads()
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}

/// A device name that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceParseError {
    /// What the user asked for.
    pub requested: String,
    /// Why it cannot be had.
    pub reason: String,
}

impl fmt::Display for DeviceParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device '{}': {}", self.requested, self.reason)
    }
}

impl std::error::Error for DeviceParseError {}

impl FromStr for Device {
    type Err = DeviceParseError;

    /// Accepts `cpu`. `cuda`, `cuda:N` and `gpu` are recognised and refused with the reason,
    /// since this build has no CUDA backend; anything else is an unknown device.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(Device::Cpu),
            _ if lower == "gpu" || lower.starts_with("cuda") => Err(DeviceParseError {
                requested: s.to_string(),
                reason: "this build of strata has no CUDA backend; use --device cpu".into(),
            }),
            _ => Err(DeviceParseError {
                requested: s.to_string(),
                reason: "unknown device (expected cpu or cuda)".into(),
            }),
        }
    }
}
