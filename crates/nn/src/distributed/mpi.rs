//! [`Communicator`] on MPI (rsmpi over Open MPI or any MPI library): one process per rank, on
//! one machine or many, started by `mpirun`.
//!
//! Every MPI call runs on one thread of its own, which owns the MPI universe; the training
//! thread hands it requests and waits for the answers with a deadline. So gradient buckets are
//! summed while backward goes on, and a rank that dies or hangs makes the others stop with an
//! error after the timeout instead of waiting in MPI forever.

use super::{CommError, Communicator, Pending};
use mpi::collective::SystemOperation;
use mpi::environment::Threading;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

enum Request {
    SumF32(Vec<f32>, Sender<Vec<f32>>),
    SumF64(Vec<f64>, Sender<Vec<f64>>),
    Broadcast(Vec<u8>, usize, Sender<Vec<u8>>),
    Barrier(Sender<()>),
    Abort(i32),
}

/// The ranks started by `mpirun`.
pub struct MpiCommunicator {
    rank: usize,
    size: usize,
    library: String,
    timeout: Duration,
    /// Whether MPI allows calls from any thread (`MPI_THREAD_MULTIPLE`): then `abort` can end
    /// the job even while the MPI thread is stuck in a collective.
    any_thread: bool,
    requests: Mutex<Option<Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Requests sent whose answer has not been taken: a collective other ranks never joined
    /// keeps the MPI thread busy for ever, and dropping must not wait for it.
    in_flight: Arc<AtomicUsize>,
}

/// The world size `mpirun` (Open MPI, MPICH, Intel MPI or Slurm's PMI) announces to the
/// processes it starts, without initialising MPI; `None` when not started by a launcher.
pub fn launched_size() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

impl MpiCommunicator {
    /// Initialises MPI on a thread of its own; collectives wait at most `timeout`.
    pub fn init(timeout: Duration) -> Result<MpiCommunicator, CommError> {
        let (requests, incoming) = channel::<Request>();
        let (started, start) = channel::<Result<(usize, usize, String, bool), String>>();
        let thread = std::thread::Builder::new()
            .name("strata-mpi".into())
            .spawn(move || serve(incoming, started))
            .map_err(|e| library_error(0, "MPI_Init", e.to_string()))?;
        let (rank, size, library, any_thread) = start
            .recv()
            .map_err(|_| library_error(0, "MPI_Init", "the MPI thread ended".into()))?
            .map_err(|e| library_error(0, "MPI_Init", e))?;
        Ok(MpiCommunicator {
            rank,
            size,
            library,
            timeout,
            any_thread,
            requests: Mutex::new(Some(requests)),
            thread: Mutex::new(Some(thread)),
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn send(&self, op: &'static str, request: Request) -> Result<(), CommError> {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests
            .as_ref()
            .and_then(|r| r.send(request).ok())
            .ok_or_else(|| library_error(self.rank, op, "the MPI thread has ended".into()))?;
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn receive<T>(&self, op: &'static str, answer: Receiver<T>) -> Result<T, CommError> {
        let answer = wait(self.rank, op, self.timeout, answer)?;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(answer)
    }
}

fn library_error(rank: usize, op: &'static str, message: String) -> CommError {
    CommError::Library { rank, op, message }
}

fn wait<T>(
    rank: usize,
    op: &'static str,
    timeout: Duration,
    answer: Receiver<T>,
) -> Result<T, CommError> {
    answer.recv_timeout(timeout).map_err(|e| match e {
        RecvTimeoutError::Timeout => CommError::Timeout {
            rank,
            op,
            seconds: timeout.as_secs_f64(),
        },
        RecvTimeoutError::Disconnected => {
            library_error(rank, op, "the MPI thread has ended".into())
        }
    })
}

/// The MPI thread: initialise, report, then serve requests in order until the communicator
/// is dropped (then MPI_Finalize, when the universe drops).
fn serve(
    incoming: Receiver<Request>,
    started: Sender<Result<(usize, usize, String, bool), String>>,
) {
    let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Multiple) else {
        let _ = started.send(Err("MPI was already initialised in this process".into()));
        return;
    };
    let world = universe.world();
    let library = mpi::environment::library_version()
        .map(|v| v.lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|_| "MPI".into());
    let library = library.split(',').next().unwrap_or(&library).to_string();
    let _ = started.send(Ok((
        world.rank() as usize,
        world.size() as usize,
        library,
        threading == Threading::Multiple,
    )));
    for request in incoming {
        match request {
            Request::SumF32(values, answer) => {
                let mut sum = vec![0f32; values.len()];
                world.all_reduce_into(&values[..], &mut sum[..], SystemOperation::sum());
                let _ = answer.send(sum);
            }
            Request::SumF64(values, answer) => {
                let mut sum = vec![0f64; values.len()];
                world.all_reduce_into(&values[..], &mut sum[..], SystemOperation::sum());
                let _ = answer.send(sum);
            }
            Request::Broadcast(mut bytes, root, answer) => {
                let root = world.process_at_rank(root as i32);
                let mut len = bytes.len() as u64;
                root.broadcast_into(&mut len);
                bytes.resize(len as usize, 0);
                root.broadcast_into(&mut bytes[..]);
                let _ = answer.send(bytes);
            }
            Request::Barrier(answer) => {
                world.barrier();
                let _ = answer.send(());
            }
            Request::Abort(code) => world.abort(code),
        }
    }
    drop(universe);
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn describe(&self) -> String {
        format!("MPI ({})", self.library)
    }

    fn start_all_reduce_sum(&self, values: Vec<f32>) -> Pending {
        let (answer, result) = channel();
        if let Err(e) = self.send("all-reduce", Request::SumF32(values, answer)) {
            return Pending::later(move || Err(e));
        }
        let (rank, timeout, in_flight) = (self.rank, self.timeout, self.in_flight.clone());
        Pending::later(move || {
            let sum = wait(rank, "all-reduce", timeout, result)?;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(sum)
        })
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CommError> {
        let (answer, result) = channel();
        self.send("all-reduce", Request::SumF64(values.to_vec(), answer))?;
        values.copy_from_slice(&self.receive("all-reduce", result)?);
        Ok(())
    }

    fn broadcast(&self, bytes: &mut Vec<u8>, root: usize) -> Result<(), CommError> {
        let (answer, result) = channel();
        self.send(
            "broadcast",
            Request::Broadcast(std::mem::take(bytes), root, answer),
        )?;
        *bytes = self.receive("broadcast", result)?;
        Ok(())
    }

    fn barrier(&self) -> Result<(), CommError> {
        let (answer, result) = channel();
        self.send("barrier", Request::Barrier(answer))?;
        self.receive("barrier", result)
    }

    fn barrier_without_deadline(&self) -> Result<(), CommError> {
        let (answer, result) = channel();
        self.send("barrier", Request::Barrier(answer))?;
        result
            .recv()
            .map_err(|_| library_error(self.rank, "barrier", "the MPI thread has ended".into()))?;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        if self.any_thread {
            // MPI_Abort from this thread: mpirun ends every rank at once.
            mpi::topology::SimpleCommunicator::world().abort(code);
        }
        // Otherwise through the MPI thread, unless it is stuck in a collective: then leaving
        // without MPI_Finalize makes mpirun end the job.
        let _ = self.send("abort", Request::Abort(code));
        std::thread::sleep(Duration::from_secs(2));
        std::process::exit(code)
    }
}

impl Drop for MpiCommunicator {
    fn drop(&mut self) {
        // Closing the channel ends the MPI thread's loop; it finalises MPI as it exits. With a
        // collective still under way (after a timeout) it would never get there: then leave
        // the thread, and the process ends without MPI_Finalize, which mpirun reports.
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(thread), 0) = (thread, self.in_flight.load(Ordering::SeqCst)) {
            let _ = thread.join();
        }
    }
}
