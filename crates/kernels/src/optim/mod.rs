//! Fused optimizer updates: one pass over a parameter, its gradient and its state.
//!
//! The formulas are PyTorch's (torch.optim), element by element:
//!
//! SGD with weight decay λ, momentum μ, dampening τ, learning rate η:
//!   g ← ∇ + λ·p
//!   b ← g on the first step, else μ·b + (1-τ)·g        (only when μ ≠ 0)
//!   g ← g + μ·b  (Nesterov)  or  g ← b
//!   p ← p - η·g
//!
//! Adam (β₁, β₂, ε, step t starting at 1); AdamW decays the weight directly instead of adding
//! λ·p to the gradient:
//!   AdamW: p ← p·(1 - η·λ)        Adam: g ← ∇ + λ·p
//!   m ← β₁·m + (1-β₁)·g;   v ← β₂·v + (1-β₂)·g²
//!   p ← p - (η / (1-β₁ᵗ)) · m / (√v / √(1-β₂ᵗ) + ε)
//!
//! Shapes: `param [n]`, `grad [n]` and each state buffer `[n]` (momentum; Adam's `m`, `v`),
//! updated in place. Each element is independent, so splitting over threads cannot change the
//! result. The CUDA kernels (`kernels/optim.cu`, launched by [`cuda`]) evaluate the same
//! expressions in the same order.

pub mod cuda;

use crate::simd::widest;
use rayon::prelude::*;

const PARALLEL_THRESHOLD: usize = 1 << 16;
const CHUNK: usize = 1 << 14;

/// Hyper-parameters of one SGD step, with PyTorch's meanings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 for plain SGD): `v ← momentum · v + (1 - dampening) · g`.
    pub momentum: f32,
    /// Dampening of the gradient's contribution to the momentum buffer.
    pub dampening: f32,
    /// L2 penalty added to the gradient: `g ← g + weight_decay · w`.
    pub weight_decay: f32,
    /// Nesterov momentum: step along `g + momentum · v` instead of `v`.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    /// PyTorch's defaults, with a learning rate of 0.01 (PyTorch requires one).
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// Hyper-parameters of one Adam or AdamW step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate η (PyTorch's default is `1e-3`).
    pub lr: f32,
    /// Decay rate β₁ of the first-moment (mean) estimate `m`, typically `0.9`.
    pub beta1: f32,
    /// Decay rate β₂ of the second-moment (uncentred variance) estimate `v`, typically `0.999`.
    pub beta2: f32,
    /// Added to the denominator for numerical stability, typically `1e-8`.
    pub eps: f32,
    /// Weight decay λ: an L2 term added to the gradient (Adam), or a direct shrink
    /// `p ← p·(1 - η·λ)` when `decoupled_weight_decay` is set (AdamW).
    pub weight_decay: f32,
    /// AdamW: decay the weights directly rather than through the gradient.
    pub decoupled_weight_decay: bool,
}

fn check(op: &str, n: usize, others: &[(&str, usize)]) {
    for (name, len) in others {
        assert_eq!(
            *len, n,
            "{op}: {name} has {len} elements but the parameter has {n}"
        );
    }
}

/// One SGD step in place. `momentum_buffer` is required when `momentum != 0`; on the first
/// step (`first_step`) it is initialised to the gradient, as PyTorch does.
pub fn sgd_step(
    config: &SgdConfig,
    param: &mut [f32],
    grad: &[f32],
    momentum_buffer: Option<&mut [f32]>,
    first_step: bool,
) {
    let n = param.len();
    check("sgd_step", n, &[("gradient", grad.len())]);
    let c = *config;
    match momentum_buffer {
        Some(buffer) if c.momentum != 0.0 => {
            check("sgd_step", n, &[("momentum buffer", buffer.len())]);
            let body = |((p, g), b): ((&mut [f32], &[f32]), &mut [f32])| {
                widest(|| {
                    for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
                        let g = g + c.weight_decay * *p;
                        *b = if first_step {
                            g
                        } else {
                            c.momentum * *b + (1.0 - c.dampening) * g
                        };
                        let step = if c.nesterov { g + c.momentum * *b } else { *b };
                        *p -= c.lr * step;
                    }
                })
            };
            if n >= PARALLEL_THRESHOLD {
                param
                    .par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .zip(buffer.par_chunks_mut(CHUNK))
                    .for_each(body);
            } else {
                body(((param, grad), buffer));
            }
        }
        _ => {
            assert!(
                c.momentum == 0.0,
                "sgd_step: momentum {} needs a momentum buffer",
                c.momentum
            );
            let body = |(p, g): (&mut [f32], &[f32])| {
                for (p, &g) in p.iter_mut().zip(g) {
                    *p -= c.lr * (g + c.weight_decay * *p);
                }
            };
            if n >= PARALLEL_THRESHOLD {
                param
                    .par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .for_each(body);
            } else {
                body((param, grad));
            }
        }
    }
}

/// The per-step scalars of Adam, `(η / (1-β₁ᵗ), √(1-β₂ᵗ))`, in f32: the CPU loop and the CUDA
/// kernel's launch both take them from here, so both devices divide by the same values.
pub(crate) fn adam_scalars(c: &AdamConfig, step: u64) -> (f32, f32) {
    let t = step as i32;
    let bias1 = 1.0 - c.beta1.powi(t);
    let bias2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
    let step_size = c.lr / bias1;
    (step_size, bias2_sqrt)
}

/// One Adam/AdamW step in place; `step` counts from 1.
pub fn adam_step(
    config: &AdamConfig,
    step: u64,
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
) {
    let n = param.len();
    check(
        "adam_step",
        n,
        &[
            ("gradient", grad.len()),
            ("first moment", exp_avg.len()),
            ("second moment", exp_avg_sq.len()),
        ],
    );
    assert!(step >= 1, "adam_step: steps count from 1, got {step}");
    let c = *config;
    let (step_size, bias2_sqrt) = adam_scalars(&c, step);
    type Chunks<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);
    let body = |(((p, g), m), v): Chunks<'_>| {
        widest(|| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = if c.decoupled_weight_decay {
                    *p *= 1.0 - c.lr * c.weight_decay;
                    g
                } else {
                    g + c.weight_decay * *p
                };
                *m = c.beta1 * *m + (1.0 - c.beta1) * g;
                *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
                let denom = v.sqrt() / bias2_sqrt + c.eps;
                *p -= step_size * *m / denom;
            }
        })
    };
    if n >= PARALLEL_THRESHOLD {
        param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(exp_avg.par_chunks_mut(CHUNK))
            .zip(exp_avg_sq.par_chunks_mut(CHUNK))
            .for_each(body);
    } else {
        body((((param, grad), exp_avg), exp_avg_sq));
    }
}

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;
