//! Is there a CUDA driver and a device? A probe that never panics (cudarc panics when asked
//! for a device without libcuda, so the library is probed first and every call runs inside
//! `catch_unwind`).

use cudarc::driver::{result, sys};
use std::fmt;

/// One CUDA device as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The driver's device index, `0..device_count` (what `CUDA_VISIBLE_DEVICES` renumbers).
    pub ordinal: usize,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Compute capability (major, minor), e.g. (8, 0) for an A100.
    pub compute_capability: (i32, i32),
    /// Total device memory in bytes (not what is free now).
    pub total_memory_bytes: usize,
}

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverStatus {
    /// No `libcuda.so` could be loaded.
    NoDriverLibrary,
    /// The driver library loaded but reports no device.
    NoDevice,
    /// The driver failed in another way (the message says how).
    Error(String),
    /// At least one device.
    Devices(Vec<DeviceInfo>),
}

impl fmt::Display for DriverStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverStatus::NoDriverLibrary => write!(f, "no CUDA driver library (libcuda.so) found"),
            DriverStatus::NoDevice => write!(f, "CUDA driver present but no device"),
            DriverStatus::Error(e) => write!(f, "CUDA driver error: {e}"),
            DriverStatus::Devices(ds) => {
                for (i, d) in ds.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(
                        f,
                        "cuda:{} {} (compute capability {}.{}, {:.1} GiB)",
                        d.ordinal,
                        d.name,
                        d.compute_capability.0,
                        d.compute_capability.1,
                        d.total_memory_bytes as f64 / (1u64 << 30) as f64
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Probes the driver. Never panics.
pub fn probe() -> DriverStatus {
    // SAFETY: only tries to dlopen candidate library names.
    if !unsafe { sys::is_culib_present() } {
        return DriverStatus::NoDriverLibrary;
    }
    match std::panic::catch_unwind(query) {
        Ok(status) => status,
        Err(_) => DriverStatus::Error("the driver library could not be used (panicked)".into()),
    }
}

fn query() -> DriverStatus {
    use sys::CUdevice_attribute::*;
    match result::init() {
        Err(e) if e.0 == sys::cudaError_enum::CUDA_ERROR_NO_DEVICE => {
            return DriverStatus::NoDevice
        }
        Err(e) => return DriverStatus::Error(format!("cuInit: {e:?}")),
        Ok(()) => {}
    }
    let count = match result::device::get_count() {
        Ok(0) => return DriverStatus::NoDevice,
        Ok(n) => n,
        Err(e) => return DriverStatus::Error(format!("cuDeviceGetCount: {e:?}")),
    };
    let mut devices = Vec::new();
    for ordinal in 0..count {
        let info = (|| {
            let dev = result::device::get(ordinal)?;
            let name = result::device::get_name(dev)?;
            // SAFETY: `dev` came from cuDeviceGet.
            let (major, minor, mem) = unsafe {
                (
                    result::device::get_attribute(
                        dev,
                        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                    )?,
                    result::device::get_attribute(
                        dev,
                        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                    )?,
                    result::device::total_mem(dev)?,
                )
            };
            Ok::<_, result::DriverError>(DeviceInfo {
                ordinal: ordinal as usize,
                name,
                compute_capability: (major, minor),
                total_memory_bytes: mem,
            })
        })();
        match info {
            Ok(d) => devices.push(d),
            Err(e) => return DriverStatus::Error(format!("device {ordinal}: {e:?}")),
        }
    }
    DriverStatus::Devices(devices)
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_never_panics_and_describes_itself() {
        let status = super::probe();
        assert!(!status.to_string().is_empty());
    }
}
