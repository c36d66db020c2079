//! Differentiable ops, one file per op or op family, forward and backward side by side.
//!
//! Notation in the comments: `x` inputs, `y` the output, `dy` the gradient arriving from the
//! loss, `dx` the gradient sent back; shapes in brackets.

mod batch_norm;
mod binary;
mod conv;
pub(crate) mod cuda;
mod dense_chain;
mod dropout;
mod half_precision;
mod log_softmax;
mod loss;
mod matmul;
mod pool;
mod reduce;
mod to_device;
mod unary;
mod view;

pub use batch_norm::BatchNormStatistics;
pub use dense_chain::DenseStage;
