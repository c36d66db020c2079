//! `strata devices`

use strata::kernels::Device;

pub fn run() -> Result<(), String> {
    println!(
        "{}: {} worker threads ({})",
        Device::Cpu,
        Device::cpu_threads(),
        strata::kernels::gemm::selected_kernel()
    );
    println!("cuda: not available in this build");
    Ok(())
}
