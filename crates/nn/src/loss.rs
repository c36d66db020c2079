//! Losses. Each returns a 0-d tensor, the mean over the batch.

use strata_tensor::Tensor;

/// Mean squared error.
pub fn mse(prediction: &Tensor, target: &Tensor) -> Tensor {
    prediction.mse_loss(target)
}

/// Cross-entropy of raw scores `[N, classes]` against integer labels, fused with the softmax
/// for numerical stability (PyTorch's `CrossEntropyLoss`).
pub fn cross_entropy(logits: &Tensor, labels: &[u32]) -> Tensor {
    logits.softmax_cross_entropy(labels)
}

/// Negative log-likelihood of log-probabilities `[N, classes]` (PyTorch's `NLLLoss`).
pub fn nll(log_probabilities: &Tensor, labels: &[u32]) -> Tensor {
    log_probabilities.nll_loss(labels)
}
