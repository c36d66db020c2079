//! The safetensors checkpoint loader on arbitrary bytes, into a LeNet-5 and its Adam state:
//! an error naming the file, or a load that leaves every tensor its shape, never a panic.
//!
//! Everything `load_tensors`, `load_module` and `load_training` do with a file's bytes runs
//! here in memory: `parse_tensors`, `load_module_tensors` and `load_training_tensors`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use strata_models::zoo::find;
use strata_nn::checkpoint::{load_module_tensors, load_training_tensors, parse_tensors};
use strata_nn::layers::Sequential;
use strata_nn::optim::Adam;
use strata_nn::{Module, ModuleExt};

const NAME: &str = "checkpoint.safetensors";

fn lenet5() -> &'static Sequential {
    static MODEL: OnceLock<Sequential> = OnceLock::new();
    MODEL.get_or_init(|| find("lenet5").unwrap().build(0))
}

/// The model's tensor shapes before any input was loaded.
fn initial_shapes() -> &'static [Vec<usize>] {
    static SHAPES: OnceLock<Vec<Vec<usize>>> = OnceLock::new();
    SHAPES.get_or_init(|| shapes(lenet5()))
}

fn shapes(model: &Sequential) -> Vec<Vec<usize>> {
    model
        .state_dict()
        .iter()
        .map(|(_, t)| t.shape().to_vec())
        .collect()
}

fn assert_named<T>(result: Result<T, strata_nn::checkpoint::CheckpointError>) {
    if let Err(e) = result {
        assert!(e.to_string().contains(NAME), "{e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let model = lenet5();
    let before = initial_shapes();
    let stored = match parse_tensors(data, Path::new(NAME)) {
        Ok(stored) => stored,
        Err(e) => {
            assert!(e.to_string().contains(NAME), "{e}");
            return;
        }
    };
    for (_, shape, values) in stored.tensors.values() {
        assert_eq!(
            Some(values.len()),
            shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
        );
    }
    assert_named(load_module_tensors(model, &stored));
    let mut adam = Adam::new(model.parameters(), 1e-3);
    assert_named(load_training_tensors(stored, model, &mut adam));
    assert_eq!(before, shapes(model));
});
