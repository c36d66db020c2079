//! Numerical gradient checking.
//!
//! For a function `f` of some tensors, the analytic gradient from `backward()` is compared with
//! central differences `(L(x + ε) - L(x - ε)) / 2ε`, one element at a time. To check every
//! output at once, `f`'s output is projected onto fixed random weights `w`:
//! `L = Σ f(x) · w`, so `dL/dx = J(x)ᵀ w` exercises every row of the Jacobian.
//!
//! The tensors are f32, so `L` is accumulated in f64 from f32 outputs and ε is larger than an
//! f64 check would use (1e-2 by default): rounding error shrinks as 1/ε while the truncation
//! error of the central difference grows only as ε². Inputs should keep away from kinks (ReLU
//! at 0, ties in max) by more than ε.

mod catalogue;

use crate::{no_grad, Generator, Tensor};
pub use catalogue::{op_catalogue, OpCase, OpFunction};
use std::fmt;

/// Tolerances and step of a gradient check.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Half-width of the central difference.
    pub eps: f64,
    /// An element passes when `|analytic - numeric| <= atol + rtol · |numeric|`.
    pub atol: f64,
    /// Relative tolerance, scaled by `|numeric|` (see `atol`).
    pub rtol: f64,
    /// Seed of the projection weights.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-2,
            atol: 1e-3,
            rtol: 1e-2,
            seed: 0,
        }
    }
}

/// What a successful check covered.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// Inputs that require a gradient and were checked.
    pub inputs_checked: usize,
    /// Elements perturbed in all.
    pub elements_checked: usize,
    /// Largest `|analytic - numeric|` seen.
    pub max_abs_error: f64,
}

/// The first element whose analytic and numerical gradients disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckFailure {
    /// Position of the input in the list passed to `gradcheck`.
    pub input: usize,
    /// Row-major index of the element within that input.
    pub element: usize,
    /// `dL/dx` for that element from `backward()`, where `L = Σ f(x) · w` (see the module docs).
    pub analytic: f64,
    /// The central-difference estimate of the same derivative.
    pub numeric: f64,
}

impl fmt::Display for GradcheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck: input {} element {}: analytic gradient {:.6} but numerical {:.6} \
             (difference {:.3e})",
            self.input,
            self.element,
            self.analytic,
            self.numeric,
            (self.analytic - self.numeric).abs()
        )
    }
}

impl std::error::Error for GradcheckFailure {}

/// Checks the gradients of `f` with respect to every input that `requires_grad()`.
///
/// ```
/// use strata_tensor::{gradcheck::{gradcheck, GradcheckOptions}, Tensor};
/// let x = Tensor::from_vec(vec![0.5, -1.0, 2.0], &[3]).set_requires_grad(true);
/// let report = gradcheck(|t| t[0].tanh().mul(&t[0]), &[x], &GradcheckOptions::default()).unwrap();
/// assert_eq!(report.elements_checked, 3);
/// ```
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    options: &GradcheckOptions,
) -> Result<GradcheckReport, GradcheckFailure> {
    let values: Vec<Vec<f32>> = inputs.iter().map(Tensor::to_vec).collect();
    let leaves = |values: &[Vec<f32>]| -> Vec<Tensor> {
        inputs
            .iter()
            .zip(values)
            .map(|(t, v)| {
                Tensor::from_vec(v.clone(), t.shape()).set_requires_grad(t.requires_grad())
            })
            .collect()
    };

    // Analytic: backward of L = Σ f(x)·w.
    let analytic_leaves = leaves(&values);
    let output = f(&analytic_leaves);
    let mut generator = Generator::seed(options.seed);
    let weights = Tensor::normal(output.shape(), 0.0, 1.0, &mut generator);
    let w = weights.to_vec();
    if output.requires_grad() {
        output.mul(&weights).sum_all().backward();
    }

    let projected = |values: &[Vec<f32>]| -> f64 {
        let _guard = no_grad();
        let out = f(&leaves(values)).to_vec();
        out.iter().zip(&w).map(|(&o, &w)| o as f64 * w as f64).sum()
    };

    let mut report = GradcheckReport {
        inputs_checked: 0,
        elements_checked: 0,
        max_abs_error: 0.0,
    };
    let mut perturbed = values.clone();
    for (i, input) in inputs.iter().enumerate() {
        if !input.requires_grad() {
            continue;
        }
        report.inputs_checked += 1;
        let grad = analytic_leaves[i]
            .grad()
            .map(|g| g.to_vec())
            .unwrap_or_else(|| vec![0.0; input.numel()]);
        for j in 0..input.numel() {
            let original = values[i][j];
            perturbed[i][j] = (original as f64 + options.eps) as f32;
            let plus = projected(&perturbed);
            perturbed[i][j] = (original as f64 - options.eps) as f32;
            let minus = projected(&perturbed);
            perturbed[i][j] = original;
            let numeric = (plus - minus) / (2.0 * options.eps);
            let analytic = grad[j] as f64;
            let error = (analytic - numeric).abs();
            report.elements_checked += 1;
            report.max_abs_error = report.max_abs_error.max(error);
            if error > options.atol + options.rtol * numeric.abs() || !error.is_finite() {
                return Err(GradcheckFailure {
                    input: i,
                    element: j,
                    analytic,
                    numeric,
                });
            }
        }
    }
    Ok(report)
}
