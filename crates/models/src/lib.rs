//! strata-models: datasets, the network zoo of the classic MNIST/CIFAR-10 experiments, and
//! the training loop.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod data;
pub mod train;
pub mod zoo;

pub use strata_nn as nn;
