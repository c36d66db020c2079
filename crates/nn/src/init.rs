//! Weight initialisation, following `torch.nn.init`.
//!
//! Fans of a weight of shape `[out, in, k..]`: fan_in = in·Πk, fan_out = out·Πk.
//! - PyTorch's default for Linear and Conv: Kaiming-uniform with a = √5, which works out to
//!   U(-1/√fan_in, 1/√fan_in); the bias is drawn from the same range.
//! - Xavier/Glorot: uniform U(±gain·√(6/(fan_in+fan_out))), normal N(0, gain²·2/(fan_in+fan_out)).
//! - He/Kaiming for ReLU (gain √2): uniform U(±√2·√(3/fan)), normal N(0, 2/fan), fan = fan_in.

use strata_tensor::{Generator, Tensor};

/// `(fan_in, fan_out)` of a weight shape, as `torch.nn.init._calculate_fan_in_and_fan_out`.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    assert!(
        shape.len() >= 2,
        "init: fan in/out need a weight of at least 2 dimensions, got {shape:?}"
    );
    let receptive: usize = shape[2..].iter().product();
    (shape[1] * receptive, shape[0] * receptive)
}

/// PyTorch's default weight: Kaiming-uniform with a = √5, i.e. U(±1/√fan_in).
pub fn pytorch_default_weight(shape: &[usize], generator: &mut Generator) -> Tensor {
    kaiming_uniform(shape, 5f32.sqrt(), generator)
}

/// PyTorch's default bias for a layer with `fan_in` inputs per output: U(±1/√fan_in).
pub fn pytorch_default_bias(size: usize, fan_in: usize, generator: &mut Generator) -> Tensor {
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f32).sqrt()
    } else {
        0.0
    };
    Tensor::uniform(&[size], -bound, bound, generator)
}

/// Gain of leaky ReLU with negative slope `a` (a = 0: plain ReLU, gain √2).
fn leaky_relu_gain(a: f32) -> f32 {
    (2.0 / (1.0 + a * a)).sqrt()
}

/// He/Kaiming uniform on fan_in for a leaky ReLU of slope `a`: U(±gain·√(3/fan_in)).
pub fn kaiming_uniform(shape: &[usize], a: f32, generator: &mut Generator) -> Tensor {
    let (fan_in, _) = fans(shape);
    let bound = leaky_relu_gain(a) * (3.0 / fan_in as f32).sqrt();
    Tensor::uniform(shape, -bound, bound, generator)
}

/// He/Kaiming normal on fan_in: N(0, gain²/fan_in).
pub fn kaiming_normal(shape: &[usize], a: f32, generator: &mut Generator) -> Tensor {
    let (fan_in, _) = fans(shape);
    let std = leaky_relu_gain(a) / (fan_in as f32).sqrt();
    Tensor::normal(shape, 0.0, std, generator)
}

/// Xavier/Glorot uniform: U(±gain·√(6/(fan_in+fan_out))).
pub fn xavier_uniform(shape: &[usize], gain: f32, generator: &mut Generator) -> Tensor {
    let (fan_in, fan_out) = fans(shape);
    let bound = gain * (6.0 / (fan_in + fan_out) as f32).sqrt();
    Tensor::uniform(shape, -bound, bound, generator)
}

/// Xavier/Glorot normal: N(0, gain²·2/(fan_in+fan_out)).
pub fn xavier_normal(shape: &[usize], gain: f32, generator: &mut Generator) -> Tensor {
    let (fan_in, fan_out) = fans(shape);
    let std = gain * (2.0 / (fan_in + fan_out) as f32).sqrt();
    Tensor::normal(shape, 0.0, std, generator)
}
