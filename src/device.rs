//! `--device auto|cpu|cuda|cuda:N|cuda-sim`.

use strata_kernels::cuda::runtime::CudaDevice;
use strata_kernels::Device;

/// Resolves the user's choice. `auto` takes GPU 0 when there is a usable one and otherwise
/// the CPU, saying which and why; `cuda` without a usable GPU is an error naming the reason,
/// never a silent fallback.
pub fn resolve(requested: &str) -> Result<Device, String> {
    let cpu_note = || format!("the CPU ({} threads)", Device::cpu_threads());
    match requested.trim().to_ascii_lowercase().as_str() {
        "auto" => match CudaDevice::open(Device::Cuda(0)) {
            Ok(gpu) => {
                eprintln!("device auto: using {gpu:?}");
                Ok(Device::Cuda(0))
            }
            Err(why) => {
                eprintln!("device auto: no usable GPU ({why}); using {}", cpu_note());
                Ok(Device::Cpu)
            }
        },
        other => {
            let device = other.parse::<Device>().map_err(|e| e.to_string())?;
            match device {
                Device::Cpu => Ok(device),
                Device::CudaSim => {
                    CudaDevice::open(device)
                        .map_err(|why| format!("--device {requested}: {why}"))?;
                    eprintln!(
                        "device cuda-sim: NVRTC's PTX of the CUDA kernels is interpreted with \
                         memcheck, racecheck, initcheck and synccheck on every launch: expect \
                         it to be far slower than --device cpu"
                    );
                    Ok(device)
                }
                Device::Cuda(_) => CudaDevice::open(device).map(|_| device).map_err(|why| {
                    format!(
                        "--device {requested}: no usable GPU: {why}. Use --device cpu, or \
                         --device cuda-sim to run the CUDA kernels on the virtual device"
                    )
                }),
            }
        }
    }
}
