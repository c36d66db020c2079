//! strata-tensor: strided tensors, views that never copy, and reverse-mode autograd.
//!
//! A [`Tensor`] is shared storage plus a layout (shape, strides, offset). Views (reshape of
//! contiguous data, permute, transpose, narrow, expand, squeeze) share the storage and only
//! change the layout. Every differentiable op lives in one file under `ops/` with its forward
//! and backward pass side by side and the math stated in shapes.
//!
//! ```
//! use strata_tensor::Tensor;
//! let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).set_requires_grad(true);
//! let x = Tensor::from_vec(vec![1.0, -1.0], &[2, 1]);
//! let loss = w.matmul(&x).relu().sum_all();
//! loss.backward();
//! // d(loss)/dW = relu'(Wx) · xᵀ; W·x = [-1, -1] so nothing flows.
//! assert_eq!(w.grad().unwrap().to_vec(), vec![0.0; 4]);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod autograd;
mod buffer_cache;
mod custom_op;
pub mod gradcheck;
pub mod ops;
mod random;
mod shape;
mod tensor;

pub use autograd::{is_grad_enabled, no_grad, NoGradGuard};
pub use custom_op::{Context, Function};
pub use random::Generator;
pub use shape::broadcast_shapes;
pub use strata_kernels::{DType, Device};
pub use tensor::{DeviceError, Tensor};
