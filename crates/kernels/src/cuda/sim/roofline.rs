//! A roofline estimate of a launch's time on a named GPU, from the work the simulator counted.
//!
//! time = max(flops / peak FP32 rate, DRAM bytes / bandwidth, L1 sectors / L1 rate) + launch
//! latency, where DRAM bytes are the distinct 32-byte sectors the launch touched (each
//! fetched once: a lower bound that assumes perfect caching) and the L1 term charges every
//! sector of every request (what poor coalescing costs). Both the peak rates and this model
//! are optimistic: a measured time is at least the estimate, and the ratio says how far a
//! kernel is from its roof. Peak figures are NVIDIA's published dense FP32 (no tensor cores)
//! and memory bandwidth for each board.

use super::exec::Metrics;

/// The published figures the estimate needs.
#[derive(Clone, Copy, Debug)]
pub struct Gpu {
    /// Board name.
    pub name: &'static str,
    /// Dense FP32 FLOP/s without tensor cores.
    pub fp32_flops: f64,
    /// DRAM bytes/s.
    pub dram_bytes: f64,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// 32-byte L1 sectors per second over the whole GPU (4 per SM per clock).
    pub l1_sectors: f64,
    /// Resident threads per SM.
    pub max_threads_per_sm: u32,
    /// Resident blocks per SM.
    pub max_blocks_per_sm: u32,
    /// Shared memory per SM, bytes.
    pub shared_per_sm: u32,
    /// 32-bit registers per SM.
    pub registers_per_sm: u32,
}

/// H100 SXM5 80 GB: 66.9 TFLOP/s FP32, 3.35 TB/s HBM3, 132 SMs at 1.98 GHz boost.
pub const H100_SXM: Gpu = Gpu {
    name: "H100 SXM",
    fp32_flops: 66.9e12,
    dram_bytes: 3.35e12,
    sms: 132,
    l1_sectors: 132.0 * 4.0 * 1.98e9,
    max_threads_per_sm: 2048,
    max_blocks_per_sm: 32,
    shared_per_sm: 228 * 1024,
    registers_per_sm: 65_536,
};

/// A100 SXM4 80 GB: 19.5 TFLOP/s FP32, 2.039 TB/s HBM2e, 108 SMs at 1.41 GHz boost.
pub const A100_SXM: Gpu = Gpu {
    name: "A100 SXM",
    fp32_flops: 19.5e12,
    dram_bytes: 2.039e12,
    sms: 108,
    l1_sectors: 108.0 * 4.0 * 1.41e9,
    max_threads_per_sm: 2048,
    max_blocks_per_sm: 32,
    shared_per_sm: 164 * 1024,
    registers_per_sm: 65_536,
};

/// The boards an estimate can name.
pub const GPUS: [Gpu; 2] = [H100_SXM, A100_SXM];

/// Time from a launch call to its first instruction, which no small kernel beats.
pub const LAUNCH_LATENCY_S: f64 = 2.5e-6;

/// `by name`, case- and punctuation-insensitively (`h100`, `A100-SXM`).
pub fn gpu(name: &str) -> Option<Gpu> {
    let key = |s: &str| s.to_ascii_lowercase().replace([' ', '-', '_'], "");
    let want = key(name);
    GPUS.iter()
        .copied()
        .find(|g| key(g.name).starts_with(&want) || want.starts_with(&key(g.name)))
}

/// The estimate and which roof bounds it.
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    /// Estimated seconds.
    pub seconds: f64,
    /// The roof that bounds it: `compute`, `dram`, `l1` or `latency`.
    pub bound: &'static str,
    /// FLOPs per DRAM byte.
    pub intensity: f64,
}

/// The roofline time of the counted work on `gpu`.
pub fn estimate(m: &Metrics, gpu: &Gpu) -> Estimate {
    let dram = (m.unique_sectors * 32) as f64;
    let compute = m.flops as f64 / gpu.fp32_flops;
    let memory = dram / gpu.dram_bytes;
    let l1 = (m.global_sectors + m.shared_wavefronts) as f64 / gpu.l1_sectors;
    let (t, bound) = [(compute, "compute"), (memory, "dram"), (l1, "l1")]
        .into_iter()
        .fold((0.0, "latency"), |acc, x| if x.0 > acc.0 { x } else { acc });
    Estimate {
        seconds: t + LAUNCH_LATENCY_S,
        bound,
        intensity: if dram > 0.0 {
            m.flops as f64 / dram
        } else {
            0.0
        },
    }
}

/// Theoretical occupancy: resident warps per SM over the maximum, limited by threads, blocks,
/// registers and shared memory per SM.
pub fn occupancy(gpu: &Gpu, threads_per_block: u32, registers: u32, shared_bytes: u32) -> f64 {
    let warps_per_block = threads_per_block.div_ceil(32).max(1);
    let by_threads = gpu.max_threads_per_sm / (warps_per_block * 32);
    let by_blocks = gpu.max_blocks_per_sm;
    let regs_per_block = (registers.max(1) * 32).div_ceil(256) * 256 * warps_per_block;
    let by_regs = gpu.registers_per_sm / regs_per_block.max(1);
    // sm_80 and sm_90 reserve 1 KB of shared memory per resident block.
    let by_shared = if shared_bytes == 0 {
        u32::MAX
    } else {
        gpu.shared_per_sm / (shared_bytes + 1024)
    };
    let blocks = by_threads.min(by_blocks).min(by_regs).min(by_shared);
    (blocks * warps_per_block) as f64 / (gpu.max_threads_per_sm / 32) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bandwidth_bound_launch_is_bound_by_dram() {
        let m = Metrics {
            flops: 1 << 20,
            unique_sectors: 1 << 20,
            global_sectors: 1 << 20,
            ..Metrics::default()
        };
        let e = estimate(&m, &H100_SXM);
        assert_eq!(e.bound, "dram");
        let want = (32u64 << 20) as f64 / 3.35e12 + LAUNCH_LATENCY_S;
        assert!((e.seconds - want).abs() < 1e-12);
        assert_eq!(gpu("h100").unwrap().name, "H100 SXM");
        assert_eq!(gpu("A100-SXM").unwrap().name, "A100 SXM");
    }

    #[test]
    fn occupancy_is_limited_by_registers() {
        // 128 registers x 256 threads: 32,768 per block, two blocks: 16 of 64 warps.
        assert_eq!(occupancy(&H100_SXM, 256, 128, 0), 0.25);
        assert_eq!(occupancy(&H100_SXM, 256, 32, 0), 1.0);
    }
}
