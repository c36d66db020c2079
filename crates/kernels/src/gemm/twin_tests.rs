//! The GEMM kernels of `kernels/gemm.cu` (sgemm_naive, sgemm_tiled, sgemm_register_blocked,
//! sgemm_batched) executed on the virtual device (NVRTC's PTX, `cuda::sim`) and compared with the
//! CPU twin, [`super::gemm`] / [`super::gemm_batched`], and with an f64 reference. Shapes are
//! small and deliberately ragged against the kernels' tiles; every guarded buffer is checked
//! for out-of-bounds writes after every launch.
//!
//! Tolerance, against the f64 reference and the twin alike: `|got - ref| <= (k+3)*2^-23 *
//! (alpha*Σ|a||b| + |beta*c|)`. The twin is held to the same bound as the kernel, so a wrong
//! reference cannot pass both.

use super::cuda::GemmKernel;
use crate::cuda::runtime::Launch;
use crate::cuda::twin::{self as kernels, Guarded};
use crate::test_support::{close, d, guard, i, launch, random};
use std::time::Instant;

/// Storage order of a matrix operand, with extra padding on its leading dimension.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Row(usize),
    Col(usize),
}

/// A strided matrix: element (r, c) at `data[r*rs + c*cs]`.
#[derive(Clone, Debug)]
struct Mat {
    data: Vec<f32>,
    rs: usize,
    cs: usize,
}

impl Mat {
    /// `rows x cols` in `layout`, the storage (padding included) filled from `fill`.
    fn new(rows: usize, cols: usize, layout: Layout, fill: impl Fn(usize) -> Vec<f32>) -> Mat {
        let (rs, cs, len) = match layout {
            Layout::Row(pad) => {
                let ld = cols + pad;
                (
                    ld,
                    1,
                    if rows * cols == 0 {
                        0
                    } else {
                        (rows - 1) * ld + cols
                    },
                )
            }
            Layout::Col(pad) => {
                let ld = rows + pad;
                (
                    1,
                    ld,
                    if rows * cols == 0 {
                        0
                    } else {
                        (cols - 1) * ld + rows
                    },
                )
            }
        };
        Mat {
            data: fill(len),
            rs,
            cs,
        }
    }
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }
}

/// One GEMM problem `C = alpha * A * B + beta * C`.
#[derive(Clone, Debug)]
struct GemmCase {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    a: Mat,
    b: Mat,
    c: Mat,
}

impl GemmCase {
    fn new(
        (m, n, k): (usize, usize, usize),
        (la, lb, lc): (Layout, Layout, Layout),
        alpha: f32,
        beta: f32,
        seed: u64,
    ) -> GemmCase {
        let a = Mat::new(m, k, la, |len| random(len, -1.0, 1.0, seed));
        let b = Mat::new(k, n, lb, |len| random(len, -1.0, 1.0, seed + 1));
        // With beta == 0, C must not be read: NaN would leak into the result.
        let c = Mat::new(m, n, lc, |len| {
            if beta == 0.0 {
                vec![f32::NAN; len]
            } else {
                random(len, -1.0, 1.0, seed + 2)
            }
        });
        GemmCase {
            m,
            n,
            k,
            alpha,
            beta,
            a,
            b,
            c,
        }
    }

    /// f64 reference and error scale for every element of C (row-major m x n).
    fn reference(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut want, mut scale) = (vec![], vec![]);
        for r in 0..self.m {
            for c in 0..self.n {
                let (mut s, mut s_abs) = (0.0f64, 0.0f64);
                for p in 0..self.k {
                    let prod = self.a.at(r, p) as f64 * self.b.at(p, c) as f64;
                    s += prod;
                    s_abs += prod.abs();
                }
                let (mut v, mut sc) = (self.alpha as f64 * s, (self.alpha as f64).abs() * s_abs);
                if self.beta != 0.0 {
                    let bc = self.beta as f64 * self.c.at(r, c) as f64;
                    v += bc;
                    sc += bc.abs();
                }
                want.push(v);
                scale.push(sc.max(1e-30));
            }
        }
        (want, scale)
    }

    /// (k + 3) ulps of the absolute-value product: a bound on any f32 summation order.
    fn tol(&self) -> f64 {
        (self.k + 3) as f64 * f32::EPSILON as f64
    }

    /// Checks a result storage of C: the m x n elements against the reference, and every other
    /// storage element (leading-dimension padding) untouched, bit for bit.
    fn check(&self, what: &str, c_out: &[f32]) {
        let (want, scale) = self.reference();
        let mut got = vec![];
        let mut touched = vec![false; c_out.len()];
        for r in 0..self.m {
            for c in 0..self.n {
                let idx = r * self.c.rs + c * self.c.cs;
                got.push(c_out[idx]);
                touched[idx] = true;
            }
        }
        close(what, &got, &want, &scale, self.tol());
        for (idx, (&t, (&o, &before))) in touched
            .iter()
            .zip(c_out.iter().zip(&self.c.data))
            .enumerate()
        {
            assert!(
                t || o.to_bits() == before.to_bits(),
                "{what}: C padding element {idx} changed from {before} to {o}"
            );
        }
    }
}

fn device_gemm(kernel: GemmKernel, g: &GemmCase) -> Vec<f32> {
    let (m, n, k) = (i(g.m), i(g.n), i(g.k));
    let (alpha, beta) = (g.alpha, g.beta);
    let (rsa, csa, rsb, csb, rsc, csc) = (
        i(g.a.rs),
        i(g.a.cs),
        i(g.b.rs),
        i(g.b.cs),
        i(g.c.rs),
        i(g.c.cs),
    );
    let state = (
        Guarded::f32(&g.a.data),
        Guarded::f32(&g.b.data),
        Guarded::f32(&g.c.data),
    );
    let (gm, gn) = (g.m, g.n);
    // The launch the ladder prescribes, as the GPU path uses it.
    let Launch {
        grid: [gx, gy, gz],
        block: [bx, by, bz],
    } = kernel.launch(gm, gn);
    // The three rungs take the same parameters.
    let run = match kernel {
        GemmKernel::Naive => kernels::sgemm_naive,
        GemmKernel::Tiled => kernels::sgemm_tiled,
        GemmKernel::RegisterBlocked => kernels::sgemm_register_blocked,
    };
    let (ga, gb, gc) = launch(kernel.name(), state, move |(a, b, c)| {
        // SAFETY: live guarded buffers owned by the closure, each as long as the largest index
        // its strides reach for this m, n, k.
        unsafe {
            run(
                gx,
                gy,
                gz,
                bx,
                by,
                bz,
                m,
                n,
                k,
                alpha,
                a.ptr(),
                rsa,
                csa,
                b.ptr(),
                rsb,
                csb,
                beta,
                c.mut_ptr(),
                rsc,
                csc,
            )
        }
    });
    guard(&ga, "gemm A");
    guard(&gb, "gemm B");
    guard(&gc, "gemm C");
    gc.as_slice().to_vec()
}

#[test]
fn gemm_kernels_match_cpu_twin_on_ragged_and_transposed_shapes() {
    use Layout::{Col, Row};
    let start = Instant::now();
    // ((m, n, k), (A, B, C layouts), alpha, beta). Col = the transposed view (swapped strides).
    let cases = [
        ((1, 1, 1), (Row(0), Row(0), Row(0)), 1.0, 0.0),
        ((7, 33, 129), (Row(0), Row(0), Row(0)), 1.0, 0.0),
        ((7, 33, 129), (Col(0), Col(0), Row(3)), 0.5, -2.0),
        ((65, 17, 31), (Col(2), Row(1), Col(0)), -1.5, 0.25),
        ((65, 17, 31), (Row(0), Col(0), Row(0)), 1.0, 0.0),
        // Two register-blocked tiles each way, both ragged, k not a multiple of BK = 8.
        ((130, 129, 9), (Row(0), Row(0), Row(0)), 1.0, 1.0),
        ((33, 1, 40), (Col(0), Col(0), Col(0)), 1.0, 0.0),
        ((1, 45, 8), (Row(0), Col(5), Row(0)), 2.0, 0.0),
        // k == 0: C = beta * C, and C = 0 (NaN not read) when beta == 0.
        ((5, 3, 0), (Row(0), Row(0), Row(0)), 1.0, 2.0),
        ((5, 3, 0), (Row(0), Row(0), Col(1)), 1.0, 0.0),
    ];
    for (ci, &(shape, layouts, alpha, beta)) in cases.iter().enumerate() {
        let g = GemmCase::new(shape, layouts, alpha, beta, 1000 + 10 * ci as u64);
        let what = format!("case {ci} {shape:?} {layouts:?} alpha {alpha} beta {beta}");
        let mut twin = g.c.data.clone();
        super::gemm(
            g.m, g.n, g.k, alpha, &g.a.data, g.a.rs, g.a.cs, &g.b.data, g.b.rs, g.b.cs, beta,
            &mut twin, g.c.rs, g.c.cs,
        );
        g.check(&format!("CPU twin gemm {what}"), &twin);
        for kernel in GemmKernel::LADDER {
            let got = device_gemm(kernel, &g);
            g.check(&format!("cuda-sim {kernel:?} {what}"), &got);
        }
    }
    println!("gemm: {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn sgemm_batched_matches_cpu_twin_with_broadcast_and_gaps() {
    use Layout::{Col, Row};
    let start = Instant::now();
    // (batch, (m, n, k), layouts, broadcast A, broadcast B, extra z blocks). The extra z blocks
    // (z >= batch must do nothing) are only on the tiny case, whose every out-of-range access
    // would still land in the guard zones, so a missing z guard fails cleanly, not by a crash.
    let cases = [
        (3, (9, 130, 11), (Row(0), Row(0), Row(0)), true, false, 0),
        (2, (17, 5, 33), (Col(1), Row(0), Col(0)), false, true, 0),
        (4, (1, 1, 1), (Row(0), Row(0), Row(0)), false, false, 2),
    ];
    for (ci, &(batch, (m, n, k), (la, lb, lc), bcast_a, bcast_b, extra_z)) in
        cases.iter().enumerate()
    {
        let seed = 2000 + 10 * ci as u64;
        let (alpha, beta) = (0.75f32, if ci == 1 { 0.0 } else { -0.5 });
        // Each batch's operands one after another with a gap of 5 (A, B) or 2 (C) elements.
        let one_a = Mat::new(m, k, la, |len| vec![0.0; len]);
        let one_b = Mat::new(k, n, lb, |len| vec![0.0; len]);
        let one_c = Mat::new(m, n, lc, |len| vec![0.0; len]);
        let bsa = if bcast_a { 0 } else { one_a.data.len() + 5 };
        let bsb = if bcast_b { 0 } else { one_b.data.len() + 5 };
        let bsc = one_c.data.len() + 2;
        let a = random((batch - 1) * bsa + one_a.data.len(), -1.0, 1.0, seed);
        let b = random((batch - 1) * bsb + one_b.data.len(), -1.0, 1.0, seed + 1);
        let c = if beta == 0.0 {
            vec![f32::NAN; (batch - 1) * bsc + one_c.data.len()]
        } else {
            random((batch - 1) * bsc + one_c.data.len(), -1.0, 1.0, seed + 2)
        };
        let mut twin = c.clone();
        super::gemm_batched(
            batch, m, n, k, alpha, &a, bsa, one_a.rs, one_a.cs, &b, bsb, one_b.rs, one_b.cs, beta,
            &mut twin, bsc, one_c.rs, one_c.cs,
        );

        let state = (Guarded::f32(&a), Guarded::f32(&b), Guarded::f32(&c));
        let (rsa, csa, rsb, csb, rsc, csc) = (
            i(one_a.rs),
            i(one_a.cs),
            i(one_b.rs),
            i(one_b.cs),
            i(one_c.rs),
            i(one_c.cs),
        );
        let (ia, ib, ic) = (i(bsa), i(bsb), i(bsc));
        let (gx, gy, gz) = (d(n.div_ceil(128)), d(m.div_ceil(128)), d(batch + extra_z));
        let (mi, ni, ki, bi) = (i(m), i(n), i(k), i(batch));
        let (ga, gb, gc) = launch("sgemm_batched", state, move |(ga, gb, gc)| {
            // SAFETY: live guarded buffers owned by the closure, sized for every batch.
            unsafe {
                kernels::sgemm_batched(
                    gx,
                    gy,
                    gz,
                    256,
                    1,
                    1,
                    bi,
                    mi,
                    ni,
                    ki,
                    alpha,
                    ga.ptr(),
                    ia,
                    rsa,
                    csa,
                    gb.ptr(),
                    ib,
                    rsb,
                    csb,
                    beta,
                    gc.mut_ptr(),
                    ic,
                    rsc,
                    csc,
                )
            }
        });
        guard(&ga, "batched A");
        guard(&gb, "batched B");
        guard(&gc, "batched C");
        let got = gc.as_slice();
        // Every batch against its own single GEMM reference (gaps between batches untouched).
        for z in 0..batch {
            let slice = |v: &[f32], off: usize, len: usize| v[off..off + len].to_vec();
            let g = GemmCase {
                m,
                n,
                k,
                alpha,
                beta,
                a: Mat {
                    data: slice(&a, z * bsa, one_a.data.len()),
                    rs: one_a.rs,
                    cs: one_a.cs,
                },
                b: Mat {
                    data: slice(&b, z * bsb, one_b.data.len()),
                    rs: one_b.rs,
                    cs: one_b.cs,
                },
                c: Mat {
                    data: slice(&c, z * bsc, bsc.min(c.len() - z * bsc)),
                    rs: one_c.rs,
                    cs: one_c.cs,
                },
            };
            let what = format!("batched case {ci} batch {z} [{m}x{n}x{k}]");
            let len = g.c.data.len();
            g.check(&format!("CPU twin {what}"), &twin[z * bsc..z * bsc + len]);
            g.check(&format!("cuda-sim {what}"), &got[z * bsc..z * bsc + len]);
        }
    }
    println!("gemm batched: {:.2} s", start.elapsed().as_secs_f64());
}
