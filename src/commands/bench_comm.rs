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

/// `--device cpu` times MPI's all-reduce of host memory; `--device cuda` NCCL's, of GPU memory
/// (one GPU per rank), as training uses them.
pub fn run(repeat: usize, record: Option<&std::path::Path>, device: &str) -> Result<(), String> {
    if repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    let provenance = Provenance::now();
    let host = strata::parallel::join(Duration::from_secs(120))?;
    let (n, lead) = (host.size(), host.rank() == 0);
    if n < 2 {
        return Err(
            "strata bench comm measures the all-reduce between ranks: start it with mpirun, \
             e.g. `mpirun -n 2 strata bench comm`"
                .into(),
        );
    }
    let local_rank = ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0);
    let device = strata::device::resolve_for_rank(device, local_rank, lead)?;
    let comm = strata::parallel::on_device(&host, device)?;
    let gpu = strata_kernels::cuda::runtime::CudaDevice::open(device).ok();
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
        // One all-reduce as training makes it: of host memory, or of a tensor in GPU memory
        // (then waited for on the device). Returns the first element of the sum.
        let once = || -> Result<f32, String> {
            if comm.reduces_on_device() {
                let t = strata_nn::Tensor::from_vec(values.clone(), &[values.len()])
                    .to(device)
                    .map_err(|e| e.to_string())?;
                comm.all_reduce_tensors(std::slice::from_ref(&t))
                    .map_err(fail)?;
                if let Some(gpu) = &gpu {
                    gpu.synchronize()?;
                }
                Ok(t.narrow(0, 0, 1).to_vec()[0])
            } else {
                Ok(comm.all_reduce_sum(values.clone()).map_err(fail)?[0])
            }
        };
        // Warm-up: connections, buffers and page faults.
        once()?;
        let mut micros = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            comm.barrier().map_err(fail)?;
            let start = Instant::now();
            let first = once()?;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
            if first != n as f32 {
                return Err(format!("all-reduce gave {first} where {n} was due"));
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
