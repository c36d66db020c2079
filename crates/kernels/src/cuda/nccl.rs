//! NCCL, NVIDIA's collectives between GPUs, through cudarc's `nccl` module. The library is
//! loaded at run time (no CUDA toolkit at build time), from the `nvidia-nccl-cu12` wheel that
//! `scripts/cuda-tools.sh` installs into `.cuda-tools/nvidia/nccl/lib/` beside NVRTC. cudarc
//! opens it by the name `libnccl.so`: the script links that name to the wheel's
//! `libnccl.so.2`, and the `strata` binary carries the folder as a run path (its build
//! script); a program of your own puts the folder on `LD_LIBRARY_PATH`.
//!
//! One process per GPU: rank 0 makes a unique id ([`NcclId::new`]), the ranks share it over
//! another channel (MPI), and each joins with [`NcclComm::join`]. Sums run on the GPU on the
//! device's stream, ordered with the kernels around them; the host never sees the data.

use super::runtime::{CudaDevice, DeviceBuffer};
use cudarc::nccl::{result, safe::Comm, safe::Id, safe::ReduceOp};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Where `scripts/cuda-tools.sh` puts the NCCL library.
pub fn library_dir() -> PathBuf {
    super::tools_dir().join("nvidia/nccl/lib")
}

/// NCCL's version and where it loads from, or why it cannot load. Never panics; computed once
/// per process. Needs no GPU.
pub fn availability() -> Result<String, String> {
    static PROBE: OnceLock<Result<String, String>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

fn probe() -> Result<String, String> {
    // SAFETY: only tries to dlopen the candidate names.
    if !unsafe { cudarc::nccl::sys::is_culib_present() } {
        return Err(format!(
            "NCCL (libnccl.so) not found: run scripts/cuda-tools.sh (installs it into {}), or \
             put the folder of libnccl.so on LD_LIBRARY_PATH",
            library_dir().display()
        ));
    }
    let version = std::panic::catch_unwind(result::get_nccl_version)
        .map_err(|_| "NCCL is present but could not be loaded (missing symbols?)".to_string())?
        .map_err(|e| format!("NCCL is present but ncclGetVersion failed: {e:?}"))?;
    // NCCL_VERSION_CODE is major*10000 + minor*100 + patch since 2.9.
    let (major, minor, patch) = (version / 10_000, version / 100 % 100, version % 100);
    Ok(format!("NCCL {major}.{minor}.{patch}"))
}

/// The 128 bytes that let NCCL ranks find each other; made by rank 0 and sent to the others.
#[derive(Clone, Copy, Debug)]
pub struct NcclId(pub [u8; 128]);

impl NcclId {
    /// A fresh id (opens a listening socket on this machine; needs no GPU).
    pub fn new() -> Result<NcclId, String> {
        availability()?;
        let id = Id::new().map_err(|e| format!("ncclGetUniqueId failed: {e:?}"))?;
        Ok(NcclId(id.internal().map(|c| c as u8)))
    }
}

/// This process's membership of a group of NCCL ranks, on one GPU.
pub struct NcclComm {
    comm: Mutex<OwnedComm>,
}

/// cudarc's communicator, which holds NCCL's raw handle.
struct OwnedComm(Comm);

// SAFETY: an NCCL communicator may be used from any thread, one call at a time (NCCL's rule
// is no concurrent calls on one communicator); the Mutex around it gives exactly that.
unsafe impl Send for OwnedComm {}

impl NcclComm {
    /// Joins the group `id` as `rank` of `size`, on `device` (a GPU; NCCL has no virtual
    /// device). Blocks until every rank has joined.
    pub fn join(
        device: &CudaDevice,
        rank: usize,
        size: usize,
        id: NcclId,
    ) -> Result<NcclComm, String> {
        availability()?;
        let stream = device
            .gpu_stream()
            .ok_or_else(|| format!("NCCL needs a GPU, and {} is not one", device.device()))?;
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| format!("binding {}: {e:?}", device.device()))?;
        let id = Id::uninit(id.0.map(|b| b as core::ffi::c_char));
        let comm = Comm::from_rank(stream.clone(), rank, size, id)
            .map_err(|e| format!("ncclCommInitRank (rank {rank} of {size}) failed: {e:?}"))?;
        Ok(NcclComm {
            comm: Mutex::new(OwnedComm(comm)),
        })
    }

    /// Sums `buffer` over all ranks, in place. Queued on the device's stream: the kernels and
    /// copies queued after it see the sums, and the host waits only when it reads them. NCCL
    /// waits for the other ranks without a deadline.
    pub fn all_reduce_sum(&self, buffer: &mut DeviceBuffer<f32>) -> Result<(), String> {
        let comm = self.comm.lock().unwrap_or_else(|p| p.into_inner());
        let len = buffer.len();
        let slice = buffer
            .gpu_slice_mut()
            .ok_or("NCCL all-reduce of a buffer that is not in GPU memory")?;
        // SAFETY: every bit pattern is a valid f32, and cudarc checks that the slice's bytes
        // hold `len` of them.
        let mut view = unsafe { slice.transmute_mut::<f32>(len) }
            .ok_or_else(|| format!("a device buffer is smaller than its {len} values"))?;
        comm.0
            .all_reduce_in_place(&mut view, &ReduceOp::Sum)
            .map(|_| ())
            .map_err(|e| format!("ncclAllReduce failed: {e:?}"))
    }
}
