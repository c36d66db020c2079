//! Same seed, same bits: training on real MNIST inside rayon pools of one and two threads gives
//! bit-identical per-batch losses, epoch figures and final weights, run after run.
//!
//! Needs MNIST in `<workspace>/datasets/mnist/` (`make data`). Where it is absent the tests
//! skip with the reason (`test_skip`), except under CI=true, where the data must be there.

use std::path::PathBuf;
use strata_kernels::test_skip::{skip, Reason};
use strata_models::data::{load_mnist_dir, random_rotation_of_rows, Dataset, ImageDataset};
use strata_models::train::{EpochReport, Observer, TrainConfig, Trainer};
use strata_models::zoo::{find, ZooEntry};
use strata_nn::{Module, Tensor};

fn mnist() -> Option<(ImageDataset, ImageDataset)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist");
    match load_mnist_dir(&dir, "mnist") {
        Ok(sets) => Some(sets),
        Err(e) => {
            skip(Reason::DataAbsent(format!(
                "real MNIST is not available ({e}); run `make data`"
            )));
            None
        }
    }
}

/// The first `len` examples of a dataset.
struct Prefix<'a> {
    inner: &'a dyn Dataset,
    len: usize,
}

impl Dataset for Prefix<'_> {
    fn len(&self) -> usize {
        self.len.min(self.inner.len())
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
    fn example_shape(&self) -> Vec<usize> {
        self.inner.example_shape()
    }
    fn batch(&self, indices: &[usize]) -> (Tensor, Vec<u32>) {
        assert!(indices.iter().all(|&i| i < self.len()));
        self.inner.batch(indices)
    }
}

/// Records the loss of every batch, as bits.
#[derive(Default)]
struct LossCurve(Vec<u32>);

impl Observer for LossCurve {
    fn batch_finished(&mut self, _batch: usize, loss: f32, _images_per_second: f64) {
        self.0.push(loss.to_bits());
    }
}

/// Everything a run produces that must not depend on the thread count.
#[derive(Debug, PartialEq)]
struct Outcome {
    losses: Vec<u32>,
    /// Epoch figures without the timings.
    epochs: Vec<[u32; 5]>,
    /// Every parameter and buffer, by name, as bits.
    weights: Vec<(String, Vec<u32>)>,
}

struct Setup<'a> {
    model: &'static str,
    train: &'a dyn Dataset,
    test: &'a dyn Dataset,
    epochs: usize,
    batch_size: usize,
    seed: u64,
}

/// Trains as `strata train` does (recipe, optimizer, augmentation) inside a rayon pool of
/// `threads` threads.
fn train(setup: &Setup<'_>, threads: usize) -> Outcome {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    pool.install(|| {
        assert_eq!(rayon::current_num_threads(), threads);
        let entry = find(setup.model).unwrap();
        let model = entry.build(setup.seed);
        let mut config = TrainConfig::from_recipe(&entry.recipe, setup.seed);
        config.epochs = setup.epochs;
        config.batch_size = setup.batch_size;
        let mut trainer = Trainer::new(&model, config);
        if let Some(degrees) = entry.recipe.rotation_degrees {
            let (mean, std) = entry.recipe.normalization.mean_std();
            let fill = -mean / std;
            trainer.augment = Some(Box::new(move |x, g, place| {
                random_rotation_of_rows(x, degrees, fill, g, place.rows.clone(), place.global)
            }));
        }
        let mut curve = LossCurve::default();
        let reports = trainer
            .run(setup.train, setup.test, &mut curve)
            .expect("training stays finite");
        let figures = |r: &EpochReport| {
            [
                r.lr.to_bits(),
                r.train_loss.to_bits(),
                r.train_accuracy.to_bits(),
                r.test_loss.to_bits(),
                r.test_accuracy.to_bits(),
            ]
        };
        let mut weights: Vec<(String, Vec<u32>)> = model
            .parameters()
            .into_iter()
            .chain(model.buffers())
            .map(|(n, t)| (n, t.to_vec().iter().map(|v| v.to_bits()).collect()))
            .collect();
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        Outcome {
            losses: curve.0,
            epochs: reports.iter().map(figures).collect(),
            weights,
        }
    })
}

/// Runs `setup` with 1, 2, 1 and 2 threads and asserts every run equals the first, bit for bit.
fn assert_thread_count_independent(setup: &Setup<'_>) {
    let first = train(setup, 1);
    assert_eq!(
        first.losses.len(),
        setup.epochs * setup.train.len().div_ceil(setup.batch_size)
    );
    let losses: Vec<f32> = first.losses.iter().map(|&b| f32::from_bits(b)).collect();
    assert!(
        losses.last() < losses.first(),
        "{}: the loss should fall while training ({:?} .. {:?})",
        setup.model,
        losses.first(),
        losses.last()
    );
    for (run, threads) in [2, 1, 2].into_iter().enumerate() {
        let again = train(setup, threads);
        if let Some(at) = (0..first.losses.len()).find(|&i| first.losses[i] != again.losses[i]) {
            panic!(
                "{}: run {} with {threads} thread(s) first differs at batch {at}: loss {} vs {} \
                 with 1 thread",
                setup.model,
                run + 2,
                f32::from_bits(again.losses[at]),
                f32::from_bits(first.losses[at])
            );
        }
        assert_eq!(
            first.epochs, again.epochs,
            "{}: epoch figures differ with {threads} thread(s)",
            setup.model
        );
        for ((name, a), (_, b)) in first.weights.iter().zip(&again.weights) {
            assert!(
                a == b,
                "{}: '{name}' differs after training with {threads} thread(s)",
                setup.model
            );
        }
        assert_eq!(first, again);
    }
}

/// MNIST normalised as `model`'s recipe says; none where it is absent (see [`mnist`]).
fn mnist_for(model: &str) -> Option<(ImageDataset, ImageDataset)> {
    let (train, test) = mnist()?;
    let (mean, std) = find(model).unwrap().recipe.normalization.mean_std();
    Some((
        train.with_normalization(mean, std),
        test.with_normalization(mean, std),
    ))
}

/// Trains `model` on the first `train_len` training and `test_len` test images of MNIST at one
/// and two threads and checks the bits agree.
fn check_on_mnist_prefix(
    model: &'static str,
    (train_len, test_len): (usize, usize),
    epochs: usize,
    batch_size: usize,
    seed: u64,
) {
    let Some((train, test)) = mnist_for(model) else {
        return;
    };
    assert_thread_count_independent(&Setup {
        model,
        train: &Prefix {
            inner: &train,
            len: train_len,
        },
        test: &Prefix {
            inner: &test,
            len: test_len,
        },
        epochs,
        batch_size,
        seed,
    });
}

#[test]
fn lenet5_training_is_bit_identical_at_one_and_two_threads() {
    // Two epochs of 40 batches of 100 (the recipe's batch size) on 4,000 images: the second
    // epoch reshuffles, and the test pass covers 1,000 images.
    let batch_size = find("lenet5").unwrap().recipe.batch_size;
    check_on_mnist_prefix("lenet5", (4_000, 1_000), 2, batch_size, 11);
}

#[test]
fn batch_norm_dropout_and_rotation_are_bit_identical_at_one_and_two_threads() {
    // journey_final: BatchNorm (batch statistics and running averages), Dropout masks and
    // random rotation of every batch, all of which draw on rayon.
    check_on_mnist_prefix("journey_final", (768, 256), 1, 128, 5);
}

/// Epoch figures (without timings) and every weight, as bits.
type Snapshot = (Vec<[u32; 4]>, Vec<(String, Vec<u32>)>);

fn snapshot(model: &dyn Module, reports: &[EpochReport]) -> Snapshot {
    let figures = reports
        .iter()
        .map(|r| {
            [
                r.train_loss.to_bits(),
                r.train_accuracy.to_bits(),
                r.test_loss.to_bits(),
                r.test_accuracy.to_bits(),
            ]
        })
        .collect();
    let weights = model
        .parameters()
        .into_iter()
        .chain(model.buffers())
        .map(|(n, t)| (n, t.to_vec().iter().map(|v| v.to_bits()).collect()))
        .collect();
    (figures, weights)
}

#[test]
fn resuming_from_a_training_checkpoint_equals_never_stopping() {
    use strata_nn::checkpoint::{load_training, save_training};
    // journey_final: Dropout masks, BatchNorm running statistics, SGD momentum and a rotation
    // per batch all have to carry over (or be re-derived) for the resumed run to match.
    let Some((train, test)) = mnist_for("journey_final") else {
        return;
    };
    let entry = find("journey_final").unwrap();
    let (train, test) = (
        Prefix {
            inner: &train,
            len: 512,
        },
        Prefix {
            inner: &test,
            len: 256,
        },
    );
    const SEED: u64 = 9;
    fn trainer_for<'m>(entry: &ZooEntry, model: &'m dyn Module) -> Trainer<'m> {
        let mut config = TrainConfig::from_recipe(&entry.recipe, SEED);
        config.epochs = 3;
        config.batch_size = 128;
        let mut trainer = Trainer::new(model, config);
        let (mean, std) = entry.recipe.normalization.mean_std();
        let (degrees, fill) = (entry.recipe.rotation_degrees.unwrap(), -mean / std);
        trainer.augment = Some(Box::new(move |x, g, place| {
            random_rotation_of_rows(x, degrees, fill, g, place.rows.clone(), place.global)
        }));
        trainer
    }
    let silent = &mut strata_models::train::Silent;

    let model = entry.build(SEED);
    let reports = trainer_for(&entry, &model)
        .run(&train, &test, silent)
        .unwrap();
    let straight = snapshot(&model, &reports);

    // Train one epoch and checkpoint it; then, as a new process would, build the network and
    // the trainer afresh from the seed, load the checkpoint and train the rest.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let mut reports = {
        let model = entry.build(SEED);
        let mut trainer = trainer_for(&entry, &model);
        let first = trainer.run_epoch(&train, &test, silent).unwrap();
        save_training(
            &path,
            &model,
            trainer.optimizer.as_ref(),
            trainer.epoch,
            Default::default(),
        )
        .unwrap();
        vec![first]
    };
    let model = entry.build(SEED);
    let mut trainer = trainer_for(&entry, &model);
    let progress = load_training(&path, &model, trainer.optimizer.as_mut()).unwrap();
    assert_eq!(progress.epoch, 1);
    trainer.epoch = progress.epoch;
    reports.extend(trainer.run(&train, &test, silent).unwrap());
    let resumed = snapshot(&model, &reports);

    assert_eq!(straight.0, resumed.0, "epoch figures differ after resuming");
    for ((name, a), (_, b)) in straight.1.iter().zip(&resumed.1) {
        assert!(
            a == b,
            "'{name}' differs between the straight and the resumed run"
        );
    }
}
