//! strata: a from-scratch deep-learning engine.
//!
//! This crate re-exports the four library crates so a program can depend on one name:
//!
//! - [`kernels`]: devices and raw CPU kernels (GEMM, convolution, pooling, softmax, ...)
//! - [`tensor`]: strided tensors, views and reverse-mode autograd
//! - [`nn`]: layers, losses, optimizers, schedules and checkpoints
//! - [`models`]: datasets, the network zoo and the training loop
//!
//! It also holds what the `strata` command line shares: dataset choice, device choice, run
//! results and the timing harness behind `strata bench`.

#![doc = include_str!("../README.md")]

pub use strata_kernels as kernels;
pub use strata_models as models;
pub use strata_nn as nn;
pub use strata_tensor as tensor;

pub mod bench;
pub mod datasets;
pub mod device;
pub mod runs;
