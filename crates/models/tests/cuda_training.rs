//! Training on a CUDA device against training on the CPU: the same network, seed and batches,
//! step by step. On the emulated device (`cuda-emu`, every machine) a few steps of three
//! networks that between them use every kernel family (convolution, both poolings' siblings,
//! batch norm, dropout, softmax-cross-entropy, SGD with momentum and Adam); on a real GPU,
//! when there is one, a longer run. The losses of every step and the final weights must agree
//! within a tolerance: the device sums in a different order (f32 block reductions, GEMM
//! tiles), so bit-identity is not expected, but any wrong kernel, launch or gradient shows up
//! as a difference many orders of magnitude larger.

use std::path::PathBuf;
use strata_kernels::cuda::runtime::CudaDevice;
use strata_models::data::{load_mnist_dir, Dataset, ImageDataset};
use strata_models::nn::{Device, Generator, Module, ModuleExt};
use strata_models::train::{TrainConfig, Trainer};
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

#[test]
fn lenet5_trains_on_the_emulated_device_as_on_the_cpu() {
    // conv2d, max pooling, ReLU, linear layers, softmax-cross-entropy, Adam.
    compare(Device::CudaEmulated, "lenet5", 24, 8, 1e-4);
}

#[test]
fn journey_final_trains_on_the_emulated_device_as_on_the_cpu() {
    // Batch norm (train and eval), dropout, SGD with momentum 0.9.
    compare(Device::CudaEmulated, "journey_final", 8, 4, 1e-4);
}

#[test]
fn mnist_mlp_trains_on_the_emulated_device_as_on_the_cpu() {
    // Transposed-weight GEMMs, bias broadcasts, SGD with momentum 0.5.
    compare(Device::CudaEmulated, "mnist_mlp", 32, 16, 1e-4);
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
