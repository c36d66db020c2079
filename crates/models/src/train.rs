//! The training loop: epochs of shuffled mini-batches, evaluation on the test set after each,
//! timing as the published experiments measured it, and an observer for progress display.

use crate::data::{batches, Dataset};
use crate::zoo::{LossKind, OptimizerKind, Recipe};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;
use strata_nn::distributed::{self, CommError, Communicator, GradientReducer, Shard};
use strata_nn::optim::{Adam, Optimizer, Sgd, SgdConfig};
use strata_nn::schedule::{Constant, LrSchedule, StepLr};
use strata_nn::{Generator, Module, ModuleExt, Tensor};
use strata_tensor::no_grad;

/// Everything that decides a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Training examples per optimizer step; must be positive. The last batch of an epoch may be
    /// smaller.
    pub batch_size: usize,
    /// Initial learning rate (changed per epoch by `step_lr`, if set).
    pub lr: f32,
    /// Which optimizer [`TrainConfig::make_optimizer`] builds.
    pub optimizer: OptimizerKind,
    /// The objective minimised, and reported as `train_loss` / `test_loss`.
    pub loss: LossKind,
    /// StepLR `(step, gamma)` applied per epoch.
    pub step_lr: Option<(usize, f32)>,
    /// Seed of the shuffling, the augmentation and the dropout masks, each drawn afresh per
    /// epoch (initialisation is seeded where the model is built).
    pub seed: u64,
    /// Batch size of the evaluation passes.
    pub eval_batch_size: usize,
}

impl TrainConfig {
    /// The recipe's settings.
    pub fn from_recipe(recipe: &Recipe, seed: u64) -> TrainConfig {
        TrainConfig {
            epochs: recipe.epochs,
            batch_size: recipe.batch_size,
            lr: recipe.lr,
            optimizer: recipe.optimizer,
            loss: recipe.loss,
            step_lr: recipe.step_lr,
            seed,
            eval_batch_size: 1000,
        }
    }

    /// The optimizer this configuration names, over `parameters`.
    pub fn make_optimizer(&self, parameters: Vec<(String, Tensor)>) -> Box<dyn Optimizer> {
        match self.optimizer {
            OptimizerKind::Sgd { momentum } => Box::new(Sgd::with_config(
                parameters,
                SgdConfig {
                    lr: self.lr,
                    momentum,
                    dampening: 0.0,
                    weight_decay: 0.0,
                    nesterov: false,
                },
            )),
            OptimizerKind::Adam => Box::new(Adam::new(parameters, self.lr)),
        }
    }

    /// The learning rate of each epoch.
    pub fn schedule(&self) -> Box<dyn LrSchedule> {
        match self.step_lr {
            Some((step_size, gamma)) => Box::new(StepLr {
                base: self.lr,
                step_size,
                gamma,
            }),
            None => Box::new(Constant(self.lr)),
        }
    }
}

/// One epoch's figures (stored as they are in a run's results.json).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate used during this epoch.
    pub lr: f32,
    /// Mean training loss per example over the epoch (weights changing as it went).
    pub train_loss: f32,
    /// Percent of training examples classified correctly while training (as the model was
    /// during that batch).
    pub train_accuracy: f32,
    /// Mean loss per test example after the epoch, in evaluation mode.
    pub test_loss: f32,
    /// Percent of test examples classified correctly after the epoch.
    pub test_accuracy: f32,
    /// Wall-clock seconds of the training pass alone (no evaluation).
    pub train_seconds: f64,
    /// One pass over the test set.
    pub test_seconds: f64,
    /// Training throughput: examples of the epoch divided by `train_seconds`.
    pub images_per_second: f64,
    /// Data-parallel runs: seconds of `train_seconds` this rank spent waiting for the summed
    /// gradients and figures after its backward pass had finished (the communication that did
    /// not overlap computation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication_seconds: Option<f64>,
}

/// Hooks for progress display; every method has a no-op default.
pub trait Observer {
    /// Called before epoch `epoch` (1-based), which will run `batches` optimizer steps.
    fn epoch_started(&mut self, _epoch: usize, _batches: usize) {}
    /// Called after each step: `batch` is 1-based within the epoch, `loss` is that batch's mean
    /// loss, `images_per_second` the epoch's training throughput so far.
    fn batch_finished(&mut self, _batch: usize, _loss: f32, _images_per_second: f64) {}
    /// Called after the epoch's evaluation, with its figures.
    fn epoch_finished(&mut self, _report: &EpochReport) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A batch could not be copied to the model's device.
    #[error("copying a batch to {device}: {reason}")]
    Device {
        /// The model's device.
        device: strata_nn::Device,
        /// What the device said.
        reason: String,
    },
    /// A training batch's loss was NaN or infinite, so the weights would be ruined; nothing
    /// was stepped with it.
    #[error(
        "the loss became {loss} at epoch {epoch}, batch {batch}; training stopped (lower the \
         learning rate or check the data)"
    )]
    NonFiniteLoss {
        /// The epoch, 1-based.
        epoch: usize,
        /// The batch within the epoch, 1-based.
        batch: usize,
        /// The offending value (NaN or ±inf).
        loss: f32,
    },
    /// A batch has fewer examples than there are data-parallel ranks, so some rank would have
    /// none (the last batch of an epoch is the usual one).
    #[error(
        "batch {batch} of epoch {epoch} has {rows} examples, fewer than the {ranks} ranks; use \
         fewer ranks or another batch size"
    )]
    BatchTooSmall {
        /// The epoch, 1-based.
        epoch: usize,
        /// The batch within the epoch, 1-based.
        batch: usize,
        /// Examples in the batch.
        rows: usize,
        /// Ranks sharing it.
        ranks: usize,
    },
    /// A collective between data-parallel ranks failed: another rank died or hung.
    #[error("{0}")]
    Communication(#[from] CommError),
    /// The evaluation after an epoch gave a NaN or infinite mean loss.
    #[error(
        "the test loss became {loss} after epoch {epoch}; training stopped (the weights have \
         diverged: lower the learning rate)"
    )]
    NonFiniteTestLoss {
        /// The epoch just trained, 1-based.
        epoch: usize,
        /// The offending value (NaN or ±inf).
        loss: f32,
    },
}

/// The loss of `output` for `labels` under `kind`.
pub fn loss_of(kind: LossKind, output: &Tensor, labels: &[u32]) -> Tensor {
    match kind {
        LossKind::CrossEntropy => output.softmax_cross_entropy(labels),
        LossKind::Nll => output.nll_loss(labels),
        LossKind::Mse => {
            let classes = output.shape()[1];
            let mut onehot = vec![0.0; labels.len() * classes];
            for (row, &l) in labels.iter().enumerate() {
                onehot[row * classes + l as usize] = 1.0;
            }
            let target = Tensor::from_vec(onehot, output.shape());
            output.mse_loss(&target)
        }
    }
}

/// How many rows of `output` have their largest score at the label.
pub fn correct(output: &Tensor, labels: &[u32]) -> usize {
    let predictions = output.argmax(1, false).to_vec();
    predictions
        .iter()
        .zip(labels)
        .filter(|(&p, &l)| p as u32 == l)
        .count()
}

/// Mean loss and accuracy (percent) of `model` on `data`, in evaluation mode, without a graph.
pub fn evaluate(
    model: &dyn Module,
    data: &dyn Dataset,
    loss: LossKind,
    batch_size: usize,
) -> (f32, f32) {
    let (total_loss, right) = evaluate_sums(model, data, 0..data.len(), loss, batch_size);
    let n = data.len().max(1) as f64;
    ((total_loss / n) as f32, (100.0 * right / n) as f32)
}

/// Summed loss and number of correct predictions over examples `range` of `data`, in
/// evaluation mode (a data-parallel rank evaluates its share, then the sums are added up).
fn evaluate_sums(
    model: &dyn Module,
    data: &dyn Dataset,
    range: Range<usize>,
    loss: LossKind,
    batch_size: usize,
) -> (f64, f64) {
    let _guard = no_grad();
    model.eval();
    let device = model.device();
    let order: Vec<usize> = range.collect();
    let (mut total_loss, mut right) = (0f64, 0usize);
    for idx in batches(&order, batch_size) {
        let (x, labels) = data.batch(idx);
        let x = x
            .to(device)
            .unwrap_or_else(|e| panic!("evaluate: copying a batch to {device}: {e}"));
        let out = model.forward(&x);
        total_loss += loss_of(loss, &out, &labels).item() as f64 * idx.len() as f64;
        right += correct(&out, &labels);
    }
    model.train();
    (total_loss, right as f64)
}

/// Where a training batch's rows sit in the global batch: all of it in one process, a share
/// of it on a data-parallel rank. Random draws that belong to a row (rotation angles, dropout)
/// are taken for the whole global batch and indexed by the row's place in it, so they do not
/// depend on the number of ranks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRows {
    /// This process's rows of the global batch.
    pub rows: Range<usize>,
    /// Rows of the global batch.
    pub global: usize,
}

/// A transformation of each training batch (data augmentation), given the epoch's generator
/// and which rows of the global batch it holds.
pub type Augment = Box<dyn Fn(&Tensor, &mut Generator, &BatchRows) -> Tensor + Send + Sync>;

/// Data-parallel training: the ranks, and how gradients and BatchNorm are synchronised.
pub struct DataParallel {
    /// The ranks' communicator.
    pub communicator: Arc<dyn Communicator>,
    /// BatchNorm statistics over the global batch instead of each rank's share.
    pub sync_batch_norm: bool,
    reducer: GradientReducer,
    /// Seconds spent waiting for gradient all-reduces this epoch (after backward had finished).
    pub wait_seconds: f64,
}

/// The running state of a training run, so a caller can checkpoint between epochs.
///
/// A zoo network trained for two short epochs on synthetic data (no download):
///
/// ```
/// use strata_models::data::Dnn3;
/// use strata_models::nn::Generator;
/// use strata_models::train::{Silent, TrainConfig, Trainer};
/// use strata_models::zoo;
///
/// let entry = zoo::find("dnn3")?;
/// let model = entry.build(0);
/// let mut config = TrainConfig::from_recipe(&entry.recipe, 0);
/// config.epochs = 2; // the published recipe runs 1000
/// config.batch_size = 50;
/// let g = &mut Generator::seed(1);
/// let (train, test) = (Dnn3::generate(500, g), Dnn3::generate(200, g));
///
/// let mut trainer = Trainer::new(&model, config);
/// let reports = trainer.run(&train, &test, &mut Silent)?;
/// assert_eq!(reports.len(), 2);
/// assert_eq!((reports[1].epoch, trainer.epoch), (2, 2));
/// assert!((0.0..=100.0).contains(&reports[1].test_accuracy));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer<'a> {
    /// The network being trained (its parameters are updated in place).
    pub model: &'a dyn Module,
    /// Applied to every training batch before the forward pass.
    pub augment: Option<Augment>,
    /// The optimizer over the model's parameters; its state belongs in a training checkpoint.
    pub optimizer: Box<dyn Optimizer>,
    /// The settings the trainer was created with.
    pub config: TrainConfig,
    schedule: Box<dyn LrSchedule>,
    /// Epochs completed.
    pub epoch: usize,
    /// Set by [`Trainer::data_parallel`]; `None` trains in this process alone.
    pub parallel: Option<DataParallel>,
}

impl<'a> Trainer<'a> {
    /// A trainer at epoch 0, with the optimizer and learning-rate schedule `config` names over all
    /// of `model`'s parameters. Panics if `config.batch_size` is 0.
    pub fn new(model: &'a dyn Module, config: TrainConfig) -> Trainer<'a> {
        assert!(
            config.batch_size > 0,
            "Trainer: batch size must be positive"
        );
        Trainer {
            optimizer: config.make_optimizer(model.parameters()),
            schedule: config.schedule(),
            model,
            augment: None,
            config,
            epoch: 0,
            parallel: None,
        }
    }

    /// Trains as one rank of `communicator`: each rank takes its share of every global batch
    /// (the configuration's batch size), gradients are summed across ranks in buckets of
    /// `bucket_bytes` as backward produces them, evaluation is split between the ranks and its
    /// sums added up. Rank 0's weights and buffers are copied to every rank first, so the ranks
    /// start from identical weights; the configuration (the seed of shuffling, dropout and
    /// augmentation included) must be the same on every rank, which the caller checks.
    pub fn data_parallel(
        &mut self,
        communicator: Arc<dyn Communicator>,
        sync_batch_norm: bool,
        bucket_bytes: usize,
    ) -> Result<(), CommError> {
        self.parallel = Some(DataParallel {
            reducer: GradientReducer::new(&self.model.parameters(), bucket_bytes),
            communicator,
            sync_batch_norm,
            wait_seconds: 0.0,
        });
        self.broadcast_state()
    }

    /// Copies rank 0's parameters and buffers (BatchNorm's running statistics) to every rank.
    pub fn broadcast_state(&self) -> Result<(), CommError> {
        let Some(parallel) = &self.parallel else {
            return Ok(());
        };
        let state = self.model.state_dict();
        let mut bytes: Vec<u8> = Vec::new();
        for (_, t) in &state {
            bytes.extend_from_slice(bytemuck::cast_slice(&t.to_vec()));
        }
        parallel.communicator.broadcast(&mut bytes, 0)?;
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        let mut at = 0;
        for (_, t) in &state {
            let n = t.numel();
            t.update_data(|d| d.copy_from_slice(&values[at..at + n]));
            at += n;
        }
        Ok(())
    }

    /// A checksum of the parameters, for checking that the ranks still agree.
    pub fn parameter_checksum(&self) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for (_, t) in self.model.parameters() {
            for v in t.to_vec() {
                hash = (hash ^ v.to_bits() as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }

    /// Rank 0's parameters against every other rank's: an error if any differs (the sums of
    /// an all-reduce must be identical on every rank, or the copies would drift apart).
    fn check_ranks_agree(&self, epoch: usize) -> Result<(), TrainError> {
        let Some(parallel) = &self.parallel else {
            return Ok(());
        };
        let comm = &parallel.communicator;
        let mine = self.parameter_checksum();
        let mut bytes = mine.to_le_bytes().to_vec();
        comm.broadcast(&mut bytes, 0)?;
        let theirs = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
        let mut differ = [f64::from(u8::from(theirs != mine))];
        comm.all_reduce_sum_f64(&mut differ)?;
        if differ[0] > 0.0 {
            return Err(TrainError::Communication(CommError::Library {
                rank: comm.rank(),
                op: "checking the weights",
                message: format!(
                    "after epoch {epoch}, {} rank(s) hold weights that differ from rank 0's",
                    differ[0]
                ),
            }));
        }
        Ok(())
    }

    /// The shuffled order of epoch `epoch` (1-based), a function of the seed and the epoch
    /// alone, so a resumed run sees the same batches.
    fn order(&self, n: usize, epoch: usize) -> Vec<usize> {
        let mut generator =
            Generator::seed(self.config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, generator.below(i + 1));
        }
        order
    }

    /// A generator for one purpose (`stream`) in one epoch, fixed by the seed.
    fn epoch_generator(&self, epoch: usize, stream: u64) -> Generator {
        Generator::seed(
            self.config.seed
                ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03),
        )
    }

    /// Trains one epoch on `train`, then evaluates on `test`.
    ///
    /// Called from inside rayon's pool (`rayon::scope(|_| ...)` around the training loop, as
    /// the `strata` command does), every parallel kernel forks on the calling worker; called
    /// from another thread, each kernel wakes the pool and waits for it, which costs small
    /// networks up to a sixth of their step time. The results are the same either way.
    pub fn run_epoch(
        &mut self,
        train: &dyn Dataset,
        test: &dyn Dataset,
        observer: &mut dyn Observer,
    ) -> Result<EpochReport, TrainError> {
        let epoch = self.epoch + 1;
        let lr = self.schedule.lr(self.epoch);
        self.optimizer.set_learning_rate(lr);
        self.model.train();
        let order = self.order(train.len(), epoch);
        let batch_count = order.len().div_ceil(self.config.batch_size);
        observer.epoch_started(epoch, batch_count);
        let mut augment_generator = self.epoch_generator(epoch, 1);
        // Dropout masks restart from the seed and the epoch, not from wherever the layers'
        // generators had got to, so a run resumed from a checkpoint trains exactly as one
        // that never stopped.
        self.model.reseed(self.epoch_generator(epoch, 2).next_u64());
        let device = self.model.device();
        let (rank, ranks) = self
            .parallel
            .as_ref()
            .map_or((0, 1), |p| (p.communicator.rank(), p.communicator.size()));
        if let Some(p) = &mut self.parallel {
            p.wait_seconds = 0.0;
        }
        let start = Instant::now();
        let (mut loss_sum, mut right, mut seen) = (0f64, 0f64, 0usize);
        for (b, global_idx) in batches(&order, self.config.batch_size).enumerate() {
            if global_idx.len() < ranks {
                return Err(TrainError::BatchTooSmall {
                    epoch,
                    batch: b + 1,
                    rows: global_idx.len(),
                    ranks,
                });
            }
            let place = BatchRows {
                rows: distributed::share(global_idx.len(), rank, ranks),
                global: global_idx.len(),
            };
            let idx = &global_idx[place.rows.clone()];
            let (mut x, labels) = train.batch(idx);
            if let Some(augment) = &self.augment {
                x = augment(&x, &mut augment_generator, &place);
            }
            // Batches are assembled (and augmented) on the host, then copied to the model.
            let x = x.to(device).map_err(|e| TrainError::Device {
                device,
                reason: e.to_string(),
            })?;
            self.optimizer.zero_grad();
            let (value, batch_right) = match &mut self.parallel {
                None => {
                    let out = self.model.forward(&x);
                    let loss = loss_of(self.config.loss, &out, &labels);
                    let value = loss.item();
                    if !value.is_finite() {
                        return Err(TrainError::NonFiniteLoss {
                            epoch,
                            batch: b + 1,
                            loss: value,
                        });
                    }
                    loss.backward();
                    (value, correct(&out.detach(), &labels) as f64)
                }
                Some(parallel) => {
                    let shard = Shard {
                        first_row: place.rows.start,
                        global_rows: place.global,
                        communicator: parallel.communicator.clone(),
                        sync_batch_norm: parallel.sync_batch_norm,
                    };
                    let out = distributed::with_shard(shard, || self.model.forward(&x));
                    let loss = loss_of(self.config.loss, &out, &labels);
                    let share = idx.len() as f32 / place.global as f32;
                    // The batch's loss and correct count, summed over the ranks while backward
                    // runs: every rank sees the same global loss, so all stop together on NaN.
                    let figures = parallel.communicator.start_all_reduce_sum(vec![
                        loss.item() * share,
                        correct(&out.detach(), &labels) as f32,
                    ]);
                    let comm = parallel.communicator.clone();
                    let waited = parallel.reducer.backward(comm.as_ref(), &loss, share)?;
                    let start_wait = Instant::now();
                    let figures = figures.wait()?;
                    parallel.wait_seconds += waited + start_wait.elapsed().as_secs_f64();
                    if !figures[0].is_finite() {
                        return Err(TrainError::NonFiniteLoss {
                            epoch,
                            batch: b + 1,
                            loss: figures[0],
                        });
                    }
                    (figures[0], figures[1] as f64)
                }
            };
            self.optimizer.step();
            loss_sum += value as f64 * global_idx.len() as f64;
            right += batch_right;
            seen += global_idx.len();
            observer.batch_finished(b + 1, value, seen as f64 / start.elapsed().as_secs_f64());
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let test_start = Instant::now();
        let (test_loss, test_accuracy) = self.evaluate_test(test)?;
        if !test_loss.is_finite() {
            return Err(TrainError::NonFiniteTestLoss {
                epoch,
                loss: test_loss,
            });
        }
        let report = EpochReport {
            epoch,
            lr,
            train_loss: (loss_sum / seen.max(1) as f64) as f32,
            train_accuracy: (100.0 * right / seen.max(1) as f64) as f32,
            test_loss,
            test_accuracy,
            train_seconds,
            test_seconds: test_start.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_seconds,
            communication_seconds: self.parallel.as_ref().map(|p| p.wait_seconds),
        };
        self.epoch = epoch;
        observer.epoch_finished(&report);
        Ok(report)
    }

    /// Mean test loss and accuracy after an epoch. Data-parallel ranks first take rank 0's
    /// buffers (each rank's BatchNorm running statistics saw only its share), check that their
    /// weights agree, evaluate a share of the test set each and add up the sums.
    fn evaluate_test(&self, test: &dyn Dataset) -> Result<(f32, f32), TrainError> {
        let (loss, batch) = (self.config.loss, self.config.eval_batch_size);
        let Some(parallel) = &self.parallel else {
            return Ok(evaluate(self.model, test, loss, batch));
        };
        self.check_ranks_agree(self.epoch + 1)?;
        self.broadcast_state()?;
        let comm = &parallel.communicator;
        let range = distributed::share(test.len(), comm.rank(), comm.size());
        let (total, right) = evaluate_sums(self.model, test, range, loss, batch);
        let mut sums = [total, right];
        comm.all_reduce_sum_f64(&mut sums)?;
        let n = test.len().max(1) as f64;
        Ok(((sums[0] / n) as f32, (100.0 * sums[1] / n) as f32))
    }

    /// Trains the remaining epochs of the configuration.
    pub fn run(
        &mut self,
        train: &dyn Dataset,
        test: &dyn Dataset,
        observer: &mut dyn Observer,
    ) -> Result<Vec<EpochReport>, TrainError> {
        let mut reports = Vec::new();
        while self.epoch < self.config.epochs {
            reports.push(self.run_epoch(train, test, observer)?);
        }
        Ok(reports)
    }

    /// Parameters of the model (a convenience for callers that checkpoint).
    pub fn parameter_count(&self) -> usize {
        self.model.num_parameters()
    }
}
