//! Data-parallel training: one copy of the network per process (a *rank*), each on its share
//! of every batch, kept identical by averaging gradients across ranks after each backward pass.
//!
//! ```text
//!            global batch of B examples, in the order one process would use
//!        ┌──────────────┬──────────────┬──────────────┐
//!        │ rows 0..b1   │ rows b1..b2  │ rows b2..B   │    rank r takes rows r·B/N .. (r+1)·B/N
//!        └──────┬───────┴──────┬───────┴──────┬───────┘
//!           forward         forward        forward          (same weights on every rank)
//!         loss_0·n_0/B    loss_1·n_1/B   loss_2·n_2/B       (each rank's mean, weighted)
//!           backward        backward       backward
//!            g_0              g_1            g_2
//!              └───────── all-reduce: Σ g_r ─────────┘      = gradient of the global mean
//!           step             step           step            (identical updates)
//! ```
//!
//! Weighting each rank's mean loss by its share `n_r / B` makes the summed gradient the
//! gradient of the global batch's mean loss even when `B` does not divide evenly (100 over 3
//! ranks is 33 + 33 + 34). Random draws that belong to a row (dropout masks, see [`Shard`])
//! are keyed by the row's place in the global batch, so N ranks compute what one process
//! computes, up to the order of floating-point sums.
//!
//! - [`Communicator`]: the collectives training needs (all-reduce, broadcast, barrier), on
//!   MPI ([`mpi::MpiCommunicator`], feature `mpi`) between processes and machines, or on
//!   NCCL between GPUs (feature `nccl`), or [`SingleProcess`].
//! - [`GradientReducer`]: gradients all-reduced in buckets of a few MB, each bucket sent the
//!   moment backward has produced its last gradient, so communication overlaps the rest of
//!   backward (PyTorch's DistributedDataParallel does the same).
//! - [`all_reduce_sum`]: a differentiable all-reduce, which synchronised BatchNorm is built on.
//! - [`Shard`]: which rows of the global batch this rank holds, read by the layers.

#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;
mod reducer;

pub use reducer::GradientReducer;

use crate::Tensor;
use std::cell::RefCell;
use std::sync::Arc;
use strata_tensor::{Context, Function};

/// Why a collective failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommError {
    /// A collective did not complete in time: another rank has died or hung.
    #[error(
        "waited {seconds} s in {op} for the other ranks: a rank has died or hung (every rank \
         that is waiting reports this; look at the ones that do not)"
    )]
    Timeout {
        /// This process's rank.
        rank: usize,
        /// The collective.
        op: &'static str,
        /// How long it waited.
        seconds: f64,
    },
    /// The communication library reported an error, or its thread ended.
    #[error("{op}: {message}")]
    Library {
        /// This process's rank.
        rank: usize,
        /// The collective.
        op: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// An all-reduce under way; [`Pending::wait`] returns the sum over all ranks.
pub struct Pending(Box<dyn FnOnce() -> Result<Vec<f32>, CommError> + Send>);

impl Pending {
    /// A result that is already known (one rank, or a blocking implementation).
    pub fn ready(values: Vec<f32>) -> Pending {
        Pending(Box::new(move || Ok(values)))
    }

    /// A result `wait` will produce.
    pub fn later(wait: impl FnOnce() -> Result<Vec<f32>, CommError> + Send + 'static) -> Pending {
        Pending(Box::new(wait))
    }

    /// Blocks until the sum has arrived.
    pub fn wait(self) -> Result<Vec<f32>, CommError> {
        (self.0)()
    }
}

/// The collectives data-parallel training needs. Every rank must call the same collectives in
/// the same order (as with MPI); the sums are identical on every rank.
pub trait Communicator: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// The library and its version, for logs ("Open MPI v4.1.4", ...).
    fn describe(&self) -> String;
    /// Starts summing `values` over all ranks, element by element, and returns at once.
    fn start_all_reduce_sum(&self, values: Vec<f32>) -> Pending;
    /// Sums `values` over all ranks in place (metrics: loss sums and counts).
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CommError>;
    /// Replaces `bytes` on every rank by `root`'s (whose length wins).
    fn broadcast(&self, bytes: &mut Vec<u8>, root: usize) -> Result<(), CommError>;
    /// Returns once every rank has reached it.
    fn barrier(&self) -> Result<(), CommError>;
    /// [`Communicator::barrier`] with no time limit, for waits that may legitimately be long
    /// (rank 0 downloading a dataset while the others wait for it).
    fn barrier_without_deadline(&self) -> Result<(), CommError> {
        self.barrier()
    }
    /// Ends every rank's process with `code` (MPI_Abort): for errors after which the other
    /// ranks would wait forever. After a [`CommError`] the collective that failed may still be
    /// under way, so a program cannot go on with this communicator: it should abort.
    fn abort(&self, code: i32) -> !;

    /// Sums `values` over all ranks and waits for the result.
    fn all_reduce_sum(&self, values: Vec<f32>) -> Result<Vec<f32>, CommError> {
        self.start_all_reduce_sum(values).wait()
    }

    /// Whether [`Communicator::all_reduce_tensors`] sums in device memory (NCCL), so the
    /// gradient buckets should be handed over as tensors rather than copied to the host.
    fn reduces_on_device(&self) -> bool {
        false
    }

    /// Sums the gradients `grads` (one per parameter, on the parameters' device, each a whole
    /// buffer) over all ranks in place. The default goes through host memory; NCCL keeps them
    /// on the GPU.
    fn all_reduce_tensors(&self, grads: &[Tensor]) -> Result<(), CommError> {
        let mut flat = Vec::new();
        for g in grads {
            flat.extend(g.to_vec());
        }
        let sum = self.all_reduce_sum(flat)?;
        let mut at = 0;
        for g in grads {
            let n = g.numel();
            g.copy_from(&Tensor::from_vec(sum[at..at + n].to_vec(), g.shape()));
            at += n;
        }
        Ok(())
    }
}

/// The communicator of a single process: every collective returns its input.
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn describe(&self) -> String {
        "single process".into()
    }
    fn start_all_reduce_sum(&self, values: Vec<f32>) -> Pending {
        Pending::ready(values)
    }
    fn all_reduce_sum_f64(&self, _values: &mut [f64]) -> Result<(), CommError> {
        Ok(())
    }
    fn broadcast(&self, _bytes: &mut Vec<u8>, _root: usize) -> Result<(), CommError> {
        Ok(())
    }
    fn barrier(&self) -> Result<(), CommError> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The rows `start..end` of `rows` that `rank` of `size` takes: contiguous, in order, sizes
/// differing by at most one (100 over 3 ranks: 0..33, 33..66, 66..100).
pub fn share(rows: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    rows * rank / size..rows * (rank + 1) / size
}

/// Where this rank's rows sit in the global batch, and the communicator, for the layers whose
/// forward pass depends on the whole batch: dropout draws its mask from the row's place in the
/// global batch, synchronised BatchNorm takes its statistics over all ranks. Set by the trainer
/// around each forward pass with [`with_shard`].
#[derive(Clone)]
pub struct Shard {
    /// Index of this rank's first row in the global batch.
    pub first_row: usize,
    /// Rows of the global batch (all ranks together).
    pub global_rows: usize,
    /// The ranks' communicator.
    pub communicator: Arc<dyn Communicator>,
    /// Whether BatchNorm takes its statistics over the global batch (`--sync-batch-norm`).
    pub sync_batch_norm: bool,
}

thread_local! {
    static SHARD: RefCell<Option<Shard>> = const { RefCell::new(None) };
}

/// Runs `f` (a forward pass) with `shard` visible to the layers through [`current_shard`].
pub fn with_shard<R>(shard: Shard, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Shard>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SHARD.with(|s| *s.borrow_mut() = previous);
        }
    }
    let _restore = Restore(SHARD.with(|s| s.borrow_mut().replace(shard)));
    f()
}

/// The shard of the forward pass running on this thread, if it is data-parallel.
pub fn current_shard() -> Option<Shard> {
    SHARD.with(|s| s.borrow().clone())
}

/// `Σ_ranks x`, differentiable: every rank gets the sum, and since every rank's loss depends
/// on it, the gradient reaching each rank's `x` is the sum of the gradients of all ranks'
/// copies of the output (`dx_r = Σ_s dy_s`): an all-reduce in backward too.
///
/// ```text
/// forward:  y = Σ_s x_s          [any shape], identical on every rank
/// backward: dx_r = Σ_s dy_s      [same shape]
/// ```
pub fn all_reduce_sum(x: &Tensor, communicator: &Arc<dyn Communicator>) -> Tensor {
    Tensor::apply(
        AllReduceSum {
            communicator: communicator.clone(),
        },
        &[x],
    )
}

struct AllReduceSum {
    communicator: Arc<dyn Communicator>,
}

impl AllReduceSum {
    fn sum(&self, x: &Tensor) -> Tensor {
        let device = x.device();
        let sum = self
            .communicator
            .all_reduce_sum(x.to_vec())
            .unwrap_or_else(|e| fail(self.communicator.as_ref(), &e));
        Tensor::from_vec(sum, x.shape())
            .to(device)
            .unwrap_or_else(|e| panic!("all_reduce_sum: copying the sum to {device}: {e}"))
    }
}

impl Function for AllReduceSum {
    fn name(&self) -> &'static str {
        "all_reduce_sum"
    }
    fn forward(&self, _ctx: &mut Context, inputs: &[Tensor]) -> Tensor {
        self.sum(&inputs[0])
    }
    fn backward(&self, _ctx: &Context, grad_output: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(self.sum(grad_output))]
    }
}

/// A collective failed inside a forward or backward pass, where no error can be returned:
/// the other ranks would wait forever, so every rank is ended, with the reason.
pub fn fail(communicator: &dyn Communicator, error: &CommError) -> ! {
    eprintln!("strata: {error}");
    communicator.abort(1)
}
