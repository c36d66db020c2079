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

use crate::ops::binary::map2;
use crate::Tensor;
use std::sync::Arc;
use strata_kernels::elementwise::BinaryOp;
use strata_kernels::softmax_ce::{softmax_cross_entropy_backward, softmax_cross_entropy_forward};

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

impl Tensor {
    /// Mean cross-entropy of `softmax(self)` against integer `labels`, fused for stability.
    pub fn softmax_cross_entropy(&self, labels: &[u32]) -> Tensor {
        let (rows, classes) = check_class_input("softmax_cross_entropy", self, labels);
        let mut probs = crate::pool::take_for_overwrite(rows * classes);
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
                let mut dx = crate::pool::take_for_overwrite(rows * classes);
                softmax_cross_entropy_backward(rows, classes, &probs, &labels, dl.item(), &mut dx);
                vec![Some(Tensor::from_vec(dx, &shape))]
            },
        )
    }

    /// Mean negative log-likelihood of log-probabilities `self` at integer `labels`.
    pub fn nll_loss(&self, labels: &[u32]) -> Tensor {
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
    pub fn mse_loss(&self, target: &Tensor) -> Tensor {
        assert_eq!(
            self.shape(),
            target.shape(),
            "mse_loss: prediction shape {:?} and target shape {:?} differ",
            self.shape(),
            target.shape()
        );
        let diff = map2(self, target, BinaryOp::Sub).to_vec();
        let count = diff.len().max(1);
        let loss =
            (diff.iter().map(|&d| (d as f64) * (d as f64)).sum::<f64>() / count as f64) as f32;
        let shape = self.shape().to_vec();
        Tensor::from_op(vec![loss], &[], "mse_loss", &[self, target], move |dl| {
            let scale = 2.0 * dl.item() / count as f32;
            let dp = Tensor::from_vec(diff.iter().map(|&d| d * scale).collect(), &shape);
            let dt = dp.neg();
            vec![Some(dp), Some(dt)]
        })
    }
}
