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
    #[cfg(feature = "nccl")]
    match strata::kernels::cuda::nccl::availability() {
        Ok(version) => println!(
            "nccl: {version} from {} (sums gradients between GPUs under mpirun)",
            strata::kernels::cuda::nccl::library_dir().display()
        ),
        Err(why) => println!("nccl: unavailable ({why}); `make cuda-tools` installs it"),
    }
    #[cfg(not(feature = "nccl"))]
    println!("nccl: this strata was built without its `nccl` feature");
    match std::process::Command::new("mpirun")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => println!(
            "mpi: {} (`mpirun -n N strata train MODEL` trains data-parallel)",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("mpirun")
                .trim()
        ),
        _ => println!("mpi: no mpirun on the PATH; `make mpi` installs Open MPI"),
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
