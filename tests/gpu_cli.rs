//! `strata bench gemm --device cuda` says exactly why it cannot run where there is no GPU, and
//! runs the ladder where there is one.

use std::process::Command;
use strata::kernels::cuda::device::{probe, DriverStatus};

#[test]
fn bench_gemm_on_cuda_runs_or_says_why_not() {
    let output = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "bench",
            "gemm",
            "--device",
            "cuda",
            "--sizes",
            "256",
            "--seconds",
            "0.05",
        ])
        .output()
        .expect("strata runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match probe() {
        DriverStatus::Devices(devices) => {
            assert!(output.status.success(), "{stderr}");
            assert!(stdout.contains("sgemm_register_blocked"), "{stdout}");
            println!("ran on {}", devices[0].name);
        }
        status => {
            assert!(!output.status.success(), "{stdout}");
            assert!(stderr.contains("no usable GPU"), "{stderr}");
            assert!(stderr.contains(&status.to_string()), "{stderr} vs {status}");
        }
    }
}
