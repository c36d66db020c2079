//! Where a training step's time goes: each layer's forward and backward pass timed on its own,
//! with its arithmetic rate against the machine's measured peak. Behind `strata bench layers`.
//!
//! A layer is timed on the input it sees in training (the previous layer's output), with the
//! graph recorded as in training. Its backward time is (forward + backward) minus forward.
//! FLOPs are counted for layers with a weight matrix or kernel (`[out, in, ..]`): the forward
//! pass costs `2 · output elements · weight elements / out`, and the backward pass twice that
//! (the gradients of the weight and of the input; only the weight's for the first layer with
//! parameters, whose input needs none). Other layers (activations, pooling, flatten) are memory-bound and get no
//! rate.

use crate::bench::best_seconds;
use std::time::Duration;
use strata_kernels::gemm::gemm;
use strata_models::train::{loss_of, TrainConfig};
use strata_models::zoo::ZooEntry;
use strata_nn::{Module, ModuleExt};
use strata_tensor::{Generator, Tensor};

/// One leaf layer's share of a training step.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTiming {
    /// Dotted path in the model, as in the state dict (e.g. `conv1.0`).
    pub name: String,
    /// The layer's own description, e.g. `Conv2d(1, 6, kernel 5, stride 1, pad 2)`.
    pub description: String,
    /// Shape of the layer's output for the batch.
    pub output_shape: Vec<usize>,
    /// Seconds of the forward pass (graph recorded).
    pub forward_seconds: f64,
    /// Seconds of the backward pass.
    pub backward_seconds: f64,
    /// Floating-point operations of the forward pass, where counted.
    pub forward_flops: Option<f64>,
    /// Floating-point operations of the backward pass, where counted.
    pub backward_flops: Option<f64>,
}

/// A whole model's profile for one batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelProfile {
    /// Leaf layers in forward order.
    pub layers: Vec<LayerTiming>,
    /// Seconds of the loss, forward and backward.
    pub loss_seconds: f64,
    /// Seconds of one optimizer step over every parameter.
    pub optimizer_seconds: f64,
    /// Seconds of a whole training step (forward, loss, backward, optimizer), measured in one.
    pub step_seconds: f64,
}

/// The best GFLOP/s of a 1024³ GEMM on every thread: the rate the profile calls the peak.
pub fn measured_peak_gflops(budget: Duration) -> f64 {
    let n = 1024;
    let mut g = Generator::seed(0);
    let a = Tensor::normal(&[n, n], 0.0, 1.0, &mut g).to_vec();
    let b = Tensor::normal(&[n, n], 0.0, 1.0, &mut g).to_vec();
    let mut c = vec![0.0; n * n];
    let seconds = best_seconds(budget, || {
        gemm(n, n, n, 1.0, &a, n, 1, &b, n, 1, 0.0, &mut c, n, 1)
    });
    2.0 * (n * n * n) as f64 / seconds / 1e9
}

/// The leaf layers of `module`, with dotted names, in forward order.
fn leaves<'a>(prefix: &str, module: &'a dyn Module, out: &mut Vec<(String, &'a dyn Module)>) {
    let children = module.children();
    if children.is_empty() {
        out.push((prefix.to_string(), module));
    }
    for (name, child) in children {
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        leaves(&path, child, out);
    }
}

/// Forward FLOPs of a layer with a weight of rank ≥ 2 producing `output_len` values.
fn forward_flops(layer: &dyn Module, output_len: usize) -> Option<f64> {
    let weight = layer
        .parameters()
        .into_iter()
        .find(|(name, t)| name == "weight" && t.rank() >= 2)?
        .1;
    let per_output = weight.numel() / weight.shape()[0];
    Some(2.0 * output_len as f64 * per_output as f64)
}

/// Profiles one training step of `entry`'s network at `batch` examples of random input.
pub fn profile_model(entry: &ZooEntry, batch: usize, budget: Duration) -> ModelProfile {
    let model = entry.build(0);
    model.train();
    let mut shape = vec![batch];
    shape.extend(entry.input_shape());
    let mut g = Generator::seed(1);
    let input = Tensor::normal(&shape, 0.0, 1.0, &mut g);
    let classes = 10;
    let labels: Vec<u32> = (0..batch).map(|_| g.below(classes) as u32).collect();

    let mut layers = Vec::new();
    let mut all = Vec::new();
    leaves("", &model, &mut all);
    let mut x = input.clone();
    // As in training, a layer's input needs a gradient only when some layer before it has
    // parameters.
    let mut after_parameters = false;
    for (name, layer) in &all {
        let x_in = x.detach().set_requires_grad(after_parameters);
        let y = layer.forward(&x_in);
        let upstream = Tensor::ones(y.shape());
        let forward_seconds = best_seconds(budget, || {
            std::hint::black_box(layer.forward(&x_in));
        });
        let needs_graph = y.requires_grad();
        let both_seconds = if needs_graph {
            best_seconds(budget, || {
                x_in.zero_grad();
                layer.zero_grad();
                layer.forward(&x_in).backward_with(&upstream);
            })
        } else {
            forward_seconds
        };
        let forward_flops = forward_flops(*layer, y.numel());
        layers.push(LayerTiming {
            name: name.clone(),
            description: layer.describe(),
            output_shape: y.shape().to_vec(),
            forward_seconds,
            backward_seconds: (both_seconds - forward_seconds).max(0.0),
            forward_flops,
            backward_flops: forward_flops.map(|f| if after_parameters { 2.0 * f } else { f }),
        });
        after_parameters |= !layer.parameters().is_empty();
        x = y.detach();
    }

    let config = TrainConfig::from_recipe(&entry.recipe, 0);
    let logits = x.detach().set_requires_grad(true);
    let loss_seconds = best_seconds(budget, || {
        loss_of(config.loss, &logits, &labels).backward();
    });
    let mut optimizer = config.make_optimizer(model.parameters());
    // Gradients to step with: one real backward pass.
    loss_of(config.loss, &model.forward(&input), &labels).backward();
    let optimizer_seconds = best_seconds(budget, || optimizer.step());
    let step_seconds = best_seconds(budget, || {
        let loss = loss_of(config.loss, &model.forward(&input), &labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    });
    ModelProfile {
        layers,
        loss_seconds,
        optimizer_seconds,
        step_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_models::zoo::find;

    #[test]
    fn lenet5_profile_lists_every_leaf_with_the_flops_of_its_weighted_layers() {
        let entry = find("lenet5").unwrap();
        let profile = profile_model(&entry, 4, Duration::from_millis(1));
        let names: Vec<&str> = profile.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3",
                "fc2", "relu4", "fc3"
            ]
        );
        // conv1: 4 images · 6 maps · 28·28 outputs, each 1·5·5 multiply-adds.
        let conv1 = &profile.layers[0];
        assert_eq!(conv1.output_shape, [4, 6, 28, 28]);
        assert_eq!(conv1.forward_flops, Some(2.0 * 4.0 * 6.0 * 784.0 * 25.0));
        // The first layer's input needs no gradient: only dW is computed.
        assert_eq!(conv1.backward_flops, conv1.forward_flops);
        let fc1 = &profile.layers[7];
        assert_eq!(fc1.forward_flops, Some(2.0 * 4.0 * 120.0 * 400.0));
        assert_eq!(fc1.backward_flops, Some(4.0 * 4.0 * 120.0 * 400.0));
        assert_eq!(profile.layers[1].forward_flops, None);
        assert!(profile.layers.iter().all(|l| l.forward_seconds > 0.0));
        assert!(profile.step_seconds > 0.0 && profile.optimizer_seconds > 0.0);
    }
}
