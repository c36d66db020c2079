//! `strata devices`: what strata can run on here, and why a GPU cannot be used if it cannot.

use strata::kernels::cuda::{device::probe, nvrtc::availability};
use strata::kernels::Device;

pub fn run() -> Result<(), String> {
    println!(
        "{}: {} worker threads, GEMM micro-kernel {}",
        Device::Cpu,
        Device::cpu_threads(),
        strata::kernels::gemm::selected_kernel()
    );
    println!("cuda driver: {}", probe());
    match availability() {
        Ok(version) => println!("nvrtc: {version}"),
        Err(why) => println!("nvrtc: unavailable ({why}); `make cuda-tools` installs it"),
    }
    match probe() {
        strata::kernels::cuda::device::DriverStatus::Devices(_) => {
            println!("train on a GPU with --device cuda (or cuda:N)")
        }
        _ => println!(
            "no GPU here: training runs on the CPU; --device cuda-sim runs the CUDA kernels \
             on the virtual device (slow, for checking the CUDA path)"
        ),
    }
    Ok(())
}
