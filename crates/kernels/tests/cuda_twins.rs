//! Every CUDA kernel of gemm.cu, conv.cu, pool.cu, softmax_ce.cu, batchnorm.cu, optim.cu,
//! dropout.cu and half.cu executed on the CPU (kernels/emu/cuda_emu.h) and compared with its CPU
//! twin in `strata_kernels::{gemm, conv, pool, softmax_ce, batchnorm, optim, dropout,
//! half_precision}` and, where the
//! result is arithmetic, with an f64 reference. Shapes are small and deliberately ragged against
//! the kernels' tiles and blocks; grids smaller than the work exercise the grid-stride loops.
//! Every guarded buffer is checked for out-of-bounds writes after every launch.
//!
//! Tolerances (`|got - ref| <= tol * scale`, `scale` stated per op; "exact" means equal values,
//! NaN matching NaN):
//!
//! | op                              | vs f64 reference                                  | vs CPU twin |
//! |---------------------------------|---------------------------------------------------|-------------|
//! | sgemm_* (all four)              | tol (k+3)*2^-23, scale alpha*Σ|a||b| + |beta*c|   | same bound  |
//! | softmax, log_softmax, CE fwd    | tol 1e-5, scale |ref| (probs), |x|+|m|+|ln s|+1   | same bound  |
//! | log_softmax bwd                 | tol 1e-5, scale |dy| + exp(y)*Σ|dy|                | same bound  |
//! | softmax CE bwd                  | tol 1e-6, scale |ref| + tiny                       | exact       |
//! | batch_norm train: mean          | tol 1e-6, scale Σ|x|/m                            | same bound  |
//! | batch_norm train: var, invstd   | tol 1e-5, scale |ref|                             | same bound  |
//! | batch_norm train/eval: output   | tol 1e-6, scale (|x|+|mean|)*|invstd*gamma|+|beta| | same bound |
//! | batch_norm backward             | tol 1e-5, scale |k|(|dy|+|a|+|xhat||b|), Σ|dy|, Σ|dy*xhat| | same |
//! | sgd_step, adam_step             | tol 1e-6, scale = the formula evaluated on |values| | exact     |
//! | dropout_forward, dropout_mask   | -                                                 | identical bits |
//! | convert_* (f16, bf16)           | -                                                 | identical bits |
//! | hgemm_f16, hgemm_bf16           | as sgemm, on the widened operands                 | same bound  |
//!
//! The CPU twin is held to the same f64 bound as the kernel (so a wrong reference cannot pass
//! both). "exact" against the twin is what the kernels' comments promise: same operation order
//! (the emulator compiles with -ffp-contract=off, as Rust never contracts).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use strata_kernels::batchnorm;
use strata_kernels::cuda::emu::{self, run_emulated, Guarded, DEFAULT_TIMEOUT};
use strata_kernels::dropout;
use strata_kernels::gemm;
use strata_kernels::half_precision::{self, HalfFormat};
use strata_kernels::optim::{self, AdamConfig, SgdConfig};
use strata_kernels::softmax_ce;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn random(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// A kernel's `int` parameter.
fn i(x: usize) -> i32 {
    i32::try_from(x).unwrap()
}

/// A launch dimension.
fn d(x: usize) -> u32 {
    u32::try_from(x).unwrap()
}

/// Runs `body` (one `emu::emu_*` call on the buffers in `state`) through [`run_emulated`]
/// (serialised, under the watchdog) and hands `state` back; panics with the launch's error.
fn launch<T: Send + 'static>(
    kernel: &'static str,
    state: T,
    body: impl FnOnce(&mut T) -> i32 + Send + 'static,
) -> T {
    run_emulated(kernel, DEFAULT_TIMEOUT, move || {
        let mut state = state;
        let code = body(&mut state);
        (code, state)
    })
    .unwrap_or_else(|e| panic!("{kernel}: {e}"))
}

/// Panics if a kernel wrote into the guard zones of `g`.
fn guard<T: Copy + PartialEq + std::fmt::Debug>(g: &Guarded<T>, what: &str) {
    if let Err(e) = g.check(what) {
        panic!("{e}");
    }
}

/// `|got - want| <= tol * scale` element by element; NaN only where the reference is NaN.
fn close(what: &str, got: &[f32], want: &[f64], scale: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(scale.len(), want.len(), "{what}: scale length");
    for (idx, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g as f64 - w).abs() <= tol * s
        };
        assert!(
            ok,
            "{what}: element {idx}: got {g}, expected {w} (allowed error {tol} x {s:e}, off by {:e})",
            (g as f64 - w).abs()
        );
    }
}

/// Scale `|ref|`, floored at `floor`.
fn abs_scale(want: &[f64], floor: f64) -> Vec<f64> {
    want.iter().map(|w| w.abs().max(floor)).collect()
}

/// Equal values (NaN matches NaN; the sign of zero is not compared).
fn same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "{what}: element {idx}: emulated {g}, CPU twin {w}"
        );
    }
}

/// Identical bit patterns.
fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {idx}: emulated {g} ({:#010x}), CPU twin {w} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

// ---------------------------------------------------------------------------------------------
// GEMM: sgemm_naive, sgemm_tiled, sgemm_register_blocked, sgemm_batched
// ---------------------------------------------------------------------------------------------

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

#[derive(Clone, Copy, Debug)]
enum GemmKernel {
    Naive,
    Tiled,
    RegisterBlocked,
}

fn emu_gemm(kernel: GemmKernel, g: &GemmCase) -> Vec<f32> {
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
    let name = match kernel {
        GemmKernel::Naive => "sgemm_naive",
        GemmKernel::Tiled => "sgemm_tiled",
        GemmKernel::RegisterBlocked => "sgemm_register_blocked",
    };
    let (ga, gb, gc) = launch(name, state, move |(a, b, c)| {
        // SAFETY: live guarded buffers owned by the closure, each as long as the largest index
        // its strides reach for this m, n, k.
        unsafe {
            match kernel {
                GemmKernel::Naive => emu::emu_sgemm_naive(
                    d(gn.div_ceil(16)),
                    d(gm.div_ceil(16)),
                    1,
                    16,
                    16,
                    1,
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
                ),
                GemmKernel::Tiled => emu::emu_sgemm_tiled(
                    d(gn.div_ceil(32)),
                    d(gm.div_ceil(32)),
                    1,
                    32,
                    32,
                    1,
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
                ),
                GemmKernel::RegisterBlocked => emu::emu_sgemm_register_blocked(
                    d(gn.div_ceil(128)),
                    d(gm.div_ceil(128)),
                    1,
                    256,
                    1,
                    1,
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
                ),
            }
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
        gemm::gemm(
            g.m, g.n, g.k, alpha, &g.a.data, g.a.rs, g.a.cs, &g.b.data, g.b.rs, g.b.cs, beta,
            &mut twin, g.c.rs, g.c.cs,
        );
        g.check(&format!("CPU twin gemm {what}"), &twin);
        for kernel in [
            GemmKernel::Naive,
            GemmKernel::Tiled,
            GemmKernel::RegisterBlocked,
        ] {
            let got = emu_gemm(kernel, &g);
            g.check(&format!("emulated {kernel:?} {what}"), &got);
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
        gemm::gemm_batched(
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
                emu::emu_sgemm_batched(
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
            g.check(&format!("emulated {what}"), &got[z * bsc..z * bsc + len]);
        }
    }
    println!("gemm batched: {:.2} s", start.elapsed().as_secs_f64());
}

/// (grid.x, block) pairs: the intended launch and a too-small grid (grid-stride loop).
fn grid_stride_launches(total: usize) -> [(u32, u32); 2] {
    [(d(total.div_ceil(256).clamp(1, 65535)), 256), (1, 64)]
}

// ---------------------------------------------------------------------------------------------
// Softmax, log-softmax, cross-entropy
// ---------------------------------------------------------------------------------------------

/// (rows, cols, grid, block): class counts 1, 10, 33, 257, 1000; fewer blocks than rows;
/// one-warp, 2-warp, 8-warp and 32-warp blocks.
const SOFTMAX_SHAPES: &[(usize, usize, u32, u32)] = &[
    (3, 1, 3, 256),
    (5, 10, 2, 64),
    (4, 33, 4, 32),
    (4, 33, 3, 256),
    (2, 257, 2, 256),
    (3, 1000, 2, 1024),
    (2, 1000, 2, 256),
];

/// Per row: (max, sum exp(x - max)) in f64.
fn row_stats(x: &[f32], cols: usize) -> Vec<(f64, f64)> {
    x.chunks(cols)
        .map(|r| {
            let m = r.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
            (m, r.iter().map(|&v| (v as f64 - m).exp()).sum())
        })
        .collect()
}

fn softmax_logits(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut x = random(rows * cols, -5.0, 5.0, seed);
    // The last row is huge: exp would overflow without the max shift.
    if rows > 1 {
        for v in &mut x[(rows - 1) * cols..] {
            *v *= 2000.0;
        }
    }
    x
}

#[test]
fn softmax_and_log_softmax_match_cpu_twin() {
    let start = Instant::now();
    for (si, &(rows, cols, grid, block)) in SOFTMAX_SHAPES.iter().enumerate() {
        let n = rows * cols;
        let x = softmax_logits(rows, cols, 6000 + si as u64);
        let stats = row_stats(&x, cols);
        let mut want_p = vec![];
        let mut want_l = vec![];
        let mut scale_l = vec![];
        for (idx, &v) in x.iter().enumerate() {
            let (m, s) = stats[idx / cols];
            want_p.push((v as f64 - m).exp() / s);
            want_l.push(v as f64 - m - s.ln());
            scale_l.push((v as f64).abs() + m.abs() + s.ln() + 1.0);
        }
        let scale_p = abs_scale(&want_p, 1e-30);
        let what = format!("[{rows}, {cols}] grid {grid} block {block}");

        let mut twin_p = vec![0.0; n];
        softmax_ce::softmax_forward(rows, cols, &x, &mut twin_p);
        close(
            &format!("CPU twin softmax {what}"),
            &twin_p,
            &want_p,
            &scale_p,
            1e-5,
        );
        let mut twin_l = vec![0.0; n];
        softmax_ce::log_softmax_forward(rows, cols, &x, &mut twin_l);
        close(
            &format!("CPU twin log_softmax {what}"),
            &twin_l,
            &want_l,
            &scale_l,
            1e-5,
        );

        let (r, c) = (i(rows), i(cols));
        let (gx, y) = launch(
            "softmax_forward",
            (Guarded::f32(&x), Guarded::f32(&vec![0.0; n])),
            move |(x, y)| {
                // SAFETY: live guarded buffers of rows*cols floats.
                unsafe {
                    emu::emu_softmax_forward(grid, 1, 1, block, 1, 1, r, c, x.ptr(), y.mut_ptr())
                }
            },
        );
        guard(&gx, "softmax input");
        guard(&y, "softmax output");
        close(
            &format!("softmax {what}"),
            y.as_slice(),
            &want_p,
            &scale_p,
            1e-5,
        );

        let (gx, y) = launch(
            "log_softmax_forward",
            (Guarded::f32(&x), Guarded::f32(&vec![0.0; n])),
            move |(x, y)| {
                // SAFETY: live guarded buffers of rows*cols floats.
                unsafe {
                    emu::emu_log_softmax_forward(
                        grid,
                        1,
                        1,
                        block,
                        1,
                        1,
                        r,
                        c,
                        x.ptr(),
                        y.mut_ptr(),
                    )
                }
            },
        );
        guard(&gx, "log_softmax input");
        guard(&y, "log_softmax output");
        close(
            &format!("log_softmax {what}"),
            y.as_slice(),
            &want_l,
            &scale_l,
            1e-5,
        );

        // Backward from the twin's output.
        let dy = random(n, -1.0, 1.0, 6100 + si as u64);
        let mut want_dx = vec![];
        let mut scale_dx = vec![];
        for row in 0..rows {
            let dyr = &dy[row * cols..(row + 1) * cols];
            let sum: f64 = dyr.iter().map(|&v| v as f64).sum();
            let sum_abs: f64 = dyr.iter().map(|&v| (v as f64).abs()).sum();
            for col in 0..cols {
                let e = (twin_l[row * cols + col] as f64).exp();
                want_dx.push(dyr[col] as f64 - e * sum);
                scale_dx.push((dyr[col] as f64).abs() + e * sum_abs + 1e-30);
            }
        }
        let mut twin_dx = vec![0.0; n];
        softmax_ce::log_softmax_backward(rows, cols, &twin_l, &dy, &mut twin_dx);
        close(
            &format!("CPU twin log_softmax bwd {what}"),
            &twin_dx,
            &want_dx,
            &scale_dx,
            1e-5,
        );
        let state = (
            Guarded::f32(&twin_l),
            Guarded::f32(&dy),
            Guarded::f32(&vec![0.0; n]),
        );
        let (gy, gdy, dx) = launch("log_softmax_backward", state, move |(y, dy, dx)| {
            // SAFETY: live guarded buffers of rows*cols floats.
            unsafe {
                emu::emu_log_softmax_backward(
                    grid,
                    1,
                    1,
                    block,
                    1,
                    1,
                    r,
                    c,
                    y.ptr(),
                    dy.ptr(),
                    dx.mut_ptr(),
                )
            }
        });
        guard(&gy, "log_softmax bwd output");
        guard(&gdy, "log_softmax bwd dy");
        guard(&dx, "log_softmax bwd dx");
        close(
            &format!("log_softmax bwd {what}"),
            dx.as_slice(),
            &want_dx,
            &scale_dx,
            1e-5,
        );
    }
    println!("softmax: {:.2} s", start.elapsed().as_secs_f64());
}

fn emu_ce_forward(
    rows: usize,
    cols: usize,
    x: &[f32],
    labels: &[u32],
    grid: u32,
    block: u32,
) -> (Vec<f32>, Vec<f32>) {
    let state = (
        Guarded::f32(x),
        Guarded::new(labels, 0xdead_beef),
        Guarded::f32(&vec![0.0; rows * cols]),
        Guarded::f32(&vec![0.0; rows]),
    );
    let (r, c) = (i(rows), i(cols));
    let (gx, gl, p, loss) = launch(
        "softmax_cross_entropy_forward",
        state,
        move |(x, l, p, loss)| {
            // SAFETY: live guarded buffers: rows*cols logits/probs, rows labels/losses.
            unsafe {
                emu::emu_softmax_cross_entropy_forward(
                    grid,
                    1,
                    1,
                    block,
                    1,
                    1,
                    r,
                    c,
                    x.ptr(),
                    l.ptr(),
                    p.mut_ptr(),
                    loss.mut_ptr(),
                )
            }
        },
    );
    guard(&gx, "CE logits");
    guard(&gl, "CE labels");
    guard(&p, "CE probs");
    guard(&loss, "CE row loss");
    (p.as_slice().to_vec(), loss.as_slice().to_vec())
}

#[test]
fn softmax_cross_entropy_matches_cpu_twin() {
    let start = Instant::now();
    for (si, &(rows, cols, grid, block)) in SOFTMAX_SHAPES.iter().enumerate() {
        let n = rows * cols;
        let x = softmax_logits(rows, cols, 7000 + si as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(7100 + si as u64);
        let labels: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..cols as u32))
            .collect();
        let stats = row_stats(&x, cols);
        let want_p: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(idx, &v)| {
                let (m, s) = stats[idx / cols];
                (v as f64 - m).exp() / s
            })
            .collect();
        let scale_p = abs_scale(&want_p, 1e-30);
        let (mut want_loss, mut scale_loss) = (vec![], vec![]);
        for (row, &(m, s)) in stats.iter().enumerate() {
            let xl = x[row * cols + labels[row] as usize] as f64;
            want_loss.push(m + s.ln() - xl);
            scale_loss.push(m.abs() + s.ln() + xl.abs() + 1.0);
        }
        let what = format!("[{rows}, {cols}] grid {grid} block {block}");

        let mut twin_p = vec![0.0; n];
        let twin_loss =
            softmax_ce::softmax_cross_entropy_forward(rows, cols, &x, &labels, &mut twin_p);
        close(
            &format!("CPU twin CE probs {what}"),
            &twin_p,
            &want_p,
            &scale_p,
            1e-5,
        );
        let (p, row_loss) = emu_ce_forward(rows, cols, &x, &labels, grid, block);
        close(&format!("CE probs {what}"), &p, &want_p, &scale_p, 1e-5);
        close(
            &format!("CE row loss {what}"),
            &row_loss,
            &want_loss,
            &scale_loss,
            1e-5,
        );
        // The host's reduction (f64 sum in row order / rows) against the twin's mean.
        let mean = row_loss.iter().map(|&l| l as f64).sum::<f64>() / rows as f64;
        let mean_want = want_loss.iter().sum::<f64>() / rows as f64;
        let mean_scale = scale_loss.iter().sum::<f64>() / rows as f64;
        close(
            &format!("CE mean loss {what}"),
            &[mean as f32],
            &[mean_want],
            &[mean_scale],
            1e-5,
        );
        close(
            &format!("CPU twin CE mean loss {what}"),
            &[twin_loss],
            &[mean_want],
            &[mean_scale],
            1e-5,
        );

        // Backward from the twin's probabilities: elementwise, exact.
        let grad_loss = 0.7f32;
        let mut twin_dx = vec![0.0; n];
        softmax_ce::softmax_cross_entropy_backward(
            rows,
            cols,
            &twin_p,
            &labels,
            grad_loss,
            &mut twin_dx,
        );
        let want_dx: Vec<f64> = twin_p
            .iter()
            .enumerate()
            .map(|(idx, &pv)| {
                let hot = (idx % cols) as u32 == labels[idx / cols];
                (pv as f64 - hot as u8 as f64) * grad_loss as f64 / rows as f64
            })
            .collect();
        let scale_dx: Vec<f64> = want_dx.iter().map(|w| w.abs() + 1e-30).collect();
        close(
            &format!("CPU twin CE bwd {what}"),
            &twin_dx,
            &want_dx,
            &scale_dx,
            1e-6,
        );
        let (r, c) = (i(rows), i(cols));
        for (gx, block) in grid_stride_launches(n) {
            let state = (
                Guarded::f32(&twin_p),
                Guarded::new(&labels, 0xdead_beef),
                Guarded::f32(&vec![f32::NAN; n]),
            );
            let (gp, gl, dx) = launch(
                "softmax_cross_entropy_backward",
                state,
                move |(p, l, dx)| {
                    // SAFETY: live guarded buffers: rows*cols probs/grads, rows labels.
                    unsafe {
                        emu::emu_softmax_cross_entropy_backward(
                            gx,
                            1,
                            1,
                            block,
                            1,
                            1,
                            r,
                            c,
                            p.ptr(),
                            l.ptr(),
                            grad_loss,
                            dx.mut_ptr(),
                        )
                    }
                },
            );
            guard(&gp, "CE bwd probs");
            guard(&gl, "CE bwd labels");
            guard(&dx, "CE bwd grad");
            close(
                &format!("CE bwd {what}"),
                dx.as_slice(),
                &want_dx,
                &scale_dx,
                1e-6,
            );
            same(&format!("CE bwd {what} grid {gx}"), dx.as_slice(), &twin_dx);
        }
    }
    println!("softmax CE: {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn softmax_cross_entropy_forward_out_of_range_label_gives_nan_not_a_wild_read() {
    let (rows, cols) = (3, 10);
    let x = random(rows * cols, -2.0, 2.0, 7500);
    let labels = [3u32, 10, u32::MAX];
    let (p, loss) = emu_ce_forward(rows, cols, &x, &labels, 3, 64);
    assert!(
        !loss[0].is_nan() && loss[1].is_nan() && loss[2].is_nan(),
        "{loss:?}"
    );
    let mut twin_p = vec![0.0; rows * cols];
    softmax_ce::softmax_forward(rows, cols, &x, &mut twin_p);
    let scale = vec![1e-5; rows * cols];
    close("CE probs with bad labels", &p, &widen(&twin_p), &scale, 1.0);
}

// ---------------------------------------------------------------------------------------------
// Batch normalisation
// ---------------------------------------------------------------------------------------------

/// (n, c, spatial, offset, affine, want_grad_affine, grid, block)
type BnCase = (usize, usize, usize, f32, bool, bool, u32, u32);
const BN_CASES: &[BnCase] = &[
    (7, 5, 1, 0.0, true, true, 5, 256),      // 1-d
    (7, 5, 1, 0.0, false, true, 2, 256),     // 1-d, no affine, grid-stride over channels
    (3, 4, 35, 0.0, true, false, 4, 64),     // 2-d
    (2, 3, 300, 1000.0, true, true, 3, 256), // m = 600 > block, large mean
    (1, 2, 1, 0.0, true, true, 2, 32),       // m = 1: variance 0
    (5, 2, 9, -3.0, false, false, 1, 1024),  // one block for both channels, 32 warps
];

fn ptr_or_null(g: &Guarded<f32>, present: bool) -> *const f32 {
    if present {
        g.ptr()
    } else {
        std::ptr::null()
    }
}

fn mut_ptr_or_null(g: &mut Guarded<f32>, present: bool) -> *mut f32 {
    if present {
        g.mut_ptr()
    } else {
        std::ptr::null_mut()
    }
}

#[test]
fn batch_norm_train_and_backward_match_cpu_twin() {
    let start = Instant::now();
    let eps = 1e-5f32;
    for (bi, &(n, c, sp, offset, affine, want_affine, grid, block)) in BN_CASES.iter().enumerate() {
        let len = n * c * sp;
        let m = n * sp;
        let seed = 8000 + 10 * bi as u64;
        let x: Vec<f32> = random(len, -1.0, 1.0, seed)
            .iter()
            .enumerate()
            // Channels with different spreads.
            .map(|(idx, &v)| offset + v * (1.0 + ((idx / sp) % c) as f32))
            .collect();
        let gamma = random(c, 0.5, 2.0, seed + 1);
        let beta = random(c, -1.0, 1.0, seed + 2);
        let what = format!("case {bi} n {n} c {c} spatial {sp} affine {affine}");
        let at = |j: usize, ci: usize| ((j / sp) * c + ci) * sp + j % sp;

        // f64 reference.
        let (mut mean, mut var, mut invstd, mut mean_scale) = (vec![], vec![], vec![], vec![]);
        for ci in 0..c {
            let s: f64 = (0..m).map(|j| x[at(j, ci)] as f64).sum();
            let mu = s / m as f64;
            let v = (0..m)
                .map(|j| (x[at(j, ci)] as f64 - mu).powi(2))
                .sum::<f64>()
                / m as f64;
            mean.push(mu);
            var.push(v);
            invstd.push(1.0 / (v + eps as f64).sqrt());
            mean_scale
                .push((0..m).map(|j| (x[at(j, ci)] as f64).abs()).sum::<f64>() / m as f64 + 1e-30);
        }
        let g_of = |ci: usize| if affine { gamma[ci] as f64 } else { 1.0 };
        let b_of = |ci: usize| if affine { beta[ci] as f64 } else { 0.0 };
        let (mut want_y, mut scale_y) = (vec![0.0; len], vec![0.0; len]);
        for idx in 0..len {
            let ci = (idx / sp) % c;
            want_y[idx] = (x[idx] as f64 - mean[ci]) * invstd[ci] * g_of(ci) + b_of(ci);
            scale_y[idx] = (x[idx].abs() as f64 + mean[ci].abs() + mean_scale[ci])
                * (invstd[ci] * g_of(ci)).abs()
                + b_of(ci).abs();
        }
        let check_forward = |who: &str, y: &[f32], sm: &[f32], si: &[f32], bv: &[f32]| {
            close(&format!("{who} mean {what}"), sm, &mean, &mean_scale, 1e-6);
            close(
                &format!("{who} invstd {what}"),
                si,
                &invstd,
                &abs_scale(&invstd, 1e-30),
                1e-5,
            );
            close(
                &format!("{who} var {what}"),
                bv,
                &var,
                &abs_scale(&var, 1e-30),
                1e-5,
            );
            close(&format!("{who} output {what}"), y, &want_y, &scale_y, 2e-6);
        };

        let (mut ty, mut tm, mut ti, mut tv) =
            (vec![0.0; len], vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        batchnorm::batch_norm_forward_train(
            n,
            c,
            sp,
            eps,
            &x,
            affine.then_some(&gamma[..]),
            affine.then_some(&beta[..]),
            &mut ty,
            &mut tm,
            &mut ti,
            &mut tv,
        );
        check_forward("CPU twin", &ty, &tm, &ti, &tv);

        let state = (
            Guarded::f32(&x),
            Guarded::f32(&gamma),
            Guarded::f32(&beta),
            Guarded::f32(&vec![f32::NAN; len]),
            [
                Guarded::f32(&vec![f32::NAN; c]),
                Guarded::f32(&vec![f32::NAN; c]),
                Guarded::f32(&vec![f32::NAN; c]),
            ],
        );
        let (ni, cii, spi) = (i(n), i(c), i(sp));
        let (gx, gg, gb, y, [sm, si, bv]) = launch(
            "batch_norm_forward_train",
            state,
            move |(x, g, b, y, [sm, si, bv])| {
                // SAFETY: live guarded buffers of the shape's sizes; gamma/beta null (never
                // read, as the kernel promises) without affine.
                unsafe {
                    emu::emu_batch_norm_forward_train(
                        grid,
                        1,
                        1,
                        block,
                        1,
                        1,
                        ni,
                        cii,
                        spi,
                        eps,
                        x.ptr(),
                        ptr_or_null(g, affine),
                        ptr_or_null(b, affine),
                        affine as i32,
                        y.mut_ptr(),
                        sm.mut_ptr(),
                        si.mut_ptr(),
                        bv.mut_ptr(),
                    )
                }
            },
        );
        for (buf, name) in [
            (&gx, "input"),
            (&gg, "gamma"),
            (&gb, "beta"),
            (&y, "output"),
            (&sm, "save_mean"),
            (&si, "save_invstd"),
            (&bv, "batch_var"),
        ] {
            guard(buf, &format!("bn train {name}"));
        }
        check_forward(
            "emulated",
            y.as_slice(),
            sm.as_slice(),
            si.as_slice(),
            bv.as_slice(),
        );

        // Backward, from the twin's saved statistics (the inputs both sides get).
        let dy = random(len, -1.0, 1.0, seed + 3);
        let (mut sdy, mut sdyx, mut sdy_abs, mut sdyx_abs) = (
            vec![0.0f64; c],
            vec![0.0f64; c],
            vec![1e-30f64; c],
            vec![1e-30f64; c],
        );
        for idx in 0..len {
            let ci = (idx / sp) % c;
            let xhat = (x[idx] as f64 - tm[ci] as f64) * ti[ci] as f64;
            sdy[ci] += dy[idx] as f64;
            sdyx[ci] += dy[idx] as f64 * xhat;
            sdy_abs[ci] += (dy[idx] as f64).abs();
            sdyx_abs[ci] += (dy[idx] as f64 * xhat).abs();
        }
        let (mut want_dx, mut scale_dx) = (vec![0.0; len], vec![0.0; len]);
        for idx in 0..len {
            let ci = (idx / sp) % c;
            let k = g_of(ci) * ti[ci] as f64;
            let (a, b) = (sdy[ci] / m as f64, sdyx[ci] / m as f64);
            let xhat = (x[idx] as f64 - tm[ci] as f64) * ti[ci] as f64;
            want_dx[idx] = k * (dy[idx] as f64 - a - xhat * b);
            // |a|, |b| replaced by the sums of absolute values they come from: a sum that cancels
            // keeps the rounding error of its terms.
            let xhat_abs = (x[idx].abs() as f64 + (tm[ci] as f64).abs()) * ti[ci] as f64;
            let (a_abs, b_abs) = (sdy_abs[ci] / m as f64, sdyx_abs[ci] / m as f64);
            scale_dx[idx] = k.abs() * ((dy[idx] as f64).abs() + a_abs + xhat_abs * b_abs) + 1e-30;
        }
        let check_backward = |who: &str, dx: &[f32], dg: Option<&[f32]>, db: Option<&[f32]>| {
            close(
                &format!("{who} grad_input {what}"),
                dx,
                &want_dx,
                &scale_dx,
                1e-5,
            );
            if let Some(dg) = dg {
                close(
                    &format!("{who} grad_gamma {what}"),
                    dg,
                    &sdyx,
                    &sdyx_abs,
                    1e-5,
                );
            }
            if let Some(db) = db {
                close(&format!("{who} grad_beta {what}"), db, &sdy, &sdy_abs, 1e-5);
            }
        };
        let (mut tdx, mut tdg, mut tdb) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
        batchnorm::batch_norm_backward(
            n,
            c,
            sp,
            &x,
            affine.then_some(&gamma[..]),
            &tm,
            &ti,
            &dy,
            &mut tdx,
            want_affine.then_some(&mut tdg[..]),
            want_affine.then_some(&mut tdb[..]),
        );
        check_backward(
            "CPU twin",
            &tdx,
            want_affine.then_some(&tdg[..]),
            want_affine.then_some(&tdb[..]),
        );

        let state = (
            [
                Guarded::f32(&x),
                Guarded::f32(&gamma),
                Guarded::f32(&tm),
                Guarded::f32(&ti),
                Guarded::f32(&dy),
            ],
            [
                Guarded::f32(&vec![f32::NAN; len]),
                Guarded::f32(&vec![f32::NAN; c]),
                Guarded::f32(&vec![f32::NAN; c]),
            ],
        );
        let (inputs, [dx, dg, db]) = launch(
            "batch_norm_backward",
            state,
            move |([x, g, sm, si, dy], [dx, dg, db])| {
                // SAFETY: live guarded buffers of the shape's sizes; gamma / grad_gamma /
                // grad_beta null when their flag is off (the kernel promises not to touch them).
                unsafe {
                    emu::emu_batch_norm_backward(
                        grid,
                        1,
                        1,
                        block,
                        1,
                        1,
                        ni,
                        cii,
                        spi,
                        x.ptr(),
                        ptr_or_null(g, affine),
                        affine as i32,
                        sm.ptr(),
                        si.ptr(),
                        dy.ptr(),
                        dx.mut_ptr(),
                        mut_ptr_or_null(dg, want_affine),
                        mut_ptr_or_null(db, want_affine),
                        want_affine as i32,
                    )
                }
            },
        );
        for (k, buf) in inputs.iter().enumerate() {
            guard(buf, &format!("bn backward input {k}"));
        }
        guard(&dx, "bn grad_input");
        guard(&dg, "bn grad_gamma");
        guard(&db, "bn grad_beta");
        check_backward(
            "emulated",
            dx.as_slice(),
            want_affine.then_some(dg.as_slice()),
            want_affine.then_some(db.as_slice()),
        );
    }
    println!(
        "batch norm train/backward: {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn batch_norm_eval_matches_cpu_twin() {
    let start = Instant::now();
    let eps = 1e-3f32;
    for (bi, &(n, c, sp, offset, affine, ..)) in BN_CASES.iter().enumerate() {
        let len = n * c * sp;
        let seed = 8500 + 10 * bi as u64;
        let x: Vec<f32> = random(len, -2.0, 2.0, seed)
            .iter()
            .map(|v| v + offset)
            .collect();
        let rm: Vec<f32> = random(c, -1.0, 1.0, seed + 1)
            .iter()
            .map(|v| v + offset)
            .collect();
        let rv = random(c, 0.1, 3.0, seed + 2);
        let gamma = random(c, 0.5, 2.0, seed + 3);
        let beta = random(c, -1.0, 1.0, seed + 4);
        let (mut want, mut scale) = (vec![0.0; len], vec![0.0; len]);
        for idx in 0..len {
            let ci = (idx / sp) % c;
            let g = if affine { gamma[ci] as f64 } else { 1.0 };
            let b = if affine { beta[ci] as f64 } else { 0.0 };
            let s = g / (rv[ci] as f64 + eps as f64).sqrt();
            want[idx] = (x[idx] as f64 - rm[ci] as f64) * s + b;
            scale[idx] = (x[idx].abs() as f64 + rm[ci].abs() as f64) * s.abs() + b.abs();
        }
        let what = format!("case {bi} n {n} c {c} spatial {sp} affine {affine}");
        let mut twin = vec![0.0; len];
        batchnorm::batch_norm_forward_eval(
            n,
            c,
            sp,
            eps,
            &x,
            &rm,
            &rv,
            affine.then_some(&gamma[..]),
            affine.then_some(&beta[..]),
            &mut twin,
        );
        close(
            &format!("CPU twin bn eval {what}"),
            &twin,
            &want,
            &scale,
            1e-6,
        );
        let (ni, cii, spi) = (i(n), i(c), i(sp));
        for (gx, block) in grid_stride_launches(len) {
            let state = (
                [
                    Guarded::f32(&x),
                    Guarded::f32(&rm),
                    Guarded::f32(&rv),
                    Guarded::f32(&gamma),
                    Guarded::f32(&beta),
                ],
                Guarded::f32(&vec![f32::NAN; len]),
            );
            let (inputs, y) = launch(
                "batch_norm_forward_eval",
                state,
                move |([x, rm, rv, g, b], y)| {
                    // SAFETY: live guarded buffers of the shape's sizes; gamma/beta null
                    // without affine.
                    unsafe {
                        emu::emu_batch_norm_forward_eval(
                            gx,
                            1,
                            1,
                            block,
                            1,
                            1,
                            ni,
                            cii,
                            spi,
                            eps,
                            x.ptr(),
                            rm.ptr(),
                            rv.ptr(),
                            ptr_or_null(g, affine),
                            ptr_or_null(b, affine),
                            affine as i32,
                            y.mut_ptr(),
                        )
                    }
                },
            );
            for (k, buf) in inputs.iter().enumerate() {
                guard(buf, &format!("bn eval input {k}"));
            }
            guard(&y, "bn eval output");
            close(
                &format!("bn eval {what} grid {gx}"),
                y.as_slice(),
                &want,
                &scale,
                1e-6,
            );
        }
    }
    println!("batch norm eval: {:.2} s", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// Optimizers
// ---------------------------------------------------------------------------------------------

/// A value and the same expression evaluated on absolute values (its rounding-error scale).
#[derive(Clone, Copy, Debug)]
struct E {
    v: f64,
    s: f64,
}

impl E {
    fn of(x: f32) -> E {
        E {
            v: x as f64,
            s: (x as f64).abs(),
        }
    }
    fn add(self, o: E) -> E {
        E {
            v: self.v + o.v,
            s: self.s + o.s,
        }
    }
    fn sub(self, o: E) -> E {
        E {
            v: self.v - o.v,
            s: self.s + o.s,
        }
    }
    fn mul(self, o: E) -> E {
        E {
            v: self.v * o.v,
            s: self.s * o.s,
        }
    }
    fn div(self, o: E) -> E {
        E {
            v: self.v / o.v,
            s: self.s / o.v.abs() + self.v.abs() * o.s / (o.v * o.v),
        }
    }
    fn sqrt(self) -> E {
        E {
            v: self.v.sqrt(),
            s: self.s.sqrt(),
        }
    }
}

fn close_e(what: &str, got: &[f32], want: &[E], tol: f64) {
    let v: Vec<f64> = want.iter().map(|e| e.v).collect();
    let s: Vec<f64> = want.iter().map(|e| e.s + 1e-30).collect();
    close(what, got, &v, &s, tol);
}

const OPTIM_N: usize = 1000;
/// The intended launch (ragged last block) and one block of 128 striding over everything.
const OPTIM_LAUNCHES: [(u32, u32); 2] = [(4, 256), (1, 128)];

#[test]
fn sgd_step_matches_cpu_twin_for_every_option() {
    let start = Instant::now();
    let cfg = |lr, momentum, dampening, weight_decay, nesterov| SgdConfig {
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
    };
    // (config, first step fresh?)
    let cases = [
        (cfg(0.1, 0.0, 0.0, 0.0, false), false),
        (cfg(0.05, 0.0, 0.0, 1e-2, false), false),
        (cfg(0.1, 0.9, 0.0, 0.0, false), true),
        (cfg(0.1, 0.9, 0.1, 1e-3, false), false),
        (cfg(0.1, 0.9, 0.0, 0.0, true), true),
        (cfg(0.02, 0.8, 0.0, 5e-4, true), false),
        (cfg(0.02, 0.8, 0.3, 1e-2, true), true),
    ];
    for (ci, &(c, fresh)) in cases.iter().enumerate() {
        for &(grid, block) in &OPTIM_LAUNCHES {
            let seed = 9000 + 10 * ci as u64;
            let mut p = random(OPTIM_N, -1.0, 1.0, seed);
            let mut buf = random(OPTIM_N, -0.5, 0.5, seed + 1);
            let mut twin_p = p.clone();
            let mut twin_buf = buf.clone();
            let has_mom = c.momentum != 0.0;
            // Three consecutive steps, each against the twin and an f64 reference.
            for step in 0..3 {
                let first = fresh && step == 0;
                let grad = random(OPTIM_N, -1.0, 1.0, seed + 2 + step);
                let what = format!("case {ci} {c:?} step {step} first {first} grid {grid}");
                let (mut want_p, mut want_b) = (vec![], vec![]);
                for idx in 0..OPTIM_N {
                    let pe = E::of(p[idx]);
                    let g = E::of(grad[idx]).add(E::of(c.weight_decay).mul(pe));
                    let step_e = if has_mom {
                        let b = if first {
                            g
                        } else {
                            E::of(c.momentum)
                                .mul(E::of(buf[idx]))
                                .add(E::of(1.0 - c.dampening).mul(g))
                        };
                        want_b.push(b);
                        if c.nesterov {
                            g.add(E::of(c.momentum).mul(b))
                        } else {
                            b
                        }
                    } else {
                        g
                    };
                    want_p.push(pe.sub(E::of(c.lr).mul(step_e)));
                }
                optim::sgd_step(
                    &c,
                    &mut twin_p,
                    &grad,
                    has_mom.then_some(&mut twin_buf[..]),
                    first,
                );
                close_e(
                    &format!("CPU twin sgd param {what}"),
                    &twin_p,
                    &want_p,
                    1e-6,
                );

                let state = (Guarded::f32(&p), Guarded::f32(&grad), Guarded::f32(&buf));
                let n = i(OPTIM_N);
                let (gp, gg, gb) = launch("sgd_step", state, move |(p, g, b)| {
                    // SAFETY: live guarded buffers of n floats; the momentum buffer is null
                    // when momentum is 0 (the kernel promises not to touch it).
                    unsafe {
                        emu::emu_sgd_step(
                            grid,
                            1,
                            1,
                            block,
                            1,
                            1,
                            n,
                            c.lr,
                            c.momentum,
                            c.dampening,
                            c.weight_decay,
                            c.nesterov as i32,
                            first as i32,
                            p.mut_ptr(),
                            g.ptr(),
                            mut_ptr_or_null(b, has_mom),
                        )
                    }
                });
                guard(&gp, "sgd param");
                guard(&gg, "sgd grad");
                guard(&gb, "sgd momentum buffer");
                close_e(&format!("sgd param {what}"), gp.as_slice(), &want_p, 1e-6);
                same_bits(&format!("sgd param {what}"), gp.as_slice(), &twin_p);
                if has_mom {
                    close_e(&format!("sgd buffer {what}"), gb.as_slice(), &want_b, 1e-6);
                    same_bits(&format!("sgd buffer {what}"), gb.as_slice(), &twin_buf);
                } else {
                    same_bits(&format!("sgd untouched buffer {what}"), gb.as_slice(), &buf);
                }
                p = gp.as_slice().to_vec();
                buf = gb.as_slice().to_vec();
            }
        }
    }
    println!("sgd: {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn adam_step_matches_cpu_twin_for_adam_and_adamw() {
    let start = Instant::now();
    let cfg = |lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay| AdamConfig {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled_weight_decay,
    };
    // (config, first step t, zero initial moments?)
    let cases = [
        (cfg(1e-3, 0.9, 0.999, 1e-8, 0.0, false), 1, true),
        (cfg(1e-3, 0.9, 0.999, 1e-8, 1e-2, false), 1, true),
        (cfg(1e-3, 0.9, 0.999, 1e-8, 1e-2, true), 1, true),
        (cfg(3e-4, 0.9, 0.999, 1e-8, 5e-2, true), 1000, false),
        (cfg(0.1, 0.5, 0.75, 1e-3, 1e-3, false), 7, false),
    ];
    for (ci, &(c, t0, zero)) in cases.iter().enumerate() {
        for &(grid, block) in &OPTIM_LAUNCHES {
            let seed = 9500 + 10 * ci as u64;
            let mut p = random(OPTIM_N, -1.0, 1.0, seed);
            let (mut m, mut v) = if zero {
                (vec![0.0; OPTIM_N], vec![0.0; OPTIM_N])
            } else {
                (
                    random(OPTIM_N, -0.1, 0.1, seed + 1),
                    random(OPTIM_N, 0.0, 0.01, seed + 2),
                )
            };
            let (mut tp, mut tm, mut tv) = (p.clone(), m.clone(), v.clone());
            for step in 0..3u64 {
                let t = t0 + step;
                let grad = random(OPTIM_N, -1.0, 1.0, seed + 3 + step);
                // The host's bias corrections, in f32 exactly as the twin.
                let bias1 = 1.0 - c.beta1.powi(t as i32);
                let step_size = c.lr / bias1;
                let bias2_sqrt = (1.0 - c.beta2.powi(t as i32)).sqrt();
                let what = format!("case {ci} {c:?} t {t} grid {grid}");
                let (mut wp, mut wm, mut wv) = (vec![], vec![], vec![]);
                for idx in 0..OPTIM_N {
                    let mut pe = E::of(p[idx]);
                    let mut g = E::of(grad[idx]);
                    if c.decoupled_weight_decay {
                        pe = pe.mul(E::of(1.0).sub(E::of(c.lr).mul(E::of(c.weight_decay))));
                    } else {
                        g = g.add(E::of(c.weight_decay).mul(pe));
                    }
                    let me = E::of(c.beta1)
                        .mul(E::of(m[idx]))
                        .add(E::of(1.0 - c.beta1).mul(g));
                    let ve = E::of(c.beta2)
                        .mul(E::of(v[idx]))
                        .add(E::of(1.0 - c.beta2).mul(g).mul(g));
                    let denom = ve.sqrt().div(E::of(bias2_sqrt)).add(E::of(c.eps));
                    wp.push(pe.sub(E::of(step_size).mul(me).div(denom)));
                    wm.push(me);
                    wv.push(ve);
                }
                optim::adam_step(&c, t, &mut tp, &grad, &mut tm, &mut tv);
                close_e(&format!("CPU twin adam param {what}"), &tp, &wp, 2e-6);

                let state = (
                    Guarded::f32(&p),
                    Guarded::f32(&grad),
                    Guarded::f32(&m),
                    Guarded::f32(&v),
                );
                let n = i(OPTIM_N);
                let (gp, gg, gm, gv) = launch("adam_step", state, move |(p, g, m, v)| {
                    // SAFETY: live guarded buffers of n floats.
                    unsafe {
                        emu::emu_adam_step(
                            grid,
                            1,
                            1,
                            block,
                            1,
                            1,
                            n,
                            c.lr,
                            c.beta1,
                            c.beta2,
                            c.eps,
                            c.weight_decay,
                            c.decoupled_weight_decay as i32,
                            step_size,
                            bias2_sqrt,
                            p.mut_ptr(),
                            g.ptr(),
                            m.mut_ptr(),
                            v.mut_ptr(),
                        )
                    }
                });
                guard(&gp, "adam param");
                guard(&gg, "adam grad");
                guard(&gm, "adam exp_avg");
                guard(&gv, "adam exp_avg_sq");
                close_e(&format!("adam param {what}"), gp.as_slice(), &wp, 2e-6);
                close_e(&format!("adam exp_avg {what}"), gm.as_slice(), &wm, 2e-6);
                close_e(&format!("adam exp_avg_sq {what}"), gv.as_slice(), &wv, 2e-6);
                same_bits(&format!("adam param {what}"), gp.as_slice(), &tp);
                same_bits(&format!("adam exp_avg {what}"), gm.as_slice(), &tm);
                same_bits(&format!("adam exp_avg_sq {what}"), gv.as_slice(), &tv);
                p = gp.as_slice().to_vec();
                m = gm.as_slice().to_vec();
                v = gv.as_slice().to_vec();
            }
        }
    }
    println!("adam: {:.2} s", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------------------------

#[test]
fn dropout_kernels_draw_the_cpu_twins_mask_bit_for_bit() {
    let start = Instant::now();
    let seeds = [0u64, 42, 0xDEAD_BEEF_1234_5678];
    for (ni, &n) in [1usize, 3, 4, 5, 1023, 1029].iter().enumerate() {
        let mut x = random(n, -2.0, 2.0, 9900 + ni as u64);
        x[0] = -0.0; // the sign of a dropped zero must agree too
        let groups = n.div_ceil(4);
        for &seed in &seeds {
            // p exactly equal to the last (ragged) element's uniform: kept, since keep is u >= p.
            let tie = dropout::dropout_uniform(seed, (n - 1) as u64);
            for p in [0.0f32, 0.1, 0.5, 1.0, tie] {
                let what = format!("n {n} seed {seed:#x} p {p}");
                let mut twin_mask = vec![0.0; n];
                dropout::dropout_mask(seed, p, &mut twin_mask);
                let mut twin_y = vec![0.0; n];
                dropout::dropout_forward(seed, p, &x, &mut twin_y);
                // The twin's mask is the documented function of (seed, index).
                for (idx, &mv) in twin_mask.iter().enumerate() {
                    let keep = dropout::dropout_uniform(seed, idx as u64) >= p;
                    assert_eq!(mv != 0.0, keep, "{what}: twin mask {idx}");
                }
                // The intended grid and a single small block striding over the groups.
                for (gx, block) in [(d(groups.div_ceil(256)), 256u32), (1, 32)] {
                    let ni = i(n);
                    let state = (Guarded::f32(&vec![f32::NAN; n]),);
                    let (mask,) = launch("dropout_mask", state, move |(mask,)| {
                        // SAFETY: a live guarded buffer of n floats.
                        unsafe {
                            emu::emu_dropout_mask(
                                gx,
                                1,
                                1,
                                block,
                                1,
                                1,
                                seed,
                                p,
                                mask.mut_ptr(),
                                ni,
                            )
                        }
                    });
                    guard(&mask, "dropout_mask mask");
                    same_bits(
                        &format!("dropout_mask {what} grid {gx}"),
                        mask.as_slice(),
                        &twin_mask,
                    );

                    let state = (
                        Guarded::f32(&x),
                        Guarded::f32(&vec![f32::NAN; n]),
                        Guarded::f32(&vec![f32::NAN; n]),
                    );
                    let (gx_, y, mask) = launch("dropout_forward", state, move |(x, y, mask)| {
                        // SAFETY: live guarded buffers of n floats.
                        unsafe {
                            emu::emu_dropout_forward(
                                gx,
                                1,
                                1,
                                block,
                                1,
                                1,
                                seed,
                                p,
                                x.ptr(),
                                y.mut_ptr(),
                                mask.mut_ptr(),
                                ni,
                            )
                        }
                    });
                    guard(&gx_, "dropout_forward x");
                    guard(&y, "dropout_forward y");
                    guard(&mask, "dropout_forward mask");
                    same_bits(
                        &format!("dropout_forward y {what} grid {gx}"),
                        y.as_slice(),
                        &twin_y,
                    );
                    same_bits(
                        &format!("dropout_forward mask {what} grid {gx}"),
                        mask.as_slice(),
                        &twin_mask,
                    );
                }
            }
        }
    }
    println!("dropout: {:.2} s", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// half.cu
// ---------------------------------------------------------------------------------------------

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
            "{what}: element {idx}: emulated {g:#06x}, CPU twin {w:#06x}"
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
                        emu::emu_convert_f32_to_bf16(
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
                        emu::emu_convert_f32_to_f16(
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
                    emu::emu_convert_bf16_to_f32(64, 1, 1, 256, 1, 1, x.ptr(), y.mut_ptr(), nt)
                } else {
                    emu::emu_convert_f16_to_f32(64, 1, 1, 256, 1, 1, x.ptr(), y.mut_ptr(), nt)
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
                "{name}: pattern {idx:#06x}: emulated {:#010x}, CPU twin {:#010x}",
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
                            HalfFormat::F16 => emu::emu_hgemm_f16(
                                gx, gy, 1, 16, 16, 1, mi, ni, ki, alpha, a, rsa, csa, b, rsb, csb,
                                beta, c, ni, 1),
                            HalfFormat::Bf16 => emu::emu_hgemm_bf16(
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
