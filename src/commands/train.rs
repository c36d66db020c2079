//! `strata train MODEL`: the default recipe (or overrides) on real data, with a progress bar,
//! per-epoch figures, checkpoints of the last and best epoch, results.json and curves.svg.

use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use strata::datasets::{self, DatasetChoice};
use strata::runs::{plot_curves, print_table, RunResults};
use strata_models::data::{random_rotation_of_rows, Dataset};
use strata_models::train::{EpochReport, Observer, TrainConfig, TrainError, Trainer};
use strata_models::zoo::{find, LossKind, OptimizerKind, ZooEntry};
use strata_nn::checkpoint::{
    load_tensors, load_training_tensors, parse_tensors, save_tensors, save_training, StoredTensors,
};
use strata_nn::distributed::{Communicator, GradientReducer};
use strata_nn::layers::Sequential;
use strata_nn::{Device, ModuleExt, Tensor};

/// Checkpoint metadata naming the network the weights belong to.
pub const MODEL_KEY: &str = "strata.model";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerChoice {
    Sgd,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LossChoice {
    /// Softmax cross-entropy on the raw scores.
    CrossEntropy,
    /// Negative log-likelihood (for networks ending in LogSoftmax).
    Nll,
    /// Mean squared error against one-hot targets.
    Mse,
}

#[derive(clap::Args)]
#[command(after_long_help = "\
Data-parallel training: started by mpirun, every process becomes one rank and they train \
together with no other flag:

  mpirun -n 2 strata train lenet5                       two processes on this machine
  mpirun -n 8 --hostfile hosts strata train lenet5      eight processes over the hosts listed

The recipe's batch size stays the global batch: each rank takes its share of every batch, in \
the order one process would use, and gradients are averaged across ranks (MPI all-reduce, \
in buckets, while backward runs), so N ranks train as one process does, up to rounding. \
Dropout masks and rotation angles follow the example's place in the global batch. With \
--device cuda each rank takes its own GPU (by its rank on the machine) and gradients are summed \
on the GPUs with NCCL. BatchNorm \
uses each rank's share unless --sync-batch-norm is given. Rank 0 prints, evaluates its share \
and writes the checkpoints; --resume works with any number of ranks. Every rank must run the \
same command; a rank that dies or hangs ends the job (see --comm-timeout).")]
pub struct Args {
    /// Network to train (`strata list` shows them all).
    pub model: String,
    /// Epochs to train [default: the recipe's].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Examples per training step [default: the recipe's].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate [default: the recipe's].
    #[arg(long)]
    pub lr: Option<f32>,
    /// StepLR: multiply the learning rate by GAMMA every STEP epochs [default: the recipe's
    /// schedule]; `--step-lr 6,0.1` gives journey_final the schedule its article describes.
    #[arg(long, value_name = "STEP,GAMMA", value_parser = parse_step_lr, conflicts_with = "constant_lr")]
    pub step_lr: Option<(usize, f32)>,
    /// Keep the learning rate constant, whatever the recipe's schedule.
    #[arg(long)]
    pub constant_lr: bool,
    /// Optimizer [default: the recipe's].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerChoice>,
    /// SGD momentum [default: the recipe's].
    #[arg(long)]
    pub momentum: Option<f32>,
    /// Loss [default: the recipe's].
    #[arg(long, value_enum)]
    pub loss: Option<LossChoice>,
    /// Seed of initialisation, shuffling, dropout and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to run: auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N, or
    /// cuda-sim (the virtual CUDA device: the kernels' PTX interpreted with memcheck,
    /// racecheck, initcheck and synccheck; slow, for checking the CUDA path).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Dataset [default: the one the network was published with].
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetChoice>,
    /// Folder holding the datasets (MNIST and Fashion-MNIST are fetched into it when absent;
    /// CIFAR-10 is read from its cifar10/ subfolder).
    #[arg(long, default_value = "datasets")]
    pub data: PathBuf,
    /// Output folder for checkpoints, results.json and curves.svg [default: runs/MODEL or
    /// runs/MODEL-DATASET].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from OUT/last.safetensors instead of starting over.
    #[arg(long)]
    pub resume: bool,
    /// Train on the first N training examples only (quick trials; the shuffling, batches and
    /// checkpoints work as on the whole set).
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test examples only.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Under mpirun: BatchNorm statistics over the global batch (all ranks) instead of each
    /// rank's share, as one process computes them (PyTorch's SyncBatchNorm).
    #[arg(long)]
    pub sync_batch_norm: bool,
    /// Under mpirun: seconds a rank waits for the others in one collective before it ends the
    /// job as dead or hung.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub comm_timeout: f64,
}

struct ProgressObserver {
    bar: Option<ProgressBar>,
    quiet: bool,
    epochs: usize,
}

impl Observer for ProgressObserver {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:32.cyan/blue}] {pos}/{len} {msg} ({elapsed} < {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {epoch}/{}", self.epochs));
        self.bar = Some(bar);
    }

    fn batch_finished(&mut self, _batch: usize, loss: f32, images_per_second: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {loss:.4}  {images_per_second:.0} img/s"));
            bar.inc(1);
        }
    }

    fn epoch_finished(&mut self, _report: &EpochReport) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn epoch_line(r: &EpochReport, epochs: usize) -> String {
    format!(
        "epoch {:>2}/{epochs}  lr {:<8} train loss {:.4} acc {:6.2}%  test loss {:.4} acc {:6.2}%  \
         train {:6.1} s  test {:5.2} s  {:7.0} img/s",
        r.epoch,
        r.lr,
        r.train_loss,
        r.train_accuracy,
        r.test_loss,
        r.test_accuracy,
        r.train_seconds,
        r.test_seconds,
        r.images_per_second
    )
}

pub fn run(args: &Args) -> Result<(), String> {
    let timeout = Duration::try_from_secs_f64(args.comm_timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            format!(
                "--comm-timeout {}: must be a positive number of seconds",
                args.comm_timeout
            )
        })?;
    let host = strata::parallel::join(timeout)?;
    match train(args, &host) {
        Ok(()) => Ok(()),
        Err(failure) if host.size() == 1 => Err(failure.message),
        // Every rank failed the same way at the same point: rank 0 says why, and all end
        // normally (finalising MPI) with a failure status.
        Err(failure) if failure.on_every_rank => Err(if host.rank() == 0 {
            failure.message
        } else {
            String::new()
        }),
        // The other ranks would wait for this one for ever: end them all, with the reason.
        Err(failure) => {
            eprintln!("strata: rank {}: {}", host.rank(), failure.message);
            host.abort(1)
        }
    }
}

/// Why a run stopped, and whether every rank stopped there too (a NaN loss every rank sees, a
/// refused configuration) or only this one (a file it cannot read, a dead peer).
struct Failure {
    message: String,
    on_every_rank: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            on_every_rank: false,
        }
    }
}

/// An error every rank meets at the same point.
fn everywhere(message: String) -> Failure {
    Failure {
        message,
        on_every_rank: true,
    }
}

fn train(args: &Args, host: &Arc<dyn Communicator>) -> Result<(), Failure> {
    let entry = find(&args.model).map_err(everywhere)?;
    let device = strata::device::resolve_for_rank(
        &args.device,
        local_rank(host.as_ref()),
        host.rank() == 0,
    )?;
    let choice = args
        .dataset
        .unwrap_or_else(|| DatasetChoice::default_for(&entry));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&entry, choice));
    let config = config_of(args, &entry).map_err(everywhere)?;
    let (lead, ranks) = (host.rank() == 0, host.size());
    strata::parallel::check_same_settings(
        host.as_ref(),
        &[
            ("strata", env!("CARGO_PKG_VERSION").to_string()),
            ("model", entry.name.to_string()),
            ("dataset", choice.name().to_string()),
            ("seed", config.seed.to_string()),
            ("epochs", config.epochs.to_string()),
            ("batch size", config.batch_size.to_string()),
            ("learning rate", config.lr.to_string()),
            ("optimizer", format!("{:?}", config.optimizer)),
            ("loss", format!("{:?}", config.loss)),
            ("schedule", format!("{:?}", config.step_lr)),
            (
                "limits",
                format!("{:?} {:?}", args.limit_train, args.limit_test),
            ),
            ("sync-batch-norm", args.sync_batch_norm.to_string()),
            ("resume", args.resume.to_string()),
            ("device kind", device_kind(device)),
        ],
    )
    .map_err(everywhere)?;
    let comm = &strata::parallel::on_device(host, device).map_err(everywhere)?;

    // Rank 0 fetches a missing dataset (which may take minutes) before the others read it.
    if !lead {
        comm.barrier_without_deadline().map_err(|e| e.to_string())?;
    }
    let loaded = datasets::load(&entry, choice, &args.data, args.seed);
    if lead {
        comm.barrier_without_deadline().map_err(|e| e.to_string())?;
    }
    let (train, test) = loaded?;
    let train = limit(train, args.limit_train, "--limit-train").map_err(everywhere)?;
    let test = limit(test, args.limit_test, "--limit-test").map_err(everywhere)?;
    if config.batch_size == 0 || config.batch_size > train.len() {
        return Err(everywhere(format!(
            "--batch-size {}: impossible for {} training examples (use 1 to {})",
            config.batch_size,
            train.len(),
            train.len()
        )));
    }
    let smallest_batch = match train.len() % config.batch_size {
        0 => config.batch_size,
        last => last,
    };
    if smallest_batch < ranks {
        return Err(everywhere(format!(
            "{ranks} ranks cannot share a batch of {smallest_batch} examples (the last of each \
             epoch: {} training examples in batches of {}); use fewer ranks, or change \
             --batch-size or --limit-train",
            train.len(),
            config.batch_size
        )));
    }

    let model = entry.build(args.seed);
    model
        .move_to(device)
        .map_err(|e| format!("moving {} to {device}: {e}", entry.name))?;
    let mut trainer = Trainer::new(&model, config.clone());
    if let Some(degrees) = entry.recipe.rotation_degrees {
        let (mean, std) = entry.recipe.normalization.mean_std();
        let fill = (0.0 - mean) / std;
        trainer.augment = Some(Box::new(move |x, g, place| {
            random_rotation_of_rows(x, degrees, fill, g, place.rows.clone(), place.global)
        }));
    }
    if ranks > 1 {
        trainer
            .data_parallel(
                comm.clone(),
                args.sync_batch_norm,
                GradientReducer::DEFAULT_BUCKET_BYTES,
            )
            .map_err(|e| e.to_string())?;
    }

    if lead {
        std::fs::create_dir_all(&out)
            .map_err(|e| format!("{}: cannot create the output folder: {e}", out.display()))?;
        check_writable(&out)?;
        remove_interrupted_writes(&out);
    }
    let run = Run {
        name: entry.name,
        model: &model,
        last_path: out.join("last.safetensors"),
        best_path: out.join("best.safetensors"),
        results_path: out.join("results.json"),
        curves_path: out.join("curves.svg"),
        comm: comm.as_ref(),
    };
    let mut results = RunResults {
        model: entry.name.into(),
        dataset: choice.name().into(),
        device: device.to_string(),
        threads: rayon::current_num_threads(),
        ranks,
        seed: args.seed,
        parameters: entry.parameters,
        weight_layers: entry.weight_layers,
        hidden_layers: entry.hidden_layers,
        batch_size: config.batch_size,
        optimizer: trainer.optimizer.name().into(),
        planned_epochs: config.epochs,
        epochs: Vec::new(),
        published_accuracy: (choice == DatasetChoice::default_for(&entry))
            .then_some(entry.recipe.published_accuracy),
        provenance: Some(strata::records::Provenance::now()),
    };
    if args.resume {
        run.resume(&mut trainer, &mut results)?;
    }
    if lead {
        print_header(&entry, choice, device, (train.len(), test.len()), &trainer);
        if ranks > 1 {
            println!(
                "data-parallel: {ranks} ranks over {}, {} examples per rank per batch, \
                 BatchNorm statistics {}",
                comm.describe(),
                if config.batch_size % ranks == 0 {
                    (config.batch_size / ranks).to_string()
                } else {
                    format!(
                        "{} to {}",
                        config.batch_size / ranks,
                        config.batch_size.div_ceil(ranks)
                    )
                },
                if args.sync_batch_norm {
                    "over the global batch"
                } else {
                    "per rank"
                }
            );
        }
    }
    run.epochs(
        &mut trainer,
        &mut results,
        (train.as_ref(), test.as_ref()),
        args.quiet || !lead,
    )?;
    if lead {
        run.print_summary(&results);
    }
    Ok(())
}

/// This process's rank among those on its machine (each takes its own GPU).
fn local_rank(comm: &dyn Communicator) -> usize {
    if comm.size() == 1 {
        return 0;
    }
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
    .unwrap_or(0)
}

/// What must agree between ranks about the device (the GPU number may differ per rank).
fn device_kind(device: Device) -> String {
    let name = device.to_string();
    name.split(':').next().unwrap_or(&name).to_string()
}

/// `runs/MODEL`, or `runs/MODEL-DATASET` off the network's own dataset.
fn default_out(entry: &ZooEntry, choice: DatasetChoice) -> PathBuf {
    if choice == DatasetChoice::default_for(entry) {
        Path::new("runs").join(entry.name)
    } else {
        Path::new("runs").join(format!("{}-{}", entry.name, choice.name()))
    }
}

/// `STEP,GAMMA` of `--step-lr`: a positive whole number of epochs and a positive factor.
fn parse_step_lr(text: &str) -> Result<(usize, f32), String> {
    let usage = || format!("{text:?}: expected STEP,GAMMA, e.g. 6,0.1");
    let (step, gamma) = text.split_once(',').ok_or_else(usage)?;
    let step: usize = step.trim().parse().map_err(|_| usage())?;
    let gamma: f32 = gamma.trim().parse().map_err(|_| usage())?;
    if step == 0 || !(gamma > 0.0 && gamma.is_finite()) {
        return Err(format!(
            "{text:?}: STEP must be at least 1 and GAMMA a positive number"
        ));
    }
    Ok((step, gamma))
}

/// The network's recipe with the command line's overrides.
fn config_of(args: &Args, entry: &ZooEntry) -> Result<TrainConfig, String> {
    let mut config = TrainConfig::from_recipe(&entry.recipe, args.seed);
    if let Some(e) = args.epochs {
        config.epochs = e;
    }
    if let Some(b) = args.batch_size {
        config.batch_size = b;
    }
    if let Some(step_lr) = args.step_lr {
        config.step_lr = Some(step_lr);
    }
    if args.constant_lr {
        config.step_lr = None;
    }
    if let Some(lr) = args.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!(
                "--lr {lr}: the learning rate must be a positive number"
            ));
        }
        config.lr = lr;
    }
    let momentum = args.momentum.or(match config.optimizer {
        OptimizerKind::Sgd { momentum } => Some(momentum),
        OptimizerKind::Adam => None,
    });
    match args.optimizer {
        Some(OptimizerChoice::Adam) => config.optimizer = OptimizerKind::Adam,
        Some(OptimizerChoice::Sgd) => {
            config.optimizer = OptimizerKind::Sgd {
                momentum: momentum.unwrap_or(0.0),
            }
        }
        None => {
            if let (OptimizerKind::Sgd { .. }, Some(m)) = (config.optimizer, momentum) {
                config.optimizer = OptimizerKind::Sgd { momentum: m };
            }
        }
    }
    if let Some(loss) = args.loss {
        config.loss = match loss {
            LossChoice::CrossEntropy => LossKind::CrossEntropy,
            LossChoice::Nll => LossKind::Nll,
            LossChoice::Mse => LossKind::Mse,
        };
    }
    if config.epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    Ok(config)
}

/// The two lines before the first epoch: the data and machine, then the recipe.
fn print_header(
    entry: &ZooEntry,
    choice: DatasetChoice,
    device: Device,
    (train, test): (usize, usize),
    trainer: &Trainer<'_>,
) {
    let config = &trainer.config;
    println!(
        "{}: {} parameters, {} on {} ({} train / {} test), {} threads",
        entry.name,
        entry.parameters,
        choice.name(),
        device,
        train,
        test,
        rayon::current_num_threads()
    );
    println!(
        "recipe: {} lr {} batch {} epochs {}{}{}",
        trainer.optimizer.name(),
        config.lr,
        config.batch_size,
        config.epochs,
        config.step_lr.map_or(String::new(), |(s, g)| format!(
            ", StepLR(step {s}, gamma {g})"
        )),
        entry
            .recipe
            .rotation_degrees
            .map_or(String::new(), |d| format!(", random rotation ±{d}°"))
    );
}

/// A training run's network and the files it writes.
struct Run<'a> {
    name: &'static str,
    model: &'a Sequential,
    last_path: PathBuf,
    best_path: PathBuf,
    results_path: PathBuf,
    curves_path: PathBuf,
    comm: &'a dyn Communicator,
}

impl Run<'_> {
    /// Loads the model, the optimizer's state and the epoch count from `last.safetensors`, and
    /// the finished epochs' results. Rank 0 reads the checkpoint and sends it to the other
    /// ranks, so they need no shared folder and their number may differ from the run's.
    fn resume(&self, trainer: &mut Trainer<'_>, results: &mut RunResults) -> Result<(), Failure> {
        let lead = self.comm.rank() == 0;
        let (mut bytes, read_error) = if lead {
            match std::fs::read(&self.last_path) {
                Ok(b) => (b, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            }
        } else {
            (Vec::new(), None)
        };
        self.comm
            .broadcast(&mut bytes, 0)
            .map_err(|e| e.to_string())?;
        if bytes.is_empty() {
            return Err(everywhere(format!(
                "cannot resume: {}: {}",
                self.last_path.display(),
                read_error.unwrap_or_else(|| "rank 0 could not read it".into())
            )));
        }
        let stored =
            parse_tensors(&bytes, &self.last_path).map_err(|e| format!("cannot resume: {e}"))?;
        check_model_in(&stored, &self.last_path, self.name)
            .map_err(|e| everywhere(format!("cannot resume: {e}")))?;
        let progress = load_training_tensors(stored, self.model, trainer.optimizer.as_mut())
            .map_err(|e| everywhere(format!("cannot resume: {e}")))?;
        trainer.epoch = progress.epoch;
        if let Ok(previous) = RunResults::load(&self.results_path) {
            results.epochs = previous.epochs.into_iter().take(progress.epoch).collect();
        }
        if lead {
            println!(
                "resuming {} after epoch {} from {}",
                self.name,
                progress.epoch,
                self.last_path.display()
            );
        }
        Ok(())
    }

    /// Trains the remaining epochs, printing and saving after each.
    fn epochs(
        &self,
        trainer: &mut Trainer<'_>,
        results: &mut RunResults,
        (train, test): (&dyn Dataset, &dyn Dataset),
        quiet: bool,
    ) -> Result<(), Failure> {
        let epochs = trainer.config.epochs;
        let mut observer = ProgressObserver {
            bar: None,
            quiet,
            epochs,
        };
        while trainer.epoch < epochs {
            let record = match trainer.run_epoch(train, test, &mut observer) {
                Ok(r) => r,
                Err(e) => {
                    observer.epoch_finished_on_error();
                    return Err(self.explain_failure(e, trainer.epoch));
                }
            };
            // Long runs of tiny epochs (dnn3's 1,000) print every twentieth of the run.
            let every = if epochs > 50 { epochs / 20 } else { 1 };
            let shown = record.epoch % every == 0 || record.epoch == epochs || record.epoch == 1;
            if shown && self.comm.rank() == 0 {
                println!("{}", epoch_line(&record, epochs));
            }
            let is_best = results
                .best()
                .is_none_or(|(best, _)| record.test_accuracy > best);
            results.epochs.push(record);
            if self.comm.rank() == 0 {
                self.save_epoch(trainer, results, is_best)?;
            }
        }
        Ok(())
    }

    /// A failed epoch's message; a non-finite loss also says which checkpoint is good.
    fn explain_failure(&self, e: TrainError, finished: usize) -> Failure {
        match e {
            TrainError::Device { .. } | TrainError::Communication(_) => e.to_string().into(),
            // Every rank sees the same batches and the same summed figures.
            TrainError::BatchTooSmall { .. } => everywhere(e.to_string()),
            TrainError::NonFiniteLoss { .. } | TrainError::NonFiniteTestLoss { .. } => {
                let kept = if self.last_path.exists() {
                    format!(
                        "the last good checkpoint is {} (epoch {finished})",
                        self.last_path.display(),
                    )
                } else {
                    "no epoch had finished, so there is no checkpoint".into()
                };
                everywhere(format!("{e}; {kept}"))
            }
        }
    }

    /// Writes the results, the curves, the best weights when this epoch is the best, and the
    /// checkpoint.
    fn save_epoch(
        &self,
        trainer: &Trainer<'_>,
        results: &RunResults,
        is_best: bool,
    ) -> Result<(), String> {
        let meta = HashMap::from([(MODEL_KEY.to_string(), self.name.to_string())]);
        // last.safetensors is written last: it is what --resume starts from, so everything
        // else of this epoch is on disk before it. A run killed in between resumes from the
        // previous epoch and redoes this one, bit for bit, rewriting the same files.
        results
            .save(&self.results_path)
            .map_err(|e| format!("cannot save the results: {e}"))?;
        plot_curves(results, &self.curves_path)?;
        if is_best {
            save_tensors(&self.best_path, &self.model.state_dict(), meta.clone())
                .map_err(|e| format!("cannot save the best weights: {e}"))?;
        }
        save_training(
            &self.last_path,
            self.model,
            trainer.optimizer.as_ref(),
            trainer.epoch,
            meta,
        )
        .map_err(|e| format!("cannot save the checkpoint: {e}"))
    }

    /// The best accuracy, the results table and the files written.
    fn print_summary(&self, results: &RunResults) {
        if let Some((best, at)) = results.best() {
            let published = results
                .published_accuracy
                .map_or(String::new(), |a| format!(" (published: {a:.2}%)"));
            println!("best test accuracy {best:.2}% at epoch {at}{published}");
        }
        println!();
        print_table(std::slice::from_ref(results));
        println!();
        println!(
            "wrote {}, {}, {} and {}",
            self.last_path.display(),
            self.best_path.display(),
            self.results_path.display(),
            self.curves_path.display()
        );
    }
}

impl ProgressObserver {
    fn epoch_finished_on_error(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// The first `len` examples of a dataset.
struct First {
    inner: Box<dyn Dataset>,
    len: usize,
}

impl Dataset for First {
    fn len(&self) -> usize {
        self.len
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
    fn example_shape(&self) -> Vec<usize> {
        self.inner.example_shape()
    }
    fn batch(&self, indices: &[usize]) -> (Tensor, Vec<u32>) {
        self.inner.batch(indices)
    }
}

/// `data` cut to its first `limit` examples, if a limit is given.
fn limit(
    data: Box<dyn Dataset>,
    limit: Option<usize>,
    option: &str,
) -> Result<Box<dyn Dataset>, String> {
    match limit {
        None => Ok(data),
        Some(0) => Err(format!("{option} 0: at least one example is needed")),
        Some(n) if n >= data.len() => Ok(data),
        Some(n) => Ok(Box::new(First {
            inner: data,
            len: n,
        })),
    }
}

/// Fails early, naming the folder, when files cannot be created in `dir` (a read-only folder
/// or file system), instead of after a whole epoch of training.
fn check_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".strata-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            let _ = std::fs::remove_file(&probe);
            format!(
                "{}: cannot write to the output folder: {e} (choose another with --out)",
                dir.display()
            )
        })
}

/// Deletes the temporary files a run killed while saving leaves next to its outputs (each the
/// size of a checkpoint); the files they were meant to replace are intact.
fn remove_interrupted_writes(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let interrupted = ["last.safetensors", "best.safetensors", "results.json"]
            .iter()
            .any(|f| name.starts_with(&format!(".{f}.tmp-")));
        if interrupted {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Checks that a checkpoint written by `strata train` belongs to `model` (files from PyTorch
/// or older runs carry no name and are checked tensor by tensor when loaded).
pub fn check_model_of(path: &Path, model: &str) -> Result<(), String> {
    let stored = load_tensors(path).map_err(|e| e.to_string())?;
    check_model_in(&stored, path, model)
}

/// [`check_model_of`] on tensors already read from `path`.
fn check_model_in(stored: &StoredTensors, path: &Path, model: &str) -> Result<(), String> {
    match stored.metadata.get(MODEL_KEY) {
        Some(saved) if saved != model => Err(format!(
            "{}: holds weights for the {saved} network, not for {model} (use `strata eval {saved}` \
             or another file)",
            path.display()
        )),
        _ => Ok(()),
    }
}
