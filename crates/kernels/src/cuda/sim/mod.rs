//! `cuda-sim`: a virtual CUDA device that executes the PTX NVRTC compiles from `kernels/*.cu`,
//! with sanitizers and per-launch metrics, on a machine without a GPU.
//!
//! The pieces, in the order a launch meets them:
//! - [`ptx`]: the module's PTX text decoded once into compact instructions (registers as
//!   indices, labels as instruction numbers, addresses resolved);
//! - [`memory`]: device allocations (256-byte aligned, red zones, never reused) with
//!   initialised-bits and race shadows;
//! - [`exec`]: blocks, warps and lanes, the seeded adversarial schedule, and the checks
//!   (memcheck, racecheck, initcheck, synccheck, deadlock, launch limits);
//! - [`alu`]: per-lane arithmetic with the bits PTX defines;
//! - [`roofline`]: what the counted work would take on a named GPU.
//!
//! [`Simulator`] is the device: the driver-level sequence (allocate, copy, load a module,
//! launch by name, synchronise) that [`super::runtime::CudaDevice`] drives for
//! `Device::CudaSim`.

pub mod alu;
pub mod exec;
pub mod memory;
pub mod ptx;
pub mod roofline;

#[cfg(test)]
mod tests;

use super::nvrtc::{compile_cached, Target};
use exec::{Check, Metrics, Options, SimError};
use memory::Global;
use ptx::Module;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The architecture NVRTC compiles for when none is named (an A100's).
pub const DEFAULT_ARCH: u32 = 80;

/// Launch limits of every architecture strata targets (sm_80, sm_90).
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;
/// Largest block along x, y, z.
pub const MAX_BLOCK_DIM: [u32; 3] = [1024, 1024, 64];
/// Largest grid along x, y, z.
pub const MAX_GRID_DIM: [u32; 3] = [i32::MAX as u32, 65_535, 65_535];
/// Static shared memory per block without the dynamic opt-in.
pub const MAX_STATIC_SHARED: u32 = 48 * 1024;
/// 32-bit registers of one multiprocessor (sm_80, sm_90).
pub const REGISTERS_PER_SM: u32 = 65_536;

/// One value of a kernel argument list, as the driver receives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ArgValue {
    /// `.u32`/`.s32` parameter.
    U32(u32),
    /// `.u64` parameter.
    U64(u64),
    /// `.f32` parameter.
    F32(f32),
    /// A device address.
    Ptr(u64),
}

/// What one launch did: for `strata bench --device cuda-sim` and the tests.
#[derive(Clone, Debug)]
pub struct LaunchRecord {
    /// Module (`kernels/<file>.cu`).
    pub file: String,
    /// Kernel name.
    pub kernel: String,
    /// Blocks per grid.
    pub grid: [u32; 3],
    /// Threads per block.
    pub block: [u32; 3],
    /// What the launch executed.
    pub metrics: Metrics,
    /// Registers per thread from ptxas, if ptxas is installed.
    pub registers: Option<u32>,
    /// Static shared memory per block.
    pub shared_bytes: u32,
    /// Host seconds the interpretation took.
    pub seconds: f64,
}

struct State {
    global: Global,
    modules: HashMap<String, Arc<Module>>,
    /// ptxas's registers per (module, kernel), once per module.
    registers: HashMap<String, HashMap<String, u32>>,
    launches: u32,
    options: Options,
    recording: bool,
    records: Vec<LaunchRecord>,
}

/// The virtual device. One per process is enough ([`Simulator::global`]); launches and copies
/// are serialised by its lock, as a CUDA stream serialises them.
pub struct Simulator {
    arch: u32,
    state: Mutex<State>,
}

/// Kernels launched on any simulator in this process (for the coverage test).
fn launched() -> &'static Mutex<BTreeSet<String>> {
    static SET: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    SET.get_or_init(Default::default)
}

/// Names of every kernel launched (successfully) on a simulator in this process.
pub fn launched_kernels() -> BTreeSet<String> {
    launched().lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Simulator {
    /// A device whose kernels NVRTC compiles for `compute_<arch>`; checks as [`Options::default`]
    /// unless `STRATA_SIM_RACECHECK=0`, `STRATA_SIM_INITCHECK=0` or `STRATA_SIM_SEED=<n>`;
    /// `STRATA_SIM_TRACE=1` prints each launch's instruction count and speed.
    pub fn new(arch: u32) -> Simulator {
        let mut options = Options::default();
        if std::env::var("STRATA_SIM_RACECHECK").is_ok_and(|v| v == "0") {
            options.racecheck = false;
        }
        if std::env::var("STRATA_SIM_INITCHECK").is_ok_and(|v| v == "0") {
            options.initcheck = false;
        }
        if let Some(seed) = std::env::var("STRATA_SIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            options.seed = seed;
        }
        Simulator {
            arch,
            state: Mutex::new(State {
                global: Global::default(),
                modules: HashMap::new(),
                registers: HashMap::new(),
                launches: 0,
                options,
                recording: false,
                records: Vec::new(),
            }),
        }
    }

    /// The process's shared simulator for sm_80.
    pub fn global() -> &'static Simulator {
        static SIM: OnceLock<Simulator> = OnceLock::new();
        SIM.get_or_init(|| Simulator::new(DEFAULT_ARCH))
    }

    /// The architecture kernels are compiled for.
    pub fn arch(&self) -> u32 {
        self.arch
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The checks and schedule of the next launches.
    pub fn options(&self) -> Options {
        self.state().options
    }

    /// Changes the checks and schedule of the next launches.
    pub fn set_options(&self, options: Options) {
        self.state().options = options;
    }

    /// Keep a [`LaunchRecord`] of every launch from now on (or stop).
    pub fn record(&self, on: bool) {
        self.state().recording = on;
    }

    /// The records kept since the last call.
    pub fn take_records(&self) -> Vec<LaunchRecord> {
        std::mem::take(&mut self.state().records)
    }

    /// A new allocation of `bytes` uninitialised bytes (garbage, and initcheck knows it).
    pub fn alloc(&self, bytes: u64) -> u64 {
        self.state().global.allocate(bytes)
    }

    /// Frees an allocation; its addresses stay reserved, so a later access is a use after free.
    pub fn free(&self, ptr: u64) -> Result<(), String> {
        self.state().global.free(ptr)
    }

    /// Host-to-device copy into the allocation at `ptr`, from its start.
    pub fn write(&self, ptr: u64, bytes: &[u8]) -> Result<(), String> {
        let mut s = self.state();
        let a = s.global.range(ptr, 0, bytes.len() as u64)?;
        a.bytes.data[..bytes.len()].copy_from_slice(bytes);
        a.bytes.mark_init(0, bytes.len());
        Ok(())
    }

    /// `memset` of the first `len` bytes.
    pub fn fill(&self, ptr: u64, value: u8, len: u64) -> Result<(), String> {
        let mut s = self.state();
        let a = s.global.range(ptr, 0, len)?;
        a.bytes.data[..len as usize].fill(value);
        a.bytes.mark_init(0, len as usize);
        Ok(())
    }

    /// Device-to-host copy of the first `out.len()` bytes.
    pub fn read(&self, ptr: u64, out: &mut [u8]) -> Result<(), String> {
        let mut s = self.state();
        let a = s.global.range(ptr, 0, out.len() as u64)?;
        out.copy_from_slice(&a.bytes.data[..out.len()]);
        Ok(())
    }

    /// Device-to-device copy of `len` bytes (initialised-bits travel with them).
    pub fn copy(&self, dst: u64, src: u64, len: u64) -> Result<(), String> {
        let mut s = self.state();
        let a = s.global.range(src, 0, len)?;
        let data = a.bytes.data[..len as usize].to_vec();
        let written: Vec<bool> = (0..len as usize)
            .map(|b| a.bytes.first_uninit(b, 1).is_none())
            .collect();
        let d = s.global.range(dst, 0, len)?;
        d.bytes.data[..len as usize].copy_from_slice(&data);
        // Written-bits travel with the bytes; the rest of the destination keeps its own.
        for (b, &w) in written.iter().enumerate() {
            d.bytes.set_init(b, w);
        }
        Ok(())
    }

    /// Bytes allocated and not freed.
    pub fn live_bytes(&self) -> u64 {
        self.state().global.live_bytes()
    }

    /// The decoded module of `kernels/<file>` (NVRTC for this architecture, then decoded;
    /// both once per process).
    pub fn module(&self, file: &str) -> Result<Arc<Module>, String> {
        if let Some(m) = self.state().modules.get(file) {
            return Ok(m.clone());
        }
        let compiled = compile_cached(file, Target::Ptx(self.arch));
        let compiled = compiled.as_ref().as_ref().map_err(|e| e.clone())?;
        self.load_ptx(file, &compiled.ptx)
    }

    /// Decodes PTX text given by the caller (a kernel outside `kernels/`, e.g. a test's).
    pub fn load_ptx(&self, name: &str, ptx_text: &str) -> Result<Arc<Module>, String> {
        let module = Arc::new(ptx::parse_module(name, ptx_text)?);
        let registers = register_report(name, ptx_text, self.arch);
        let mut s = self.state();
        s.registers.insert(name.to_string(), registers);
        s.modules.insert(name.to_string(), module.clone());
        Ok(module)
    }

    /// Runs `kernel` of module `file` over `grid` x `block` with `args` (checked against the
    /// kernel's `.param` list), to completion.
    pub fn launch(
        &self,
        file: &str,
        kernel: &str,
        grid: [u32; 3],
        block: [u32; 3],
        args: &[ArgValue],
    ) -> Result<Metrics, SimError> {
        let module = self.module(file).map_err(|e| SimError {
            check: Check::Unsupported,
            message: e,
        })?;
        let launch_error = |message: String| SimError {
            check: Check::Launch,
            message: format!("kernel {kernel} ({file}): {message}"),
        };
        let k = match module.kernels.get(kernel) {
            Some(Ok(k)) => k,
            Some(Err(e)) => {
                return Err(SimError {
                    check: Check::Unsupported,
                    message: e.clone(),
                })
            }
            None => return Err(launch_error("no such kernel in the module".into())),
        };
        // Launch limits, as the driver checks them.
        let threads: u64 = block.iter().map(|&b| b as u64).product();
        if threads > MAX_THREADS_PER_BLOCK as u64 {
            return Err(launch_error(format!(
                "{threads} threads per block {block:?}, the limit is {MAX_THREADS_PER_BLOCK}"
            )));
        }
        for d in 0..3 {
            if block[d] > MAX_BLOCK_DIM[d] || grid[d] > MAX_GRID_DIM[d] {
                return Err(launch_error(format!(
                    "grid {grid:?} x block {block:?} exceeds the limits grid {MAX_GRID_DIM:?}, block {MAX_BLOCK_DIM:?}"
                )));
            }
        }
        if k.shared_bytes > MAX_STATIC_SHARED {
            return Err(launch_error(format!(
                "{} bytes of static shared memory, over the {MAX_STATIC_SHARED} a block gets without opting in",
                k.shared_bytes
            )));
        }
        let registers = self
            .state()
            .registers
            .get(file)
            .and_then(|r| r.get(kernel).copied());
        if let Some(r) = registers {
            // Registers are allocated per warp in units of 256.
            let per_warp = (r * 32).div_ceil(256) * 256;
            let needed = per_warp * (threads as u32).div_ceil(32);
            if needed > REGISTERS_PER_SM {
                return Err(launch_error(format!(
                    "too many resources requested: {r} registers per thread x {threads} threads \
                     need {needed} registers, a multiprocessor has {REGISTERS_PER_SM}"
                )));
            }
        }
        if args.len() != k.params.len() {
            return Err(launch_error(format!(
                "takes {} arguments, was given {}",
                k.params.len(),
                args.len()
            )));
        }
        let mut params = vec![0u8; k.param_bytes as usize];
        for (i, (p, a)) in k.params.iter().zip(args).enumerate() {
            use ptx::Ty;
            let bytes: Vec<u8> = match (a, p.ty) {
                (ArgValue::U32(v), Ty::U32 | Ty::S32 | Ty::B32) => v.to_le_bytes().to_vec(),
                (ArgValue::F32(v), Ty::F32) => v.to_le_bytes().to_vec(),
                (ArgValue::U64(v) | ArgValue::Ptr(v), Ty::U64 | Ty::S64 | Ty::B64) => {
                    v.to_le_bytes().to_vec()
                }
                _ => {
                    return Err(launch_error(format!(
                        "parameter {i} is .{:?} ({} bytes), was given {a:?}",
                        p.ty,
                        p.ty.bytes()
                    )))
                }
            };
            let at = p.offset as usize;
            params[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        if grid.contains(&0) || block.contains(&0) {
            return Err(launch_error(format!(
                "grid {grid:?} x block {block:?} has a zero dimension (invalid configuration)"
            )));
        }
        let total: u64 = grid.iter().map(|&g| g as u64).product::<u64>() * threads;
        if total >= u32::MAX as u64 - 1 {
            return Err(launch_error(format!(
                "{total} threads in one launch: cuda-sim numbers threads with 32 bits"
            )));
        }
        let mut s = self.state();
        s.launches = s.launches.wrapping_add(1);
        let launch = exec::Launch {
            module: &module,
            kernel: k,
            grid,
            block,
            params: &params,
            options: s.options,
            stamp: s.launches,
        };
        let started = Instant::now();
        let metrics = exec::run(&launch, &mut s.global)?;
        let seconds = started.elapsed().as_secs_f64();
        if std::env::var_os("STRATA_SIM_TRACE").is_some() {
            eprintln!(
                "cuda-sim: {kernel} grid {grid:?} block {block:?}: {} warp instructions in {:.3} s ({:.1} M/s)",
                metrics.warp_instructions,
                seconds,
                metrics.warp_instructions as f64 / seconds / 1e6
            );
        }
        launched()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kernel.to_string());
        if s.recording {
            s.records.push(LaunchRecord {
                file: file.to_string(),
                kernel: kernel.to_string(),
                grid,
                block,
                metrics: metrics.clone(),
                registers,
                shared_bytes: k.shared_bytes,
                seconds,
            });
        }
        Ok(metrics)
    }
}

/// Registers per thread of each kernel, from ptxas; empty where ptxas is not installed (the
/// register check is then skipped, which [`LaunchRecord::registers`] shows as `None`).
fn register_report(name: &str, ptx_text: &str, arch: u32) -> HashMap<String, u32> {
    match super::ptxas::assemble(name, ptx_text, arch) {
        Ok(rows) => rows.into_iter().map(|r| (r.kernel, r.registers)).collect(),
        Err(_) => HashMap::new(),
    }
}
