//! `--device auto|cpu|cuda|cuda:N|cuda-sim`.

use strata_kernels::cuda::runtime::CudaDevice;
use strata_kernels::Device;

/// Resolves the user's choice. `auto` takes GPU 0 when there is a usable one and otherwise
/// the CPU, saying which and why; `cuda` without a usable GPU is an error naming the reason,
/// never a silent fallback.
pub fn resolve(requested: &str) -> Result<Device, String> {
    resolve_for_rank(requested, 0, true)
}

/// [`resolve`] for one of several processes on a machine: `auto` and `cuda` take GPU
/// `local_rank` (one GPU per process, as NCCL expects), and only a process that `reports`
/// says what it chose.
pub fn resolve_for_rank(
    requested: &str,
    local_rank: usize,
    reports: bool,
) -> Result<Device, String> {
    let cpu_note = || format!("the CPU ({} threads)", Device::cpu_threads());
    let gpu = Device::Cuda(local_rank);
    match requested.trim().to_ascii_lowercase().as_str() {
        "auto" => match CudaDevice::open(gpu) {
            Ok(opened) => {
                if reports {
                    eprintln!("device auto: using {opened:?}");
                }
                Ok(gpu)
            }
            Err(why) => {
                if reports {
                    eprintln!("device auto: no usable GPU ({why}); using {}", cpu_note());
                }
                Ok(Device::Cpu)
            }
        },
        "cuda" if local_rank > 0 => CudaDevice::open(gpu).map(|_| gpu).map_err(|why| {
            format!("--device cuda: local rank {local_rank} has no GPU {gpu}: {why}")
        }),
        other => {
            let device = other.parse::<Device>().map_err(|e| e.to_string())?;
            match device {
                Device::Cpu => Ok(device),
                Device::CudaSim => {
                    CudaDevice::open(device)
                        .map_err(|why| format!("--device {requested}: {why}"))?;
                    if reports {
                        eprintln!(
                            "device cuda-sim: NVRTC's PTX of the CUDA kernels is interpreted with \
                         memcheck, racecheck, initcheck and synccheck on every launch: expect \
                         it to be far slower than --device cpu"
                        );
                    }
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
