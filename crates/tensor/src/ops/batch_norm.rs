//! Batch normalisation over the batch (and spatial) dimensions, one statistic per channel.
//!
//! x [N, C] or [N, C, H, W, ..]; m = N · (H·W·..) elements per channel.
//!   train forward:  μ_c = mean(x_c), σ²_c = mean((x_c - μ_c)²) (biased),
//!                   x̂ = (x - μ) / sqrt(σ² + eps),  y = γ · x̂ + β
//!   train backward: dβ = Σ dy,  dγ = Σ dy · x̂,
//!                   dx = γ / (m · sqrt(σ² + eps)) · (m · dy - Σ dy - x̂ · Σ dy · x̂)
//!   eval:           y = γ · (x - running_mean) / sqrt(running_var + eps) + β, an affine map
//!                   composed from broadcasting ops, so autograd differentiates it directly.
//! The layer (strata-nn) owns the running statistics; the train forward returns the batch
//! statistics it needs to update them.

use crate::ops::cuda;
use crate::Tensor;
use std::sync::Arc;
use strata_kernels::batch_norm::{self, batch_norm_backward, batch_norm_forward_train};
use strata_kernels::cuda::runtime::CudaDevice;

/// Per-channel statistics of one training batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormStatistics {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Biased variance of each channel (divided by `count`).
    pub var: Vec<f32>,
    /// Elements per channel that the statistics cover (`N · spatial`).
    pub count: usize,
}

fn layout(
    op: &str,
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
) -> (usize, usize, usize) {
    assert!(
        x.rank() >= 2,
        "{op}: input must be [N, C, ..] but has shape {:?}",
        x.shape()
    );
    let (n, c) = (x.shape()[0], x.shape()[1]);
    for (name, p) in [("weight", gamma), ("bias", beta)] {
        if let Some(p) = p {
            assert_eq!(
                p.shape(),
                &[c],
                "{op}: {name} shape {:?} does not match the {c} channels of input {:?}",
                p.shape(),
                x.shape()
            );
        }
    }
    (n, c, x.shape()[2..].iter().product())
}

impl Tensor {
    /// Training-mode batch norm: normalises with this batch's statistics, which it also returns.
    pub fn batch_norm_train(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f32,
    ) -> (Tensor, BatchNormStatistics) {
        let (n, c, spatial) = layout("batch_norm", self, gamma, beta);
        assert!(
            n * spatial > 1,
            "batch_norm: training needs more than one value per channel (input shape {:?})",
            self.shape()
        );
        if let Some(device) = cuda::device_of("batch_norm", &[self]) {
            return self.batch_norm_train_on_device(device, (n, c, spatial), gamma, beta, eps);
        }
        let mut out = crate::buffer_cache::take_for_overwrite(self.numel());
        let (mut mean, mut invstd, mut var) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        let gamma_v = gamma.map(Tensor::to_vec);
        let beta_v = beta.map(Tensor::to_vec);
        self.with_contiguous(|x| {
            batch_norm_forward_train(
                n,
                c,
                spatial,
                eps,
                x,
                gamma_v.as_deref(),
                beta_v.as_deref(),
                &mut out,
                &mut mean,
                &mut invstd,
                &mut var,
            )
        });
        let stats = BatchNormStatistics {
            mean: mean.clone(),
            var,
            count: n * spatial,
        };
        let x_saved = self.clone();
        let (has_gamma, has_beta) = (gamma.is_some(), beta.is_some());
        let mut inputs = vec![self];
        inputs.extend(gamma);
        inputs.extend(beta);
        let y = Tensor::from_op(out, self.shape(), "batch_norm", &inputs, move |dy| {
            let mut dx = crate::buffer_cache::take_for_overwrite(x_saved.numel());
            let mut dgamma = vec![0.0; c];
            let mut dbeta = vec![0.0; c];
            x_saved.with_contiguous(|x| {
                dy.with_contiguous(|g| {
                    batch_norm_backward(
                        n,
                        c,
                        spatial,
                        x,
                        gamma_v.as_deref(),
                        &mean,
                        &invstd,
                        g,
                        &mut dx,
                        has_gamma.then_some(&mut dgamma[..]),
                        has_beta.then_some(&mut dbeta[..]),
                    )
                })
            });
            let mut grads = vec![Some(Tensor::from_vec(dx, x_saved.shape()))];
            if has_gamma {
                grads.push(Some(Tensor::from_vec(dgamma, &[c])));
            }
            if has_beta {
                grads.push(Some(Tensor::from_vec(dbeta, &[c])));
            }
            grads
        });
        (y, stats)
    }

    /// The CUDA path of training-mode batch norm: one block per channel for the statistics
    /// and for the backward sums (`kernels/batch_norm.cu`). The kernels take γ and β together
    /// or not at all, so a missing one is passed as its identity (1 or 0); the batch mean and
    /// variance come back to the host for the layer's running statistics.
    fn batch_norm_train_on_device(
        &self,
        device: Arc<CudaDevice>,
        (n, c, spatial): (usize, usize, usize),
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f32,
    ) -> (Tensor, BatchNormStatistics) {
        const OP: &str = "batch_norm";
        cuda::check_sizes(OP, &[self.numel()]);
        for p in gamma.iter().chain(beta.iter()) {
            cuda::device_of(OP, &[self, p]);
        }
        let has_affine = gamma.is_some() || beta.is_some();
        let affine = |p: Option<&Tensor>, identity: f32| match p {
            Some(p) => p.detach(),
            None => cuda::upload(&device, &Tensor::full(&[c], identity)),
        };
        let (gamma_t, beta_t) = (affine(gamma, 1.0), affine(beta, 0.0));
        let mut out = cuda::zeros(&device, self.numel());
        let (mut mean, mut invstd, mut var) = (
            cuda::zeros(&device, c),
            cuda::zeros(&device, c),
            cuda::zeros(&device, c),
        );
        {
            let (x, g, b) = (
                cuda::dense(&device, self),
                cuda::dense(&device, &gamma_t),
                cuda::dense(&device, &beta_t),
            );
            cuda::check(
                OP,
                batch_norm::cuda::forward_train(
                    &device,
                    (n, c, spatial),
                    eps,
                    &x,
                    (&g, &b, has_affine),
                    &mut out,
                    [&mut mean, &mut invstd, &mut var],
                ),
            );
        }
        let stats = BatchNormStatistics {
            mean: cuda::check(OP, device.download(&mean)),
            var: cuda::check(OP, device.download(&var)),
            count: n * spatial,
        };
        let x_saved = self.clone();
        let (has_gamma, has_beta) = (gamma.is_some(), beta.is_some());
        let mut inputs = vec![self];
        inputs.extend(gamma);
        inputs.extend(beta);
        let shape = self.shape().to_vec();
        let y = Tensor::from_op(
            cuda::data(&device, out),
            self.shape(),
            OP,
            &inputs,
            move |dy| {
                let mut dx = cuda::zeros(&device, x_saved.numel());
                let (mut dgamma, mut dbeta) = (cuda::zeros(&device, c), cuda::zeros(&device, c));
                let (x, g, grad) = (
                    cuda::dense(&device, &x_saved),
                    cuda::dense(&device, &gamma_t),
                    cuda::dense(&device, dy),
                );
                cuda::check(
                    OP,
                    batch_norm::cuda::backward(
                        &device,
                        (n, c, spatial),
                        &x,
                        (&g, has_affine),
                        [&mean, &invstd],
                        &grad,
                        &mut dx,
                        (&mut dgamma, &mut dbeta, has_affine),
                    ),
                );
                let mut grads = vec![Some(cuda::tensor(&device, dx, &shape))];
                if has_gamma {
                    grads.push(Some(cuda::tensor(&device, dgamma, &[c])));
                }
                if has_beta {
                    grads.push(Some(cuda::tensor(&device, dbeta, &[c])));
                }
                grads
            },
        );
        (y, stats)
    }

    /// Evaluation-mode batch norm with fixed running statistics.
    pub fn batch_norm_eval(
        &self,
        running_mean: &Tensor,
        running_var: &Tensor,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f32,
    ) -> Tensor {
        let (_, c, _) = layout("batch_norm", self, gamma, beta);
        let mut channel_shape = vec![1; self.rank()];
        channel_shape[1] = c;
        let per_channel = |t: &Tensor| t.reshape(&channel_shape);
        let mut y = self
            .sub(&per_channel(running_mean))
            .div(&per_channel(&running_var.add_scalar(eps).sqrt()));
        if let Some(g) = gamma {
            y = y.mul(&per_channel(g));
        }
        if let Some(b) = beta {
            y = y.add(&per_channel(b));
        }
        y
    }
}
