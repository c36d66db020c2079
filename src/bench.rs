//! Measuring kernels: the timing harness and the GEMM problems behind `strata bench gemm` and
//! `make bench`. Timings warm up first, then repeat until a time budget has passed, and keep
//! the best run: other work on the machine only ever makes a run slower.

use std::time::{Duration, Instant};
use strata_kernels::gemm::{gemm, gemm_naive};
use strata_tensor::Generator;

/// Seconds of the fastest of the repetitions of `f` run within about `budget`, after one
/// warm-up call. At least three repetitions are timed.
pub fn best_seconds(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    best
}

/// One GEMM `C[m,n] = A[m,k]·B[k,n]`, row-major and contiguous.
#[derive(Clone, Debug)]
pub struct GemmProblem {
    /// Name shown in the results table, e.g. `square 512` or `lenet5 conv2 x100`.
    pub label: String,
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// The shared (reduction) dimension: columns of `A`, rows of `B`.
    pub k: usize,
}

impl GemmProblem {
    /// Floating-point operations of one product: `2·m·n·k` (a multiply and an add per term).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// Random operands A and B, fixed by the problem's size.
    pub fn inputs(&self) -> (Vec<f32>, Vec<f32>) {
        let mut g = Generator::seed((self.m * 31 + self.n * 7 + self.k) as u64);
        let a = (0..self.m * self.k).map(|_| g.uniform() - 0.5).collect();
        let b = (0..self.k * self.n).map(|_| g.uniform() - 0.5).collect();
        (a, b)
    }
}

/// Squares of the given sizes, then the forward convolutions of LeNet-5 and CNN3L on MNIST as
/// GEMMs (weight `[cout, cin·k·k]` times im2col `[cin·k·k, oh·ow]`), for one image and for a
/// batch of 100 laid side by side.
pub fn gemm_problems(square_sizes: &[usize]) -> Vec<GemmProblem> {
    let mut problems: Vec<GemmProblem> = square_sizes
        .iter()
        .map(|&s| GemmProblem {
            label: format!("square {s}"),
            m: s,
            n: s,
            k: s,
        })
        .collect();
    let convs = [
        ("lenet5 conv1", 6, 25, 784),
        ("lenet5 conv2", 16, 150, 100),
        ("cnn3l conv1", 16, 25, 784),
        ("cnn3l conv2", 32, 400, 196),
    ];
    for batch in [1, 100] {
        for (name, m, k, n) in convs {
            problems.push(GemmProblem {
                label: format!("{name} x{batch}"),
                m,
                n: n * batch,
                k,
            });
        }
    }
    problems
}

/// Problems above this many flops skip the naive loop, which would dominate the run.
pub const NAIVE_FLOP_LIMIT: f64 = 2.0 * 512.0 * 512.0 * 512.0;

/// GFLOP/s of strata's GEMM on all threads, on one thread, and of the naive loop.
pub struct GemmRow {
    /// GFLOP/s of strata's GEMM on the global rayon pool.
    pub all_threads: f64,
    /// GFLOP/s of strata's GEMM on a one-thread pool.
    pub one_thread: f64,
    /// GFLOP/s of the naive triple loop; `None` above [`NAIVE_FLOP_LIMIT`].
    pub naive: Option<f64>,
}

/// Measures one problem on the given operands.
pub fn measure_gemm(
    p: &GemmProblem,
    a: &[f32],
    b: &[f32],
    budget: Duration,
    one_thread: &rayon::ThreadPool,
) -> GemmRow {
    let (m, n, k) = (p.m, p.n, p.k);
    let mut c = vec![0.0f32; m * n];
    let gflops = |seconds: f64| p.flops() / seconds / 1e9;
    let mut strata = || gemm(m, n, k, 1.0, a, k, 1, b, n, 1, 0.0, &mut c, n, 1);
    let all_threads = gflops(best_seconds(budget, &mut strata));
    let one = gflops(one_thread.install(|| best_seconds(budget, &mut strata)));
    let naive = (p.flops() <= NAIVE_FLOP_LIMIT).then(|| {
        gflops(best_seconds(budget, || {
            gemm_naive(m, n, k, 1.0, a, k, 1, b, n, 1, 0.0, &mut c, n, 1)
        }))
    });
    GemmRow {
        all_threads,
        one_thread: one,
        naive,
    }
}
