//! `strata bench gemm`: GFLOP/s of the GEMM ladder on this machine.

use std::time::Duration;
use strata::bench::{gemm_problems, measure_gemm};
use strata::kernels::gemm::selected_kernel;

#[derive(clap::Args)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    target: Target,
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
}

pub fn run(args: &Args) -> Result<(), String> {
    match args.target {
        Target::Gemm => bench_gemm(args),
    }
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
