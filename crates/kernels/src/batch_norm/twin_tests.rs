//! The kernels of `kernels/batch_norm.cu` run on the virtual device (NVRTC's PTX) and compared with their CPU
//! twins in this module and with an f64 reference. Shapes are small and ragged against the
//! blocks; grids smaller than the channel count exercise the grid-stride loops, and every
//! guarded buffer is checked for out-of-bounds writes after every launch.
//!
//! Tolerances (`|got - ref| <= tol * scale`; the CPU twin is held to the same bound):
//!
//! | output                        | tol  | scale                                        |
//! |-------------------------------|------|----------------------------------------------|
//! | train: mean                   | 1e-6 | Σ|x|/m                                       |
//! | train: var, invstd            | 1e-5 | |ref|                                        |
//! | train: output                 | 2e-6 | (|x|+|mean|+Σ|x|/m)·|invstd·gamma| + |beta|  |
//! | eval: output                  | 1e-6 | (|x|+|running_mean|)·|gamma/sqrt(var+eps)| + |beta| |
//! | backward: grad_input          | 1e-5 | |k|(|dy|+|a|+|xhat||b|) from sums of absolute values |
//! | backward: grad_gamma, grad_beta | 1e-5 | Σ|dy·xhat|, Σ|dy|                          |

use crate::cuda::twin::{self as kernels, Guarded};
use crate::test_support::{abs_scale, close, grid_stride_launches, guard, i, launch, random};
use std::time::Instant;

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

/// One case's shape and flags, as the twins and the kernels take them.
#[derive(Clone, Copy)]
struct Case {
    n: usize,
    c: usize,
    sp: usize,
    affine: bool,
    want_affine: bool,
    grid: u32,
    block: u32,
}

impl Case {
    fn len(&self) -> usize {
        self.n * self.c * self.sp
    }

    fn m(&self) -> usize {
        self.n * self.sp
    }

    fn channel(&self, idx: usize) -> usize {
        (idx / self.sp) % self.c
    }

    fn ints(&self) -> (i32, i32, i32) {
        (i(self.n), i(self.c), i(self.sp))
    }
}

/// The f64 training forward and the scales its outputs are compared with.
struct TrainReference {
    mean: Vec<f64>,
    var: Vec<f64>,
    invstd: Vec<f64>,
    mean_scale: Vec<f64>,
    y: Vec<f64>,
    y_scale: Vec<f64>,
}

fn train_reference(case: Case, eps: f32, x: &[f32], gamma: &[f64], beta: &[f64]) -> TrainReference {
    let (c, sp, m) = (case.c, case.sp, case.m());
    let at = |j: usize, ci: usize| ((j / sp) * c + ci) * sp + j % sp;
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
    let (mut y, mut y_scale) = (vec![0.0; case.len()], vec![0.0; case.len()]);
    for idx in 0..case.len() {
        let ci = case.channel(idx);
        y[idx] = (x[idx] as f64 - mean[ci]) * invstd[ci] * gamma[ci] + beta[ci];
        y_scale[idx] = (x[idx].abs() as f64 + mean[ci].abs() + mean_scale[ci])
            * (invstd[ci] * gamma[ci]).abs()
            + beta[ci].abs();
    }
    TrainReference {
        mean,
        var,
        invstd,
        mean_scale,
        y,
        y_scale,
    }
}

/// The training forward's outputs: y, save_mean, save_invstd, batch_var.
struct TrainOutputs {
    y: Vec<f32>,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    var: Vec<f32>,
}

fn check_forward(who: &str, what: &str, want: &TrainReference, got: &TrainOutputs) {
    let name = |part: &str| format!("{who} {part} {what}");
    close(&name("mean"), &got.mean, &want.mean, &want.mean_scale, 1e-6);
    let invstd_scale = abs_scale(&want.invstd, 1e-30);
    close(
        &name("invstd"),
        &got.invstd,
        &want.invstd,
        &invstd_scale,
        1e-5,
    );
    let var_scale = abs_scale(&want.var, 1e-30);
    close(&name("var"), &got.var, &want.var, &var_scale, 1e-5);
    close(&name("output"), &got.y, &want.y, &want.y_scale, 2e-6);
}

fn twin_train(case: Case, eps: f32, x: &[f32], gamma: &[f32], beta: &[f32]) -> TrainOutputs {
    let c = case.c;
    let mut t = TrainOutputs {
        y: vec![0.0; case.len()],
        mean: vec![0.0; c],
        invstd: vec![0.0; c],
        var: vec![0.0; c],
    };
    super::batch_norm_forward_train(
        case.n,
        c,
        case.sp,
        eps,
        x,
        case.affine.then_some(gamma),
        case.affine.then_some(beta),
        &mut t.y,
        &mut t.mean,
        &mut t.invstd,
        &mut t.var,
    );
    t
}

fn device_train(case: Case, eps: f32, x: &[f32], gamma: &[f32], beta: &[f32]) -> TrainOutputs {
    let (c, affine, grid, block) = (case.c, case.affine, case.grid, case.block);
    let state = (
        Guarded::f32(x),
        Guarded::f32(gamma),
        Guarded::f32(beta),
        Guarded::f32(&vec![f32::NAN; case.len()]),
        [
            Guarded::f32(&vec![f32::NAN; c]),
            Guarded::f32(&vec![f32::NAN; c]),
            Guarded::f32(&vec![f32::NAN; c]),
        ],
    );
    let (ni, cii, spi) = case.ints();
    let (gx, gg, gb, y, [sm, si, bv]) = launch(
        "batch_norm_forward_train",
        state,
        move |(x, g, b, y, [sm, si, bv])| {
            // SAFETY: live guarded buffers of the shape's sizes; gamma/beta null (never
            // read, as the kernel promises) without affine.
            unsafe {
                kernels::batch_norm_forward_train(
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
    TrainOutputs {
        y: y.as_slice().to_vec(),
        mean: sm.as_slice().to_vec(),
        invstd: si.as_slice().to_vec(),
        var: bv.as_slice().to_vec(),
    }
}

/// The f64 backward from the twin's saved statistics, and the scales it is compared with.
struct BackwardReference {
    dx: Vec<f64>,
    dx_scale: Vec<f64>,
    sdy: Vec<f64>,
    sdyx: Vec<f64>,
    sdy_abs: Vec<f64>,
    sdyx_abs: Vec<f64>,
}

fn backward_reference(
    case: Case,
    x: &[f32],
    gamma: &[f64],
    saved: &TrainOutputs,
    dy: &[f32],
) -> BackwardReference {
    let (c, m, len) = (case.c, case.m(), case.len());
    let (tm, ti) = (&saved.mean, &saved.invstd);
    let (mut sdy, mut sdyx) = (vec![0.0f64; c], vec![0.0f64; c]);
    let (mut sdy_abs, mut sdyx_abs) = (vec![1e-30f64; c], vec![1e-30f64; c]);
    for idx in 0..len {
        let ci = case.channel(idx);
        let xhat = (x[idx] as f64 - tm[ci] as f64) * ti[ci] as f64;
        sdy[ci] += dy[idx] as f64;
        sdyx[ci] += dy[idx] as f64 * xhat;
        sdy_abs[ci] += (dy[idx] as f64).abs();
        sdyx_abs[ci] += (dy[idx] as f64 * xhat).abs();
    }
    let (mut dx, mut dx_scale) = (vec![0.0; len], vec![0.0; len]);
    for idx in 0..len {
        let ci = case.channel(idx);
        let k = gamma[ci] * ti[ci] as f64;
        let (a, b) = (sdy[ci] / m as f64, sdyx[ci] / m as f64);
        let xhat = (x[idx] as f64 - tm[ci] as f64) * ti[ci] as f64;
        dx[idx] = k * (dy[idx] as f64 - a - xhat * b);
        // |a|, |b| replaced by the sums of absolute values they come from: a sum that cancels
        // keeps the rounding error of its terms.
        let xhat_abs = (x[idx].abs() as f64 + (tm[ci] as f64).abs()) * ti[ci] as f64;
        let (a_abs, b_abs) = (sdy_abs[ci] / m as f64, sdyx_abs[ci] / m as f64);
        dx_scale[idx] = k.abs() * ((dy[idx] as f64).abs() + a_abs + xhat_abs * b_abs) + 1e-30;
    }
    BackwardReference {
        dx,
        dx_scale,
        sdy,
        sdyx,
        sdy_abs,
        sdyx_abs,
    }
}

/// grad_input, and grad_gamma / grad_beta where they were asked for.
type BackwardOutputs = (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>);

fn check_backward(who: &str, what: &str, want: &BackwardReference, got: &BackwardOutputs) {
    let name = |part: &str| format!("{who} {part} {what}");
    close(&name("grad_input"), &got.0, &want.dx, &want.dx_scale, 1e-5);
    if let Some(dg) = &got.1 {
        close(&name("grad_gamma"), dg, &want.sdyx, &want.sdyx_abs, 1e-5);
    }
    if let Some(db) = &got.2 {
        close(&name("grad_beta"), db, &want.sdy, &want.sdy_abs, 1e-5);
    }
}

fn twin_backward(
    case: Case,
    x: &[f32],
    gamma: &[f32],
    saved: &TrainOutputs,
    dy: &[f32],
) -> BackwardOutputs {
    let c = case.c;
    let (mut tdx, mut tdg, mut tdb) = (vec![0.0; case.len()], vec![0.0; c], vec![0.0; c]);
    super::batch_norm_backward(
        case.n,
        c,
        case.sp,
        x,
        case.affine.then_some(gamma),
        &saved.mean,
        &saved.invstd,
        dy,
        &mut tdx,
        case.want_affine.then_some(&mut tdg[..]),
        case.want_affine.then_some(&mut tdb[..]),
    );
    let wanted = |v: Vec<f32>| case.want_affine.then_some(v);
    (tdx, wanted(tdg), wanted(tdb))
}

fn device_backward(
    case: Case,
    x: &[f32],
    gamma: &[f32],
    saved: &TrainOutputs,
    dy: &[f32],
) -> BackwardOutputs {
    let (c, affine, want_affine) = (case.c, case.affine, case.want_affine);
    let (grid, block) = (case.grid, case.block);
    let state = (
        [
            Guarded::f32(x),
            Guarded::f32(gamma),
            Guarded::f32(&saved.mean),
            Guarded::f32(&saved.invstd),
            Guarded::f32(dy),
        ],
        [
            Guarded::f32(&vec![f32::NAN; case.len()]),
            Guarded::f32(&vec![f32::NAN; c]),
            Guarded::f32(&vec![f32::NAN; c]),
        ],
    );
    let (ni, cii, spi) = case.ints();
    let (inputs, [dx, dg, db]) = launch(
        "batch_norm_backward",
        state,
        move |([x, g, sm, si, dy], [dx, dg, db])| {
            // SAFETY: live guarded buffers of the shape's sizes; gamma / grad_gamma /
            // grad_beta null when their flag is off (the kernel promises not to touch them).
            unsafe {
                kernels::batch_norm_backward(
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
    let wanted = |g: &Guarded<f32>| want_affine.then(|| g.as_slice().to_vec());
    (dx.as_slice().to_vec(), wanted(&dg), wanted(&db))
}

#[test]
fn batch_norm_train_and_backward_match_cpu_twin() {
    let start = Instant::now();
    let eps = 1e-5f32;
    for (bi, &(n, c, sp, offset, affine, want_affine, grid, block)) in BN_CASES.iter().enumerate() {
        let case = Case {
            n,
            c,
            sp,
            affine,
            want_affine,
            grid,
            block,
        };
        let seed = 8000 + 10 * bi as u64;
        let x: Vec<f32> = random(case.len(), -1.0, 1.0, seed)
            .iter()
            .enumerate()
            // Channels with different spreads.
            .map(|(idx, &v)| offset + v * (1.0 + ((idx / sp) % c) as f32))
            .collect();
        let gamma = random(c, 0.5, 2.0, seed + 1);
        let beta = random(c, -1.0, 1.0, seed + 2);
        let what = format!("case {bi} n {n} c {c} spatial {sp} affine {affine}");
        let g_of: Vec<f64> = (0..c)
            .map(|ci| if affine { gamma[ci] as f64 } else { 1.0 })
            .collect();
        let b_of: Vec<f64> = (0..c)
            .map(|ci| if affine { beta[ci] as f64 } else { 0.0 })
            .collect();

        let want = train_reference(case, eps, &x, &g_of, &b_of);
        let twin = twin_train(case, eps, &x, &gamma, &beta);
        check_forward("CPU twin", &what, &want, &twin);
        let on_device = device_train(case, eps, &x, &gamma, &beta);
        check_forward("virtual device", &what, &want, &on_device);

        // Backward, from the twin's saved statistics (the inputs both sides get).
        let dy = random(case.len(), -1.0, 1.0, seed + 3);
        let want = backward_reference(case, &x, &g_of, &twin, &dy);
        let twin_grads = twin_backward(case, &x, &gamma, &twin, &dy);
        check_backward("CPU twin", &what, &want, &twin_grads);
        let on_device = device_backward(case, &x, &gamma, &twin, &dy);
        check_backward("virtual device", &what, &want, &on_device);
    }
    println!(
        "batch norm train/backward: {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

/// `batch_norm_forward_eval` launched on the virtual device with `(grid, block)`.
fn device_eval(
    case: Case,
    eps: f32,
    x: &[f32],
    (rm, rv): (&[f32], &[f32]),
    gamma: &[f32],
    beta: &[f32],
    (gx, block): (u32, u32),
) -> Vec<f32> {
    let affine = case.affine;
    let state = (
        [
            Guarded::f32(x),
            Guarded::f32(rm),
            Guarded::f32(rv),
            Guarded::f32(gamma),
            Guarded::f32(beta),
        ],
        Guarded::f32(&vec![f32::NAN; case.len()]),
    );
    let (ni, cii, spi) = case.ints();
    let (inputs, y) = launch(
        "batch_norm_forward_eval",
        state,
        move |([x, rm, rv, g, b], y)| {
            // SAFETY: live guarded buffers of the shape's sizes; gamma/beta null
            // without affine.
            unsafe {
                kernels::batch_norm_forward_eval(
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
    y.as_slice().to_vec()
}

#[test]
fn batch_norm_eval_matches_cpu_twin() {
    let start = Instant::now();
    let eps = 1e-3f32;
    for (bi, &(n, c, sp, offset, affine, ..)) in BN_CASES.iter().enumerate() {
        let case = Case {
            n,
            c,
            sp,
            affine,
            want_affine: false,
            grid: 1,
            block: 1,
        };
        let len = case.len();
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
            let ci = case.channel(idx);
            let g = if affine { gamma[ci] as f64 } else { 1.0 };
            let b = if affine { beta[ci] as f64 } else { 0.0 };
            let s = g / (rv[ci] as f64 + eps as f64).sqrt();
            want[idx] = (x[idx] as f64 - rm[ci] as f64) * s + b;
            scale[idx] = (x[idx].abs() as f64 + rm[ci].abs() as f64) * s.abs() + b.abs();
        }
        let what = format!("case {bi} n {n} c {c} spatial {sp} affine {affine}");
        let mut twin = vec![0.0; len];
        super::batch_norm_forward_eval(
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
        for (gx, block) in grid_stride_launches(len) {
            let y = device_eval(case, eps, &x, (&rm, &rv), &gamma, &beta, (gx, block));
            close(
                &format!("bn eval {what} grid {gx}"),
                &y,
                &want,
                &scale,
                1e-6,
            );
        }
    }
    println!("batch norm eval: {:.2} s", start.elapsed().as_secs_f64());
}
