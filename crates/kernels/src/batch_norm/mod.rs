//! Batch normalisation over `[n, c, spatial]` (`spatial = h*w` for 2-D, 1 for 1-D), contiguous.
//!
//! Per channel `c`, over its `m = n*spatial` elements:
//!
//! ```text
//! mean    = Σ x / m                    var = Σ (x - mean)² / m   (biased)
//! invstd  = 1 / sqrt(var + eps)        xhat = (x - mean) * invstd
//! y       = xhat * gamma + beta        [n, c, spatial]
//! dbeta   = Σ dy                       dgamma = Σ dy * xhat       [c]
//! dx      = gamma * invstd / m * (m*dy - Σ dy - xhat * Σ(dy*xhat))
//! ```
//!
//! `gamma = None` means 1 and `beta = None` means 0 (`affine = false`).
//!
//! Statistics are accumulated in f64 with two passes (mean, then squared deviations): a
//! one-pass f32 `Σx² - (Σx)²/m` cancels catastrophically when the mean is large relative to
//! the spread. Each channel's sums run in one task in a fixed order (a few channels per task,
//! side by side), so they are bit-identical at any thread count. Channels' elements are
//! strided across the batch, so the per-element pass afterwards runs in parallel over
//! contiguous `(n, c)` planes instead.
//!
//! Reading order: the functions below (the portable reference, which is also the CPU path),
//! then [`cuda`] (launching `kernels/batch_norm.cu`: one block per channel for the sums), then
//! `twin_tests.rs`, which runs those kernels on the virtual device against the functions here.

pub mod cuda;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;

use rayon::prelude::*;

fn check_len(kernel: &str, what: &str, actual: usize, expected: usize) {
    assert!(
        actual == expected,
        "{kernel}: {what} has {actual} elements, expected {expected}"
    );
}

/// Channels whose sums one task runs side by side (independent f64 chains).
const CHANNEL_GROUP: usize = 4;

/// The channels of group `group`: `CHANNEL_GROUP` consecutive ones, the last repeated where
/// fewer than that remain.
fn group_channels(group: usize, c: usize) -> [usize; CHANNEL_GROUP] {
    std::array::from_fn(|k| (group * CHANNEL_GROUP + k).min(c - 1))
}

/// `Σ term(k, x)` over channel `channel[k]`'s elements, for the group's channels side by side:
/// each plane summed from -0.0 in element order (as `Iterator::sum` does), then the planes
/// added in batch order.
#[inline(always)]
fn grouped_sums(
    input: &[f32],
    (n, c, spatial): (usize, usize, usize),
    channel: [usize; CHANNEL_GROUP],
    term: impl Fn(usize, f64) -> f64,
) -> [f64; CHANNEL_GROUP] {
    let mut total = [0.0f64; CHANNEL_GROUP];
    for ni in 0..n {
        let planes = channel.map(|ci| &input[(ni * c + ci) * spatial..][..spatial]);
        let mut plane = [-0.0f64; CHANNEL_GROUP];
        // Element j of every plane in turn: the chains advance together.
        #[allow(clippy::needless_range_loop)]
        for j in 0..spatial {
            for k in 0..CHANNEL_GROUP {
                plane[k] += term(k, planes[k][j] as f64);
            }
        }
        for k in 0..CHANNEL_GROUP {
            total[k] += plane[k];
        }
    }
    total
}

/// Planes per rayon task, so that 1-D batch norm (planes of one element) is not split into
/// one task per element.
fn min_planes(spatial: usize) -> usize {
    (4096 / spatial.max(1)).max(1)
}

/// Applies `y = (x - shift[c]) * scale[c] + bias[c]` over `[n, c, spatial]`, parallel over
/// planes.
fn affine_planes(
    c: usize,
    spatial: usize,
    input: &[f32],
    output: &mut [f32],
    shift: &[f32],
    scale: &[f32],
    bias: &[f32],
) {
    if output.is_empty() {
        return;
    }
    output
        .par_chunks_mut(spatial)
        .zip(input.par_chunks(spatial))
        .enumerate()
        .with_min_len(min_planes(spatial))
        .for_each(|(plane, (y, x))| {
            let ci = plane % c;
            let (m, s, b) = (shift[ci], scale[ci], bias[ci]);
            for (o, &v) in y.iter_mut().zip(x) {
                *o = (v - m) * s + b;
            }
        });
}

fn gamma_beta(c: usize, gamma: Option<&[f32]>, beta: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
    (
        gamma.map_or_else(|| vec![1.0; c], <[f32]>::to_vec),
        beta.map_or_else(|| vec![0.0; c], <[f32]>::to_vec),
    )
}

/// Train mode: normalise with the batch's own per-channel mean and biased variance.
/// Writes `save_mean[c]`, `save_invstd[c]` (for the backward pass) and `batch_var[c]` (biased;
/// the caller applies the `m/(m-1)` correction when updating running statistics).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_train(
    n: usize,
    c: usize,
    spatial: usize,
    eps: f32,
    input: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    output: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    batch_var: &mut [f32],
) {
    const NAME: &str = "batch_norm_forward_train";
    let len = n * c * spatial;
    check_len(NAME, "input", input.len(), len);
    check_len(NAME, "output", output.len(), len);
    if let Some(gm) = gamma {
        check_len(NAME, "gamma", gm.len(), c);
    }
    if let Some(bt) = beta {
        check_len(NAME, "beta", bt.len(), c);
    }
    check_len(NAME, "save_mean", save_mean.len(), c);
    check_len(NAME, "save_invstd", save_invstd.len(), c);
    check_len(NAME, "batch_var", batch_var.len(), c);
    let m = n * spatial;
    assert!(
        m > 0 || c == 0,
        "{NAME}: no elements per channel (n {n} x spatial {spatial}) to take statistics over"
    );

    // Channels in groups of CHANNEL_GROUP per task: their sums are independent chains, so
    // running them side by side keeps the adder busy instead of waiting on each f64 add in
    // turn. Each channel's own additions happen in exactly the order of a one-channel loop
    // (per plane from -0.0, as `Iterator::sum` does, then plane by plane), so the statistics
    // do not depend on the grouping or the thread count.
    let mut stats = vec![(0.0f64, 0.0f64); c];
    stats
        .par_chunks_mut(CHANNEL_GROUP)
        .enumerate()
        .for_each(|(group, out)| {
            // A short last group repeats its last channel (computed, not stored), so every
            // group runs the same fixed-size loops, which keep the chains in registers.
            let channel = group_channels(group, c);
            let sum = grouped_sums(input, (n, c, spatial), channel, |_, v| v);
            let mean = sum.map(|s| s / m as f64);
            let sq = grouped_sums(input, (n, c, spatial), channel, |k, v| {
                let d = v - mean[k];
                d * d
            });
            for (k, o) in out.iter_mut().enumerate() {
                *o = (mean[k], sq[k] / m as f64);
            }
        });

    let (gm, bt) = gamma_beta(c, gamma, beta);
    let mut scale = vec![0.0f32; c];
    for ci in 0..c {
        let (mean, var) = stats[ci];
        let invstd = 1.0 / (var + eps as f64).sqrt();
        save_mean[ci] = mean as f32;
        save_invstd[ci] = invstd as f32;
        batch_var[ci] = var as f32;
        scale[ci] = (invstd * gm[ci] as f64) as f32;
    }
    affine_planes(c, spatial, input, output, save_mean, &scale, &bt);
}

/// Eval mode: `y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_eval(
    n: usize,
    c: usize,
    spatial: usize,
    eps: f32,
    input: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    output: &mut [f32],
) {
    const NAME: &str = "batch_norm_forward_eval";
    let len = n * c * spatial;
    check_len(NAME, "input", input.len(), len);
    check_len(NAME, "output", output.len(), len);
    check_len(NAME, "running_mean", running_mean.len(), c);
    check_len(NAME, "running_var", running_var.len(), c);
    if let Some(gm) = gamma {
        check_len(NAME, "gamma", gm.len(), c);
    }
    if let Some(bt) = beta {
        check_len(NAME, "beta", bt.len(), c);
    }
    let (gm, bt) = gamma_beta(c, gamma, beta);
    let scale: Vec<f32> = (0..c)
        .map(|ci| (gm[ci] as f64 / (running_var[ci] as f64 + eps as f64).sqrt()) as f32)
        .collect();
    affine_planes(c, spatial, input, output, running_mean, &scale, &bt);
}

/// Backward of [`batch_norm_forward_train`]. Overwrites `grad_input`, and `grad_gamma` /
/// `grad_beta` when given (they are independent of `gamma` being `None`).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    n: usize,
    c: usize,
    spatial: usize,
    input: &[f32],
    gamma: Option<&[f32]>,
    save_mean: &[f32],
    save_invstd: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
    grad_gamma: Option<&mut [f32]>,
    grad_beta: Option<&mut [f32]>,
) {
    const NAME: &str = "batch_norm_backward";
    let len = n * c * spatial;
    check_len(NAME, "input", input.len(), len);
    if let Some(gm) = gamma {
        check_len(NAME, "gamma", gm.len(), c);
    }
    check_len(NAME, "save_mean", save_mean.len(), c);
    check_len(NAME, "save_invstd", save_invstd.len(), c);
    check_len(NAME, "grad_output", grad_output.len(), len);
    check_len(NAME, "grad_input", grad_input.len(), len);
    if let Some(dg) = &grad_gamma {
        check_len(NAME, "grad_gamma", dg.len(), c);
    }
    if let Some(db) = &grad_beta {
        check_len(NAME, "grad_beta", db.len(), c);
    }
    let m = n * spatial;

    // Σ dy and Σ dy*xhat per channel in f64, CHANNEL_GROUP channels per task as in the
    // forward pass: each channel's chain runs in element order, side by side with its
    // neighbours'.
    let mut sums = vec![(0.0f64, 0.0f64); c];
    sums.par_chunks_mut(CHANNEL_GROUP)
        .enumerate()
        .for_each(|(group, out)| {
            let channel = group_channels(group, c);
            let mean = channel.map(|ci| save_mean[ci] as f64);
            let invstd = channel.map(|ci| save_invstd[ci] as f64);
            let (mut sdy, mut sdyx) = ([0.0f64; CHANNEL_GROUP], [0.0f64; CHANNEL_GROUP]);
            for ni in 0..n {
                let at = channel.map(|ci| (ni * c + ci) * spatial);
                let dys = at.map(|a| &grad_output[a..][..spatial]);
                let xs = at.map(|a| &input[a..][..spatial]);
                for j in 0..spatial {
                    for k in 0..CHANNEL_GROUP {
                        let dy = dys[k][j] as f64;
                        sdy[k] += dy;
                        sdyx[k] += dy * (xs[k][j] as f64 - mean[k]) * invstd[k];
                    }
                }
            }
            for (k, o) in out.iter_mut().enumerate() {
                *o = (sdy[k], sdyx[k]);
            }
        });

    if let Some(dg) = grad_gamma {
        for (d, s) in dg.iter_mut().zip(&sums) {
            *d = s.1 as f32;
        }
    }
    if let Some(db) = grad_beta {
        for (d, s) in db.iter_mut().zip(&sums) {
            *d = s.0 as f32;
        }
    }
    if grad_input.is_empty() {
        return;
    }

    // dx = k * (dy - a - xhat*b) with k = gamma*invstd, a = Σdy/m, b = Σ(dy*xhat)/m.
    let coef: Vec<(f32, f32, f32)> = (0..c)
        .map(|ci| {
            let g = gamma.map_or(1.0, |gm| gm[ci]) as f64;
            let (sdy, sdyx) = sums[ci];
            (
                (g * save_invstd[ci] as f64) as f32,
                (sdy / m as f64) as f32,
                (sdyx / m as f64) as f32,
            )
        })
        .collect();
    grad_input
        .par_chunks_mut(spatial)
        .zip(
            grad_output
                .par_chunks(spatial)
                .zip(input.par_chunks(spatial)),
        )
        .enumerate()
        .with_min_len(min_planes(spatial))
        .for_each(|(plane, (dx, (dy, x)))| {
            let ci = plane % c;
            let (k, a, b) = coef[ci];
            let (mean, invstd) = (save_mean[ci], save_invstd[ci]);
            for ((d, &g), &xv) in dx.iter_mut().zip(dy).zip(x) {
                let xhat = (xv - mean) * invstd;
                *d = k * (g - a - xhat * b);
            }
        });
}
