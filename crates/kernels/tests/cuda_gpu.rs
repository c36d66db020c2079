//! The kernels on a real GPU against their CPU twins, at sizes the virtual device cannot afford.
//! Where no GPU is usable the tests skip with the reason (`test_skip`, listed by `make test`):
//! the ops' twin tests on the virtual device (`src/<op>/twin_tests.rs`) cover the kernels on every machine.
#![cfg(feature = "cuda")]

use strata_kernels::cuda::gpu::{GemmKernel, Gpu};
use strata_kernels::gemm::gemm;
use strata_kernels::half_precision::{gemm_half, HalfFormat};
use strata_kernels::test_skip::{skip, Reason};

fn gpu_or_skip() -> Option<Gpu> {
    match Gpu::open(0) {
        Ok(gpu) => {
            println!("running on {gpu:?}");
            Some(gpu)
        }
        Err(reason) => {
            skip(Reason::NoGpu(reason));
            None
        }
    }
}

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 2_654_435_761 + seed * 40_503) % 2001) as f32 - 1000.0) / 1000.0)
        .collect()
}

#[test]
fn gemm_ladder_matches_the_cpu_on_large_and_ragged_shapes() {
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    for (m, n, k) in [
        (1, 1, 1),
        (127, 129, 131),
        (512, 384, 256),
        (1024, 1024, 1024),
    ] {
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let mut want = vec![0.0f32; m * n];
        gemm(m, n, k, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut want, n, 1);
        let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
        for kernel in GemmKernel::LADDER {
            let mut dc = gpu.upload(&vec![f32::NAN; m * n]).unwrap();
            gpu.gemm(kernel, (m, n, k), &da, &db, &mut dc).unwrap();
            let got = gpu.download(&dc).unwrap();
            // Both sides sum k products of numbers below 1 in f32, in different orders.
            let tolerance = 1e-5 * (k as f32).sqrt() * 4.0;
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= tolerance * w.abs().max(1.0),
                    "{} {m}x{n}x{k}: element {i} is {g}, the CPU says {w}",
                    kernel.name()
                );
            }
        }
    }
}

#[test]
fn half_gemms_match_the_cpu_on_large_and_ragged_shapes() {
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    for (m, n, k) in [(127, 129, 131), (512, 384, 256), (1024, 1024, 1024)] {
        for format in [HalfFormat::F16, HalfFormat::Bf16] {
            let (a, b) = (
                format.narrow(&values(m * k, 3)),
                format.narrow(&values(k * n, 4)),
            );
            let mut want = vec![0.0f32; m * n];
            gemm_half(
                format, m, n, k, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut want, n, 1,
            );
            let (da, db) = (gpu.upload_half(&a).unwrap(), gpu.upload_half(&b).unwrap());
            let mut dc = gpu.upload(&vec![f32::NAN; m * n]).unwrap();
            gpu.gemm_half(format, (m, n, k), &da, &db, &mut dc).unwrap();
            let got = gpu.download(&dc).unwrap();
            // The same widened operands, summed in f32 in different orders.
            let tolerance = 1e-5 * (k as f32).sqrt() * 4.0;
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= tolerance * w.abs().max(1.0),
                    "{format:?} {m}x{n}x{k}: element {i} is {g}, the CPU says {w}"
                );
            }
        }
    }
}

#[test]
fn opening_a_device_past_the_last_one_is_an_error_not_a_panic() {
    let message = Gpu::open(4096).unwrap_err();
    assert!(!message.is_empty());
    println!("cuda:4096: {message}");
}
