//! The kernel launchers the twin tests (`src/<op>/twin_tests.rs`) call as `emu::emu_<kernel>`:
//! on the C++ emulator by default, or, with `STRATA_TWIN_DEVICE=cuda-sim`, on the virtual
//! device, which runs NVRTC's PTX of the same kernel with every check on. The twin tests are
//! then the same comparisons against the same CPU twins, of the code a GPU would run.
//!
//! On the virtual device each pointer argument must point into a live [`Guarded`] buffer:
//! the buffer's elements (not its guard zones) are copied into a fresh device allocation, so
//! an access past them is a memcheck error naming the allocation rather than a hit on the
//! sentinel; `T*` buffers are copied back after the launch.

#[cfg(feature = "cuda-sim")]
use super::emu::guarded_regions;
#[cfg(feature = "cuda-sim")]
use super::sim::{ArgValue, Simulator, DEFAULT_ARCH};
#[cfg(feature = "cuda-sim")]
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/twin_ffi.rs"));

/// The environment variable that moves the twin tests onto the virtual device.
pub const TWIN_DEVICE: &str = "STRATA_TWIN_DEVICE";

/// The file each completed virtual-device launch's kernel name is appended to, if set (the
/// coverage test reads it back).
pub const SIM_LAUNCH_LOG: &str = "STRATA_SIM_LAUNCH_LOG";

/// Whether this process runs the twin tests on the virtual device.
#[cfg(feature = "cuda-sim")]
pub fn on_sim() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(TWIN_DEVICE).is_ok_and(|v| v == "cuda-sim"))
}

/// One argument as the emulator's launcher receives it.
#[cfg(feature = "cuda-sim")]
#[derive(Clone, Copy, Debug)]
pub enum HostArg {
    I32(i32),
    /// (No kernel takes an `unsigned int` by value today.)
    #[allow(dead_code)]
    U32(u32),
    U64(u64),
    F32(f32),
    /// `const T*`: copied to the device.
    Ptr(*const u8),
    /// `T*`: copied to the device and back.
    PtrMut(*mut u8),
}

/// Runs `kernel` of `kernels/<file>` on the process's twin-test virtual device; 0, or 1 with
/// the reason in the emulator's [`super::emu::last_error`].
///
/// # Safety
/// Every pointer must point into a live `Guarded` buffer, which nothing else touches during
/// the call.
#[cfg(feature = "cuda-sim")]
unsafe fn sim_launch(
    file: &str,
    kernel: &str,
    grid: [u32; 3],
    block: [u32; 3],
    args: &[HostArg],
) -> i32 {
    static SIM: OnceLock<Simulator> = OnceLock::new();
    let sim = SIM.get_or_init(|| Simulator::new(DEFAULT_ARCH));
    // SAFETY: forwarded to the caller.
    match unsafe { sim_launch_on(sim, file, kernel, grid, block, args) } {
        Ok(()) => {
            if let Some(log) = std::env::var_os(SIM_LAUNCH_LOG) {
                use std::io::Write as _;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                {
                    let _ = writeln!(f, "{kernel}");
                }
            }
            0
        }
        Err(e) => {
            super::emu::set_foreign_error(e);
            1
        }
    }
}

#[cfg(feature = "cuda-sim")]
unsafe fn sim_launch_on(
    sim: &Simulator,
    file: &str,
    kernel: &str,
    grid: [u32; 3],
    block: [u32; 3],
    args: &[HostArg],
) -> Result<(), String> {
    let regions = guarded_regions()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let region_of = |p: usize| -> Result<(usize, usize), String> {
        regions
            .range(..=p)
            .next_back()
            .filter(|(&start, &bytes)| p < start + bytes.max(1))
            .map(|(&s, &b)| (s, b))
            .ok_or_else(|| {
                format!("kernel {kernel}: pointer {p:#x} is not inside a live Guarded buffer")
            })
    };
    // One device allocation per host buffer (two arguments may share one).
    let mut allocations: Vec<(usize, usize, u64, bool)> = Vec::new();
    let mut values = Vec::with_capacity(args.len());
    for arg in args {
        values.push(match *arg {
            HostArg::I32(v) => ArgValue::U32(v as u32),
            HostArg::U32(v) => ArgValue::U32(v),
            HostArg::U64(v) => ArgValue::U64(v),
            HostArg::F32(v) => ArgValue::F32(v),
            // A null pointer (an optional buffer left out) stays null on the device.
            HostArg::Ptr(p) if p.is_null() => ArgValue::Ptr(0),
            HostArg::PtrMut(p) if p.is_null() => ArgValue::Ptr(0),
            HostArg::Ptr(p) => map(
                sim,
                &mut allocations,
                region_of(p as usize)?,
                p as usize,
                false,
            ),
            HostArg::PtrMut(p) => map(
                sim,
                &mut allocations,
                region_of(p as usize)?,
                p as usize,
                true,
            ),
        });
    }
    let outcome = sim
        .launch(file, kernel, grid, block, &values)
        .map(|_| ())
        .map_err(|e| e.to_string());
    for &(start, bytes, device, writable) in &allocations {
        if writable && outcome.is_ok() {
            // SAFETY: the caller's buffer, live and untouched during the call (see above).
            let host = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, bytes) };
            sim.read(device, host)?;
        }
        sim.free(device)?;
    }
    outcome
}

/// The device address for host pointer `p` in `region`, allocating and filling the region's
/// device copy the first time.
#[cfg(feature = "cuda-sim")]
fn map(
    sim: &Simulator,
    allocations: &mut Vec<(usize, usize, u64, bool)>,
    (start, bytes): (usize, usize),
    p: usize,
    writable: bool,
) -> ArgValue {
    let device = match allocations.iter_mut().find(|a| a.0 == start) {
        Some(a) => {
            a.3 |= writable;
            a.2
        }
        None => {
            let device = sim.alloc(bytes as u64);
            // SAFETY: a live Guarded buffer's elements (the registry's contract).
            let host = unsafe { std::slice::from_raw_parts(start as *const u8, bytes) };
            sim.write(device, host)
                .expect("a fresh allocation of the buffer's size");
            allocations.push((start, bytes, device, writable));
            device
        }
    };
    ArgValue::Ptr(device + (p - start) as u64)
}
