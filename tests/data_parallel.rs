//! Data-parallel training under `mpirun` with 1, 2 and 3 ranks on loopback: N ranks train as
//! one process does, up to the order of floating-point sums; the same N gives the same bits
//! every time; a rank that dies or hangs ends the job with a message, and `--resume` continues
//! to the weights of a run that was never interrupted; ranks started differently are refused.
//!
//! Needs MNIST in `datasets/mnist/` and Open MPI's `mpirun` (`make test` installs both; where
//! either is absent the tests skip with the reason, except under CI=true).
#![cfg(all(unix, feature = "mpi"))]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use strata::kernels::test_skip::{skip, Reason};
use strata_nn::checkpoint::load_tensors;

/// Optimizer steps each comparison trains.
const STEPS: usize = 50;

/// The datasets folder and `mpirun`, or the reason the test cannot run.
fn setup() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    if !dir.join("mnist/train-images-idx3-ubyte").is_file() {
        skip(Reason::DataAbsent(format!(
            "{}/mnist is absent (run `make data`)",
            dir.display()
        )));
        return None;
    }
    if Command::new("mpirun").arg("--version").output().is_err() {
        skip(Reason::ToolsAbsent(
            "mpirun is absent (run scripts/mpi.sh, which installs Open MPI)".into(),
        ));
        return None;
    }
    Some(dir)
}

/// `mpirun -n RANKS strata train MODEL ARGS` on loopback: more ranks than cores allowed, no
/// binding (so each rank keeps rayon's threads), allowed as root.
fn mpirun(ranks: usize, data: &Path, out: &Path, model: &str, args: &[&str]) -> Command {
    let mut command = Command::new("mpirun");
    command
        .args([
            "--oversubscribe",
            "--bind-to",
            "none",
            "-n",
            &ranks.to_string(),
        ])
        .arg(env!("CARGO_BIN_EXE_strata"))
        .args(["train", model, "--device", "cpu", "--quiet"])
        .args(["--limit-test", "200"])
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(Stdio::null());
    command
}

fn succeed(mut command: Command) -> Output {
    let output = command.output().expect("mpirun starts");
    assert!(
        output.status.success(),
        "the data-parallel run failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

type Weights = HashMap<String, Vec<f32>>;

/// Every tensor of a checkpoint (weights, buffers, optimizer state), by name.
fn weights(path: &Path) -> Weights {
    load_tensors(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .tensors
        .into_iter()
        .map(|(name, (_, _, values))| (name, values))
        .collect()
}

/// The largest absolute difference between two checkpoints, and the tensor it is in.
fn largest_difference(a: &Weights, b: &Weights) -> (f32, String) {
    assert_eq!(a.len(), b.len(), "the checkpoints hold different tensors");
    let mut worst = (0f32, String::new());
    for (name, x) in a {
        let y = &b[name];
        for (p, q) in x.iter().zip(y) {
            let d = (p - q).abs();
            assert!(d.is_finite(), "{name}: {p} against {q}");
            if d > worst.0 {
                worst = (d, name.clone());
            }
        }
    }
    worst
}

/// Trains `model` for one epoch of its first `examples` training images with each number of
/// `ranks` and returns each checkpoint's tensors.
fn train_with_ranks(
    data: &Path,
    model: &str,
    examples: usize,
    args: &[&str],
    ranks: &[usize],
) -> Vec<Weights> {
    let limit = examples.to_string();
    let mut args = args.to_vec();
    args.extend(["--limit-train", &limit, "--epochs", "1"]);
    ranks
        .iter()
        .map(|&n| {
            let out = tempfile::tempdir().unwrap();
            succeed(mpirun(n, data, out.path(), model, &args));
            weights(&out.path().join("last.safetensors"))
        })
        .collect()
}

/// 1 rank against 2 and 3 for one network trained on `examples` images: every tensor within
/// `tolerance`.
fn assert_ranks_agree(data: &Path, model: &str, examples: usize, args: &[&str], tolerance: f32) {
    let runs = train_with_ranks(data, model, examples, args, &[1, 2, 3]);
    for (n, run) in [2, 3].iter().zip(&runs[1..]) {
        let (d, name) = largest_difference(&runs[0], run);
        println!("{model} {args:?}, {examples} images: 1 rank against {n}: largest difference {d:.3e} ({name})");
        assert!(
            d <= tolerance,
            "{model}: {n} ranks differ from one process by {d} in {name} (tolerance {tolerance})"
        );
    }
}

/// With plain SGD (where rounding differences do not grow), 2 and 3 ranks give one process's
/// weights to within a few units of f32 rounding: 100 examples over 3 ranks are 33 + 33 + 34,
/// and the shares must be weighted for the mean to come out right.
#[test]
fn n_ranks_train_lenet5_mnist_mlp_and_cnn3l_as_one_process_does() {
    let Some(data) = setup() else { return };
    let sgd = ["--optimizer", "sgd", "--lr", "0.01"];
    assert_ranks_agree(&data, "lenet5", 100 * STEPS, &sgd, 1e-5);
    // 49 batches of 64, then one of 7: 3 and 4, or 2, 2 and 3 examples per rank.
    assert_ranks_agree(&data, "mnist_mlp", 64 * (STEPS - 1) + 7, &[], 1e-5);
    assert_ranks_agree(&data, "cnn3l", 100 * STEPS, &sgd, 1e-5);
}

/// journey_final with its recipe (dropout, random rotation, BatchNorm) and
/// `--sync-batch-norm`: two steps agree with one process to rounding; without the flag each
/// rank normalises by its own share's statistics, which visibly differs. Longer runs are
/// compared with the spread of rounding below: synchronised BatchNorm sums its statistics in
/// another order than the fused single-process kernel, and at this recipe's learning rate a
/// difference in the last bit grows (a max-pool choice between two nearly equal values flips,
/// and the steps after differ in earnest).
#[test]
fn journey_final_with_synchronised_batch_norm_matches_one_process() {
    let Some(data) = setup() else { return };
    let steps = 2;
    let synced = train_with_ranks(
        &data,
        "journey_final",
        128 * steps,
        &["--sync-batch-norm"],
        &[1, 2, 3],
    );
    for (n, run) in [2, 3].iter().zip(&synced[1..]) {
        let (d, name) = largest_difference(&synced[0], run);
        println!(
            "journey_final --sync-batch-norm, {steps} steps: 1 rank against {n}: {d:.3e} ({name})"
        );
        assert!(
            d <= 1e-5,
            "{n} ranks with synchronised BatchNorm differ by {d} in {name}"
        );
    }
    let per_rank = train_with_ranks(&data, "journey_final", 128 * steps, &[], &[2]);
    let (d, name) = largest_difference(&synced[0], &per_rank[0]);
    println!(
        "journey_final, per-rank BatchNorm, {steps} steps: 1 rank against 2: {d:.3e} ({name})"
    );
    assert!(
        d > 1e-3,
        "per-rank BatchNorm statistics should differ from the global batch's (largest \
         difference {d})"
    );
}

/// Over 50 steps of journey_final's recipe a last-bit difference grows (see above), so 2 and 3
/// ranks with synchronised BatchNorm are measured against the spread rounding alone makes: one
/// process whose learning rate differs by about one part in a million. They must stay within a
/// few times that spread, while per-rank statistics land far outside it.
#[test]
fn journey_final_over_50_steps_stays_within_the_spread_of_rounding() {
    let Some(data) = setup() else { return };
    let train = |ranks: usize, args: &[&str]| {
        train_with_ranks(&data, "journey_final", 128 * STEPS, args, &[ranks]).remove(0)
    };
    let one = train(1, &[]);
    let nudged = train(1, &["--lr", "0.05000005"]);
    let (spread, at) = largest_difference(&one, &nudged);
    println!("journey_final, {STEPS} steps: lr 0.05 against 0.05000005 in one process: {spread:.3e} ({at})");
    for n in [2, 3] {
        let synced = train(n, &["--sync-batch-norm"]);
        let (d, name) = largest_difference(&one, &synced);
        println!(
            "journey_final --sync-batch-norm, {STEPS} steps: 1 rank against {n}: {d:.3e} ({name})"
        );
        assert!(
            d <= 4.0 * spread,
            "{n} synchronised ranks differ by {d} in {name}, more than 4x rounding's {spread}"
        );
    }
    let per_rank = train(2, &[]);
    let (d, name) = largest_difference(&one, &per_rank);
    println!(
        "journey_final, per-rank BatchNorm, {STEPS} steps: 1 rank against 2: {d:.3e} ({name})"
    );
    assert!(
        d > 10.0 * spread,
        "per-rank statistics differ by only {d} (rounding: {spread})"
    );
}

/// Two runs with the same number of ranks write the same checkpoint, bit for bit.
#[test]
fn the_same_number_of_ranks_gives_the_same_bits() {
    let Some(data) = setup() else { return };
    let args = ["--sync-batch-norm"];
    let runs = train_with_ranks(&data, "journey_final", 128 * 10, &args, &[3, 3]);
    let (d, name) = largest_difference(&runs[0], &runs[1]);
    assert_eq!(d, 0.0, "two 3-rank runs differ by {d} in {name}");
}

/// The pid of the process of `rank` among the strata processes started by mpirun that write to
/// `out` (other tests run jobs of their own at the same time).
fn pid_of_rank(rank: usize, out: &Path) -> Option<u32> {
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.contains("strata") || !cmdline.contains(&*out.to_string_lossy()) {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits for the job to end, at most `limit`; returns its output and how long it took.
fn wait_for(child: Child, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = result
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the job did not end within {limit:?}"))
        .unwrap();
    (output, start.elapsed())
}

/// lenet5 on 10,000 images (1.5 s an epoch with 2 ranks) for 4 epochs: long enough to be
/// killed in the middle of one.
fn four_epochs(data: &Path, out: &Path, ranks: usize, resume: bool) -> Command {
    let mut args = vec!["--epochs", "4", "--limit-train", "10000", "--seed", "3"];
    if resume {
        args.push("--resume");
    }
    let mut command = mpirun(ranks, data, out, "lenet5", &args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// The epoch `last.safetensors` holds, once it exists.
fn checkpoint_epoch(out: &Path) -> Option<usize> {
    let stored = load_tensors(&out.join("last.safetensors")).ok()?;
    stored.metadata.get("strata.epoch")?.parse().ok()
}

#[test]
fn a_killed_rank_ends_the_job_and_resume_reaches_the_uninterrupted_weights() {
    let Some(data) = setup() else { return };
    let whole = tempfile::tempdir().unwrap();
    succeed(four_epochs(&data, whole.path(), 2, false));

    let broken = tempfile::tempdir().unwrap();
    let child = four_epochs(&data, broken.path(), 2, false).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint_epoch(broken.path()).unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Into the second epoch, then rank 1 dies without a word.
    std::thread::sleep(Duration::from_millis(500));
    let pid = pid_of_rank(1, broken.path()).expect("rank 1 is running");
    signal(pid, "KILL");
    let (output, took) = wait_for(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("killed rank 1: the job ended after {took:?}");
    assert!(!output.status.success(), "the job must fail");
    assert!(
        took < Duration::from_secs(10),
        "the job took {took:?} to end"
    );
    assert!(
        stderr.contains("rank 1") && stderr.contains("signal 9"),
        "the error names the dead rank: {stderr}"
    );
    let kept = checkpoint_epoch(broken.path()).expect("the last checkpoint is intact");
    assert!((1..4).contains(&kept), "checkpoint of epoch {kept}");

    let resumed = succeed(four_epochs(&data, broken.path(), 2, true));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains(&format!("after epoch {kept}")));
    let (a, b) = (
        weights(&whole.path().join("last.safetensors")),
        weights(&broken.path().join("last.safetensors")),
    );
    let (d, name) = largest_difference(&a, &b);
    assert_eq!(d, 0.0, "the resumed run differs by {d} in {name}");
}

/// A checkpoint written by 2 ranks resumes with 3 (rank 0 reads it and sends it to the others).
#[test]
fn a_checkpoint_resumes_with_another_number_of_ranks() {
    let Some(data) = setup() else { return };
    let out = tempfile::tempdir().unwrap();
    let args = ["--limit-train", "1000", "--epochs", "1"];
    succeed(mpirun(2, &data, out.path(), "lenet5", &args));
    let args = ["--limit-train", "1000", "--epochs", "2", "--resume"];
    let output = succeed(mpirun(3, &data, out.path(), "lenet5", &args));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("resuming lenet5 after epoch 1"), "{stdout}");
    assert_eq!(checkpoint_epoch(out.path()), Some(2));
}

#[test]
fn a_hung_rank_ends_the_job_after_the_timeout() {
    let Some(data) = setup() else { return };
    let out = tempfile::tempdir().unwrap();
    let args = [
        "--epochs",
        "4",
        "--limit-train",
        "10000",
        "--comm-timeout",
        "4",
    ];
    let mut command = mpirun(2, &data, out.path(), "lenet5", &args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        if let Some(pid) = pid_of_rank(1, out.path()) {
            break pid;
        }
        assert!(Instant::now() < deadline, "rank 1 never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    while checkpoint_epoch(out.path()).is_none() {
        assert!(Instant::now() < deadline, "no checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, "STOP");
    let (output, took) = wait_for(child, Duration::from_secs(30));
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("stopped rank 1: the job ended after {took:?}");
    assert!(!output.status.success());
    assert!(
        took < Duration::from_secs(10),
        "the job took {took:?} to end"
    );
    assert!(
        stderr.contains("rank 0: waited 4 s in") && stderr.contains("died or hung"),
        "{stderr}"
    );
}

#[test]
fn ranks_started_with_different_settings_are_refused() {
    let Some(data) = setup() else { return };
    let out = tempfile::tempdir().unwrap();
    let strata = env!("CARGO_BIN_EXE_strata");
    let rank = |seed: &str| {
        vec![
            "-n".to_string(),
            "1".into(),
            strata.into(),
            "train".into(),
            "lenet5".into(),
            "--device".into(),
            "cpu".into(),
            "--limit-train".into(),
            "500".into(),
            "--seed".into(),
            seed.into(),
            "--data".into(),
            data.display().to_string(),
            "--out".into(),
            out.path().display().to_string(),
        ]
    };
    let mut args = vec!["--oversubscribe".to_string()];
    args.extend(rank("0"));
    args.push(":".into());
    args.extend(rank("1"));
    let output = Command::new("mpirun")
        .args(&args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("rank 1 was not started like rank 0: seed is 1 here but 0 on rank 0"),
        "{stderr}"
    );
    assert!(!out.path().join("last.safetensors").exists());
}

/// A loss that diverges on every rank at once stops them all at the same step: rank 0 says so
/// once, no rank is aborted, and the last good checkpoint stays as it was.
#[test]
fn a_diverging_loss_stops_every_rank_with_one_message() {
    let Some(data) = setup() else { return };
    let out = tempfile::tempdir().unwrap();
    succeed(mpirun(2, &data, out.path(), "dnn3", &["--epochs", "2"]));
    let good = std::fs::read(out.path().join("last.safetensors")).unwrap();
    let args = ["--epochs", "50", "--lr", "1e30", "--resume"];
    let output = mpirun(2, &data, out.path(), "dnn3", &args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.matches("loss became").count(), 1, "{stderr}");
    assert!(stderr.contains("last good checkpoint"), "{stderr}");
    assert!(!stderr.contains("MPI_ABORT"), "{stderr}");
    let after = std::fs::read(out.path().join("last.safetensors")).unwrap();
    assert!(after == good, "the last good checkpoint was overwritten");
}
