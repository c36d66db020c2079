//! strata-kernels: devices and raw kernels.
//!
//! Nothing here knows about autograd. Every kernel works on plain `f32` slices plus the
//! sizes it needs, so the same functions serve the tensor crate, benchmarks and users who
//! want a single kernel. The CPU kernels are parallelised with rayon and are also the
//! reference the CUDA kernels are tested against.
//!
//! Determinism: every kernel gives bit-identical results at any thread count. Parallel work
//! is split over independent outputs, and where a reduction must be split, it is split into
//! chunks whose boundaries do not depend on the number of threads and summed in a fixed order.

#![warn(missing_docs)]

pub mod batch_norm;
pub mod conv;
pub mod cuda;
pub mod dense_chain;
pub mod device;
pub mod dropout;
pub mod dtype;
pub mod elementwise;
pub mod gemm;
pub mod half_precision;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod simd;
pub mod softmax_ce;
pub mod strided;
#[doc(hidden)]
pub mod test_skip;
#[cfg(test)]
#[allow(dead_code)] // each op folder's tests use the helpers they need
pub(crate) mod test_support;

pub use device::Device;
pub use dtype::DType;
