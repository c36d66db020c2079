//! Data-parallel runs of the command line: joining the ranks `mpirun` started, and refusing to
//! train when they were not started alike.

use std::sync::Arc;
use std::time::Duration;
use strata_nn::distributed::{Communicator, SingleProcess};

/// The ranks this process belongs to: MPI's when `mpirun` (or `srun`) started more than one
/// process, else a single process. `timeout` bounds every collective.
pub fn join(timeout: Duration) -> Result<Arc<dyn Communicator>, String> {
    #[cfg(feature = "mpi")]
    {
        use strata_nn::distributed::mpi::{launched_size, MpiCommunicator};
        if launched_size().is_some_and(|n| n > 1) {
            let comm = MpiCommunicator::init(timeout).map_err(|e| e.to_string())?;
            return Ok(Arc::new(comm));
        }
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = timeout;
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
        if launched.is_some_and(|n| n > 1) {
            return Err(
                "started by mpirun, but this strata was built without the `mpi` feature \
                        (build it with `--features mpi`)"
                    .into(),
            );
        }
    }
    Ok(Arc::new(SingleProcess))
}

/// The communicator gradients are summed with: NCCL when the ranks train on GPUs (and strata
/// has its `nccl` feature), so they never leave GPU memory; `host` (MPI) otherwise.
pub fn on_device(
    host: &Arc<dyn Communicator>,
    device: strata_nn::Device,
) -> Result<Arc<dyn Communicator>, String> {
    #[cfg(feature = "nccl")]
    if host.size() > 1 && matches!(device, strata_nn::Device::Cuda(_)) {
        // NCCL's join waits for every rank without a deadline: agree first that all can.
        let ready = strata_kernels::cuda::nccl::availability().map(|_| ());
        let mut failing = [f64::from(u8::from(ready.is_err()))];
        host.all_reduce_sum_f64(&mut failing)
            .map_err(|e| e.to_string())?;
        if let Err(why) = ready {
            return Err(format!("NCCL is needed to train on several GPUs: {why}"));
        }
        if failing[0] > 0.0 {
            return Err(format!(
                "{} rank(s) cannot load NCCL (each says why)",
                failing[0]
            ));
        }
        let nccl = strata_nn::distributed::nccl::NcclCommunicator::join(host.clone(), device)
            .map_err(|e| e.to_string())?;
        return Ok(Arc::new(nccl));
    }
    let _ = device;
    Ok(host.clone())
}

/// Checks that every rank was started with the same `settings` (name and value pairs: model,
/// recipe, seed, strata's version, ...). Rank 0's are sent to all; a rank whose settings
/// differ names the differences, and every rank gets an error.
pub fn check_same_settings(
    comm: &dyn Communicator,
    settings: &[(&str, String)],
) -> Result<(), String> {
    if comm.size() == 1 {
        return Ok(());
    }
    let encode = |s: &[(&str, String)]| {
        s.iter()
            .map(|(k, v)| format!("{k}\t{v}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mine = encode(settings);
    let mut theirs = mine.clone().into_bytes();
    comm.broadcast(&mut theirs, 0).map_err(|e| e.to_string())?;
    let theirs = String::from_utf8_lossy(&theirs).to_string();
    let rank0: Vec<(&str, &str)> = theirs.lines().filter_map(|l| l.split_once('\t')).collect();
    let differences: Vec<String> = settings
        .iter()
        .filter_map(|(k, v)| {
            let at_0 = rank0.iter().find(|(k0, _)| k0 == k).map(|(_, v0)| *v0);
            (at_0 != Some(v.as_str()))
                .then(|| format!("{k} is {v} here but {} on rank 0", at_0.unwrap_or("absent")))
        })
        .collect();
    let mut differing = [f64::from(u8::from(!differences.is_empty()))];
    comm.all_reduce_sum_f64(&mut differing)
        .map_err(|e| e.to_string())?;
    if !differences.is_empty() {
        // Only rank 0's error is printed: each differing rank names its differences itself.
        eprintln!(
            "strata: rank {} was not started like rank 0: {}",
            comm.rank(),
            differences.join(", ")
        );
    }
    if differing[0] > 0.0 {
        return Err(format!(
            "{} rank(s) were not started like rank 0 (each named its differences above); every \
             rank must run the same command with the same strata",
            differing[0]
        ));
    }
    Ok(())
}
