//! Every op's CUDA path against its CPU path, on the virtual device (`cuda-sim`: NVRTC's PTX of
//! the `kernels/*.cu` sources interpreted, with memcheck, racecheck, initcheck and synccheck on
//! every launch), reached through the same launcher code (`Tensor::to`, device buffers, argument checking, launch geometry) as on a
//! GPU. For each op the forward values and the gradient of every input must match the CPU's
//! within a relative tolerance. Where a real GPU is present, `crates/models/tests/cuda_training.rs`
//! trains networks on it against the CPU and `crates/kernels/tests/cuda_gpu.rs` checks the
//! kernels on it against their CPU twins.

use approx::abs_diff_eq;
use strata_tensor::{Device, Generator, Tensor};

/// The CUDA devices every test runs on.
const DEVICES: [Device; 1] = [Device::CudaSim];

/// Asserts |got - want| <= tolerance · max(1, |want|) for every element.
fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: element counts differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            abs_diff_eq!(g, w, epsilon = tolerance * w.abs().max(1.0)),
            "{what}: element {i} is {g} on the device and {w} on the CPU (tolerance {tolerance:e})"
        );
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    Tensor::uniform(shape, -1.0, 1.0, &mut Generator::seed(seed))
}

/// Runs `f` on `inputs` on the CPU and on the virtual device, backpropagates the sum of the
/// output times a fixed random weight (so every output element gets its own gradient), and
/// compares the outputs and every input's gradient.
fn same_on_device(
    what: &str,
    inputs: Vec<Tensor>,
    tolerance: f32,
    f: impl Fn(&[Tensor]) -> Tensor,
) {
    let run = |device: Device| {
        let leaves: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.to(device).unwrap().detach().set_requires_grad(true))
            .collect();
        let y = f(&leaves);
        assert_eq!(y.device(), device, "{what}: the output left the device");
        let weight = random(y.shape(), 99).to(device).unwrap();
        y.mul(&weight).sum_all().backward();
        let grads: Vec<Vec<f32>> = leaves
            .iter()
            .map(|t| {
                let g = t.grad().unwrap_or_else(|| panic!("{what}: no gradient"));
                assert_eq!(g.device(), device, "{what}: the gradient left the device");
                g.to_vec()
            })
            .collect();
        (y.to_vec(), grads)
    };
    let (y_cpu, g_cpu) = run(Device::Cpu);
    for device in DEVICES {
        let (y_dev, g_dev) = run(device);
        assert_close(
            &format!("{what} on {device}: forward"),
            &y_dev,
            &y_cpu,
            tolerance,
        );
        for (i, (a, b)) in g_dev.iter().zip(&g_cpu).enumerate() {
            assert_close(
                &format!("{what} on {device}: gradient of input {i}"),
                a,
                b,
                tolerance,
            );
        }
    }
}

#[test]
fn moving_to_the_device_and_back_keeps_values_shape_and_gradients() {
    for device in DEVICES {
        let x = random(&[3, 4], 1).set_requires_grad(true);
        let on_device = x.to(device).unwrap();
        assert_eq!(on_device.device(), device);
        assert_eq!(on_device.shape(), &[3, 4]);
        assert_eq!(on_device.to_vec(), x.to_vec());
        // A transposed view is copied dense on the way.
        assert_eq!(x.t().to(device).unwrap().to_vec(), x.t().to_vec());
        assert_eq!(on_device.get(&[2, 1]), x.get(&[2, 1]));
        // Gradients flow back across the move.
        on_device.mul_scalar(3.0).sum_all().backward();
        assert_eq!(x.grad().unwrap().device(), Device::Cpu);
        assert_eq!(x.grad().unwrap().to_vec(), vec![3.0; 12]);
    }
}

#[test]
fn elementwise_ops_with_broadcasting_and_views_match_the_cpu() {
    let (a, b) = (random(&[4, 5, 6], 2), random(&[5, 1], 3));
    let tol = 1e-6;
    same_on_device("add (broadcast)", vec![a.clone(), b.clone()], tol, |t| {
        t[0].add(&t[1])
    });
    same_on_device("sub", vec![a.clone(), b.clone()], tol, |t| t[0].sub(&t[1]));
    same_on_device("mul", vec![a.clone(), b.clone()], tol, |t| t[0].mul(&t[1]));
    same_on_device("div", vec![a.clone(), b.add_scalar(3.0)], tol, |t| {
        t[0].div(&t[1])
    });
    same_on_device("transposed view", vec![a.clone()], tol, |t| {
        t[0].transpose(0, 2).relu().add_scalar(0.5)
    });
    same_on_device("unary chain", vec![a.clone()], 1e-5, |t| {
        t[0].tanh()
            .add(&t[0].sigmoid())
            .add(&t[0].exp())
            .mul_scalar(0.5)
            .neg()
    });
    same_on_device("log, sqrt, powf", vec![a.add_scalar(2.0)], 1e-5, |t| {
        t[0].log().add(&t[0].sqrt()).add(&t[0].powf(1.5))
    });
}

#[test]
fn reductions_match_the_cpu() {
    let x = random(&[6, 7, 8], 4);
    same_on_device("sum over 1", vec![x.clone()], 1e-5, |t| {
        t[0].sum(&[1], false)
    });
    same_on_device("sum over 0 and 2", vec![x.clone()], 1e-5, |t| {
        t[0].sum(&[0, 2], true)
    });
    same_on_device("mean_all", vec![x.clone()], 1e-5, |t| t[0].mean_all());
    same_on_device("max over 2", vec![x.clone()], 0.0, |t| {
        t[0].max(&[2], false)
    });
    let am_cpu = x.argmax(1, false).to_vec();
    for device in DEVICES {
        let am = x.to(device).unwrap().argmax(1, false);
        assert_eq!(am.device(), device);
        assert_eq!(am.to_vec(), am_cpu, "argmax on {device}");
    }
}

#[test]
fn matmul_plain_transposed_and_batched_matches_the_cpu() {
    let tol = 1e-5;
    same_on_device(
        "matmul",
        vec![random(&[37, 19], 5), random(&[19, 23], 6)],
        tol,
        |t| t[0].matmul(&t[1]),
    );
    // Linear's x · Wᵀ: a transposed operand is only strides to the kernel.
    same_on_device(
        "linear",
        vec![random(&[10, 30], 7), random(&[12, 30], 8), random(&[12], 9)],
        tol,
        |t| t[0].matmul(&t[1].t()).add(&t[2]),
    );
    same_on_device(
        "batched, broadcast",
        vec![random(&[3, 9, 5], 10), random(&[5, 4], 11)],
        tol,
        |t| t[0].matmul(&t[1]),
    );
    same_on_device(
        "narrowed operand",
        vec![random(&[8, 6], 12), random(&[6, 3], 13)],
        tol,
        |t| t[0].narrow(0, 2, 5).matmul(&t[1]),
    );
}

#[test]
fn convolution_and_pooling_match_the_cpu() {
    let x = random(&[3, 2, 9, 8], 14);
    let (w, b) = (random(&[4, 2, 3, 3], 15), random(&[4], 16));
    let tol = 1e-5;
    same_on_device("conv2d", vec![x.clone(), w.clone(), b.clone()], tol, |t| {
        t[0].conv2d(&t[1], Some(&t[2]), (1, 1), (0, 0))
    });
    same_on_device(
        "conv2d stride 2, padding 1, no bias",
        vec![x.clone(), w.clone()],
        tol,
        |t| t[0].conv2d(&t[1], None, (2, 2), (1, 1)),
    );
    same_on_device("max_pool2d", vec![x.clone()], 0.0, |t| {
        t[0].max_pool2d((2, 2), (2, 2), (0, 0))
    });
    same_on_device("max_pool2d overlapping", vec![x.clone()], 0.0, |t| {
        t[0].max_pool2d((3, 3), (2, 2), (1, 1))
    });
    same_on_device("avg_pool2d", vec![x.clone()], 1e-6, |t| {
        t[0].avg_pool2d((2, 2), (2, 2), (0, 0))
    });
}

#[test]
fn losses_and_log_softmax_match_the_cpu() {
    let logits = random(&[7, 10], 17).mul_scalar(4.0);
    let labels = [3u32, 0, 9, 9, 1, 5, 2];
    same_on_device("softmax_cross_entropy", vec![logits.clone()], 1e-5, |t| {
        t[0].softmax_cross_entropy(&labels)
    });
    same_on_device("log_softmax", vec![logits.clone()], 1e-5, |t| {
        t[0].log_softmax(-1)
    });
    same_on_device("log_softmax over axis 0", vec![logits.clone()], 1e-5, |t| {
        t[0].log_softmax(0)
    });
}

#[test]
fn mixing_devices_in_one_op_is_a_clear_error() {
    let a = random(&[2, 2], 18);
    for device in DEVICES {
        let b = a.to(device).unwrap();
        let err = std::panic::catch_unwind(|| a.add(&b)).unwrap_err();
        let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("add")
                && message.contains("cpu")
                && message.contains(&device.to_string()),
            "{message}"
        );
    }
}

#[test]
fn a_missing_gpu_is_an_error_not_a_panic() {
    // cuda:63 exists nowhere (and on a machine without a driver no cuda:N does).
    let err = random(&[2], 19).to(Device::Cuda(63)).unwrap_err();
    assert!(err.to_string().contains("cuda:63"), "{err}");
}

#[test]
fn batch_norm_and_dropout_match_the_cpu() {
    let x = random(&[4, 3, 5, 5], 20);
    let (gamma, beta) = (random(&[3], 21).add_scalar(1.5), random(&[3], 22));
    same_on_device(
        "batch_norm_train",
        vec![x.clone(), gamma.clone(), beta.clone()],
        1e-4,
        |t| t[0].batch_norm_train(Some(&t[1]), Some(&t[2]), 1e-5).0,
    );
    same_on_device(
        "batch_norm_train without affine",
        vec![random(&[6, 4], 23)],
        1e-4,
        |t| t[0].batch_norm_train(None, None, 1e-5).0,
    );
    let (_, stats_cpu) = x.batch_norm_train(None, None, 1e-5);
    for device in DEVICES {
        let (_, stats) = x.to(device).unwrap().batch_norm_train(None, None, 1e-5);
        assert_close("batch mean", &stats.mean, &stats_cpu.mean, 1e-5);
        assert_close("batch variance", &stats.var, &stats_cpu.var, 1e-4);
    }
    // The device draws the CPU's mask (same Philox stream): exactly the same output.
    same_on_device("dropout", vec![random(&[5, 37], 24)], 0.0, |t| {
        t[0].dropout(0.3, true, &mut Generator::seed(7))
    });
}
