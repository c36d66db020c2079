//! Layers: shapes, parameter names and counts, BatchNorm statistics, dropout, summary.

use strata_nn::layers::{
    AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, LogSoftmax, MaxPool2d,
    ReLU, Sequential, Tanh,
};
use strata_nn::tensor::gradcheck::{gradcheck, GradcheckOptions};
use strata_nn::{summary, Generator, Module, ModuleExt, Tensor};

#[test]
fn linear_computes_x_wt_plus_b_with_pytorch_names() {
    let mut g = Generator::seed(0);
    let layer = Linear::new(3, 2, &mut g);
    layer.weight.copy_from(&Tensor::from_vec(
        vec![1.0, 2.0, 3.0, 0.0, -1.0, 1.0],
        &[2, 3],
    ));
    layer
        .bias
        .as_ref()
        .unwrap()
        .copy_from(&Tensor::from_vec(vec![0.5, -0.5], &[2]));
    let y = layer.forward(&Tensor::from_vec(
        vec![1.0, 1.0, 1.0, 2.0, 0.0, 1.0],
        &[2, 3],
    ));
    assert_eq!(y.to_vec(), vec![6.5, -0.5, 5.5, 0.5]);
    let names: Vec<String> = layer.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight", "bias"]);
}

#[test]
fn default_init_is_uniform_within_one_over_sqrt_fan_in() {
    let mut g = Generator::seed(1);
    let conv = Conv2d::new(6, 16, 5, 1, 0, true, &mut g);
    let bound = 1.0 / (150f32).sqrt();
    let w = conv.weight.to_vec();
    assert!(w.iter().all(|v| v.abs() <= bound));
    // Uniform on [-b, b] has standard deviation b/√3; 2,400 draws pin it within a few percent.
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!(
        (std / (bound / 3f32.sqrt()) - 1.0).abs() < 0.05,
        "std {std}"
    );
}

#[test]
fn sequential_names_nest_like_pytorch_state_dicts() {
    let mut g = Generator::seed(0);
    let block = Sequential::new(vec![
        Box::new(Conv2d::new(1, 8, 3, 1, 0, false, &mut g)),
        Box::new(ReLU),
        Box::new(BatchNorm::new_2d(8)),
    ]);
    let model = Sequential::named(vec![
        ("convblock1", Box::new(block)),
        ("gap", Box::new(GlobalAvgPool2d)),
    ]);
    let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "convblock1.0.weight",
            "convblock1.2.weight",
            "convblock1.2.bias",
            "convblock1.2.running_mean",
            "convblock1.2.running_var",
            "convblock1.2.num_batches_tracked"
        ]
    );
    // 72 conv weights + 8 gammas + 8 betas; running statistics are not parameters.
    assert_eq!(model.num_parameters(), 88);
}

#[test]
fn batch_norm_training_statistics_running_update_and_eval() {
    // One channel, values 1, 2, 3, 6: mean 3, biased var 3.5, unbiased var 14/3.
    let bn = BatchNorm::new_1d(1);
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], &[4, 1]);
    let y = bn.forward(&x).to_vec();
    let inv = 1.0 / (3.5f32 + 1e-5).sqrt();
    for (got, v) in y.iter().zip([1.0f32, 2.0, 3.0, 6.0]) {
        assert!((got - (v - 3.0) * inv).abs() < 1e-5);
    }
    // running = 0.9·initial + 0.1·batch (unbiased variance).
    assert!((bn.running_mean.item() - 0.3).abs() < 1e-6);
    assert!((bn.running_var.item() - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-5);
    assert_eq!(bn.num_batches_tracked.item(), 1.0);
    bn.eval();
    let y = bn.forward(&Tensor::from_vec(vec![0.3], &[1, 1]));
    assert!(y.item().abs() < 1e-6, "eval uses the running mean");
    assert_eq!(
        bn.num_batches_tracked.item(),
        1.0,
        "eval does not update statistics"
    );
}

#[test]
fn batch_norm_layer_input_gradient_passes_gradcheck() {
    let mut g = Generator::seed(3);
    let bn = BatchNorm::new_2d(2);
    bn.weight
        .as_ref()
        .unwrap()
        .copy_from(&Tensor::from_vec(vec![0.7, 1.3], &[2]));
    bn.bias
        .as_ref()
        .unwrap()
        .copy_from(&Tensor::from_vec(vec![0.2, -0.4], &[2]));
    let x = Tensor::uniform(&[3, 2, 3, 3], -1.0, 1.0, &mut g).set_requires_grad(true);
    let report = gradcheck(|t| bn.forward(&t[0]), &[x], &GradcheckOptions::default()).unwrap();
    assert_eq!(report.elements_checked, 54);
}

#[test]
fn dropout_scales_in_training_and_is_identity_in_eval() {
    let mut g = Generator::seed(4);
    let d = Dropout::new(0.25, &mut g);
    let x = Tensor::ones(&[100, 100]);
    let y = d.forward(&x).to_vec();
    let kept = y.iter().filter(|&&v| v != 0.0).count();
    assert!(y.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
    assert!((kept as f32 / 10_000.0 - 0.75).abs() < 0.02, "kept {kept}");
    d.eval();
    assert_eq!(d.forward(&x).to_vec(), x.to_vec());
}

#[test]
fn dropout_masks_follow_the_seed() {
    let x = Tensor::ones(&[64]);
    let a = Dropout::new(0.5, &mut Generator::seed(9))
        .forward(&x)
        .to_vec();
    let b = Dropout::new(0.5, &mut Generator::seed(9))
        .forward(&x)
        .to_vec();
    let c = Dropout::new(0.5, &mut Generator::seed(10))
        .forward(&x)
        .to_vec();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn summary_lists_shapes_and_parameter_counts() {
    let mut g = Generator::seed(0);
    let lenet = Sequential::named(vec![
        ("conv1", Box::new(Conv2d::new(1, 6, 5, 1, 2, true, &mut g))),
        ("tanh1", Box::new(Tanh)),
        ("pool1", Box::new(AvgPool2d::new(2))),
        ("conv2", Box::new(Conv2d::new(6, 16, 5, 1, 0, true, &mut g))),
        ("pool2", Box::new(MaxPool2d::new(2))),
        ("flatten", Box::new(Flatten)),
        ("fc", Box::new(Linear::new(400, 10, &mut g))),
        ("out", Box::new(LogSoftmax)),
    ]);
    let s = summary(&lenet, &[2, 1, 28, 28]);
    let shapes: Vec<Vec<usize>> = s.rows.iter().map(|r| r.output_shape.clone()).collect();
    assert_eq!(shapes[0], [2, 6, 28, 28]);
    assert_eq!(shapes[2], [2, 6, 14, 14]);
    assert_eq!(shapes[4], [2, 16, 5, 5]);
    assert_eq!(shapes[6], [2, 10]);
    assert_eq!(s.total_params, 156 + 2416 + 4010);
    assert_eq!(s.trainable_params, s.total_params);
    let text = s.to_string();
    assert!(
        text.contains("conv2") && text.contains("Total params: 6,582"),
        "{text}"
    );
}

#[test]
#[should_panic(expected = "Linear: input of shape [2, 4] does not match weight [3, 5]")]
fn linear_shape_error_names_both_shapes() {
    Linear::new(5, 3, &mut Generator::seed(0)).forward(&Tensor::zeros(&[2, 4]));
}

/// `Sequential` runs a ReLU followed by max pooling as pooling then ReLU. On activations with
/// many negative windows, exact zeros, ties and overlapping windows, the output and every
/// gradient equal the layers applied one after the other, bit for bit.
#[test]
fn relu_then_max_pool_matches_the_layers_applied_in_order_bit_for_bit() {
    for (kernel, stride) in [(2, 2), (3, 2)] {
        let g = &mut Generator::seed(7);
        let model = Sequential::new(vec![
            Box::new(Conv2d::new(2, 3, 3, 1, 1, true, g)),
            Box::new(ReLU),
            Box::new(MaxPool2d {
                kernel,
                stride,
                padding: 1,
            }),
        ]);
        // A negative bias leaves whole windows below zero; rounded inputs make ties common.
        for (name, p) in model.parameters() {
            if name.ends_with("bias") {
                p.update_data(|b| b.fill(-4.0));
            }
        }
        let values: Vec<f32> = (0..4 * 2 * 9 * 9)
            .map(|i| ((i * 37 % 11) as f32 - 6.0).round() * 0.5)
            .collect();
        let run = |in_order: bool| {
            model.zero_grad();
            let x = Tensor::from_vec(values.clone(), &[4, 2, 9, 9]).set_requires_grad(true);
            let y = if in_order {
                let children = model.children();
                let mut h = x.clone();
                for (_, child) in &children {
                    h = child.forward(&h);
                }
                h
            } else {
                model.forward(&x)
            };
            // A weighted sum, so every output's gradient differs.
            let weights: Vec<f32> = (0..y.numel()).map(|i| (i % 5) as f32 - 2.0).collect();
            y.mul(&Tensor::from_vec(weights, y.shape()))
                .sum_all()
                .backward();
            let grads: Vec<Vec<f32>> = model
                .parameters()
                .iter()
                .map(|(_, p)| p.grad().unwrap().to_vec())
                .collect();
            (y.to_vec(), x.grad().unwrap().to_vec(), grads)
        };
        let (fused, in_order) = (run(false), run(true));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&fused.0),
            bits(&in_order.0),
            "outputs, kernel {kernel}"
        );
        assert!(
            fused.0.iter().filter(|&&v| v == 0.0).count() > 10,
            "too few zeros to test"
        );
        assert_eq!(
            bits(&fused.1),
            bits(&in_order.1),
            "input gradient, kernel {kernel}"
        );
        for (a, b) in fused.2.iter().zip(&in_order.2) {
            assert_eq!(bits(a), bits(b), "parameter gradient, kernel {kernel}");
        }
    }
}

/// `Sequential` runs consecutive Linear layers, with the ReLUs between them, as one
/// `dense_chain`: on dnn3's narrow widths a fused kernel, which agrees with the layers applied
/// one after the other to rounding; a Tanh ends the chain, and a wide layer is the composed
/// chain, bit for bit.
#[test]
fn linear_relu_chains_run_as_one_op_and_match_the_layers_in_order() {
    let g = &mut Generator::seed(3);
    let model = Sequential::new(vec![
        Box::new(Linear::new(3, 5, g)),
        Box::new(ReLU),
        Box::new(Linear::new(5, 5, g)),
        Box::new(ReLU),
        Box::new(Linear::new(5, 4, g)),
        Box::new(Tanh),
        Box::new(Linear::new(4, 30, g)),
        Box::new(ReLU),
        Box::new(Linear::new(30, 2, g)),
    ]);
    let x = Tensor::normal(&[500, 3], 0.0, 1.0, g);
    let run = |in_order: bool| {
        model.zero_grad();
        let y = if in_order {
            let mut h = x.clone();
            for (_, child) in &model.children() {
                h = child.forward(&h);
            }
            h
        } else {
            model.forward(&x)
        };
        let op = y.op_name();
        let weights = Tensor::normal(y.shape(), 0.0, 1.0, &mut Generator::seed(4));
        y.mul(&weights).sum_all().backward();
        let mut all = vec![y.to_vec()];
        all.extend(
            model
                .parameters()
                .iter()
                .map(|(_, p)| p.grad().unwrap().to_vec()),
        );
        (op, all)
    };
    let ((chain_op, chained), (_, in_order)) = (run(false), run(true));
    // The wide chain at the end is composed: its last op is the bias add.
    assert_eq!(chain_op, Some("add"));
    let narrow = Sequential::new(vec![
        Box::new(Linear::new(3, 5, g)),
        Box::new(ReLU),
        Box::new(Linear::new(5, 2, g)),
    ]);
    assert_eq!(narrow.forward(&x).op_name(), Some("dense_chain"));
    let names: Vec<String> = model.parameters().into_iter().map(|(n, _)| n).collect();
    for (k, (a, b)) in chained.iter().zip(&in_order).enumerate() {
        let what = if k == 0 { "output" } else { &names[k - 1] };
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        assert!(
            approx::abs_diff_eq!(a.as_slice(), b.as_slice(), epsilon = 2e-5 * scale),
            "{what}: {a:?} vs {b:?}"
        );
        // The wide chain after the Tanh (parameters 6..) is composed exactly as the layers are.
        if k >= 7 {
            assert_eq!(a, b, "{what} differs from the layers in order");
        }
    }
}

/// A layer written outside strata-nn: forward, parameters and describe only.
struct OwnLinear(Linear);

impl Module for OwnLinear {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.0.forward(x)
    }
    fn parameters(&self) -> Vec<(String, Tensor)> {
        self.0.parameters()
    }
    fn describe(&self) -> String {
        format!("Own{}", self.0.describe())
    }
}

#[test]
fn a_layer_of_another_crate_runs_on_its_own() {
    let g = &mut Generator::seed(5);
    let x = Tensor::normal(&[8, 3], 0.0, 1.0, g);
    // Sequential fuses its own Linear and ReLU; a custom layer's forward runs as written.
    let ours = Sequential::new(vec![Box::new(Linear::new(3, 5, g)), Box::new(ReLU)]);
    assert_eq!(ours.forward(&x).op_name(), Some("dense_chain"));
    let theirs = Sequential::new(vec![
        Box::new(OwnLinear(Linear::new(3, 5, g))),
        Box::new(ReLU),
    ]);
    let y = theirs.forward(&x);
    assert_eq!(y.op_name(), Some("relu"));
    let children = theirs.children();
    let in_order = children[1].1.forward(&children[0].1.forward(&x));
    assert_eq!(y.to_vec(), in_order.to_vec());
    assert_eq!(theirs.num_parameters(), 3 * 5 + 5);
}
