//! `strata bench comm`: the all-reduce of the communicator in use (MPI under `mpirun`), by
//! message size: time per call, and bandwidth as nccl-tests defines it.
//!
//! ```text
//! algorithm bandwidth = bytes / time
//! bus bandwidth       = algorithm bandwidth · 2(n-1)/n     (what each link carries in a ring
//!                                                         all-reduce over n ranks)
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use strata::records::{BenchRecord, BenchRow, Provenance, Samples};

/// Message sizes measured by default: 4 KiB to 64 MiB, by factors of four.
pub const DEFAULT_SIZES: [usize; 8] = [
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
];

/// `1 KiB`, `4 MiB`.
fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

pub fn run(repeat: usize, record: Option<&std::path::Path>) -> Result<(), String> {
    if repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    let provenance = Provenance::now();
    let comm = strata::parallel::join(Duration::from_secs(120))?;
    let (n, lead) = (comm.size(), comm.rank() == 0);
    if n < 2 {
        return Err(
            "strata bench comm measures the all-reduce between ranks: start it with \
                    mpirun, e.g. `mpirun -n 2 strata bench comm`"
                .into(),
        );
    }
    let fail = |e: strata_nn::distributed::CommError| e.to_string();
    if lead {
        println!(
            "all-reduce (sum of f32) over {n} ranks, {}: median of {repeat} calls \
             (smallest–largest), each started together after a barrier",
            comm.describe()
        );
        println!(
            "{:>9} {:>22} {:>22} {:>12}",
            "size", "µs per call", "algorithm GB/s", "bus GB/s"
        );
    }
    let mut rows = Vec::new();
    for &bytes in &DEFAULT_SIZES {
        let values = vec![1.0f32; bytes / 4];
        // Warm-up: connections, buffers and page faults.
        comm.all_reduce_sum(values.clone()).map_err(fail)?;
        let mut micros = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            comm.barrier().map_err(fail)?;
            let start = Instant::now();
            let sum = comm.all_reduce_sum(values.clone()).map_err(fail)?;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
            if sum[0] != n as f32 {
                return Err(format!("all-reduce gave {} where {n} was due", sum[0]));
            }
        }
        let algorithm: Vec<f64> = micros.iter().map(|us| bytes as f64 / us / 1e3).collect();
        let bus_factor = 2.0 * (n as f64 - 1.0) / n as f64;
        let bus: Vec<f64> = algorithm.iter().map(|b| b * bus_factor).collect();
        let (micros, algorithm, bus) = (
            Samples::new("µs", micros),
            Samples::new("GB/s", algorithm),
            Samples::new("GB/s", bus),
        );
        if lead {
            use strata::records::tables::median_spread;
            println!(
                "{:>9} {:>22} {:>22} {:>12.2}",
                size_label(bytes),
                median_spread(&micros, 0),
                median_spread(&algorithm, 2),
                bus.median()
            );
        }
        rows.push(BenchRow {
            label: size_label(bytes),
            facts: BTreeMap::from([
                ("bytes".to_string(), bytes.to_string()),
                ("ranks".to_string(), n.to_string()),
            ]),
            series: BTreeMap::from([
                ("µs per call".to_string(), micros),
                ("algorithm bandwidth".to_string(), algorithm),
                ("bus bandwidth".to_string(), bus),
            ]),
        });
    }
    if let (Some(path), true) = (record, lead) {
        let record = BenchRecord {
            kind: "comm".into(),
            method: format!(
                "one all-reduce (sum of f32) over {n} ranks on {}, timed on rank 0 after a barrier",
                comm.describe()
            ),
            provenance,
            versions: BTreeMap::new(),
            rows,
        };
        record.save(path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
