//! `strata bench gemm`: GFLOP/s of the GEMM ladder on this machine.

use std::time::Duration;
use strata::kernels::gemm::{gemm, gemm_naive, selected_kernel};
use strata::tensor::Generator;
use strata::timing::{best_seconds, gemm_gflops};

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

/// Largest size the naive triple loop is timed at; beyond it, it would dominate the run.
const NAIVE_LIMIT: usize = 512;

fn bench_gemm(args: &Args) -> Result<(), String> {
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        return Err("--sizes needs positive sizes, e.g. --sizes 256,512".into());
    }
    let threads = rayon::current_num_threads();
    let budget = Duration::from_secs_f64(args.seconds);
    println!(
        "strata bench gemm: C = A·B, f32, row-major; micro-kernel {}; best of runs over {:.1} s",
        selected_kernel(),
        args.seconds
    );
    println!(
        "{:>6} {:>12} {:>16} {:>16}",
        "size",
        "naive",
        "strata 1 thread",
        format!("strata {threads} threads")
    );
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| format!("cannot build a one-thread pool: {e}"))?;
    let mut generator = Generator::seed(0);
    for &n in &args.sizes {
        let a: Vec<f32> = (0..n * n).map(|_| generator.uniform() - 0.5).collect();
        let b: Vec<f32> = (0..n * n).map(|_| generator.uniform() - 0.5).collect();
        let mut c = vec![0.0f32; n * n];
        let mut run = |f: fn(
            usize,
            usize,
            usize,
            f32,
            &[f32],
            usize,
            usize,
            &[f32],
            usize,
            usize,
            f32,
            &mut [f32],
            usize,
            usize,
        )| {
            best_seconds(budget, || {
                f(n, n, n, 1.0, &a, n, 1, &b, n, 1, 0.0, &mut c, n, 1)
            })
        };
        let naive = (n <= NAIVE_LIMIT).then(|| gemm_gflops(n, n, n, run(gemm_naive)));
        let single = gemm_gflops(n, n, n, one_thread.install(|| run(gemm)));
        let all = gemm_gflops(n, n, n, run(gemm));
        println!(
            "{:>6} {:>12} {:>16.1} {:>16.1}",
            n,
            naive.map_or("-".to_string(), |g| format!("{g:.2}")),
            single,
            all
        );
    }
    println!(
        "GFLOP/s = 2·n³ / seconds / 1e9; the matrixmultiply crate is compared by `make bench`."
    );
    Ok(())
}
