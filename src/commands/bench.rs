//! `strata bench gemm`: GFLOP/s of the GEMM ladder on this machine.

use std::time::Duration;
use strata::bench::{gemm_problems, measure_gemm};
use strata::kernels::gemm::selected_kernel;

#[derive(clap::Args)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    target: Target,
    /// For `train`: the networks to time [default: every MNIST network].
    models: Vec<String>,
    /// For `train`: epochs to time per network (the figure is the mean).
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// For `train`: folder holding the datasets.
    #[arg(long, default_value = "datasets")]
    data: std::path::PathBuf,
    /// Square sizes to measure (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,128,256,512,1024,2048"
    )]
    sizes: Vec<usize>,
    /// Seconds spent timing each entry.
    #[arg(long, default_value_t = 0.3)]
    seconds: f64,
    /// Only rows whose label contains this text.
    #[arg(long)]
    only: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Target {
    /// Single-precision matrix multiply: naive loop, strata on one thread, strata on all.
    Gemm,
    /// Seconds per training epoch and per test pass of the networks, with their recipes.
    Train,
}

pub fn run(args: &Args) -> Result<(), String> {
    match args.target {
        Target::Gemm => bench_gemm(args),
        Target::Train => bench_train(args),
    }
}

fn bench_train(args: &Args) -> Result<(), String> {
    use strata::datasets::{load, DatasetChoice};
    use strata_models::train::{evaluate, Silent, TrainConfig, Trainer};
    use strata_models::zoo::{find, zoo, DataKind};
    if args.epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    let names: Vec<String> = if args.models.is_empty() {
        zoo()
            .into_iter()
            .filter(|e| e.recipe.data != DataKind::Cifar10)
            .map(|e| e.name.to_string())
            .collect()
    } else {
        args.models.clone()
    };
    println!(
        "strata bench train: recipe batch size, {} threads, mean of {} epoch(s)",
        rayon::current_num_threads(),
        args.epochs
    );
    println!(
        "{:<15} {:>6} {:>12} {:>8} {:>12} {:>10}",
        "model", "batch", "train (s)", "epochs", "test pass (s)", "img/s"
    );
    for name in &names {
        let entry = find(name)?;
        let (train, test) = load(&entry, DatasetChoice::default_for(&entry), &args.data, 0)?;
        let model = entry.build(0);
        let mut config = TrainConfig::from_recipe(&entry.recipe, 0);
        // dnn3's epochs are single full batches: its whole 1,000-epoch recipe is one row.
        let repeat = if entry.recipe.data == DataKind::Dnn3 {
            1000
        } else {
            1
        };
        config.epochs = args.epochs * repeat;
        let mut trainer = Trainer::new(&model, config.clone());
        if let Some(degrees) = entry.recipe.rotation_degrees {
            let (mean, std) = entry.recipe.normalization.mean_std();
            let fill = -mean / std;
            trainer.augment = Some(Box::new(move |x, g| {
                strata_models::data::random_rotation(x, degrees, fill, g)
            }));
        }
        let reports = trainer
            .run(train.as_ref(), test.as_ref(), &mut Silent)
            .map_err(|e| e.to_string())?;
        let train_seconds: f64 =
            reports.iter().map(|r| r.train_seconds).sum::<f64>() / args.epochs as f64;
        let start = std::time::Instant::now();
        evaluate(
            &model,
            test.as_ref(),
            entry.recipe.loss,
            config.eval_batch_size,
        );
        let test_seconds = start.elapsed().as_secs_f64();
        println!(
            "{:<15} {:>6} {:>12.2} {:>8} {:>12.2} {:>10.0}",
            entry.name,
            config.batch_size,
            train_seconds,
            repeat,
            test_seconds,
            (train.len() * repeat) as f64 / train_seconds
        );
    }
    Ok(())
}

fn bench_gemm(args: &Args) -> Result<(), String> {
    if args.sizes.contains(&0) {
        return Err("--sizes needs positive sizes, e.g. --sizes 256,512".into());
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        return Err(format!(
            "--seconds {}: must be a positive number",
            args.seconds
        ));
    }
    let threads = rayon::current_num_threads();
    let budget = Duration::from_secs_f64(args.seconds);
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| format!("cannot build a one-thread pool: {e}"))?;
    println!(
        "strata bench gemm: C = A·B, f32, row-major; micro-kernel {}; GFLOP/s, best of runs over {:.1} s",
        selected_kernel(),
        args.seconds
    );
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>9} {:>10} {:>10}",
        "shape",
        "m",
        "n",
        "k",
        "naive",
        "1 thread",
        format!("{threads} threads")
    );
    for p in gemm_problems(&args.sizes) {
        if args.only.as_deref().is_some_and(|o| !p.label.contains(o)) {
            continue;
        }
        let (a, b) = p.inputs();
        let row = measure_gemm(&p, &a, &b, budget, &one_thread);
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>9} {:>10.1} {:>10.1}",
            p.label,
            p.m,
            p.n,
            p.k,
            row.naive.map_or("-".into(), |g| format!("{g:.2}")),
            row.one_thread,
            row.all_threads
        );
    }
    println!("GFLOP/s = 2·m·n·k / seconds / 1e9. `make bench` adds the matrixmultiply crate as a yardstick.");
    Ok(())
}
