//! strata: a from-scratch deep-learning engine.
//!
//! This crate re-exports the four library crates so a program can depend on one name:
//!
//! - [`kernels`]: devices and raw CPU kernels (GEMM, convolution, pooling, softmax, ...)
//! - [`tensor`]: strided tensors, views and reverse-mode autograd
//! - [`nn`]: layers, losses, optimizers, schedules and checkpoints
//! - [`models`]: datasets, the network zoo and the training loop
//!
//! It also holds what the `strata` command line shares: dataset choice and fetching, device
//! choice, run results and the timing harness behind `strata bench`. The command line's own dependencies
//! (argument parsing, progress bars, plotting) sit behind the default `cli` feature; a program
//! that only links the engine uses `strata = { version = "0.1", default-features = false }`.

#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub use strata_kernels as kernels;
pub use strata_models as models;
pub use strata_nn as nn;
pub use strata_tensor as tensor;

/// The names most programs need, in one `use strata::prelude::*;`.
///
/// ```
/// use strata::prelude::*;
/// let g = &mut Generator::seed(0);
/// let model = Sequential::new(vec![Box::new(Linear::new(4, 3, g)), Box::new(ReLU)]);
/// let y = model.forward(&Tensor::ones(&[2, 4]));
/// assert_eq!(y.shape(), &[2, 3]);
/// assert_eq!(model.num_parameters(), 4 * 3 + 3);
/// ```
pub mod prelude {
    pub use strata_nn::layers::{
        AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, LogSoftmax,
        MaxPool2d, ReLU, Sequential, Sigmoid, Tanh,
    };
    pub use strata_nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
    pub use strata_nn::{Module, ModuleExt};
    pub use strata_tensor::{no_grad, Context, DType, Device, Function, Generator, Tensor};
}

pub mod bench;
pub mod datasets;
pub mod device;
pub mod explain;
pub mod fetch;
#[cfg(feature = "cli")]
pub mod journey;
#[cfg(feature = "cli")]
pub mod parallel;
pub mod profile;
#[cfg(feature = "cli")]
pub mod records;
#[cfg(feature = "cli")]
pub mod runs;
