//! Devices a tensor can live on.

use std::fmt;
use std::str::FromStr;

/// Where a tensor's storage lives and its kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory; kernels are plain Rust parallelised with rayon.
    #[default]
    Cpu,
    /// CUDA device `n` (the driver's numbering): the `kernels/*.cu` kernels, compiled by NVRTC
    /// for the device's architecture on first use.
    Cuda(usize),
    /// The virtual CUDA device: the PTX NVRTC compiles from the same kernels, interpreted
    /// instruction by instruction (`cuda::sim`) with memcheck, racecheck, initcheck and
    /// synccheck on every launch, with "device" memory on the host: slow, but it runs the code
    /// a GPU runs, and exercises the whole CUDA path of every op on a machine without a GPU.
    CudaSim,
}

impl Device {
    /// Number of worker threads the CPU kernels use (rayon's current pool).
    pub fn cpu_threads() -> usize {
        rayon::current_num_threads()
    }

    /// Whether tensors on this device use the CUDA kernels (a GPU or the virtual device).
    pub fn is_cuda(self) -> bool {
        !matches!(self, Device::Cpu)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::CudaSim => f.write_str("cuda-sim"),
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

    /// Accepts `cpu`, `cuda` (device 0), `cuda:N` and `cuda-sim`. Whether a GPU is actually
    /// there is found out when the device is first used, which says why if it is not.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let refuse = |reason: &str| DeviceParseError {
            requested: s.to_string(),
            reason: reason.into(),
        };
        match lower.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            "cuda-emu" | "cuda_emu" => Err(refuse(
                "the C++ emulator of the CUDA kernels was retired: use cuda-sim, which runs the \
                 kernels' PTX with memcheck, racecheck, initcheck and synccheck",
            )),
            "cuda-sim" | "cuda_sim" => Ok(Device::CudaSim),
            _ => match lower.strip_prefix("cuda:") {
                Some(n) => n
                    .parse()
                    .map(Device::Cuda)
                    .map_err(|_| refuse("expected cuda:N with N a device number, e.g. cuda:0")),
                None => Err(refuse(
                    "unknown device (expected cpu, cuda, cuda:N or cuda-sim)",
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Device;

    #[test]
    fn names_round_trip() {
        for device in [
            Device::Cpu,
            Device::Cuda(0),
            Device::Cuda(3),
            Device::CudaSim,
        ] {
            assert_eq!(device.to_string().parse::<Device>(), Ok(device));
        }
        assert_eq!("CUDA".parse::<Device>(), Ok(Device::Cuda(0)));
        let bad = "cuda:x".parse::<Device>().unwrap_err();
        assert!(bad.to_string().contains("cuda:N"), "{bad}");
        let unknown = "tpu".parse::<Device>().unwrap_err();
        assert!(unknown.to_string().contains("unknown device"), "{unknown}");
        let retired = "cuda-emu".parse::<Device>().unwrap_err();
        assert!(retired.to_string().contains("use cuda-sim"), "{retired}");
    }
}
