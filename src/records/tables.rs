//! The documents' tables, generated from the zoo and the committed records. Each table is a
//! block of README.md or BENCHMARKS.md between `<!-- records:NAME -->` and
//! `<!-- /records:NAME -->`; [`generate`] gives a block's text from `results/`.

use super::{load_json, BenchRecord, Provenance, Samples};
use crate::runs::RunResults;
use std::collections::BTreeSet;
use std::path::Path;
use strata_models::zoo::{zoo, DataKind, LossKind, OptimizerKind};

/// Every block the documents may hold, by name.
pub const BLOCKS: [&str; 11] = [
    "networks",
    "training",
    "gemm",
    "compare",
    "kernels",
    "fuzz",
    "sim-kernels",
    "sim-gemm",
    "comm",
    "scaling",
    "journey",
];

/// The text of block `name` (without its markers), from the records under `results`.
pub fn generate(name: &str, results: &Path) -> Result<String, String> {
    match name {
        "networks" => Ok(networks()),
        "training" => training(results),
        "gemm" => gemm(&BenchRecord::load(&results.join("bench/gemm.json"))?),
        "compare" => compare(&BenchRecord::load(&results.join("compare/pytorch.json"))?),
        "kernels" => kernels(&BenchRecord::load(&results.join("bench/kernels.json"))?),
        "sim-kernels" => sim(&BenchRecord::load(&results.join("sim/kernels.json"))?),
        "sim-gemm" => sim(&BenchRecord::load(&results.join("sim/gemm.json"))?),
        "fuzz" => fuzz(&results.join("fuzz")),
        "comm" => comm(&BenchRecord::load(&results.join("scaling/allreduce.json"))?),
        "scaling" => scaling(&results.join("scaling")),
        "journey" => journey(&results.join("journey")),
        other => Err(format!(
            "no generated table is called {other:?} (there are: {})",
            BLOCKS.join(", ")
        )),
    }
}

/// `306.1 (300.2–310.5)`: the median with the smallest and largest value, `digits` decimals.
pub fn median_spread(samples: &Samples, digits: usize) -> String {
    let (lo, hi) = samples.range();
    if samples.values.len() < 2 {
        return format!("{:.digits$}", samples.median());
    }
    format!(
        "{:.digits$} ({lo:.digits$}–{hi:.digits$})",
        samples.median()
    )
}

pub use strata_nn::thousands;

fn short(commit: &str) -> String {
    let (hash, rest) = commit.split_at(commit.find('+').unwrap_or(commit.len()));
    format!("{}{rest}", &hash[..hash.len().min(10)])
}

/// The caption line of a measured table: where, when, at which commit.
fn caption(provenances: &[&Provenance]) -> String {
    let machines: BTreeSet<String> = provenances.iter().map(|p| p.machine.describe()).collect();
    let commits: BTreeSet<String> = provenances.iter().map(|p| short(&p.commit)).collect();
    let dates: BTreeSet<&str> = provenances.iter().map(|p| &p.date[..10]).collect();
    let first = dates.iter().next().copied().unwrap_or("?");
    let last = dates.iter().last().copied().unwrap_or("?");
    let when = if first == last {
        first.to_string()
    } else {
        format!("{first} to {last}")
    };
    format!(
        "on {}; commit {}; {when}.",
        machines.into_iter().collect::<Vec<_>>().join("; "),
        commits.into_iter().collect::<Vec<_>>().join(", ")
    )
}

fn recipe_text(entry: &strata_models::zoo::ZooEntry) -> String {
    let r = &entry.recipe;
    let loss = match r.loss {
        LossKind::Mse => "MSE, ",
        LossKind::Nll => "NLL, ",
        LossKind::CrossEntropy => "",
    };
    let optimizer = match r.optimizer {
        OptimizerKind::Sgd { momentum } if momentum > 0.0 => format!("SGD {} m {momentum}", r.lr),
        OptimizerKind::Sgd { .. } => format!("SGD {}", r.lr),
        OptimizerKind::Adam => format!("Adam {:e}", r.lr),
    };
    let batch = if r.data == DataKind::Dnn3 {
        "full batch".to_string()
    } else {
        format!("batch {}", r.batch_size)
    };
    let schedule = r.step_lr.map_or(String::new(), |(step, gamma)| {
        format!(", StepLR({step}, {gamma})")
    });
    format!("{loss}{optimizer}{schedule}, {batch}, {} epochs", r.epochs)
}

fn data_text(data: DataKind, rotation: Option<f32>) -> String {
    let base = match data {
        DataKind::Dnn3 => "synthetic",
        DataKind::Mnist => "MNIST",
        DataKind::Cifar10 => "CIFAR-10",
    };
    match rotation {
        Some(degrees) => format!("{base} + rotation ±{degrees}°"),
        None => base.into(),
    }
}

/// The zoo: parameters, data, the default recipe and the published figure.
fn networks() -> String {
    let mut out = String::from(
        "| model | params | data | recipe | published test accuracy |\n|---|---:|---|---|---:|\n",
    );
    for e in zoo() {
        out += &format!(
            "| {} | {} | {} | {} | {:.2} % |\n",
            e.name,
            thousands(e.parameters),
            data_text(e.recipe.data, e.recipe.rotation_degrees),
            recipe_text(&e),
            e.recipe.published_accuracy
        );
    }
    out
}

fn dataset_label(dataset: &str) -> &str {
    match dataset {
        "mnist" => "MNIST",
        "fashion-mnist" => "Fashion-MNIST",
        "cifar10" => "CIFAR-10",
        "dnn3" => "synthetic",
        other => other,
    }
}

/// Seconds per epoch as the table prints them: milliseconds below a tenth of a second.
fn per_epoch(samples: &Samples) -> String {
    if samples.median() < 0.1 {
        let ms = Samples::new("ms", samples.values.iter().map(|s| s * 1e3).collect());
        format!("{} ms", median_spread(&ms, 3))
    } else {
        format!("{} s", median_spread(samples, 2))
    }
}

/// The training runs of `results/train/`, in zoo order, other datasets last, with the seconds
/// per epoch of `results/compare/pytorch.json`'s strata series: accuracy does not depend on
/// what else the machine runs, a time does, so times come from the quiet, repeated benchmark.
fn training(results: &Path) -> Result<String, String> {
    let mut runs: Vec<RunResults> = Vec::new();
    let dir = results.join("train");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|x| x == "json") {
            runs.push(RunResults::load_record(&path)?);
        }
    }
    let order: Vec<&str> = zoo().iter().map(|e| e.name).collect();
    let rank = |r: &RunResults| {
        let published_data = r.published_accuracy.is_some();
        let at = order
            .iter()
            .position(|n| *n == r.model)
            .unwrap_or(usize::MAX);
        (!published_data, at, r.dataset.clone())
    };
    runs.sort_by_key(rank);
    let timing = BenchRecord::load(&results.join("compare/pytorch.json"))?;
    let seconds_of = |r: &RunResults| {
        timing
            .rows
            .iter()
            .find(|row| row.label == r.model && r.published_accuracy.is_some())
            .and_then(|row| Some((series(row, "strata")?, epochs_per_value(row))))
            .map_or("–".to_string(), |(samples, epochs)| {
                let values = samples.values.iter().map(|v| v / epochs).collect();
                per_epoch(&Samples::new("s", values))
            })
    };
    let provenances: Vec<&Provenance> = runs.iter().filter_map(|r| r.provenance.as_ref()).collect();
    let mut out = format!(
        "Accuracies measured {} Seconds per epoch: the median of {} fresh-process epochs (smallest–largest \
         in brackets) from BENCHMARKS.md's comparison with PyTorch, {}.\n\n\
         | model | data | best test accuracy (epoch) | final | published | s/epoch |\n\
         |---|---|---:|---:|---:|---:|\n",
        caption(&provenances),
        timing.rows.first().and_then(|r| series(r, "strata")).map_or(0, |s| s.values.len()),
        timing.provenance.machine.describe()
    );
    for r in &runs {
        let (best, at) = r.best().unwrap_or((f32::NAN, 0));
        let last = r.epochs.last().map_or(f32::NAN, |e| e.test_accuracy);
        out += &format!(
            "| {} | {} | {best:.2} % ({at}) | {last:.2} % | {} | {} |\n",
            r.model,
            dataset_label(&r.dataset),
            r.published_accuracy
                .map_or("–".to_string(), |a| format!("{a:.2} %")),
            seconds_of(r)
        );
    }
    let (in_journey, missing): (Vec<&str>, Vec<&str>) = zoo()
        .iter()
        .filter(|e| e.recipe.data != DataKind::Cifar10)
        .map(|e| e.name)
        .filter(|name| !runs.iter().any(|r| r.model == *name))
        .partition(|name| {
            results
                .join("journey")
                .join(format!("{name}-mnist.json"))
                .exists()
        });
    if !in_journey.is_empty() {
        out += &format!(
            "\n{} trained by `strata journey`: in the journey's table below.\n",
            in_journey.join(", ")
        );
    }
    if !missing.is_empty() {
        out += &format!(
            "\nNo record yet for {}: {} not been trained on this machine.\n",
            missing.join(", "),
            if missing.len() == 1 {
                "it has"
            } else {
                "they have"
            }
        );
    }
    Ok(out)
}

/// Epochs each value of a training benchmark times (1,000 for dnn3's full-batch epochs).
fn epochs_per_value(row: &super::BenchRow) -> f64 {
    row.facts
        .get("epochs per value")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1.0)
}

fn series<'a>(row: &'a super::BenchRow, name: &str) -> Option<&'a Samples> {
    row.series.get(name)
}

fn cell(row: &super::BenchRow, name: &str, digits: usize) -> String {
    series(row, name).map_or("–".into(), |s| median_spread(s, digits))
}

fn bench_caption(record: &BenchRecord) -> String {
    let repeats = record
        .rows
        .iter()
        .flat_map(|r| r.series.values().map(|s| s.values.len()))
        .min()
        .unwrap_or(0);
    let versions = record
        .versions
        .iter()
        .map(|(name, version)| format!("{name} {version}"))
        .collect::<Vec<_>>()
        .join(", ");
    let versions = if versions.is_empty() {
        String::new()
    } else {
        format!(" Beside strata: {versions}.")
    };
    format!(
        "Measured {} Each figure is the median of {repeats} repetitions (smallest–largest in brackets); \
         each repetition is {}.{versions} Command: `{}`.",
        caption(&[&record.provenance]),
        record.method,
        record.provenance.command
    )
}

/// GFLOP/s of strata's GEMM and the yardsticks.
fn gemm(record: &BenchRecord) -> Result<String, String> {
    let threads = record.provenance.machine.threads;
    let mut out = format!(
        "{}\n\n| shape | strata, {threads} threads | strata, 1 thread | naive loop | matrixmultiply, 1 thread |\n|---|---:|---:|---:|---:|\n",
        bench_caption(record)
    );
    for row in &record.rows {
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            row.label,
            cell(row, "strata, all threads", 1),
            cell(row, "strata, 1 thread", 1),
            cell(row, "naive", 2),
            cell(row, "matrixmultiply, 1 thread", 1)
        );
    }
    Ok(out)
}

/// strata against PyTorch, seconds per epoch.
fn compare(record: &BenchRecord) -> Result<String, String> {
    let mut out = format!(
        "{}\n\n| model | batch | strata (s) | PyTorch (s) | strata / PyTorch (medians) |\n|---|---:|---:|---:|---:|\n",
        bench_caption(record)
    );
    for row in &record.rows {
        let (Some(strata), Some(torch)) = (series(row, "strata"), series(row, "pytorch")) else {
            return Err(format!(
                "compare record: row {} lacks the strata or the pytorch series",
                row.label
            ));
        };
        let label = match epochs_per_value(row) {
            1.0 => row.label.clone(),
            n => format!("{} ({n} epochs)", row.label),
        };
        out += &format!(
            "| {} | {} | {} | {} | {:.2} |\n",
            label,
            row.facts.get("batch").map_or("–", String::as_str),
            median_spread(strata, 3),
            median_spread(torch, 3),
            strata.median() / torch.median()
        );
    }
    Ok(out)
}

/// One op per kernel family: milliseconds, and the rates of the median time.
fn kernels(record: &BenchRecord) -> Result<String, String> {
    let mut out = format!(
        "{}\n\n| op | CUDA kernels | ms | GFLOP/s | GB/s |\n|---|---|---:|---:|---:|\n",
        bench_caption(record)
    );
    for row in &record.rows {
        let ms = series(row, "ms").ok_or(format!("kernels record: {} has no ms", row.label))?;
        let fact = |name: &str| row.facts.get(name).and_then(|v| v.parse::<f64>().ok());
        let seconds = ms.median() / 1e3;
        out += &format!(
            "| {} | {} | {} | {} | {:.1} |\n",
            row.label,
            row.facts.get("kernels").map_or("–", String::as_str),
            median_spread(ms, 3),
            fact("flops").map_or("–".into(), |f| format!("{:.1}", f / seconds / 1e9)),
            fact("bytes").unwrap_or(f64::NAN) / seconds / 1e9
        );
    }
    Ok(out)
}

/// The virtual device's counters per kernel launch and the roofline estimates.
fn sim(record: &BenchRecord) -> Result<String, String> {
    let mut out = format!(
        "Counted {} Each row is {}. Command: `{}`.\n\n\
         | launch | grid×block | warp instructions | MFLOP | lanes | divergent branches | \
         coalescing | bank conflicts | occupancy | FLOP/B | H100 µs | A100 µs | bound |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        caption(&[&record.provenance]),
        record.method,
        record.provenance.command
    );
    for row in &record.rows {
        let fact = |name: &str| {
            row.facts
                .get(name)
                .cloned()
                .ok_or_else(|| format!("{} record: row {} lacks {name}", record.kind, row.label))
        };
        let flops: f64 = fact("flops")?.parse().map_err(|_| "flops: not a number")?;
        out += &format!(
            "| {} | {} | {} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.label,
            fact("launch")?,
            fact("warp_instructions")?,
            flops / 1e6,
            fact("lanes")?,
            fact("divergent_branches")?,
            fact("coalescing")?,
            fact("bank_conflicts")?,
            fact("occupancy")?,
            fact("intensity")?,
            fact("h100_us")?,
            fact("a100_us")?,
            fact("bound")?
        );
    }
    Ok(out)
}

/// The fuzz records: executions, time, corpus, per target.
/// The journey's rounds that have a committed run in `results/journey/` (a `strata journey`
/// run's `results.json`, named `NETWORK-mnist.json`, or `journey_final-steplr-mnist.json` for
/// round 10 with StepLR), beside the published figures.
fn journey(dir: &Path) -> Result<String, String> {
    use crate::journey::{committed, published, rows, seeds, table};
    let runs = committed(dir)?;
    let rows = rows(&runs);
    let published = published()?;
    let provenances: Vec<&Provenance> = runs
        .iter()
        .filter_map(|(_, _, r)| r.provenance.as_ref())
        .collect();
    let missing: Vec<String> = (1..=10)
        .filter(|r| !runs.iter().any(|(round, _, _)| round == r))
        .map(|r| r.to_string())
        .collect();
    let mut out = format!(
        "Measured {} Seed 0, each round's recipe, the whole of MNIST. s/epoch is the median \
         training time of the run's epochs, on a machine that was also running other work: \
         the accuracies are the record, the times only indicative.\n\n{}",
        caption(&provenances),
        table(&rows, &published)
    );
    out += &seeds(&runs, &published);
    if !missing.is_empty() {
        out += &format!(
            "\nNo record yet for {} {}: not yet trained on this machine.\n",
            if missing.len() == 1 {
                "round"
            } else {
                "rounds"
            },
            missing.join(", ")
        );
    }
    Ok(out)
}

/// The all-reduce by message size (`strata bench comm`).
fn comm(record: &BenchRecord) -> Result<String, String> {
    let mut out = format!(
        "{}\n\n| message | µs per all-reduce | algorithm bandwidth, GB/s | bus bandwidth, GB/s |\n|---:|---:|---:|---:|\n",
        bench_caption(record)
    );
    for row in &record.rows {
        out += &format!(
            "| {} | {} | {} | {} |\n",
            row.label,
            cell(row, "µs per call", 0),
            cell(row, "algorithm bandwidth", 2),
            cell(row, "bus bandwidth", 2)
        );
    }
    Ok(out)
}

/// The networks timed for the scaling table, and how each run is laid out.
const SCALING_NETWORKS: [&str; 2] = ["lenet5", "cnn3l"];
const SCALING_LAYOUTS: [(&str, &str); 2] =
    [("1x2", "1 rank × 2 threads"), ("2x1", "2 ranks × 1 thread")];

/// Seconds per epoch of one process with two threads against two single-threaded ranks on
/// the same two cores (`make scaling-record`), and the share of each rank's training time spent
/// waiting for all-reduces that backward did not hide.
fn scaling(dir: &Path) -> Result<String, String> {
    let mut out = String::new();
    let mut rows = String::new();
    let mut provenances = Vec::new();
    for network in SCALING_NETWORKS {
        let mut cells = Vec::new();
        let mut medians = Vec::new();
        let mut share = String::from("–");
        for (file, _) in SCALING_LAYOUTS {
            let run = RunResults::load(&dir.join(format!("{network}-{file}.json")))?;
            let seconds = Samples::new("s", run.epochs.iter().map(|e| e.train_seconds).collect());
            medians.push(seconds.median());
            cells.push(format!("{} s", median_spread(&seconds, 1)));
            let waited: f64 = run
                .epochs
                .iter()
                .filter_map(|e| e.communication_seconds)
                .sum();
            let trained: f64 = run.epochs.iter().map(|e| e.train_seconds).sum();
            if run.ranks > 1 && trained > 0.0 {
                share = format!("{:.1} %", 100.0 * waited / trained);
            }
            if let Some(p) = run.provenance.clone() {
                provenances.push(p);
            }
        }
        rows += &format!(
            "| {network} | {} | {} | {:.2}× | {share} |\n",
            cells[0],
            cells[1],
            medians[0] / medians[1]
        );
    }
    let refs: Vec<&Provenance> = provenances.iter().collect();
    out += &format!(
        "Measured {} Seconds of training per epoch (60,000 images, the recipe's batch), median \
         of the epochs (smallest–largest).\n\n| network | {} | {} | speed-up | waiting for \
         all-reduce, share of training time |\n|---|---:|---:|---:|---:|\n{rows}",
        caption(&refs),
        SCALING_LAYOUTS[0].1,
        SCALING_LAYOUTS[1].1
    );
    Ok(out)
}

fn fuzz(dir: &Path) -> Result<String, String> {
    let mut records: Vec<serde_json::Value> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|x| x == "json") {
            records.push(load_json(&path)?);
        }
    }
    records.sort_by_key(|r| r["target"].as_str().unwrap_or_default().to_string());
    let mut out = String::from(
        "| target | executions | seconds | executions/s | corpus files | crashes | commit | date |\n|---|---:|---:|---:|---:|---:|---|---|\n",
    );
    for r in &records {
        let number = |key: &str| r[key].as_f64().ok_or(format!("fuzz record lacks {key}"));
        out += &format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |\n",
            r["target"].as_str().unwrap_or("?"),
            thousands(number("executions")? as usize),
            number("seconds")?,
            thousands(number("executions_per_second")? as usize),
            thousands(number("corpus_files")? as usize),
            number("crashes")?,
            short(r["commit"].as_str().unwrap_or("?")),
            &r["date"].as_str().unwrap_or("?")[..10]
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_the_tables_need() {
        assert_eq!(thousands(6_379_786), "6,379,786");
        assert_eq!(thousands(98), "98");
        let s = Samples::new("GFLOP/s", vec![300.24, 310.5, 306.1, 305.0, 302.0]);
        assert_eq!(median_spread(&s, 1), "305.0 (300.2–310.5)");
        assert_eq!(
            short("0123456789abcdef+uncommitted"),
            "0123456789+uncommitted"
        );
    }
}
