//! f16 and bf16 tensors: conversion on the CPU and on the CPU-hosted CUDA devices agree bit for
//! bit with the `half` crate, layouts survive conversion and moves, the 16-bit GEMM matches
//! the f32 GEMM of the rounded values, and f32-only ops refuse 16-bit tensors by name.

use approx::abs_diff_eq;
use strata_kernels::half_precision::HalfFormat;
use strata_tensor::{DType, Device, Generator, Tensor};

/// The CUDA devices every test runs on where there is no GPU.
const DEVICES: [Device; 1] = [Device::CudaSim];

fn random(shape: &[usize], seed: u64) -> Tensor {
    // A wide range of magnitudes, so rounding, subnormals and overflow all occur.
    let mut g = Generator::seed(seed);
    let values = (0..shape.iter().product::<usize>())
        .map(|_| {
            let mantissa = g.uniform() * 2.0 - 1.0;
            mantissa * 2f32.powi(g.below(50) as i32 - 30)
        })
        .collect();
    Tensor::from_vec(values, shape)
}

fn rounded(x: &Tensor, format: HalfFormat) -> Vec<f32> {
    format.widen(&format.narrow(&x.to_vec()))
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn conversion_matches_the_half_crate_on_both_devices() {
    for device in DEVICES {
        let x = random(&[17, 23], 1);
        for (dtype, format) in [
            (DType::F16, HalfFormat::F16),
            (DType::BF16, HalfFormat::Bf16),
        ] {
            let want = rounded(&x, format);
            let host = x.to_dtype(dtype);
            assert_eq!((host.dtype(), host.device()), (dtype, Device::Cpu));
            assert!(same_bits(&host.to_vec(), &want), "{dtype} on the CPU");
            let moved = x.to(device).unwrap().to_dtype(dtype);
            assert_eq!((moved.dtype(), moved.device()), (dtype, device));
            let back = moved.to_dtype(DType::F32);
            assert_eq!((back.dtype(), back.device()), (DType::F32, device));
            assert!(same_bits(&back.to_vec(), &want), "{dtype} on {device}");
            // Moving 16-bit storage keeps the bits.
            assert!(same_bits(&moved.to(Device::Cpu).unwrap().to_vec(), &want));
            assert_eq!(host.to(device).unwrap().dtype(), dtype);
        }
        // f16 -> bf16 goes through f32.
        let both = x.to_dtype(DType::F16).to_dtype(DType::BF16);
        let via = Tensor::from_vec(rounded(&x, HalfFormat::F16), x.shape());
        assert!(same_bits(&both.to_vec(), &rounded(&via, HalfFormat::Bf16)));
    }
}

#[test]
fn views_of_16_bit_storage_keep_their_layout() {
    for device in DEVICES {
        let x = random(&[5, 7], 2);
        let h = x.to_dtype(DType::BF16);
        let ht = h.t();
        assert_eq!(ht.shape(), &[7, 5]);
        let want: Vec<f32> = Tensor::from_vec(rounded(&x, HalfFormat::Bf16), &[5, 7])
            .t()
            .to_vec();
        assert!(same_bits(&ht.to_dtype(DType::F32).to_vec(), &want));
        assert!(same_bits(&ht.to_vec(), &want));
        let on_device = h.to(device).unwrap().t();
        assert!(same_bits(&on_device.to_vec(), &want));
    }
}

#[test]
fn the_16_bit_gemm_equals_the_f32_gemm_of_the_rounded_values() {
    for device in DEVICES {
        let (a, b) = (
            random(&[19, 33], 3).mul_scalar(1e-3),
            random(&[33, 21], 4).mul_scalar(1e-3),
        );
        for dtype in [DType::F16, DType::BF16] {
            let format = dtype.half_format().unwrap();
            let a32 = Tensor::from_vec(rounded(&a, format), a.shape());
            let b32 = Tensor::from_vec(rounded(&b, format), b.shape());
            let want = a32.matmul(&b32).to_vec();
            let (ah, bh) = (a.to_dtype(dtype), b.to_dtype(dtype));
            // On the CPU the 16-bit GEMM is the f32 GEMM on widened operands: identical.
            let host = ah.matmul(&bh);
            assert_eq!(
                (host.dtype(), host.shape()),
                (DType::F32, &[19usize, 21][..])
            );
            assert!(same_bits(&host.to_vec(), &want), "{dtype} on the CPU");
            // On the device hgemm tiles the sums differently: equal to rounding.
            let (ad, bd) = (ah.to(device).unwrap(), bh.to(device).unwrap());
            let product = ad.matmul(&bd).to_vec();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (d, w) in product.iter().zip(&want) {
                assert!(
                    abs_diff_eq!(d, w, epsilon = 1e-5 * scale),
                    "{dtype} on {device}: {d} vs {w}"
                );
            }
            // A transposed operand is only strides to both GEMMs.
            let bt = b.t().contiguous().to_dtype(dtype);
            let via_t = ah.matmul(&bt.t()).to_vec();
            assert!(same_bits(&via_t, &want), "{dtype}: transposed operand");
            let via_t_device = ad.matmul(&bt.to(device).unwrap().t()).to_vec();
            assert!(
                same_bits(&via_t_device, &product),
                "{dtype}: transposed operand on {device}"
            );
        }
    }
}

#[test]
fn f32_ops_refuse_16_bit_tensors_and_say_how_to_convert() {
    let h = random(&[3], 5).to_dtype(DType::F16);
    let err = std::panic::catch_unwind(|| h.relu()).unwrap_err();
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("f16") && message.contains("to_dtype(DType::F32)"),
        "{message}"
    );
    let mixed = std::panic::catch_unwind(|| {
        random(&[2, 3], 6)
            .to_dtype(DType::F16)
            .matmul(&random(&[3, 2], 7).to_dtype(DType::BF16))
    })
    .unwrap_err();
    let message = mixed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("one dtype"), "{message}");
}
