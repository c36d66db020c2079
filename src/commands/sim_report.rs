//! What `strata bench kernels|gemm --device cuda-sim` prints: per launch, the work the virtual
//! device counted (instructions by class, divergence, coalescing, bank conflicts), the
//! occupancy ptxas's register count allows, and a roofline estimate on an H100 and an A100.

use strata::kernels::cuda::runtime::{CudaDevice, KernelArg};
use strata::kernels::cuda::sim::exec::Options;
use strata::kernels::cuda::sim::roofline::{self, A100_SXM, H100_SXM};
use strata::kernels::cuda::sim::{LaunchRecord, Simulator};
use strata::kernels::gemm::cuda::GemmKernel;
use strata::kernels::Device;
use strata::records::{BenchRecord, BenchRow, Provenance, Samples};

/// Runs `f` with every launch on the virtual device recorded (and the distinct sectors of each
/// counted, for the DRAM estimate); the records of its launches.
pub fn recording<T>(
    f: impl FnOnce() -> Result<T, String>,
) -> Result<(T, Vec<LaunchRecord>), String> {
    let sim = Simulator::global();
    let before = sim.options();
    sim.set_options(Options {
        unique_sectors: true,
        ..before
    });
    sim.take_records();
    sim.record(true);
    let out = f();
    sim.record(false);
    sim.set_options(before);
    let records = sim.take_records();
    Ok((out?, records))
}

/// The first launch of each distinct (kernel, grid, block), in launch order.
fn first_of_each_shape(records: &[LaunchRecord]) -> Vec<&LaunchRecord> {
    let mut seen = std::collections::HashSet::new();
    records
        .iter()
        .filter(|r| seen.insert((r.kernel.as_str(), r.grid, r.block)))
        .collect()
}

/// Theoretical occupancy on an H100 from ptxas's registers, if ptxas reported them.
fn occupancy(r: &LaunchRecord) -> Option<f64> {
    let threads = r.block.iter().product::<u32>();
    r.registers
        .map(|regs| roofline::occupancy(&H100_SXM, threads, regs, r.shared_bytes))
}

/// One record row per distinct (kernel, grid, block), from its first launch: the counters and
/// estimates as facts (they are counts, the same on every run), the interpreter's seconds as
/// the measured series. `label` prefixes each row's label (e.g. the GEMM size).
pub fn record_rows(records: &[LaunchRecord], label: &str) -> Vec<BenchRow> {
    let mut rows = Vec::new();
    for r in first_of_each_shape(records) {
        let m = &r.metrics;
        let threads = r.block.iter().product::<u32>();
        let h100 = roofline::estimate(m, &H100_SXM);
        let a100 = roofline::estimate(m, &A100_SXM);
        let mut facts = std::collections::BTreeMap::new();
        let mut fact = |k: &str, v: String| {
            facts.insert(k.to_string(), v);
        };
        fact("kernel", r.kernel.clone());
        fact(
            "launch",
            format!("{}x{}", r.grid.iter().product::<u32>(), threads),
        );
        fact("warp_instructions", m.warp_instructions.to_string());
        fact("flops", m.flops.to_string());
        fact("lanes", format!("{:.1}", m.lanes_per_instruction()));
        fact("divergent_branches", m.divergent_branches.to_string());
        fact("coalescing", format!("{:.0}%", 100.0 * m.coalescing()));
        fact("bank_conflicts", m.bank_conflicts().to_string());
        fact(
            "occupancy",
            occupancy(r).map_or("–".into(), |o| format!("{:.0}%", 100.0 * o)),
        );
        fact("intensity", format!("{:.2}", h100.intensity));
        fact("h100_us", format!("{:.2}", h100.seconds * 1e6));
        fact("a100_us", format!("{:.2}", a100.seconds * 1e6));
        fact("bound", h100.bound.to_string());
        let mut series = std::collections::BTreeMap::new();
        series.insert(
            "interpreter seconds".to_string(),
            Samples::new("s", vec![r.seconds]),
        );
        rows.push(BenchRow {
            label: if label.is_empty() {
                r.kernel.clone()
            } else {
                format!("{label} {}", r.kernel)
            },
            facts,
            series,
        });
    }
    rows
}

/// A record of the virtual device's counters (`kind` `sim-kernels` or `sim-gemm`).
pub fn save_record(
    kind: &str,
    provenance: Provenance,
    rows: Vec<BenchRow>,
    path: &std::path::Path,
) -> Result<(), String> {
    let record = BenchRecord {
        kind: kind.into(),
        method: "one launch of each kernel shape on cuda-sim (sm_80 PTX), counted by the \
                 interpreter; estimates from NVIDIA's published peak FP32 rate and memory \
                 bandwidth"
            .into(),
        provenance,
        versions: Default::default(),
        rows,
    };
    record.save(path)?;
    println!("record: {}", path.display());
    Ok(())
}

/// One line per distinct (kernel, grid, block), its first launch.
pub fn print_table(records: &[LaunchRecord]) {
    println!(
        "{:<28} {:>15} {:>11} {:>9} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9}",
        "kernel",
        "grid x block",
        "warp instr",
        "MFLOP",
        "lanes",
        "div br",
        "coal",
        "bank cf",
        "occ",
        "F/B",
        "H100 us",
        "A100 us",
        "bound"
    );
    let instructions: u64 = records.iter().map(|r| r.metrics.warp_instructions).sum();
    let seconds: f64 = records.iter().map(|r| r.seconds).sum();
    for r in first_of_each_shape(records) {
        let m = &r.metrics;
        let threads = r.block.iter().product::<u32>();
        let occupancy = occupancy(r);
        let h100 = roofline::estimate(m, &H100_SXM);
        let a100 = roofline::estimate(m, &A100_SXM);
        println!(
            "{:<28} {:>15} {:>11} {:>9.3} {:>6.1} {:>6} {:>5.0}% {:>7} {:>6} {:>6.2} {:>9.2} {:>9.2} {:>9}",
            r.kernel,
            format!("{}x{}", r.grid.iter().product::<u32>(), threads),
            m.warp_instructions,
            m.flops as f64 / 1e6,
            m.lanes_per_instruction(),
            m.divergent_branches,
            100.0 * m.coalescing(),
            m.bank_conflicts(),
            occupancy.map_or("-".into(), |o| format!("{:.0}%", 100.0 * o)),
            h100.intensity,
            h100.seconds * 1e6,
            a100.seconds * 1e6,
            h100.bound
        );
    }
    println!(
        "lanes: active lanes per warp instruction; div br: branches whose lanes split; coal: \
         bytes asked for / bytes of the 32-byte sectors moved; bank cf: extra shared-memory \
         wavefronts; occ: theoretical occupancy on an H100 from ptxas's registers; F/B: FLOPs \
         per DRAM byte (distinct sectors); us: roofline estimate (max of FP32, DRAM and L1 \
         time, plus {:.1} us launch latency).",
        roofline::LAUNCH_LATENCY_S * 1e6
    );
    if seconds > 0.0 {
        println!(
            "interpreter: {instructions} warp instructions in {seconds:.2} s, {:.2} M warp \
             instructions/s ({:.0} M thread instructions/s at full warps)",
            instructions as f64 / seconds / 1e6,
            instructions as f64 * 32.0 / seconds / 1e6
        );
    }
}

/// The GEMM ladder on the virtual device for each square size: each rung checked against the
/// CPU's GEMM, then its counters and roofline estimates.
pub fn gemm_ladder(sizes: &[usize], record: Option<&std::path::Path>) -> Result<(), String> {
    let provenance = Provenance::now();
    let mut rows = Vec::new();
    let device = CudaDevice::open(Device::CudaSim)?;
    println!("strata bench gemm on {device:?}: C = A·B, f32, row-major");
    for &n in sizes {
        let a: Vec<f32> = (0..n * n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
            .collect();
        let b: Vec<f32> = (0..n * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
            .collect();
        let mut want = vec![0f32; n * n];
        strata::kernels::gemm::gemm_naive(n, n, n, 1.0, &a, n, 1, &b, n, 1, 0.0, &mut want, n, 1);
        let da = device.upload(&a)?;
        let db = device.upload(&b)?;
        println!(
            "\n{n} x {n} x {n} ({:.1} MFLOP):",
            2.0 * (n * n * n) as f64 / 1e6
        );
        let mut all = Vec::new();
        for rung in GemmKernel::LADDER {
            let mut dc = device.zeros::<f32>(n * n)?;
            let ((), records) = recording(|| {
                let i = |x: usize| KernelArg::I32(x as i32);
                device.launch(
                    rung.name(),
                    rung.launch(n, n),
                    &mut [
                        i(n),
                        i(n),
                        i(n),
                        KernelArg::F32(1.0),
                        KernelArg::F32s(&da),
                        i(n),
                        i(1),
                        KernelArg::F32s(&db),
                        i(n),
                        i(1),
                        KernelArg::F32(0.0),
                        KernelArg::F32sMut(&mut dc),
                        i(n),
                        i(1),
                    ],
                )
            })?;
            let got = device.download(&dc)?;
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
                .fold(0.0f32, f32::max);
            if worst > 1e-4 {
                return Err(format!(
                    "{} at {n}: relative error {worst:e} against the CPU",
                    rung.name()
                ));
            }
            all.extend(records);
        }
        print_table(&all);
        rows.extend(record_rows(&all, &format!("{n}³")));
    }
    if let Some(path) = record {
        save_record("sim-gemm", provenance, rows, path)?;
    }
    Ok(())
}
