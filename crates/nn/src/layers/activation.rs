use crate::Module;
use strata_tensor::Tensor;

/// `max(x, 0)`.
pub struct ReLU;
/// Hyperbolic tangent.
pub struct Tanh;
/// Logistic function.
pub struct Sigmoid;
/// Log-softmax over the last dimension.
pub struct LogSoftmax;
/// `[N, ..] -> [N, product of the rest]`.
pub struct Flatten;

impl Module for ReLU {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.relu()
    }
    fn describe(&self) -> String {
        "ReLU".into()
    }
}

impl Module for Tanh {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.tanh()
    }
    fn describe(&self) -> String {
        "Tanh".into()
    }
}

impl Module for Sigmoid {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.sigmoid()
    }
    fn describe(&self) -> String {
        "Sigmoid".into()
    }
}

impl Module for LogSoftmax {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.log_softmax(-1)
    }
    fn describe(&self) -> String {
        "LogSoftmax".into()
    }
}

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.flatten_from(1)
    }
    fn describe(&self) -> String {
        "Flatten".into()
    }
}
