//! `--device auto|cpu|cuda`.

use strata_kernels::Device;

/// Resolves the user's choice. `auto` falls back to the CPU and says so; `cuda` without a CUDA
/// backend is an error, never a silent fallback.
pub fn resolve(requested: &str) -> Result<Device, String> {
    match requested.trim().to_ascii_lowercase().as_str() {
        "auto" => {
            eprintln!(
                "device auto: no CUDA backend in this build; using the CPU ({} threads)",
                Device::cpu_threads()
            );
            Ok(Device::Cpu)
        }
        other => other.parse::<Device>().map_err(|e| e.to_string()),
    }
}
