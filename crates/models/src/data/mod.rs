//! Datasets: readers for the MNIST IDX and CIFAR-10 binary formats, the synthetic dnn3 set,
//! normalisation, seeded shuffling and batching.

mod dnn3;

pub use dnn3::{dnn3_split, Dnn3};

use strata_tensor::Tensor;

/// A labelled dataset that can cut itself into batches.
pub trait Dataset: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of classes of the labels.
    fn classes(&self) -> usize;
    /// Shape of one example (no batch dimension).
    fn example_shape(&self) -> Vec<usize>;
    /// The examples at `indices` as one input tensor `[B, ..example_shape]`, and their labels.
    fn batch(&self, indices: &[usize]) -> (Tensor, Vec<u32>);
}

/// Splits `0..n` into consecutive batches of `batch_size` (the last one may be smaller).
pub fn batches(order: &[usize], batch_size: usize) -> impl Iterator<Item = &[usize]> {
    assert!(batch_size > 0, "batches: batch size must be positive");
    order.chunks(batch_size)
}
