//! The safetensors checkpoint loader on arbitrary bytes, into a LeNet-5 and its Adam state:
//! an error naming the problem, or a load that leaves every tensor its shape, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use strata_models::zoo::find;
use strata_nn::checkpoint::{load_module, load_tensors, load_training};
use strata_nn::layers::Sequential;
use strata_nn::optim::Adam;
use strata_nn::{Module, ModuleExt};

#[path = "scratch.rs"]
mod scratch;

fn lenet5() -> &'static Sequential {
    static MODEL: OnceLock<Sequential> = OnceLock::new();
    MODEL.get_or_init(|| find("lenet5").unwrap().build(0))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch::file("checkpoint.safetensors", data);
    let model = lenet5();
    let shapes: Vec<Vec<usize>> = model
        .state_dict()
        .iter()
        .map(|(_, t)| t.shape().to_vec())
        .collect();
    if let Ok(stored) = load_tensors(&path) {
        for (dtype, shape, values) in stored.tensors.values() {
            let _ = dtype;
            assert_eq!(
                Some(values.len()),
                shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
            );
        }
    }
    let _ = load_module(model, &path);
    let mut adam = Adam::new(model.parameters(), 1e-3);
    let _ = load_training(&path, model, &mut adam);
    let after: Vec<Vec<usize>> = model
        .state_dict()
        .iter()
        .map(|(_, t)| t.shape().to_vec())
        .collect();
    assert_eq!(shapes, after);
});
