//! GEMM benchmark: `cargo bench --bench gemm [-- FILTER] [--repeat N] [--record PATH]`
//! (`make bench`; `make bench-record` writes `results/bench/gemm.json`).
//!
//! The same table as `strata bench gemm` (strata on all threads and on one, the naive loop)
//! plus `matrixmultiply::sgemm` measured in the same run as a yardstick. matrixmultiply runs
//! single-threaded: its default features do not include "threading". Rows whose label does not
//! contain FILTER are skipped. Each figure is the median of N repetitions (default 5), each the
//! best of runs over 0.3 s; `--record` keeps every repetition.

use std::collections::BTreeMap;
use std::time::Duration;
use strata::bench::{best_seconds, gemm_problems, measure_gemm, GemmProblem};
use strata::records::{BenchRecord, BenchRow, Provenance, Samples};
use strata_kernels::gemm::selected_kernel;

struct Options {
    filter: Option<String>,
    repeat: usize,
    record: Option<std::path::PathBuf>,
}

fn options() -> Options {
    let mut options = Options {
        filter: None,
        repeat: 5,
        record: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repeat" => {
                let n = args.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                options.repeat = n.unwrap_or_else(|| fail("--repeat needs a positive count"));
            }
            "--record" => {
                let path = args.next().unwrap_or_else(|| fail("--record needs a path"));
                options.record = Some(path.into());
            }
            flag if flag.starts_with("--") => {} // cargo's own `--bench`
            filter => options.filter = Some(filter.into()),
        }
    }
    options
}

fn fail(message: &str) -> ! {
    eprintln!("gemm benchmark: {message}");
    std::process::exit(2)
}

/// GFLOP/s of `matrixmultiply::sgemm` on `p`, best of runs over `budget`.
fn matrixmultiply_gflops(p: &GemmProblem, a: &[f32], b: &[f32], budget: Duration) -> f64 {
    let (m, n, k) = (p.m, p.n, p.k);
    let mut c = vec![0.0f32; m * n];
    p.flops()
        / best_seconds(budget, || {
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
        })
        / 1e9
}

fn main() {
    let options = options();
    let mut provenance = Provenance::now();
    // What a user types, rather than the path of the bench binary cargo runs.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    provenance.command = format!("cargo bench --bench gemm -- {}", args.join(" "));
    let budget = Duration::from_millis(300);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("1-thread pool");
    println!(
        "strata gemm benchmark: kernel {}, {} threads; GFLOP/s, median of {} repetitions, each the best of runs over 0.3 s",
        selected_kernel(),
        rayon::current_num_threads(),
        options.repeat
    );
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "shape", "m", "n", "k", "strata", "strata-1t", "naive", "mm-1t"
    );
    let mut rows = Vec::new();
    for p in gemm_problems(&[64, 128, 256, 512, 1024, 2048]) {
        if options
            .filter
            .as_deref()
            .is_some_and(|f| !p.label.contains(f))
        {
            continue;
        }
        let (a, b) = p.inputs();
        let mut series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for _ in 0..options.repeat {
            let row = measure_gemm(&p, &a, &b, budget, &single);
            series
                .entry("strata, all threads")
                .or_default()
                .push(row.all_threads);
            series
                .entry("strata, 1 thread")
                .or_default()
                .push(row.one_thread);
            if let Some(naive) = row.naive {
                series.entry("naive").or_default().push(naive);
            }
            let mm = matrixmultiply_gflops(&p, &a, &b, budget);
            series
                .entry("matrixmultiply, 1 thread")
                .or_default()
                .push(mm);
        }
        let series: BTreeMap<String, Samples> = series
            .into_iter()
            .map(|(name, values)| (name.to_string(), Samples::new("GFLOP/s", values)))
            .collect();
        let median = |name: &str| series.get(name).map(Samples::median);
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>10.1} {:>10.1} {:>10} {:>10.1}",
            p.label,
            p.m,
            p.n,
            p.k,
            median("strata, all threads").unwrap_or(f64::NAN),
            median("strata, 1 thread").unwrap_or(f64::NAN),
            median("naive").map_or("-".into(), |g| format!("{g:.1}")),
            median("matrixmultiply, 1 thread").unwrap_or(f64::NAN)
        );
        let facts = BTreeMap::from([("m, n, k".to_string(), format!("{}, {}, {}", p.m, p.n, p.k))]);
        rows.push(BenchRow {
            label: p.label.clone(),
            facts,
            series,
        });
    }
    if let Some(path) = options.record {
        let record = BenchRecord {
            kind: "gemm".into(),
            method: format!(
                "the best of runs over 0.3 s, in GFLOP/s = 2·m·n·k / s / 10⁹; micro-kernel {}",
                selected_kernel()
            ),
            provenance,
            versions: BTreeMap::from([("matrixmultiply".to_string(), "0.3.11".to_string())]),
            rows,
        };
        if let Err(e) = record.save(&path) {
            fail(&e);
        }
        println!("record: {}", path.display());
    }
}
