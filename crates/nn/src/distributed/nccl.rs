//! [`Communicator`] on NCCL: one process per GPU, gradients summed on the GPUs, never through
//! host memory. NCCL needs its ranks to share a unique id before they can talk; rank 0 makes
//! it and sends it over the host communicator (MPI), which also carries the small host-side
//! collectives (metrics, broadcasts of state, barriers).

use super::{CommError, Communicator, Pending};
use crate::Tensor;
use std::sync::Arc;
use strata_kernels::cuda::nccl::{availability, NcclComm, NcclId};
use strata_kernels::cuda::runtime::CudaDevice;
use strata_kernels::Device;

/// NCCL between the GPUs of `host`'s ranks, one GPU per rank.
pub struct NcclCommunicator {
    host: Arc<dyn Communicator>,
    comm: NcclComm,
    library: String,
}

fn error(rank: usize, op: &'static str, message: String) -> CommError {
    CommError::Library { rank, op, message }
}

impl NcclCommunicator {
    /// Joins `host`'s ranks in an NCCL group on `device` (this rank's GPU).
    pub fn join(
        host: Arc<dyn Communicator>,
        device: Device,
    ) -> Result<NcclCommunicator, CommError> {
        let rank = host.rank();
        let library = availability().map_err(|e| error(rank, "loading NCCL", e))?;
        let gpu = CudaDevice::open(device).map_err(|e| error(rank, "opening the GPU", e))?;
        let mut id = if rank == 0 {
            NcclId::new()
                .map_err(|e| error(rank, "ncclGetUniqueId", e))?
                .0
                .to_vec()
        } else {
            Vec::new()
        };
        host.broadcast(&mut id, 0)?;
        let id: [u8; 128] = id
            .try_into()
            .map_err(|_| error(rank, "sharing the NCCL id", "not 128 bytes".into()))?;
        let comm = NcclComm::join(&gpu, rank, host.size(), NcclId(id))
            .map_err(|e| error(rank, "ncclCommInitRank", e))?;
        Ok(NcclCommunicator {
            host,
            comm,
            library,
        })
    }
}

impl Communicator for NcclCommunicator {
    fn rank(&self) -> usize {
        self.host.rank()
    }
    fn size(&self) -> usize {
        self.host.size()
    }
    fn describe(&self) -> String {
        format!(
            "{} (ids and metrics over {})",
            self.library,
            self.host.describe()
        )
    }
    fn start_all_reduce_sum(&self, values: Vec<f32>) -> Pending {
        self.host.start_all_reduce_sum(values)
    }
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CommError> {
        self.host.all_reduce_sum_f64(values)
    }
    fn broadcast(&self, bytes: &mut Vec<u8>, root: usize) -> Result<(), CommError> {
        self.host.broadcast(bytes, root)
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.host.barrier()
    }
    fn barrier_without_deadline(&self) -> Result<(), CommError> {
        self.host.barrier_without_deadline()
    }
    fn abort(&self, code: i32) -> ! {
        self.host.abort(code)
    }
    fn reduces_on_device(&self) -> bool {
        true
    }

    /// Each gradient summed in place in GPU memory, queued on the device's stream.
    fn all_reduce_tensors(&self, grads: &[Tensor]) -> Result<(), CommError> {
        for g in grads {
            g.update_on_device(|_, buffer| self.comm.all_reduce_sum(buffer))
                .map_err(|e| error(self.rank(), "ncclAllReduce", e))?;
        }
        Ok(())
    }
}
