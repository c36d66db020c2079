//! CPU tests of the 16-bit conversions (rounding edge cases, every f16 round trip) and of the
//! 16-bit GEMM against the f32 GEMM of the widened operands.

use super::*;

#[test]
fn rounding_follows_the_formats_edge_cases() {
    let cases = [
        // (value, f16 bits, bf16 bits)
        (0.0f32, 0x0000u16, 0x0000u16),
        (-0.0, 0x8000, 0x8000),
        (1.0, 0x3c00, 0x3f80),
        (65504.0, 0x7bff, 0x4780),        // bf16 keeps 8 bits: 65536
        (65520.0, 0x7c00, 0x4780),        // halfway to 65536: ties to even, infinity for f16
        (5.960_464_5e-8, 0x0001, 0x3380), // 2^-24, the smallest f16 subnormal
        (2.980_232_2e-8, 0x0000, 0x3300), // 2^-25: a tie, rounds to the even zero
        (f32::INFINITY, 0x7c00, 0x7f80),
        (1.0 + 1.0 / 256.0, 0x3c04, 0x3f80), // bf16 tie (1 + 2^-8) rounds to even 1.0
    ];
    for (value, want_f16, want_bf16) in cases {
        let (mut h, mut b) = ([0u16], [0u16]);
        f32_to_f16(&[value], &mut h);
        f32_to_bf16(&[value], &mut b);
        assert_eq!((h[0], b[0]), (want_f16, want_bf16), "{value:e}");
    }
    let (mut h, mut b) = ([0u16], [0u16]);
    f32_to_f16(&[f32::NAN], &mut h);
    f32_to_bf16(&[f32::NAN], &mut b);
    let (mut hf, mut bf) = ([0.0f32], [0.0f32]);
    f16_to_f32(&h, &mut hf);
    bf16_to_f32(&b, &mut bf);
    assert!(hf[0].is_nan() && bf[0].is_nan());
}

#[test]
fn every_f16_value_survives_the_round_trip() {
    let bits: Vec<u16> = (0..=u16::MAX).collect();
    let mut wide = vec![0.0f32; bits.len()];
    f16_to_f32(&bits, &mut wide);
    let mut back = vec![0u16; bits.len()];
    f32_to_f16(&wide, &mut back);
    for (&b, (&w, &r)) in bits.iter().zip(wide.iter().zip(&back)) {
        if w.is_nan() {
            assert!(f16::from_bits(r).is_nan(), "{b:#06x}");
        } else {
            assert_eq!(r, b, "{b:#06x} -> {w:e}");
        }
    }
}

#[test]
fn half_gemm_is_the_f32_gemm_of_the_widened_operands() {
    let (m, n, k) = (5, 7, 9);
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.61).cos()).collect();
    for format in [HalfFormat::F16, HalfFormat::Bf16] {
        let (ah, bh) = (format.narrow(&a), format.narrow(&b));
        let (aw, bw) = (format.widen(&ah), format.widen(&bh));
        let mut want = vec![0.0; m * n];
        gemm(m, n, k, 1.0, &aw, k, 1, &bw, n, 1, 0.0, &mut want, n, 1);
        let mut got = vec![f32::NAN; m * n];
        gemm_half(
            format, m, n, k, 1.0, &ah, k, 1, &bh, n, 1, 0.0, &mut got, n, 1,
        );
        assert_eq!(got, want, "{format:?}");
        // And the 16-bit rounding is visible against the f32 product.
        let mut exact = vec![0.0; m * n];
        gemm(m, n, k, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut exact, n, 1);
        assert!(got.iter().zip(&exact).any(|(g, e)| g != e), "{format:?}");
    }
}
