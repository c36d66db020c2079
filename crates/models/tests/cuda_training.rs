//! Training on a CUDA device against training on the CPU: the same network, seed and batches,
//! step by step. On the virtual device (`cuda-sim`: the kernels' PTX interpreted with
//! memcheck, racecheck, initcheck and synccheck on every launch), on every machine, a few steps of three
//! networks that between them use every kernel family (convolution, both poolings' siblings,
//! batch norm, dropout, softmax-cross-entropy, SGD with momentum and Adam); on a real GPU,
//! when there is one, a longer run. The losses of every step and the final weights must agree
//! within a relative 1e-4: the device sums in a
//! different order (f32 block reductions, GEMM tiles), so bit-identity is not expected, but
//! any wrong kernel or launch shows up as a difference many orders of magnitude larger.
//!
//! Adam's update is blind to a constant scale of the gradient, and a few SGD steps at a small
//! learning rate move the weights too little to show one, so the gradients of one backward
//! pass are also compared directly: every parameter's gradient on the virtual device within
//! 2e-5 of its largest CPU element (observed: 3e-6 or less).

use std::path::PathBuf;
use strata_kernels::cuda::runtime::CudaDevice;
use strata_models::data::{load_mnist_dir, Dataset, ImageDataset};
use strata_models::nn::{Device, Generator, Module, ModuleExt};
use strata_models::train::{loss_of, TrainConfig, Trainer};
use strata_models::zoo;

/// Random 28x28 grey images with random labels: what matters here is that both devices see
/// the same numbers.
fn synthetic(name: &str, count: usize, seed: u64) -> ImageDataset {
    let mut g = Generator::seed(seed);
    let pixels = (0..count * 28 * 28).map(|_| g.below(256) as u8).collect();
    let labels = (0..count).map(|_| g.below(10) as u8).collect();
    ImageDataset::new(name, pixels, labels, 1, 28, 28, 10)
        .unwrap()
        .with_normalization(0.1307, 0.3081)
}

/// Per-step training losses, test loss and the final parameters of `network` trained on
/// `device` for one epoch over `train` in batches of `batch`, tested on `test`.
fn train_on(
    device: Device,
    network: &str,
    (train, test): (&dyn Dataset, &dyn Dataset),
    batch: usize,
) -> (Vec<f32>, f32, Vec<Vec<f32>>) {
    let entry = zoo::find(network).unwrap();
    let model = entry.build(0);
    model.move_to(device).unwrap();
    let mut config = TrainConfig::from_recipe(&entry.recipe, 0);
    config.epochs = 1;
    config.batch_size = batch;
    config.eval_batch_size = batch;
    let mut trainer = Trainer::new(&model, config);
    let mut losses = Losses(Vec::new());
    let report = trainer.run_epoch(train, test, &mut losses).unwrap();
    let params = model
        .parameters()
        .iter()
        .map(|(_, p)| {
            assert_eq!(p.device(), device, "{network}: a parameter left the device");
            p.to_vec()
        })
        .collect();
    (losses.0, report.test_loss, params)
}

struct Losses(Vec<f32>);

impl strata_models::train::Observer for Losses {
    fn batch_finished(&mut self, _batch: usize, loss: f32, _images_per_second: f64) {
        self.0.push(loss);
    }
}

fn relative(a: f32, b: f32) -> f32 {
    (a - b).abs() / b.abs().max(1.0)
}

fn compare(device: Device, network: &str, train_count: usize, batch: usize, tolerance: f32) {
    let (train, test) = (
        synthetic("train", train_count, 1),
        synthetic("test", batch, 2),
    );
    compare_on(device, network, (&train, &test), batch, tolerance);
}

fn compare_on(
    device: Device,
    network: &str,
    data: (&dyn Dataset, &dyn Dataset),
    batch: usize,
    tolerance: f32,
) {
    let (cpu_losses, cpu_test, cpu_params) = train_on(Device::Cpu, network, data, batch);
    let (dev_losses, dev_test, dev_params) = train_on(device, network, data, batch);
    assert_eq!(cpu_losses.len(), data.0.len().div_ceil(batch));
    for (step, (d, c)) in dev_losses.iter().zip(&cpu_losses).enumerate() {
        assert!(
            relative(*d, *c) <= tolerance,
            "{network} on {device}: step {} loss {d} vs {c} on the CPU",
            step + 1
        );
    }
    assert!(
        relative(dev_test, cpu_test) <= tolerance,
        "{network}: test loss {dev_test} vs {cpu_test}"
    );
    let worst = dev_params
        .iter()
        .flatten()
        .zip(cpu_params.iter().flatten())
        .map(|(d, c)| relative(*d, *c))
        .fold(0.0, f32::max);
    assert!(
        worst <= tolerance,
        "{network} on {device}: weights differ by {worst:e}"
    );
    println!(
        "{network} on {device}: {} steps, last loss {:.6} (cpu {:.6}), weights within {worst:.1e}",
        dev_losses.len(),
        dev_losses.last().unwrap(),
        cpu_losses.last().unwrap()
    );
}

/// Every parameter's name and gradient after one forward and backward pass of `network`
/// (fresh from seed 0, in training mode, dropout seeded) on `device`, over the first `batch`
/// images of `data`, with the network's own loss.
fn gradients_on(
    device: Device,
    network: &str,
    data: &dyn Dataset,
    batch: usize,
) -> Vec<(String, Vec<f32>)> {
    let entry = zoo::find(network).unwrap();
    let model = entry.build(0);
    model.move_to(device).unwrap();
    model.train();
    model.reseed(7);
    let (x, labels) = data.batch(&(0..batch).collect::<Vec<_>>());
    let out = model.forward(&x.to(device).unwrap());
    loss_of(entry.recipe.loss, &out, &labels).backward();
    model
        .parameters()
        .into_iter()
        .map(|(name, p)| {
            let grad = p
                .grad()
                .unwrap_or_else(|| panic!("{network}: {name} has no gradient"));
            assert_eq!(
                grad.device(),
                device,
                "{network}: {name}'s gradient left the device"
            );
            (name, grad.to_vec())
        })
        .collect()
}

/// Largest gap between gradients on `device` and on the CPU, relative to the largest CPU
/// gradient of each parameter: `max |g_dev - g_cpu| / max |g_cpu|`.
///
/// Rules out a backward pass on the device that is wrong in magnitude (a gradient scaled by
/// 2 gives a gap of 1), which the training comparisons cannot see through Adam, whose update
/// is blind to a constant scale of the gradient.
fn compare_gradients(device: Device, network: &str, batch: usize, tolerance: f32) {
    let data = synthetic("gradients", batch, 3);
    let cpu = gradients_on(Device::Cpu, network, &data, batch);
    let dev = gradients_on(device, network, &data, batch);
    assert_eq!(cpu.len(), dev.len());
    let mut worst = 0f32;
    for ((name, c), (_, d)) in cpu.iter().zip(&dev) {
        let scale = c.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            scale > 0.0,
            "{network}: {name} has an all-zero gradient on the CPU"
        );
        let gap = d.iter().zip(c).fold(0f32, |m, (d, c)| m.max((d - c).abs()));
        assert!(
            gap <= tolerance * scale,
            "{network} on {device}: {name}'s gradient differs from the CPU's by {:e} of its \
             largest element {scale:e}",
            gap / scale
        );
        worst = worst.max(gap / scale);
    }
    println!(
        "{network} on {device}: {} gradients within {worst:.1e}",
        cpu.len()
    );
}

#[test]
fn lenet5_gradients_on_the_virtual_device_match_the_cpu() {
    // conv2d (weight, input and bias gradients), max pooling, linear, softmax-cross-entropy.
    compare_gradients(Device::CudaSim, "lenet5", 4, 2e-5);
}

#[test]
fn journey_final_gradients_on_the_virtual_device_match_the_cpu() {
    // Batch norm in training mode, dropout, global average pooling, log-softmax and NLL.
    compare_gradients(Device::CudaSim, "journey_final", 4, 2e-5);
}

#[test]
fn mnist_mlp_gradients_on_the_virtual_device_match_the_cpu() {
    // Transposed-weight GEMMs and bias broadcasts.
    compare_gradients(Device::CudaSim, "mnist_mlp", 4, 2e-5);
}

#[test]
fn lenet5_trains_on_the_virtual_device_as_on_the_cpu() {
    // conv2d, max pooling, ReLU, linear layers, softmax-cross-entropy, Adam.
    compare(Device::CudaSim, "lenet5", 24, 8, 1e-4);
}

#[test]
fn journey_final_trains_on_the_virtual_device_as_on_the_cpu() {
    // Batch norm (train and eval), dropout, SGD with momentum 0.9.
    compare(Device::CudaSim, "journey_final", 8, 4, 1e-4);
}

#[test]
fn mnist_mlp_trains_on_the_virtual_device_as_on_the_cpu() {
    // Transposed-weight GEMMs, bias broadcasts, SGD with momentum 0.5.
    compare(Device::CudaSim, "mnist_mlp", 32, 16, 1e-4);
}

#[test]
fn a_full_mnist_mlp_epoch_on_a_gpu_matches_the_cpu() {
    match CudaDevice::open(Device::Cuda(0)) {
        Err(why) => strata_kernels::test_skip::skip(strata_kernels::test_skip::Reason::NoGpu(why)),
        Ok(gpu) => {
            println!("running on {gpu:?}");
            // A full epoch of real MNIST when it is there (`make data`), else synthetic images.
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist");
            match load_mnist_dir(&dir, "mnist") {
                Ok((train, test)) => {
                    let entry = zoo::find("mnist_mlp").unwrap();
                    let (mean, std) = entry.recipe.normalization.mean_std();
                    let (train, test) = (
                        train.with_normalization(mean, std),
                        test.with_normalization(mean, std),
                    );
                    compare_on(Device::Cuda(0), "mnist_mlp", (&train, &test), 64, 5e-3);
                }
                Err(e) => {
                    println!("MNIST not available ({e}): synthetic images instead");
                    compare(Device::Cuda(0), "mnist_mlp", 6_400, 64, 1e-3);
                }
            }
            compare(Device::Cuda(0), "lenet5", 2_000, 100, 1e-3);
            compare(Device::Cuda(0), "journey_final", 512, 128, 1e-3);
        }
    }
}
