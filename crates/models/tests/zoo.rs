//! Every network of the zoo against its source (docs/published-results.md): parameter counts,
//! names, output shapes.

use std::path::Path;
use strata_models::zoo::{find, zoo};
use strata_nn::checkpoint::{load_module, load_tensors};
use strata_nn::{summary, Module, ModuleExt, Tensor};

/// Trainable parameters as docs/published-results.md lists them.
const PUBLISHED_COUNTS: &[(&str, usize)] = &[
    ("dnn3", 98),
    ("mnist_mlp", 575_050),
    ("lenet5_classic", 61_706),
    ("snn500", 397_510),
    ("cnn3l", 28_938),
    ("lenet5", 61_706),
    ("cnn3l_cifar", 22_058),
    ("lenet5_cifar", 62_006),
    ("journey_r1", 6_379_786),
    ("journey_r2", 194_884),
    ("journey_r3", 10_790),
    ("journey_r4", 10_760),
    ("journey_r5", 12_352),
    ("journey_r6", 5_688),
    ("journey_r7", 9_896),
    ("journey_r8", 13_848),
    ("journey_r9", 9_896),
    ("journey_final", 9_896),
];

#[test]
fn every_network_has_its_published_parameter_count() {
    assert_eq!(zoo().len(), PUBLISHED_COUNTS.len());
    for &(name, count) in PUBLISHED_COUNTS {
        let entry = find(name).unwrap();
        let model = entry.build(0);
        assert_eq!(model.num_parameters(), count, "{name}");
        assert_eq!(entry.parameters, count, "{name}: catalogue figure");
    }
}

#[test]
fn every_network_maps_its_input_to_ten_scores() {
    for entry in zoo() {
        let mut shape = vec![2];
        shape.extend(entry.input_shape());
        let s = summary(&entry.build(0), &shape);
        let classes = if entry.name == "dnn3" { 3 } else { 10 };
        assert_eq!(
            s.rows.last().unwrap().output_shape,
            [2, classes],
            "{}",
            entry.name
        );
    }
}

#[test]
fn parameter_names_follow_the_pytorch_state_dicts() {
    let names = |model: &str| -> Vec<String> {
        let mut n: Vec<String> = find(model)
            .unwrap()
            .build(0)
            .parameters()
            .into_iter()
            .map(|(n, _)| n.rsplit_once('.').unwrap().0.to_string())
            .collect();
        n.dedup();
        n
    };
    assert_eq!(names("dnn3"), ["net.0", "net.2", "net.4", "net.6"]);
    assert_eq!(
        names("mnist_mlp"),
        ["net.1", "net.3", "net.5", "net.7", "net.9"]
    );
    assert_eq!(
        names("lenet5_classic"),
        ["net.0", "net.3", "net.6", "net.9", "net.11"]
    );
    assert_eq!(names("snn500"), ["fc1", "fc2"]);
    assert_eq!(names("cnn3l"), ["conv1.0", "conv2.0", "out"]);
    assert_eq!(names("lenet5"), ["conv1", "conv2", "fc1", "fc2", "fc3"]);
    assert_eq!(
        names("journey_r1"),
        ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7"]
    );
    assert_eq!(
        names("journey_r5"),
        [
            "convblock1.0",
            "convblock1.1",
            "convblock2.0",
            "convblock2.1",
            "convblock3.0",
            "convblock3.1",
            "convblock4.0",
            "convblock4.1",
            "convblock5.0",
            "convblock5.1",
            "convblock6.0",
            "convblock6.1",
            "convblock7.0",
            "convblock7.1",
            "convblock8.0"
        ]
    );
    assert_eq!(
        names("journey_r8"),
        [
            "convblock1.0",
            "convblock1.2",
            "convblock2.0",
            "convblock2.2",
            "convblock3.0",
            "convblock4.0",
            "convblock4.2",
            "convblock5.0",
            "convblock5.2",
            "convblock6.0",
            "convblock6.2",
            "convblock7.0",
            "convblock7.2",
            "convblock8.0"
        ]
    );
    assert_eq!(names("journey_r9"), names("journey_final"));
    assert_eq!(
        names("journey_final"),
        [
            "convblock1.0",
            "convblock1.2",
            "convblock2.0",
            "convblock2.2",
            "convblock3.0",
            "convblock3.2",
            "convblock4.0",
            "convblock4.2",
            "convblock5.0",
            "convblock5.1",
            "convblock6.0",
            "convblock6.2",
            "convblock7.0"
        ]
    );
}

#[test]
fn unknown_model_lists_the_known_ones() {
    let err = find("resnet50").err().unwrap();
    assert!(
        err.contains("unknown model 'resnet50'") && err.contains("lenet5_classic"),
        "{err}"
    );
}

#[test]
fn pytorch_lenet5_weights_reproduce_pytorch_logits() {
    // Written by `scripts/make_pytorch_lenet5.py fixture`.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let model = find("lenet5").unwrap().build(99);
    load_module(&model, &fixtures.join("lenet5_pytorch.safetensors")).unwrap();
    let io = load_tensors(&fixtures.join("lenet5_pytorch_io.safetensors")).unwrap();
    let (_, in_shape, input) = &io.tensors["input"];
    let (_, _, expected) = &io.tensors["logits"];
    model.eval();
    let logits = model
        .forward(&Tensor::from_vec(input.clone(), in_shape))
        .to_vec();
    assert_eq!(logits.len(), 40);
    for (i, (got, want)) in logits.iter().zip(expected).enumerate() {
        assert!(
            (got - want).abs() < 1e-5,
            "logit {i}: strata {got}, PyTorch {want}"
        );
    }
}

#[test]
fn pytorch_weights_of_journey_round_5_give_pytorchs_predictions() {
    // Written by `scripts/make_pytorch_journey.py`: the notebook's round 5 network trained one
    // epoch in PyTorch, so its BatchNorm running statistics are real; 64 MNIST test images.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let model = find("journey_r5").unwrap().build(99);
    load_module(&model, &fixtures.join("journey_r5_pytorch.safetensors")).unwrap();
    let io = load_tensors(&fixtures.join("journey_r5_pytorch_io.safetensors")).unwrap();
    let (_, in_shape, input) = &io.tensors["input"];
    let (_, _, expected) = &io.tensors["log_probs"];
    model.eval();
    let got = model
        .forward(&Tensor::from_vec(input.clone(), in_shape))
        .to_vec();
    assert_eq!(got.len(), 64 * 10);
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0
    };
    for (i, (g, w)) in got.chunks(10).zip(expected.chunks(10)).enumerate() {
        assert_eq!(
            argmax(g),
            argmax(w),
            "image {i}: strata {g:?}, PyTorch {w:?}"
        );
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() < 1e-4,
                "image {i}: strata {g:?}, PyTorch {w:?}"
            );
        }
    }
}
