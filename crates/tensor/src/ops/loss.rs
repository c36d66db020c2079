//! Losses, each reducing to a scalar mean.
//!
//! softmax_cross_entropy (fused):  logits [N, C], labels [N] in 0..C
//!   L = (1/N) Σ_n -log softmax(x_n)[label_n]
//!   dx = (softmax(x) - onehot(label)) · dL / N                       [N, C]
//! nll:  log-probabilities [N, C]
//!   L = -(1/N) Σ_n x[n, label_n]
//!   dx = -dL / N at [n, label_n], 0 elsewhere                          [N, C]
//! mse:  prediction and target of one shape [..]
//!   L = (1/M) Σ (p - t)²,  dp = 2 (p - t) · dL / M,  dt = -dp

use crate::ops::cuda;
use crate::Tensor;
use std::sync::Arc;
use strata_kernels::cuda::runtime::CudaDevice;
use strata_kernels::softmax_ce::{
    self, softmax_cross_entropy_backward, softmax_cross_entropy_forward,
};

/// `Σ d²` in f64, over eight running sums (element `i` into sum `i mod 8`, added pairwise at
/// the end): a fixed order that vectorises, where one running sum would wait on every add.
fn sum_of_squares(values: &[f32]) -> f64 {
    strata_kernels::simd::widest(|| {
        let mut sums = [0f64; 8];
        let mut rows = values.chunks_exact(8);
        for row in &mut rows {
            for (s, &d) in sums.iter_mut().zip(row) {
                *s += d as f64 * d as f64;
            }
        }
        for (s, &d) in sums.iter_mut().zip(rows.remainder()) {
            *s += d as f64 * d as f64;
        }
        ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]))
    })
}

fn check_class_input(op: &str, x: &Tensor, labels: &[u32]) -> (usize, usize) {
    assert_eq!(
        x.rank(),
        2,
        "{op}: input must be [N, classes] but has shape {:?}",
        x.shape()
    );
    let (rows, classes) = (x.shape()[0], x.shape()[1]);
    assert_eq!(
        labels.len(),
        rows,
        "{op}: {} labels for an input of shape {:?}",
        labels.len(),
        x.shape()
    );
    if let Some((row, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        panic!("{op}: label {label} at row {row} is out of range for {classes} classes");
    }
    (rows, classes)
}

/// `t` moved to the host, differentiably: the losses without kernels of their own.
fn through_host(op: &str, t: &Tensor) -> Tensor {
    t.to(crate::Device::Cpu)
        .unwrap_or_else(|e| panic!("{op}: copying the input to the host: {e}"))
}

impl Tensor {
    /// Mean cross-entropy of `softmax(self)` against integer `labels`, fused for stability.
    pub fn softmax_cross_entropy(&self, labels: &[u32]) -> Tensor {
        let (rows, classes) = check_class_input("softmax_cross_entropy", self, labels);
        if let Some(device) = self.cuda() {
            return self.softmax_cross_entropy_on_device(device, rows, classes, labels);
        }
        let mut probs = crate::buffer_cache::take_for_overwrite(rows * classes);
        let loss = self.with_contiguous(|x| {
            softmax_cross_entropy_forward(rows, classes, x, labels, &mut probs)
        });
        let probs = Arc::new(probs);
        let labels: Arc<[u32]> = labels.into();
        let shape = self.shape().to_vec();
        Tensor::from_op(
            vec![loss],
            &[],
            "softmax_cross_entropy",
            &[self],
            move |dl| {
                let mut dx = crate::buffer_cache::take_for_overwrite(rows * classes);
                softmax_cross_entropy_backward(rows, classes, &probs, &labels, dl.item(), &mut dx);
                vec![Some(Tensor::from_vec(dx, &shape))]
            },
        )
    }

    /// The CUDA path: `softmax_cross_entropy_forward` leaves the probabilities and each row's
    /// loss on the device, `reduce_sum_rows` adds the rows up; the backward kernel needs dL as
    /// a number, so reading it is the one host synchronisation of the step.
    fn softmax_cross_entropy_on_device(
        &self,
        device: Arc<CudaDevice>,
        rows: usize,
        classes: usize,
        labels: &[u32],
    ) -> Tensor {
        const OP: &str = "softmax_cross_entropy";
        cuda::check_sizes(OP, &[rows * classes]);
        let labels = Arc::new(cuda::check(OP, device.upload(labels)));
        let mut probs = cuda::zeros(&device, rows * classes);
        let mut row_loss = cuda::zeros(&device, rows);
        {
            let x = cuda::dense(&device, self);
            cuda::check(
                OP,
                softmax_ce::cuda::softmax_cross_entropy_forward(
                    &device,
                    (rows, classes),
                    &x,
                    &labels,
                    &mut probs,
                    &mut row_loss,
                ),
            );
        }
        let total = cuda::tensor(&device, cuda::sum_rows(&device, &row_loss, 1, rows), &[]);
        let mean = total.map(strata_kernels::elementwise::UnaryOp::MulScalar(
            1.0 / rows.max(1) as f32,
        ));
        let probs = Arc::new(probs);
        let shape = self.shape().to_vec();
        Tensor::from_result(&mean, OP, &[self], move |dl| {
            let mut dx = cuda::zeros(&device, rows * classes);
            cuda::check(
                OP,
                softmax_ce::cuda::softmax_cross_entropy_backward(
                    &device,
                    (rows, classes),
                    &probs,
                    &labels,
                    dl.item(),
                    &mut dx,
                ),
            );
            vec![Some(cuda::tensor(&device, dx, &shape))]
        })
    }

    /// Mean negative log-likelihood of log-probabilities `self` at integer `labels`.
    /// On a CUDA device the `[N, C]` input goes through the host (the move is differentiable,
    /// so the gradient returns to the device); the loss is a host scalar.
    pub fn nll_loss(&self, labels: &[u32]) -> Tensor {
        if self.cuda().is_some() {
            return through_host("nll_loss", self).nll_loss(labels);
        }
        let (rows, classes) = check_class_input("nll_loss", self, labels);
        let total: f64 = labels
            .iter()
            .enumerate()
            .map(|(n, &l)| -(self.get(&[n, l as usize]) as f64))
            .sum();
        let loss = (total / rows.max(1) as f64) as f32;
        let labels: Arc<[u32]> = labels.into();
        Tensor::from_op(vec![loss], &[], "nll_loss", &[self], move |dl| {
            let scale = -dl.item() / rows.max(1) as f32;
            let mut dx = vec![0.0; rows * classes];
            for (n, &l) in labels.iter().enumerate() {
                dx[n * classes + l as usize] = scale;
            }
            vec![Some(Tensor::from_vec(dx, &[rows, classes]))]
        })
    }

    /// Mean squared error between `self` and `target` (same shape).
    /// On a CUDA device both operands go through the host, as for [`Tensor::nll_loss`].
    pub fn mse_loss(&self, target: &Tensor) -> Tensor {
        if self.cuda().is_some() || target.cuda().is_some() {
            let (p, t) = (
                through_host("mse_loss", self),
                through_host("mse_loss", target),
            );
            return p.mse_loss(&t);
        }
        assert_eq!(
            self.shape(),
            target.shape(),
            "mse_loss: prediction shape {:?} and target shape {:?} differ",
            self.shape(),
            target.shape()
        );
        let diff: Vec<f32> = self.with_contiguous(|p| {
            target.with_contiguous(|t| p.iter().zip(t).map(|(&p, &t)| p - t).collect())
        });
        let count = diff.len().max(1);
        let loss = (sum_of_squares(&diff) / count as f64) as f32;
        let shape = self.shape().to_vec();
        let target_needs_grad = target.requires_grad();
        Tensor::from_op(vec![loss], &[], "mse_loss", &[self, target], move |dl| {
            let scale = 2.0 * dl.item() / count as f32;
            let dp: Vec<f32> =
                strata_kernels::simd::widest(|| diff.iter().map(|&d| d * scale).collect());
            let dt = target_needs_grad
                .then(|| Tensor::from_vec(dp.iter().map(|&d| -d).collect(), &shape));
            vec![Some(Tensor::from_vec(dp, &shape)), dt]
        })
    }
}
