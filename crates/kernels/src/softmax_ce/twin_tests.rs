//! The kernels of `kernels/softmax_ce.cu` run on the virtual device (NVRTC's PTX) and compared with their CPU
//! twins in this module and with an f64 reference. Class counts from 1 to 1000, grids smaller
//! than the row count (grid-stride loops) and blocks of one to 32 warps; the last row of each
//! input is huge, so the max shift is what keeps it finite. Every guarded buffer is checked for
//! out-of-bounds writes after every launch.
//!
//! Tolerances (`|got - ref| <= tol * scale`; the CPU twin is held to the same bound):
//!
//! | kernel                          | tol  | scale                                  | vs CPU twin |
//! |---------------------------------|------|----------------------------------------|-------------|
//! | softmax, log_softmax, CE fwd    | 1e-5 | |ref| (probs), |x|+|m|+|ln s|+1 (logs) | same bound  |
//! | log_softmax bwd                 | 1e-5 | |dy| + exp(y)·Σ|dy|                    | same bound  |
//! | softmax CE bwd                  | 1e-6 | |ref| + tiny                           | exact       |

use crate::cuda::twin::{self as kernels, Guarded};
use crate::test_support::{
    abs_scale, close, grid_stride_launches, guard, i, launch, random, same, widen,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

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

/// A launch shape of [`SOFTMAX_SHAPES`].
#[derive(Clone, Copy)]
struct Shape {
    rows: usize,
    cols: usize,
    grid: u32,
    block: u32,
}

impl Shape {
    fn what(&self) -> String {
        let Shape {
            rows,
            cols,
            grid,
            block,
        } = self;
        format!("[{rows}, {cols}] grid {grid} block {block}")
    }
}

/// `softmax_forward`, or `log_softmax_forward` when `log`, on the virtual device.
fn device_softmax_forward(log: bool, s: Shape, x: &[f32]) -> Vec<f32> {
    let kernel = if log {
        "log_softmax_forward"
    } else {
        "softmax_forward"
    };
    let (r, c, grid, block) = (i(s.rows), i(s.cols), s.grid, s.block);
    let (gx, y) = launch(
        kernel,
        (Guarded::f32(x), Guarded::f32(&vec![0.0; x.len()])),
        move |(x, y)| {
            let (x, y) = (x.ptr(), y.mut_ptr());
            // SAFETY: live guarded buffers of rows*cols floats.
            unsafe {
                if log {
                    kernels::log_softmax_forward(grid, 1, 1, block, 1, 1, r, c, x, y)
                } else {
                    kernels::softmax_forward(grid, 1, 1, block, 1, 1, r, c, x, y)
                }
            }
        },
    );
    guard(&gx, &format!("{kernel} input"));
    guard(&y, &format!("{kernel} output"));
    y.as_slice().to_vec()
}

fn device_log_softmax_backward(s: Shape, y: &[f32], dy: &[f32]) -> Vec<f32> {
    let (r, c, grid, block) = (i(s.rows), i(s.cols), s.grid, s.block);
    let state = (
        Guarded::f32(y),
        Guarded::f32(dy),
        Guarded::f32(&vec![0.0; y.len()]),
    );
    let (gy, gdy, dx) = launch("log_softmax_backward", state, move |(y, dy, dx)| {
        // SAFETY: live guarded buffers of rows*cols floats.
        unsafe {
            kernels::log_softmax_backward(
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
    dx.as_slice().to_vec()
}

/// Softmax and log-softmax forward: the twins and the kernels against the f64 reference.
/// Returns the twin's log-softmax, the input of the backward check.
fn check_softmax_forward(s: Shape, x: &[f32]) -> Vec<f32> {
    let (rows, cols, n) = (s.rows, s.cols, s.rows * s.cols);
    let stats = row_stats(x, cols);
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
    let what = s.what();

    let mut twin_p = vec![0.0; n];
    super::softmax_forward(rows, cols, x, &mut twin_p);
    let name = format!("CPU twin softmax {what}");
    close(&name, &twin_p, &want_p, &scale_p, 1e-5);
    let mut twin_l = vec![0.0; n];
    super::log_softmax_forward(rows, cols, x, &mut twin_l);
    let name = format!("CPU twin log_softmax {what}");
    close(&name, &twin_l, &want_l, &scale_l, 1e-5);

    let y = device_softmax_forward(false, s, x);
    close(&format!("softmax {what}"), &y, &want_p, &scale_p, 1e-5);
    let y = device_softmax_forward(true, s, x);
    close(&format!("log_softmax {what}"), &y, &want_l, &scale_l, 1e-5);
    twin_l
}

/// Log-softmax backward from the twin's output `y`.
fn check_log_softmax_backward(s: Shape, y: &[f32], dy: &[f32]) {
    let (rows, cols) = (s.rows, s.cols);
    let mut want_dx = vec![];
    let mut scale_dx = vec![];
    for row in 0..rows {
        let dyr = &dy[row * cols..(row + 1) * cols];
        let sum: f64 = dyr.iter().map(|&v| v as f64).sum();
        let sum_abs: f64 = dyr.iter().map(|&v| (v as f64).abs()).sum();
        for col in 0..cols {
            let e = (y[row * cols + col] as f64).exp();
            want_dx.push(dyr[col] as f64 - e * sum);
            scale_dx.push((dyr[col] as f64).abs() + e * sum_abs + 1e-30);
        }
    }
    let what = s.what();
    let mut twin_dx = vec![0.0; rows * cols];
    super::log_softmax_backward(rows, cols, y, dy, &mut twin_dx);
    let name = format!("CPU twin log_softmax bwd {what}");
    close(&name, &twin_dx, &want_dx, &scale_dx, 1e-5);
    let dx = device_log_softmax_backward(s, y, dy);
    let name = format!("log_softmax bwd {what}");
    close(&name, &dx, &want_dx, &scale_dx, 1e-5);
}

#[test]
fn softmax_and_log_softmax_match_cpu_twin() {
    let start = Instant::now();
    for (si, &(rows, cols, grid, block)) in SOFTMAX_SHAPES.iter().enumerate() {
        let s = Shape {
            rows,
            cols,
            grid,
            block,
        };
        let x = softmax_logits(rows, cols, 6000 + si as u64);
        let twin_l = check_softmax_forward(s, &x);
        let dy = random(rows * cols, -1.0, 1.0, 6100 + si as u64);
        check_log_softmax_backward(s, &twin_l, &dy);
    }
    println!("softmax: {:.2} s", start.elapsed().as_secs_f64());
}

fn device_ce_forward(
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
                kernels::softmax_cross_entropy_forward(
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

fn device_ce_backward(
    (rows, cols): (usize, usize),
    probs: &[f32],
    labels: &[u32],
    grad_loss: f32,
    (gx, block): (u32, u32),
) -> Vec<f32> {
    let (r, c) = (i(rows), i(cols));
    let state = (
        Guarded::f32(probs),
        Guarded::new(labels, 0xdead_beef),
        Guarded::f32(&vec![f32::NAN; rows * cols]),
    );
    let (gp, gl, dx) = launch(
        "softmax_cross_entropy_backward",
        state,
        move |(p, l, dx)| {
            // SAFETY: live guarded buffers: rows*cols probs/grads, rows labels.
            unsafe {
                kernels::softmax_cross_entropy_backward(
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
    dx.as_slice().to_vec()
}

/// Cross-entropy forward: probabilities, each row's loss and the mean, from the twin and the
/// kernel, against the f64 reference. Returns the twin's probabilities.
fn check_ce_forward(s: Shape, x: &[f32], labels: &[u32]) -> Vec<f32> {
    let (rows, cols) = (s.rows, s.cols);
    let stats = row_stats(x, cols);
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
    let what = s.what();

    let mut twin_p = vec![0.0; rows * cols];
    let twin_loss = super::softmax_cross_entropy_forward(rows, cols, x, labels, &mut twin_p);
    let name = format!("CPU twin CE probs {what}");
    close(&name, &twin_p, &want_p, &scale_p, 1e-5);
    let (p, row_loss) = device_ce_forward(rows, cols, x, labels, s.grid, s.block);
    close(&format!("CE probs {what}"), &p, &want_p, &scale_p, 1e-5);
    let name = format!("CE row loss {what}");
    close(&name, &row_loss, &want_loss, &scale_loss, 1e-5);
    // The host's reduction (f64 sum in row order / rows) against the twin's mean.
    let mean = row_loss.iter().map(|&l| l as f64).sum::<f64>() / rows as f64;
    let mean_want = want_loss.iter().sum::<f64>() / rows as f64;
    let mean_scale = scale_loss.iter().sum::<f64>() / rows as f64;
    let name = format!("CE mean loss {what}");
    close(&name, &[mean as f32], &[mean_want], &[mean_scale], 1e-5);
    let name = format!("CPU twin CE mean loss {what}");
    close(&name, &[twin_loss], &[mean_want], &[mean_scale], 1e-5);
    twin_p
}

/// Cross-entropy backward from the twin's probabilities: elementwise, so exact against the
/// twin at every launch shape.
fn check_ce_backward(s: Shape, probs: &[f32], labels: &[u32]) {
    let (rows, cols) = (s.rows, s.cols);
    let grad_loss = 0.7f32;
    let mut twin_dx = vec![0.0; rows * cols];
    super::softmax_cross_entropy_backward(rows, cols, probs, labels, grad_loss, &mut twin_dx);
    let want_dx: Vec<f64> = probs
        .iter()
        .enumerate()
        .map(|(idx, &pv)| {
            let hot = (idx % cols) as u32 == labels[idx / cols];
            (pv as f64 - hot as u8 as f64) * grad_loss as f64 / rows as f64
        })
        .collect();
    let scale_dx: Vec<f64> = want_dx.iter().map(|w| w.abs() + 1e-30).collect();
    let what = s.what();
    let name = format!("CPU twin CE bwd {what}");
    close(&name, &twin_dx, &want_dx, &scale_dx, 1e-6);
    for (gx, block) in grid_stride_launches(rows * cols) {
        let dx = device_ce_backward((rows, cols), probs, labels, grad_loss, (gx, block));
        close(&format!("CE bwd {what}"), &dx, &want_dx, &scale_dx, 1e-6);
        same(&format!("CE bwd {what} grid {gx}"), &dx, &twin_dx);
    }
}

#[test]
fn softmax_cross_entropy_matches_cpu_twin() {
    let start = Instant::now();
    for (si, &(rows, cols, grid, block)) in SOFTMAX_SHAPES.iter().enumerate() {
        let s = Shape {
            rows,
            cols,
            grid,
            block,
        };
        let x = softmax_logits(rows, cols, 7000 + si as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(7100 + si as u64);
        let labels: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..cols as u32))
            .collect();
        let twin_p = check_ce_forward(s, &x, &labels);
        check_ce_backward(s, &twin_p, &labels);
    }
    println!("softmax CE: {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn softmax_cross_entropy_forward_out_of_range_label_gives_nan_not_a_wild_read() {
    let (rows, cols) = (3, 10);
    let x = random(rows * cols, -2.0, 2.0, 7500);
    let labels = [3u32, 10, u32::MAX];
    let (p, loss) = device_ce_forward(rows, cols, &x, &labels, 3, 64);
    assert!(
        !loss[0].is_nan() && loss[1].is_nan() && loss[2].is_nan(),
        "{loss:?}"
    );
    let mut twin_p = vec![0.0; rows * cols];
    super::softmax_forward(rows, cols, &x, &mut twin_p);
    let scale = vec![1e-5; rows * cols];
    close("CE probs with bad labels", &p, &widen(&twin_p), &scale, 1.0);
}
