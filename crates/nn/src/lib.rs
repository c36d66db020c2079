//! strata-nn: what networks are built and trained with, on top of `strata-tensor`.
//!
//! - [`Module`]: forward pass, named parameters and buffers (PyTorch `state_dict` names),
//!   train/eval mode; the layers in [`layers`]; a torchsummary-like [`summary`].
//! - [`loss`]: MSE, cross-entropy (fused with softmax), NLL.
//! - [`init`]: PyTorch's default initialisation, Xavier/Glorot and He/Kaiming.
//! - [`optim`]: SGD (momentum, dampening, weight decay, Nesterov), Adam, AdamW, gradient
//!   clipping; [`schedule`]: StepLR, MultiStepLR, ExponentialLR, cosine annealing, one-cycle.
//! - [`checkpoint`]: safetensors files with PyTorch's names and layouts, written atomically.
//! - [`distributed`]: data-parallel training over MPI (feature `mpi`) or NCCL (feature `nccl`).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod distributed;
pub mod init;
pub mod layers;
pub mod loss;
mod module;
pub mod optim;
pub mod schedule;
mod summary;

pub use module::{Module, ModuleExt};
pub use strata_tensor as tensor;
pub use strata_tensor::{Device, DeviceError, Generator, Tensor};
pub use summary::{summary, thousands, Summary, SummaryRow};
