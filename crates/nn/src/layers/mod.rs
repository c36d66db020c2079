//! The layers networks are built from.

mod activation;
mod batch_norm;
mod conv;
mod dropout;
mod linear;
mod pool;
mod sequential;

pub use activation::{Flatten, LogSoftmax, ReLU, Sigmoid, Tanh};
pub use batch_norm::BatchNorm;
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use linear::Linear;
pub use pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};
pub use sequential::Sequential;
