//! Softmax, log-softmax and fused softmax + cross-entropy over the last axis.
//!
//! Input is `[rows, cols]` row-major (rows = batch, cols = classes). Per row, with
//! `m = max_c x[c]` and `s = Σ_c exp(x[c] - m)`:
//!
//! ```text
//! softmax(x)[c]     = exp(x[c] - m) / s
//! log_softmax(x)[c] = x[c] - m - ln s
//! dX                = dY - softmax(x) * Σ_c dY          (log-softmax backward)
//! loss              = (1/rows) Σ_r -log_softmax(x_r)[label_r]
//! dLogits           = (softmax(x) - onehot(label)) * dLoss / rows
//! ```
//!
//! Subtracting the row max first is what makes this stable: every exponent is <= 0, so
//! nothing overflows, and the largest term is exactly 1, so `s >= 1` and `ln s` is finite even
//! for logits like ±1e4. Fusing softmax with the loss avoids taking `ln` of a probability that
//! underflowed to 0.
//!
//! Rows are independent, so they are the unit of parallel work. The loss is reduced from
//! per-row values summed sequentially in f64, so it does not depend on the thread count.
//!
//! Reading order: the functions below (the portable reference, which is also the CPU path),
//! then [`cuda`] (launching `kernels/softmax_ce.cu`: one block per row), then `twin_tests.rs`,
//! which runs those kernels on the virtual device against the functions here.

pub mod cuda;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;

use rayon::prelude::*;

fn check_len(kernel: &str, what: &str, actual: usize, expected: usize, rows: usize, cols: usize) {
    assert!(
        actual == expected,
        "{kernel}: {what} has {actual} elements, expected {expected} (rows {rows} x cols {cols})"
    );
}

/// Rows per rayon task: enough to give each task a few thousand elements of work, because a
/// typical call (batch 100 x 10 classes) is far too small to split row by row.
fn min_rows(cols: usize) -> usize {
    (4096 / cols.max(1)).max(1)
}

/// Row max and `Σ exp(x - max)` of one row.
#[inline]
fn max_and_sum_exp(x: &[f32]) -> (f32, f32) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s = x.iter().map(|&v| (v - m).exp()).sum::<f32>();
    (m, s)
}

/// Numerically stable `out[r,c] = x[r,c] - max_r - ln Σ_c exp(x[r,c] - max_r)`.
pub fn log_softmax_forward(rows: usize, cols: usize, input: &[f32], output: &mut [f32]) {
    const NAME: &str = "log_softmax_forward";
    check_len(NAME, "input", input.len(), rows * cols, rows, cols);
    check_len(NAME, "output", output.len(), rows * cols, rows, cols);
    if cols == 0 {
        return;
    }
    output
        .par_chunks_mut(cols)
        .zip(input.par_chunks(cols))
        .with_min_len(min_rows(cols))
        .for_each(|(y, x)| {
            let (m, s) = max_and_sum_exp(x);
            let shift = m + s.ln();
            for (o, &v) in y.iter_mut().zip(x) {
                *o = v - shift;
            }
        });
}

/// Backward of [`log_softmax_forward`] from its output: `dX = dY - exp(output) * Σ_c dY`.
pub fn log_softmax_backward(
    rows: usize,
    cols: usize,
    output: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    const NAME: &str = "log_softmax_backward";
    check_len(NAME, "output", output.len(), rows * cols, rows, cols);
    check_len(
        NAME,
        "grad_output",
        grad_output.len(),
        rows * cols,
        rows,
        cols,
    );
    check_len(
        NAME,
        "grad_input",
        grad_input.len(),
        rows * cols,
        rows,
        cols,
    );
    if cols == 0 {
        return;
    }
    grad_input
        .par_chunks_mut(cols)
        .zip(output.par_chunks(cols).zip(grad_output.par_chunks(cols)))
        .with_min_len(min_rows(cols))
        .for_each(|(dx, (y, dy))| {
            let sum_dy: f32 = dy.iter().sum();
            for ((d, &yv), &g) in dx.iter_mut().zip(y).zip(dy) {
                *d = g - yv.exp() * sum_dy;
            }
        });
}

/// Numerically stable softmax over each row (inference path).
pub fn softmax_forward(rows: usize, cols: usize, input: &[f32], output: &mut [f32]) {
    const NAME: &str = "softmax_forward";
    check_len(NAME, "input", input.len(), rows * cols, rows, cols);
    check_len(NAME, "output", output.len(), rows * cols, rows, cols);
    if cols == 0 {
        return;
    }
    output
        .par_chunks_mut(cols)
        .zip(input.par_chunks(cols))
        .with_min_len(min_rows(cols))
        .for_each(|(y, x)| {
            softmax_row(x, y);
        });
}

/// Writes the softmax of `x` into `y` and returns `(max, Σ exp(x - max))` for reuse.
#[inline]
fn softmax_row(x: &[f32], y: &mut [f32]) -> (f32, f32) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0f32;
    for (o, &v) in y.iter_mut().zip(x) {
        let e = (v - m).exp();
        *o = e;
        s += e;
    }
    let inv = 1.0 / s;
    for o in y.iter_mut() {
        *o *= inv;
    }
    (m, s)
}

fn check_labels(kernel: &str, cols: usize, labels: &[u32]) {
    for (r, &l) in labels.iter().enumerate() {
        assert!(
            (l as usize) < cols,
            "{kernel}: row {r} has label {l}, but there are only {cols} classes"
        );
    }
}

/// Fused softmax + cross-entropy on integer labels. Returns the mean over rows of
/// `-log softmax(x)[label]` (NaN when `rows == 0`, like PyTorch's mean of nothing) and writes
/// `probs = softmax(logits)` for the backward pass. A label `>= cols` panics naming the row,
/// the label and the class count.
pub fn softmax_cross_entropy_forward(
    rows: usize,
    cols: usize,
    logits: &[f32],
    labels: &[u32],
    probs: &mut [f32],
) -> f32 {
    const NAME: &str = "softmax_cross_entropy_forward";
    check_len(NAME, "logits", logits.len(), rows * cols, rows, cols);
    check_len(NAME, "labels", labels.len(), rows, rows, cols);
    check_len(NAME, "probs", probs.len(), rows * cols, rows, cols);
    check_labels(NAME, cols, labels);
    if rows == 0 {
        return f32::NAN;
    }
    let mut row_loss = vec![0.0f32; rows];
    probs
        .par_chunks_mut(cols)
        .zip(logits.par_chunks(cols))
        .zip(labels.par_iter().zip(row_loss.par_iter_mut()))
        .with_min_len(min_rows(cols))
        .for_each(|((p, x), (&label, loss))| {
            let (m, s) = softmax_row(x, p);
            // -log softmax[label] from the logits, not from p: p[label] may have underflowed.
            *loss = m + s.ln() - x[label as usize];
        });
    let total: f64 = row_loss.iter().map(|&l| l as f64).sum();
    (total / rows as f64) as f32
}

/// `dLogits = (probs - onehot(label)) * grad_loss / rows`. Overwrites `grad_logits`.
pub fn softmax_cross_entropy_backward(
    rows: usize,
    cols: usize,
    probs: &[f32],
    labels: &[u32],
    grad_loss: f32,
    grad_logits: &mut [f32],
) {
    const NAME: &str = "softmax_cross_entropy_backward";
    check_len(NAME, "probs", probs.len(), rows * cols, rows, cols);
    check_len(NAME, "labels", labels.len(), rows, rows, cols);
    check_len(
        NAME,
        "grad_logits",
        grad_logits.len(),
        rows * cols,
        rows,
        cols,
    );
    check_labels(NAME, cols, labels);
    if rows == 0 {
        return;
    }
    let scale = grad_loss / rows as f32;
    grad_logits
        .par_chunks_mut(cols)
        .zip(probs.par_chunks(cols).zip(labels.par_iter()))
        .with_min_len(min_rows(cols))
        .for_each(|(d, (p, &label))| {
            for (dv, &pv) in d.iter_mut().zip(p) {
                *dv = pv * scale;
            }
            d[label as usize] = (p[label as usize] - 1.0) * scale;
        });
}
