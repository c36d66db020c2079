//! Sharing one model between threads: tensors and every layer are `Send + Sync`, and inference
//! of one network from several threads at once gives exactly the single-threaded logits.

use strata_models::zoo::find;
use strata_nn::layers::{
    AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, LogSoftmax, MaxPool2d,
    ReLU, Sequential, Sigmoid, Tanh,
};
use strata_nn::{Generator, Module, ModuleExt, Tensor};
use strata_tensor::no_grad;

/// Compile-time check: a type that is not `Send + Sync` makes this file fail to build.
const fn assert_send_sync<T: Send + Sync + ?Sized>() {}

const _: () = {
    assert_send_sync::<Tensor>();
    assert_send_sync::<Generator>();
    assert_send_sync::<Sequential>();
    assert_send_sync::<Linear>();
    assert_send_sync::<Conv2d>();
    assert_send_sync::<BatchNorm>();
    assert_send_sync::<Dropout>();
    assert_send_sync::<MaxPool2d>();
    assert_send_sync::<AvgPool2d>();
    assert_send_sync::<GlobalAvgPool2d>();
    assert_send_sync::<ReLU>();
    assert_send_sync::<Tanh>();
    assert_send_sync::<Sigmoid>();
    assert_send_sync::<LogSoftmax>();
    assert_send_sync::<Flatten>();
    assert_send_sync::<dyn Module>();
    assert_send_sync::<Box<dyn Module>>();
};

/// A deterministic batch of MNIST-shaped inputs, different for each `seed`.
fn batch(seed: u64, n: usize) -> Tensor {
    Tensor::normal(&[n, 1, 28, 28], 0.0, 1.0, &mut Generator::seed(seed))
}

fn logits(model: &dyn Module, x: &Tensor) -> Vec<u32> {
    let _guard = no_grad();
    model
        .forward(x)
        .to_vec()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn shared_lenet5_gives_the_single_threaded_logits_from_four_threads() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 3;
    let entry = find("lenet5").unwrap();
    let model = entry.build(7);
    model.eval();
    // Batch 64 is large enough for the convolution and GEMM kernels to split their work over
    // rayon, so the threads below also share the rayon pool.
    let inputs: Vec<Tensor> = (0..THREADS * ROUNDS).map(|s| batch(s, 64)).collect();
    let expected: Vec<Vec<u32>> = inputs.iter().map(|x| logits(&model, x)).collect();
    assert!(
        expected.windows(2).all(|w| w[0] != w[1]),
        "different inputs should give different logits"
    );

    let model_ref: &dyn Module = &model;
    let got: Vec<Vec<(usize, Vec<u32>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let inputs = &inputs;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for round in 0..ROUNDS {
                        // Each thread works through every input, starting at a different one,
                        // so the threads run different batches at the same moment.
                        for i in 0..inputs.len() {
                            let at = (i + (t * ROUNDS + round) as usize) % inputs.len();
                            if round % 2 == 0 {
                                out.push((at, logits(model_ref, &inputs[at])));
                            } else {
                                // Grad mode on: each thread builds (and drops) its own graph
                                // through the shared parameters.
                                let y = model_ref.forward(&inputs[at]);
                                assert!(y.requires_grad());
                                out.push((at, y.to_vec().iter().map(|v| v.to_bits()).collect()));
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    for (t, results) in got.iter().enumerate() {
        assert_eq!(results.len(), (ROUNDS as usize) * inputs.len());
        for (at, bits) in results {
            assert!(
                *bits == expected[*at],
                "thread {t}: logits of input {at} differ from the single-threaded run"
            );
        }
    }
    // Inference left the parameters without gradients and the model in evaluation mode.
    assert!(model.parameters().iter().all(|(_, p)| p.grad().is_none()));
    assert_eq!(logits(&model, &inputs[0]), expected[0]);
}

#[test]
fn eval_mode_batch_norm_and_dropout_are_deterministic_across_threads() {
    // journey_final has BatchNorm and Dropout: in evaluation mode neither may depend on which
    // thread runs it or on what other threads are doing.
    let entry = find("journey_final").unwrap();
    let model = entry.build(3);
    model.eval();
    let inputs: Vec<Tensor> = (0..4).map(|s| batch(100 + s, 8)).collect();
    let expected: Vec<Vec<u32>> = inputs.iter().map(|x| logits(&model, x)).collect();
    let model_ref: &dyn Module = &model;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (inputs, expected) = (&inputs, &expected);
                scope.spawn(move || {
                    for i in 0..inputs.len() {
                        let at = (i + t) % inputs.len();
                        assert!(
                            logits(model_ref, &inputs[at]) == expected[at],
                            "thread {t}: journey_final logits of input {at} differ"
                        );
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
}
