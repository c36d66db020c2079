//! Checkpoints: round trips, atomic writes, and every kind of bad file as a named error.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use strata_nn::checkpoint::{
    load_module, load_training, save_module, save_tensors, save_training, write_atomically,
    write_atomically_with, CheckpointError,
};
use strata_nn::layers::{BatchNorm, Conv2d, Linear, ReLU, Sequential};
use strata_nn::optim::{Optimizer, Sgd, SgdConfig};
use strata_nn::{Generator, Module, ModuleExt, Tensor};

fn model(seed: u64) -> Sequential {
    let mut g = Generator::seed(seed);
    Sequential::named(vec![
        ("conv", Box::new(Conv2d::new(1, 2, 3, 1, 1, true, &mut g))),
        ("bn", Box::new(BatchNorm::new_2d(2))),
        ("act", Box::new(ReLU)),
    ])
}

fn values(m: &dyn Module) -> Vec<(String, Vec<f32>)> {
    m.state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.to_vec()))
        .collect()
}

fn error_text(e: CheckpointError) -> String {
    e.to_string()
}

#[test]
fn save_and_load_round_trip_including_batch_norm_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let a = model(1);
    a.forward(&Tensor::uniform(
        &[4, 1, 5, 5],
        -1.0,
        1.0,
        &mut Generator::seed(0),
    ));
    save_module(&a, &path).unwrap();
    let b = model(2);
    assert_ne!(values(&a), values(&b));
    load_module(&b, &path).unwrap();
    assert_eq!(values(&a), values(&b));
    assert_eq!(
        b.buffers()[2].1.item(),
        1.0,
        "num_batches_tracked survives as an integer"
    );
}

#[test]
fn missing_extra_and_misshapen_tensors_are_all_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    let mut tensors = model(1).state_dict();
    tensors.retain(|(n, _)| n != "conv.bias");
    tensors.push(("conv.extra".into(), Tensor::zeros(&[1])));
    let pos = tensors.iter().position(|(n, _)| n == "bn.weight").unwrap();
    tensors[pos].1 = Tensor::zeros(&[3]);
    save_tensors(&path, &tensors, HashMap::new()).unwrap();
    let target = model(5);
    let before = values(&target);
    let text = error_text(load_module(&target, &path).unwrap_err());
    assert!(text.contains("missing tensor 'conv.bias'"), "{text}");
    assert!(text.contains("unexpected tensor 'conv.extra'"), "{text}");
    assert!(
        text.contains("'bn.weight' has shape [3], expected [2]"),
        "{text}"
    );
    assert_eq!(before, values(&target), "a failed load changes nothing");
}

#[test]
fn wrong_dtype_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f16.safetensors");
    // A hand-made file whose only tensor is F16.
    let header = br#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0, 60, 0, 60]);
    fs::write(&path, bytes).unwrap();
    let m = Linear::new(1, 2, &mut Generator::seed(0));
    let text = error_text(load_module(&m, &path).unwrap_err());
    assert!(text.contains("tensor 'w' has dtype F16"), "{text}");
}

#[test]
fn truncated_and_lying_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let m = model(1);
    save_module(&m, &good).unwrap();
    let bytes = fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.safetensors");
    fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let text = error_text(load_module(&m, &truncated).unwrap_err());
    assert!(
        text.contains("truncated.safetensors") && text.contains("not a valid safetensors"),
        "{text}"
    );

    let lying = dir.path().join("lying.safetensors");
    let mut liar = bytes.clone();
    liar[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    fs::write(&lying, &liar).unwrap();
    let text = error_text(load_module(&m, &lying).unwrap_err());
    assert!(text.contains("lying.safetensors"), "{text}");

    let tiny = dir.path().join("tiny.safetensors");
    fs::write(&tiny, [1u8, 2, 3]).unwrap();
    assert!(matches!(
        load_module(&m, &tiny),
        Err(CheckpointError::Format { .. })
    ));

    let absent = dir.path().join("absent.safetensors");
    let text = error_text(load_module(&m, &absent).unwrap_err());
    assert!(text.contains("absent.safetensors"), "{text}");
}

#[test]
fn an_interrupted_save_leaves_the_previous_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    save_module(&model(1), &path).unwrap();
    let before = fs::read(&path).unwrap();
    // The writer dies half-way through (as on a full disk).
    let result = write_atomically_with(&path, |file| {
        file.write_all(&before[..before.len() / 2])?;
        Err(std::io::Error::other("disk full"))
    });
    let text = error_text(result.unwrap_err());
    assert!(
        text.contains("model.safetensors") && text.contains("disk full"),
        "{text}"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "the old file is untouched"
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    // A save into a folder that does not exist fails with the path in the message.
    let gone = dir.path().join("gone").join("model.safetensors");
    assert!(matches!(
        write_atomically(&gone, b"x"),
        Err(CheckpointError::Io { .. })
    ));
    load_module(&model(3), &path).unwrap();
}

#[test]
fn training_checkpoint_restores_optimizer_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.safetensors");
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    let step = |m: &Sequential, opt: &mut Sgd| {
        opt.zero_grad();
        let x = Tensor::uniform(&[2, 1, 4, 4], -1.0, 1.0, &mut Generator::seed(11));
        m.forward(&x).powf(2.0).mean_all().backward();
        opt.step();
    };
    let a = model(1);
    let mut opt_a = Sgd::with_config(a.parameters(), config);
    step(&a, &mut opt_a);
    save_training(&path, &a, &opt_a, 3, HashMap::new()).unwrap();
    let b = model(2);
    let mut opt_b = Sgd::with_config(b.parameters(), config);
    let progress = load_training(&path, &b, &mut opt_b).unwrap();
    assert_eq!(progress.epoch, 3);
    step(&a, &mut opt_a);
    step(&b, &mut opt_b);
    assert_eq!(values(&a), values(&b), "momentum buffers were restored");
    // A model-only loader accepts the training file, ignoring the optimizer state.
    load_module(&model(4), &path).unwrap();
    // Another optimizer cannot resume from it.
    let mut adam = strata_nn::optim::Adam::new(b.parameters(), 0.1);
    let text = error_text(load_training(&path, &b, &mut adam).unwrap_err());
    assert!(text.contains("optimizer 'sgd', not 'adam'"), "{text}");
    assert_eq!(opt_b.learning_rate(), 0.1);
}
