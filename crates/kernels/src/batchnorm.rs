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
//! the spread. Each channel's sums run in one task in a fixed order, so they are bit-identical
//! at any thread count. Channels' elements are strided across the batch, so the per-element
//! pass afterwards runs in parallel over contiguous `(n, c)` planes instead.

use rayon::prelude::*;

fn check_len(kernel: &str, what: &str, actual: usize, expected: usize) {
    assert!(
        actual == expected,
        "{kernel}: {what} has {actual} elements, expected {expected}"
    );
}

/// Planes per rayon task, so that 1-D batch norm (planes of one element) is not split into
/// one task per element.
fn min_planes(spatial: usize) -> usize {
    (4096 / spatial.max(1)).max(1)
}

/// Offsets of channel `ci`'s `n` planes: the channel's data is strided across the batch.
fn channel_planes(n: usize, c: usize, spatial: usize, ci: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |ni| (ni * c + ci) * spatial)
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

    let stats: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ci| {
            let mut sum = 0.0f64;
            for off in channel_planes(n, c, spatial, ci) {
                sum += input[off..off + spatial]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            let mean = sum / m as f64;
            let mut sq = 0.0f64;
            for off in channel_planes(n, c, spatial, ci) {
                sq += input[off..off + spatial]
                    .iter()
                    .map(|&v| {
                        let d = v as f64 - mean;
                        d * d
                    })
                    .sum::<f64>();
            }
            let var = sq / m as f64;
            (mean, var)
        })
        .collect();

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

    // Σ dy and Σ dy*xhat per channel, f64, one task per channel.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ci| {
            let (mean, invstd) = (save_mean[ci] as f64, save_invstd[ci] as f64);
            let (mut sdy, mut sdyx) = (0.0f64, 0.0f64);
            for off in channel_planes(n, c, spatial, ci) {
                for (&dy, &x) in grad_output[off..off + spatial]
                    .iter()
                    .zip(&input[off..off + spatial])
                {
                    let dy = dy as f64;
                    sdy += dy;
                    sdyx += dy * (x as f64 - mean) * invstd;
                }
            }
            (sdy, sdyx)
        })
        .collect();

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
