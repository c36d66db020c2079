//! The CUDA side of strata-kernels, as far as it can be checked without a GPU.
//!
//! - [`sources`]: every `kernels/*.cu` file embedded in the binary, the prelude, kernel names.
//! - [`nvrtc`]: compiles a source to PTX or CUBIN with NVRTC (loaded at run time), cached.
//! - [`ptxas`]: assembles PTX with `ptxas` for a register / shared memory / spill report.
//! - [`device`]: a probe for the CUDA driver and devices that never panics.
//! - [`sim`]: the virtual CUDA device: NVRTC's PTX interpreted with sanitizers and metrics.
//! - [`runtime`]: device buffers and kernel launches, on a GPU or the virtual device.
//! - `nccl` (feature `nccl`): sums between GPUs of several processes, on the device.
//!
//! Features: `cuda` brings [`device`], [`gpu`], [`nvrtc`] and [`ptxas`] (cudarc and the
//! driver) and embeds the sources ([`sources`], [`signature`]); `cuda-sim` adds [`sim`].
//! [`runtime`] is there in every build, so code
//! written against them needs no `cfg`: opening a device whose feature is off is an `Err`
//! that names the feature.
//!
//! Tools: `scripts/cuda-tools.sh` installs NVRTC and ptxas from PyPI into `.cuda-tools/`,
//! which this module finds by itself (override with `STRATA_CUDA_TOOLS=<dir>`).

#[cfg(feature = "cuda")]
pub mod device;
#[cfg(feature = "cuda")]
pub mod gpu;
#[cfg(feature = "nccl")]
pub mod nccl;
#[cfg(feature = "cuda")]
pub mod nvrtc;
#[cfg(feature = "cuda")]
pub mod ptxas;
pub mod runtime;
#[cfg(feature = "cuda")]
pub mod signature;
#[cfg(feature = "cuda-sim")]
pub mod sim;
#[cfg(feature = "cuda")]
pub mod sources;

#[cfg(all(test, feature = "cuda-sim"))]
mod coverage_tests;
#[cfg(all(test, feature = "cuda-sim"))]
pub(crate) mod twin;

#[cfg(feature = "cuda")]
use std::path::PathBuf;

/// The folder `scripts/cuda-tools.sh` installs into: `$STRATA_CUDA_TOOLS`, else the
/// workspace's `.cuda-tools/` (found from where this crate was built).
#[cfg(feature = "cuda")]
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("STRATA_CUDA_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cuda-tools")),
    }
}
