use crate::Module;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_tensor::{no_grad, Tensor};

/// Batch normalisation over `[N, C]` (1-d) or `[N, C, H, W]` (2-d) inputs, as PyTorch's
/// BatchNorm1d/2d: learnable `weight` (γ, starts at 1) and `bias` (β, starts at 0); running
/// statistics updated in training with momentum 0.1 and the unbiased batch variance.
pub struct BatchNorm {
    /// Per-channel scale γ, `[C]`, trainable; `None` skips the scale (PyTorch `affine=False`).
    pub weight: Option<Tensor>,
    /// Per-channel shift β, `[C]`, trainable; `None` skips the shift.
    pub bias: Option<Tensor>,
    /// Running estimate of each channel's mean, `[C]`, used in evaluation (a buffer, not a
    /// parameter). Starts at 0.
    pub running_mean: Tensor,
    /// Running estimate of each channel's unbiased variance, `[C]`, used in evaluation (a
    /// buffer). Starts at 1.
    pub running_var: Tensor,
    /// Batches seen in training (an integer in PyTorch's checkpoints).
    pub num_batches_tracked: Tensor,
    /// Weight of the newest batch in the running statistics:
    /// `running = (1 - momentum) · running + momentum · batch` (PyTorch's convention, default 0.1).
    pub momentum: f32,
    /// Added to the variance before the square root, default `1e-5`.
    pub eps: f32,
    spatial_dims: usize,
    training: AtomicBool,
}

impl BatchNorm {
    fn with_dims(channels: usize, spatial_dims: usize) -> BatchNorm {
        BatchNorm {
            weight: Some(Tensor::ones(&[channels]).set_requires_grad(true)),
            bias: Some(Tensor::zeros(&[channels]).set_requires_grad(true)),
            running_mean: Tensor::zeros(&[channels]),
            running_var: Tensor::ones(&[channels]),
            num_batches_tracked: Tensor::scalar(0.0),
            momentum: 0.1,
            eps: 1e-5,
            spatial_dims,
            training: AtomicBool::new(true),
        }
    }

    /// For `[N, C]` inputs.
    pub fn new_1d(channels: usize) -> BatchNorm {
        BatchNorm::with_dims(channels, 0)
    }

    /// For `[N, C, H, W]` inputs.
    pub fn new_2d(channels: usize) -> BatchNorm {
        BatchNorm::with_dims(channels, 2)
    }

    fn channels(&self) -> usize {
        self.running_mean.numel()
    }

    /// Training-mode batch normalisation with the statistics of the global batch, over all
    /// ranks (PyTorch's SyncBatchNorm), built from differentiable ops and
    /// [`all_reduce_sum`](crate::distributed::all_reduce_sum), so backward sums the statistics'
    /// gradients over the ranks as well. `M` counts the global batch's values per channel.
    ///
    /// ```text
    /// x [n, C, (H, W)]      mean = Σ_ranks Σ_{n,H,W} x / M                  [1, C, (1, 1)]
    /// xc = x - mean         var  = Σ_ranks Σ_{n,H,W} xc² / M   (biased, as in training)
    /// y  = xc / sqrt(var + eps) · γ + β                                     [n, C, (H, W)]
    /// ```
    fn synchronised(
        &self,
        x: &Tensor,
        shard: &crate::distributed::Shard,
    ) -> (Tensor, strata_tensor::ops::BatchNormStatistics) {
        use crate::distributed::all_reduce_sum;
        let spatial: usize = x.shape()[2..].iter().product();
        let count = shard.global_rows * spatial;
        let axes: Vec<isize> = std::iter::once(0)
            .chain((2..x.rank()).map(|a| a as isize))
            .collect();
        let mut stat_shape = vec![1; x.rank()];
        stat_shape[1] = self.channels();
        let comm = &shard.communicator;
        let mean = all_reduce_sum(&x.sum(&axes, true), comm).mul_scalar(1.0 / count as f32);
        let centred = x.sub(&mean);
        let var = all_reduce_sum(&centred.mul(&centred).sum(&axes, true), comm)
            .mul_scalar(1.0 / count as f32);
        let mut y = centred.div(&var.add_scalar(self.eps).sqrt());
        if let Some(w) = &self.weight {
            y = y.mul(&w.reshape(&stat_shape));
        }
        if let Some(b) = &self.bias {
            y = y.add(&b.reshape(&stat_shape));
        }
        let stats = strata_tensor::ops::BatchNormStatistics {
            mean: mean.to_vec(),
            var: var.to_vec(),
            count,
        };
        (y, stats)
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        let name = if self.spatial_dims == 0 {
            "BatchNorm1d"
        } else {
            "BatchNorm2d"
        };
        assert!(
            x.rank() == 2 + self.spatial_dims && x.shape()[1] == self.channels(),
            "{name}: input of shape {:?} does not have {} channels in dimension 1 (expected rank {})",
            x.shape(),
            self.channels(),
            2 + self.spatial_dims
        );
        if !self.training.load(Ordering::Relaxed) {
            return x.batch_norm_eval(
                &self.running_mean,
                &self.running_var,
                self.weight.as_ref(),
                self.bias.as_ref(),
                self.eps,
            );
        }
        let (y, stats) = match crate::distributed::current_shard() {
            Some(shard) if shard.sync_batch_norm && shard.communicator.size() > 1 => {
                self.synchronised(x, &shard)
            }
            _ => x.batch_norm_train(self.weight.as_ref(), self.bias.as_ref(), self.eps),
        };
        let _guard = no_grad();
        let m = self.momentum;
        let unbiased = stats.count as f32 / (stats.count as f32 - 1.0);
        self.running_mean.update_data(|r| {
            for (r, &b) in r.iter_mut().zip(&stats.mean) {
                *r = (1.0 - m) * *r + m * b;
            }
        });
        self.running_var.update_data(|r| {
            for (r, &b) in r.iter_mut().zip(&stats.var) {
                *r = (1.0 - m) * *r + m * b * unbiased;
            }
        });
        self.num_batches_tracked.update_data(|n| n[0] += 1.0);
        y
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = Vec::new();
        if let Some(w) = &self.weight {
            p.push(("weight".to_string(), w.clone()));
        }
        if let Some(b) = &self.bias {
            p.push(("bias".to_string(), b.clone()));
        }
        p
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        vec![
            ("running_mean".to_string(), self.running_mean.clone()),
            ("running_var".to_string(), self.running_var.clone()),
            (
                "num_batches_tracked".to_string(),
                self.num_batches_tracked.clone(),
            ),
        ]
    }

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        let name = if self.spatial_dims == 0 {
            "BatchNorm1d"
        } else {
            "BatchNorm2d"
        };
        format!("{name}({})", self.channels())
    }
}
