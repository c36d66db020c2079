//! Records: what backs every figure README.md and BENCHMARKS.md publish.
//!
//! A record is a JSON file under `results/` written by the command that measured it: the
//! command line, the commit of the checkout, the machine, the date, and every repeated
//! measurement (never only a summary). `strata records tables --write` regenerates the
//! documents' tables from the records; `strata records check` (run by `make test`) fails when a
//! table in the documents differs from what the records give, or holds a figure outside a
//! generated table.
//!
//! - `results/train/MODEL-DATASET.json`: `strata train` (a run's `results.json`, per-epoch losses,
//!   accuracies and seconds).
//! - `results/bench/gemm.json`: `make bench` (`cargo bench --bench gemm`).
//! - `results/bench/kernels.json`: `strata bench kernels --repeat 5 --record ...`.
//! - `results/compare/pytorch.json`: `make compare` (strata and PyTorch, alternately).
//! - `results/fuzz/TARGET.json`: `make fuzz-record`.

pub mod check;
pub mod tables;

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where and how a record was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// The command line that measured it, as typed (program name first).
    pub command: String,
    /// `git rev-parse HEAD` of the checkout the binary was built from, with `+uncommitted`
    /// when tracked files differed from it; `unknown` outside a git checkout.
    pub commit: String,
    /// strata's version.
    pub strata_version: String,
    /// When the measurement started, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
    /// The machine it ran on.
    pub machine: Machine,
}

/// The machine a record was measured on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// The CPU's model name (`/proc/cpuinfo`), or the architecture where that is unknown.
    pub cpu: String,
    /// The widest instruction set strata's kernels use on it (`avx512`, `avx2fma`, `portable`).
    pub isa: String,
    /// Logical CPUs the process may run on.
    pub logical_cpus: usize,
    /// Worker threads of strata's pool during the measurement.
    pub threads: usize,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages when the measurement started: other work
    /// on the machine slows a measurement down.
    #[serde(default)]
    pub load_average: Vec<f64>,
}

impl Provenance {
    /// The provenance of a measurement starting now, in this process.
    pub fn now() -> Provenance {
        Provenance {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            commit: checkout_commit(),
            strata_version: env!("CARGO_PKG_VERSION").into(),
            date: utc_now(),
            machine: Machine::this(),
        }
    }
}

impl Machine {
    /// This machine, with the current thread pool's size.
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|name| name.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Machine {
            cpu,
            isa: format!("{:?}", crate::kernels::simd::Isa::detected()).to_lowercase(),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: rayon::current_num_threads(),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|text| {
                    text.split_whitespace()
                        .take(3)
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// One line for a table's caption, e.g. `AMD EPYC 7B13 (avx2+fma), 2 threads`.
    pub fn describe(&self) -> String {
        let plural = if self.threads == 1 { "" } else { "s" };
        format!(
            "{} ({}), {} thread{plural}",
            self.cpu, self.isa, self.threads
        )
    }
}

/// The commit of the checkout this binary was built from (its manifest folder).
fn checkout_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => {
            let changed = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if changed {
                format!("{commit}+uncommitted")
            } else {
                commit
            }
        }
        None => "unknown".into(),
    }
}

/// The current time, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(seconds)
}

/// Seconds since 1970 as a UTC date (the proleptic Gregorian calendar, days from civil).
fn utc_date(seconds: u64) -> String {
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Repeated measurements of one quantity, kept whole; tables print their median and spread.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Samples {
    /// What was measured, e.g. `GFLOP/s` or `s`.
    pub unit: String,
    /// One value per repetition, in the order measured.
    pub values: Vec<f64>,
}

impl Samples {
    /// `values` measured in `unit`.
    pub fn new(unit: &str, values: Vec<f64>) -> Samples {
        Samples {
            unit: unit.into(),
            values,
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median (the mean of the middle two for an even count); NaN when empty.
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The smallest and the largest value.
    pub fn range(&self) -> (f64, f64) {
        let v = self.sorted();
        (
            v.first().copied().unwrap_or(f64::NAN),
            v.last().copied().unwrap_or(f64::NAN),
        )
    }
}

/// One row of a benchmark record: a label and named series of repeated measurements.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BenchRow {
    /// What the row measures, e.g. `1024³` or `conv2d [100,6,14,14]*[16,6,5,5]`.
    pub label: String,
    /// Facts of the row that are not measured (shape, kernels launched, flops, bytes).
    #[serde(default)]
    pub facts: std::collections::BTreeMap<String, String>,
    /// Measured series by name, e.g. `strata, all threads` → GFLOP/s of each repetition.
    pub series: std::collections::BTreeMap<String, Samples>,
}

/// A benchmark's record: `results/bench/*.json` and `results/compare/*.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BenchRecord {
    /// Which benchmark: `gemm`, `kernels`, `compare-pytorch`.
    pub kind: String,
    /// How each repetition measured (e.g. "best of calls over 0.3 s").
    pub method: String,
    /// Where and how it ran.
    pub provenance: Provenance,
    /// Other software measured beside strata, with versions (e.g. `PyTorch 2.5.1`).
    #[serde(default)]
    pub versions: std::collections::BTreeMap<String, String>,
    /// The rows, in the order measured.
    pub rows: Vec<BenchRow>,
}

impl BenchRecord {
    /// Writes the record as pretty JSON, atomically; the error names the file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        save_json(self, path)
    }

    /// Reads a record; the error names the file and says what is wrong with it.
    pub fn load(path: &Path) -> Result<BenchRecord, String> {
        load_json(path)
    }
}

/// Writes `value` as pretty JSON to `path` atomically, creating its folder.
pub fn save_json<T: Serialize>(value: &T, path: &Path) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let mut text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    text.push('\n');
    strata_nn::checkpoint::write_atomically(path, text.as_bytes()).map_err(|e| e.to_string())
}

/// Reads a JSON record; the error names the file.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a strata record: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_date(1_796_601_599), "2026-12-06T23:59:59Z");
    }

    #[test]
    fn median_and_range_of_odd_and_even_counts() {
        let odd = Samples::new("s", vec![3.0, 1.0, 2.0, 9.0, 5.0]);
        assert_eq!((odd.median(), odd.range()), (3.0, (1.0, 9.0)));
        let even = Samples::new("s", vec![4.0, 1.0, 2.0, 3.0]);
        assert_eq!(even.median(), 2.5);
    }
}
