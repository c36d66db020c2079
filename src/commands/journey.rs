//! `strata journey`: the ten rounds of "The journey of a DNN model" replayed in order, each with
//! its notebook's network and recipe, then one table and two figures beside the published
//! figures (`docs/journey_published.json`, per epoch, from the authors' notebooks).
//!
//! Every round trains as `strata train` does, into `OUT/ROUND/`; a round that finished is
//! read back instead of trained again, and one that stopped half-way continues (`--resume`),
//! so the journey can be stopped and started again at any point. Round 10 runs twice: with the
//! constant learning rate the published figure came from, and with the StepLR(6, 0.1) schedule
//! the article describes.

use std::path::PathBuf;
use std::time::Instant;
use strata::journey::{epochs_text, published, table, JourneyRun, FIGURES, ROUNDS};
use strata::runs::RunResults;
use strata_models::zoo::{find, ZooEntry};
use strata_nn::optim::{Optimizer, Sgd};
use strata_nn::{Generator, Module, Tensor};

#[derive(clap::Args)]
pub struct Args {
    /// Rounds to replay, from 1 to 10: a list and ranges, e.g. `2-10` (everything but round
    /// 1's 6.4 million parameters, which take hours on a laptop) or `1,5,10`.
    #[arg(long, default_value = "1-10", value_parser = parse_rounds)]
    pub rounds: Rounds,
    /// Epochs per round [default: each round's recipe, 20].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of initialisation, shuffling, dropout and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to run: auto, cpu, cuda, cuda:N or cuda-sim (as for `strata train`).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Folder holding the datasets (MNIST is fetched into it when absent).
    #[arg(long, default_value = "datasets")]
    pub data: PathBuf,
    /// Folder of the rounds' runs, the table (journey.md) and the figures.
    #[arg(long, default_value = "runs/journey")]
    pub out: PathBuf,
    /// Train each round on the first N training images only (a quick look).
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Train every selected round again instead of reusing or continuing what OUT holds.
    #[arg(long)]
    pub fresh: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The rounds picked with `--rounds`, in order, without repeats.
#[derive(Clone, Debug)]
pub struct Rounds(Vec<usize>);

fn parse_rounds(text: &str) -> Result<Rounds, String> {
    let bad =
        |part: &str| format!("{part:?}: rounds are numbers from 1 to 10, e.g. 2-10 or 1,5,10");
    let mut rounds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse(), b.trim().parse()),
            None => (part.parse(), part.parse()),
        };
        let (first, last): (usize, usize) =
            (first.map_err(|_| bad(part))?, last.map_err(|_| bad(part))?);
        if !(1..=10).contains(&first) || !(first..=10).contains(&last) {
            return Err(bad(part));
        }
        rounds.extend(first..=last);
    }
    if rounds.is_empty() {
        return Err(bad(text));
    }
    rounds.sort_unstable();
    rounds.dedup();
    Ok(Rounds(rounds))
}

/// One run of the journey: a round, and the schedule of round 10's second run.
struct Leg {
    round: usize,
    entry: ZooEntry,
    /// `Some` for round 10 with the article's StepLR.
    step_lr: Option<(usize, f32)>,
    folder: PathBuf,
}

impl Leg {
    fn label(&self) -> String {
        match self.step_lr {
            Some(_) => format!("{} StepLR", self.round),
            None => self.round.to_string(),
        }
    }
}

/// Seconds one training step of `entry` takes here at batch 128, measured over three steps
/// after one to warm up: enough to say whether a round takes minutes or hours.
fn seconds_per_step(entry: &ZooEntry) -> f64 {
    let model = entry.build(0);
    let mut optimizer = Sgd::new(model.parameters(), 0.01);
    let g = &mut Generator::seed(1);
    let x = Tensor::from_vec(
        (0..128 * 28 * 28).map(|_| g.uniform() - 0.5).collect(),
        &[128, 1, 28, 28],
    );
    let labels: Vec<u32> = (0..128).map(|i| i % 10).collect();
    let mut step = || {
        optimizer.zero_grad();
        model.forward(&x).nll_loss(&labels).backward();
        optimizer.step();
    };
    step();
    let start = Instant::now();
    for _ in 0..3 {
        step();
    }
    start.elapsed().as_secs_f64() / 3.0
}

fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    let published = published()?;
    let mut legs = Vec::new();
    for &round in &args.rounds.0 {
        let entry = find(ROUNDS[round - 1])?;
        let schedules: &[Option<(usize, f32)>] = if round == 10 {
            &[None, Some((6, 0.1))]
        } else {
            &[None]
        };
        for &step_lr in schedules {
            let folder = args.out.join(leg_folder(&entry, step_lr.is_some(), args));
            legs.push(Leg {
                round,
                entry: find(entry.name)?,
                step_lr,
                folder,
            });
        }
    }

    // The plan: each leg's expected time, from a few measured steps.
    let images = args.limit_train.unwrap_or(60_000).min(60_000);
    let steps_per_epoch = images.div_ceil(128) as f64;
    let mut expected = Vec::new();
    println!(
        "the journey: {} of {} {}",
        match legs.len() {
            1 => "1 run".to_string(),
            n => format!("{n} runs"),
        },
        if args.rounds.0.len() == 1 {
            "round"
        } else {
            "rounds"
        },
        epochs_text(&args.rounds.0)
    );
    for leg in &legs {
        let epochs = args.epochs.unwrap_or(leg.entry.recipe.epochs) as f64;
        let done = finished(leg, args).is_some();
        let seconds = if done {
            0.0
        } else {
            seconds_per_step(&leg.entry) * steps_per_epoch * epochs * 1.1
        };
        expected.push(seconds);
        let state = if done {
            "already trained".to_string()
        } else {
            format!("about {}", duration(seconds))
        };
        println!(
            "  round {:<9} {:<14} {:>10} parameters  {state}",
            leg.label(),
            leg.entry.name,
            strata_nn::thousands(leg.entry.parameters)
        );
    }
    if let Some(i) = legs.iter().position(|l| l.round == 1) {
        if expected[i] > 0.0 {
            println!(
                "round 1's 6.4 million parameters take about {} on this machine; `--rounds 2-10` \
                 leaves it out",
                duration(expected[i])
            );
        }
    }

    let start = Instant::now();
    for (i, leg) in legs.iter().enumerate() {
        let left: f64 = expected[i..].iter().sum();
        println!(
            "\n== round {} of 10: {} ({}), {} of {} runs, about {} left",
            leg.label(),
            leg.entry.name,
            published[leg.round - 1].title,
            i + 1,
            legs.len(),
            duration(left)
        );
        if finished(leg, args).is_some() {
            println!(
                "already trained: {}",
                leg.folder.join("results.json").display()
            );
            continue;
        }
        let resume = !args.fresh && leg.folder.join("last.safetensors").is_file();
        super::train::run(&super::train::Args {
            model: leg.entry.name.to_string(),
            epochs: args.epochs,
            batch_size: None,
            lr: None,
            step_lr: leg.step_lr,
            constant_lr: false,
            optimizer: None,
            momentum: None,
            loss: None,
            seed: args.seed,
            device: args.device.clone(),
            dataset: None,
            data: args.data.clone(),
            out: Some(leg.folder.clone()),
            resume,
            limit_train: args.limit_train,
            limit_test: args.limit_test,
            quiet: args.quiet,
            sync_batch_norm: false,
            comm_timeout: 60.0,
        })?;
    }
    println!(
        "\nthe journey took {}",
        duration(start.elapsed().as_secs_f64())
    );

    let mut rows = Vec::new();
    for leg in &legs {
        let run = finished(leg, args)
            .ok_or_else(|| format!("{}: the run did not finish", leg.folder.display()))?;
        rows.push((leg, run));
    }
    let journey_runs: Vec<JourneyRun<'_>> = rows
        .iter()
        .map(|(leg, run)| JourneyRun {
            round: leg.round,
            stepped: leg.step_lr.is_some(),
            name: leg.entry.name,
            parameters: leg.entry.parameters,
            run,
        })
        .collect();
    let table = table(&journey_runs, &published);
    println!("\n{table}");
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let table_path = args.out.join("journey.md");
    strata_nn::checkpoint::write_atomically(&table_path, table.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut written = vec![table_path.display().to_string()];
    for (name, draw) in FIGURES {
        let path = args.out.join(name);
        let svg =
            draw(&journey_runs, &published).map_err(|e| format!("{}: {e}", path.display()))?;
        strata_nn::checkpoint::write_atomically(&path, svg.as_bytes())
            .map_err(|e| e.to_string())?;
        written.push(path.display().to_string());
    }
    println!("wrote {}", written.join(", "));
    Ok(())
}

/// A leg's folder in OUT: the network's name, then whatever differs from its recipe run with
/// seed 0 (`journey_final-steplr`, `journey_r2-seed1`, `journey_r3-2epochs-384train`), so runs
/// of other settings never mix and each can be resumed.
fn leg_folder(entry: &ZooEntry, stepped: bool, args: &Args) -> String {
    let mut name = entry.name.to_string();
    if stepped {
        name += "-steplr";
    }
    if args.seed != 0 {
        name += &format!("-seed{}", args.seed);
    }
    if let Some(epochs) = args.epochs.filter(|&e| e != entry.recipe.epochs) {
        name += &format!("-{epochs}epochs");
    }
    if let Some(n) = args.limit_train {
        name += &format!("-{n}train");
    }
    if let Some(n) = args.limit_test {
        name += &format!("-{n}test");
    }
    name
}

/// The leg's results when every planned epoch is done (and the plan is this invocation's).
fn finished(leg: &Leg, args: &Args) -> Option<RunResults> {
    if args.fresh {
        return None;
    }
    let run = RunResults::load(&leg.folder.join("results.json")).ok()?;
    let planned = args.epochs.unwrap_or(leg.entry.recipe.epochs);
    (run.seed == args.seed && run.planned_epochs == planned && run.epochs.len() == planned)
        .then_some(run)
}
