//! The conversions and GEMMs of kernels/half_precision.cu run on the virtual
//! device (NVRTC's PTX, `cuda::sim`, every check on) against their CPU twins in [`crate::half_precision`]. Every
//! guarded buffer is checked for out-of-bounds writes.
//!
//! | op                      | vs f64 reference                                 | vs CPU twin    |
//! |-------------------------|--------------------------------------------------|----------------|
//! | convert_* (f16, bf16)   | -                                                | identical bits |
//! | hgemm_f16, hgemm_bf16   | tol (k+3)*2^-23 on the widened operands, scale   | same bound     |
//! |                         | alpha*Σ|a||b| + |beta*c|                         |                |

use crate::cuda::twin::{self as kernels, Guarded};
use crate::half_precision::{self, HalfFormat};
use crate::test_support::{close, d, guard, i, launch, random};

/// Values that exercise every branch of the conversions: signed zeros, subnormals of both
/// formats, the halfway points of their rounding, the edges of f16's range, infinities, NaN,
/// and ordinary numbers.
fn half_edge_values() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        65504.0,
        65519.99,
        65520.0,
        -65520.0,
        1e6,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7f80_0001), // a signalling NaN
        5.960_464_5e-8,              // 2^-24
        2.980_232_2e-8,              // 2^-25: a tie between 0 and 2^-24
        4.470_348_4e-8,              // three quarters of 2^-24: rounds up to it
        6.103_515_6e-5,              // 2^-14, the smallest normal f16
        6.097_555e-5,                // just under it: rounds into the subnormals or up
        1.0 + 1.0 / 2048.0,          // f16 tie at 1
        1.0 + 3.0 / 2048.0,          // f16 tie, odd side
        1.0 + 1.0 / 256.0,           // bf16 tie at 1
        1e-40,                       // an f32 subnormal
        -3.4e38,
    ];
    v.extend(random(1000, -70000.0, 70000.0, 31));
    v.extend(random(500, -1e-4, 1e-4, 32));
    v.extend(random(500, -1e-6, 1e-6, 33));
    v
}

fn same_half_bits(what: &str, got: &[u16], want: &[u16]) {
    for (idx, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{what}: element {idx}: device {g:#06x}, CPU twin {w:#06x}"
        );
    }
}

#[test]
fn half_conversions_match_the_cpu_twin_bit_for_bit() {
    let x = half_edge_values();
    let n = x.len();
    let mut twin_f16 = vec![0u16; n];
    let mut twin_bf16 = vec![0u16; n];
    half_precision::f32_to_f16(&x, &mut twin_f16);
    half_precision::f32_to_bf16(&x, &mut twin_bf16);
    // Every 16-bit pattern, for the widening direction.
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let mut twin_from_f16 = vec![0.0f32; all.len()];
    let mut twin_from_bf16 = vec![0.0f32; all.len()];
    half_precision::f16_to_f32(&all, &mut twin_from_f16);
    half_precision::bf16_to_f32(&all, &mut twin_from_bf16);

    // The intended grid, and one small block striding over everything.
    for (grid, block) in [(d(n.div_ceil(256)), 256u32), (1, 64)] {
        let ni = i(n);
        for bf16 in [false, true] {
            let name = if bf16 {
                "convert_f32_to_bf16"
            } else {
                "convert_f32_to_f16"
            };
            let state = (Guarded::f32(&x), Guarded::new(&vec![0xdeadu16; n], 0xbeef));
            let (gx, y) = launch(name, state, move |(x, y)| {
                // SAFETY: live guarded buffers of n elements each.
                unsafe {
                    if bf16 {
                        kernels::convert_f32_to_bf16(
                            grid,
                            1,
                            1,
                            block,
                            1,
                            1,
                            x.ptr(),
                            y.mut_ptr(),
                            ni,
                        )
                    } else {
                        kernels::convert_f32_to_f16(
                            grid,
                            1,
                            1,
                            block,
                            1,
                            1,
                            x.ptr(),
                            y.mut_ptr(),
                            ni,
                        )
                    }
                }
            });
            guard(&gx, name);
            guard(&y, name);
            let want = if bf16 { &twin_bf16 } else { &twin_f16 };
            same_half_bits(&format!("{name} grid {grid}"), y.as_slice(), want);
        }
    }
    let total = all.len();
    for bf16 in [false, true] {
        let name = if bf16 {
            "convert_bf16_to_f32"
        } else {
            "convert_f16_to_f32"
        };
        let state = (
            Guarded::new(&all, 0xbeef),
            Guarded::f32(&vec![f32::NAN; total]),
        );
        let nt = i(total);
        let (gx, y) = launch(name, state, move |(x, y)| {
            // SAFETY: live guarded buffers of `total` elements each.
            unsafe {
                if bf16 {
                    kernels::convert_bf16_to_f32(64, 1, 1, 256, 1, 1, x.ptr(), y.mut_ptr(), nt)
                } else {
                    kernels::convert_f16_to_f32(64, 1, 1, 256, 1, 1, x.ptr(), y.mut_ptr(), nt)
                }
            }
        });
        guard(&gx, name);
        guard(&y, name);
        let want = if bf16 {
            &twin_from_bf16
        } else {
            &twin_from_f16
        };
        for (idx, (&g, &w)) in y.as_slice().iter().zip(want.iter()).enumerate() {
            assert!(
                g.to_bits() == w.to_bits(),
                "{name}: pattern {idx:#06x}: device {:#010x}, CPU twin {:#010x}",
                g.to_bits(),
                w.to_bits()
            );
        }
    }
}

#[test]
fn half_gemms_match_the_cpu_twin_on_ragged_and_transposed_shapes() {
    for &(m, n, k) in &[
        (1, 1, 1),
        (5, 7, 3),
        (17, 33, 40),
        (16, 16, 16),
        (3, 40, 70),
    ] {
        for transposed in [false, true] {
            for format in [HalfFormat::F16, HalfFormat::Bf16] {
                let a = format.narrow(&random(m * k, -1.0, 1.0, (m * 131 + k) as u64));
                let b = format.narrow(&random(k * n, -1.0, 1.0, (n * 137 + k) as u64));
                // A row-major or stored transposed; B row-major or stored transposed.
                let ((rsa, csa), (rsb, csb)) = if transposed {
                    ((1, m), (1, k))
                } else {
                    ((k, 1), (n, 1))
                };
                let c0 = random(m * n, -1.0, 1.0, 77);
                let (alpha, beta) = (0.75f32, 0.5f32);
                let mut twin = c0.clone();
                half_precision::gemm_half(
                    format, m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut twin, n, 1,
                );
                // The f64 reference on the widened operands: the bound of the sgemm kernels.
                let (aw, bw) = (format.widen(&a), format.widen(&b));
                let mut reference = vec![0.0f64; m * n];
                let mut scale = vec![0.0f64; m * n];
                for r in 0..m {
                    for col in 0..n {
                        let (mut s, mut sa) = (0.0f64, 0.0f64);
                        for p in 0..k {
                            let prod =
                                aw[r * rsa + p * csa] as f64 * bw[p * rsb + col * csb] as f64;
                            s += prod;
                            sa += prod.abs();
                        }
                        let c = c0[r * n + col] as f64;
                        reference[r * n + col] = alpha as f64 * s + beta as f64 * c;
                        scale[r * n + col] = alpha as f64 * sa + (beta as f64 * c).abs();
                    }
                }
                let tol = (k as f64 + 3.0) * f32::EPSILON as f64;
                let what = format!("{format:?} {m}x{n}x{k} transposed={transposed}");
                close(&format!("twin {what}"), &twin, &reference, &scale, tol);

                let name = match format {
                    HalfFormat::F16 => "hgemm_f16",
                    HalfFormat::Bf16 => "hgemm_bf16",
                };
                let state = (
                    Guarded::new(&a, 0xbeef),
                    Guarded::new(&b, 0xbeef),
                    Guarded::f32(&c0),
                );
                let (mi, ni, ki) = (i(m), i(n), i(k));
                let (rsa, csa, rsb, csb) = (i(rsa), i(csa), i(rsb), i(csb));
                let (gx, gy) = (d(n.div_ceil(16)), d(m.div_ceil(16)));
                let (ga, gb, gc) = launch(name, state, move |(a, b, c)| {
                    let (a, b, c) = (a.ptr(), b.ptr(), c.mut_ptr());
                    // SAFETY: live guarded buffers covering every index the strides reach.
                    #[rustfmt::skip]
                    let code = unsafe {
                        match format {
                            HalfFormat::F16 => kernels::hgemm_f16(
                                gx, gy, 1, 16, 16, 1, mi, ni, ki, alpha, a, rsa, csa, b, rsb, csb,
                                beta, c, ni, 1),
                            HalfFormat::Bf16 => kernels::hgemm_bf16(
                                gx, gy, 1, 16, 16, 1, mi, ni, ki, alpha, a, rsa, csa, b, rsb, csb,
                                beta, c, ni, 1),
                        }
                    };
                    code
                });
                guard(&ga, name);
                guard(&gb, name);
                guard(&gc, name);
                close(
                    &format!("{name} {what}"),
                    gc.as_slice(),
                    &reference,
                    &scale,
                    tol,
                );
            }
        }
    }
}
