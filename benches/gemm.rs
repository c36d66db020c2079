//! GEMM benchmark: `cargo bench --bench gemm [-- FILTER]`.
//!
//! Prints GFLOP/s (2*m*n*k flops per GEMM) for strata's blocked GEMM on all threads and on one
//! thread, the naive triple loop, and `matrixmultiply::sgemm` (single-threaded: the crate's
//! default features do not include "threading"). Each entry is timed by repeating the call
//! for at least 0.3 s after a warm-up; the reported number is the best of those runs (the
//! least disturbed by other processes).
//! Rows whose label does not contain FILTER are skipped.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};
use strata_kernels::gemm::{gemm, gemm_naive, selected_kernel};

/// One GEMM problem: C[m,n] = A[m,k] * B[k,n], all row-major and contiguous.
struct Problem {
    label: String,
    m: usize,
    n: usize,
    k: usize,
    /// Skip the naive loop (too slow to time).
    naive: bool,
}

/// Best GFLOP/s of `f` over repeated runs lasting at least 0.3 s in total.
fn measure(flops: f64, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: page in buffers, fill packing buffers, wake the thread pool
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) || times.len() < 3 {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    // The best run, not the median: this machine is shared, and interference only ever makes
    // a run slower.
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    flops / best / 1e9
}

fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn main() {
    // cargo passes `--bench`; any other argument is a substring filter on the row label.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));

    let mut problems = Vec::new();
    for s in [64, 128, 256, 512, 1024, 2048] {
        problems.push(Problem {
            label: format!("square {s}"),
            m: s,
            n: s,
            k: s,
            naive: s <= 512,
        });
    }
    // Forward conv layers on 28x28 MNIST as GEMMs: weight [cout, cin*k*k] x im2col
    // [cin*k*k, oh*ow], first for one image, then for a batch of 100 as one wide GEMM.
    let convs = [
        ("lenet5 conv1", 6, 25, 784),
        ("lenet5 conv2", 16, 150, 100),
        ("cnn3l conv1", 16, 25, 784),
        ("cnn3l conv2", 32, 400, 196),
    ];
    for (name, m, k, n) in convs {
        problems.push(Problem {
            label: format!("{name} x1"),
            m,
            n,
            k,
            naive: true,
        });
    }
    for (name, m, k, n) in convs {
        problems.push(Problem {
            label: format!("{name} x100"),
            m,
            n: n * 100,
            k,
            naive: false,
        });
    }

    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("1-thread pool");
    println!(
        "strata gemm benchmark: kernel {}, {} threads; GFLOP/s, best of runs over >= 0.3 s",
        selected_kernel(),
        rayon::current_num_threads()
    );
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "shape", "m", "n", "k", "strata", "strata-1t", "naive", "mm-1t"
    );

    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for p in &problems {
        if let Some(f) = &filter {
            if !p.label.contains(f.as_str()) {
                continue;
            }
        }
        let (m, n, k) = (p.m, p.n, p.k);
        let a = random(m * k, &mut rng);
        let b = random(k * n, &mut rng);
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;

        let mut run = || gemm(m, n, k, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c, n, 1);
        let all = measure(flops, &mut run);
        let one = single.install(|| measure(flops, &mut run));
        let naive = if p.naive {
            let g = measure(flops, || {
                gemm_naive(m, n, k, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c, n, 1)
            });
            format!("{g:.1}")
        } else {
            "-".to_string()
        };
        let mm = measure(flops, || {
            // SAFETY: a, b, c hold m*k, k*n and m*n floats with the row-major strides given.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        });
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>10.1} {:>10.1} {:>10} {:>10.1}",
            p.label, m, n, k, all, one, naive, mm
        );
    }
}
