//! A training run killed with SIGKILL in the middle of an epoch, then continued with `--resume`,
//! ends with the same weights and results, bit for bit, as a run that was never interrupted;
//! and whenever the checkpoint exists on disk, it loads.
//!
//! Needs MNIST in `datasets/mnist/` (`make data`): where it is absent the test skips with the
//! reason (`test_skip`), except under CI=true, where the data must be there.
#![cfg(unix)]

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use strata::kernels::test_skip::{skip, Reason};
use strata_models::train::EpochReport;
use strata_nn::checkpoint::{load_tensors, StoredTensors};

const EPOCHS: usize = 6;

fn datasets() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    if dir.join("mnist/train-images-idx3-ubyte").is_file() {
        return Some(dir);
    }
    skip(Reason::DataAbsent(format!(
        "{}/mnist is absent (run `make data`)",
        dir.display()
    )));
    None
}

/// `strata train lenet5` on the first 2,000 training and 500 test images: about half a second
/// per epoch, long enough to be killed in the middle of one.
fn train(data: &Path, out: &Path, resume: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.args([
        "train", "lenet5", "--device", "cpu", "--quiet", "--seed", "5",
    ]);
    command.args(["--epochs", &EPOCHS.to_string()]);
    command.args(["--limit-train", "2000", "--limit-test", "500"]);
    command.arg("--data").arg(data).arg("--out").arg(out);
    if resume {
        command.arg("--resume");
    }
    command
}

fn succeed(mut command: Command) -> Output {
    let output = command.output().expect("the strata binary runs");
    assert!(
        output.status.success(),
        "strata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The epoch a training checkpoint says it holds.
fn epoch_of(stored: &StoredTensors) -> usize {
    stored.metadata["strata.epoch"].parse().unwrap()
}

/// Loads the checkpoint if it exists; a file that exists but does not load fails the test.
fn checkpoint_now(path: &Path) -> Option<StoredTensors> {
    if !path.exists() {
        return None;
    }
    match load_tensors(path) {
        Ok(stored) => Some(stored),
        Err(e) => panic!("the checkpoint on disk does not load: {e}"),
    }
}

/// Tensors and metadata of two checkpoint files, compared bit for bit (the header's key order
/// may differ between files, so the bytes themselves are not compared).
fn assert_same_checkpoint(a: &Path, b: &Path) {
    let (a, b) = (load_tensors(a).unwrap(), load_tensors(b).unwrap());
    assert_eq!(a.metadata, b.metadata, "checkpoint metadata differ");
    let bits = |s: &StoredTensors| -> HashMap<String, (Vec<usize>, Vec<u32>)> {
        s.tensors
            .iter()
            .map(|(n, (_, shape, v))| {
                (
                    n.clone(),
                    (shape.clone(), v.iter().map(|x| x.to_bits()).collect()),
                )
            })
            .collect()
    };
    let (ta, tb) = (bits(&a), bits(&b));
    assert_eq!(
        ta.keys().collect::<std::collections::BTreeSet<_>>(),
        tb.keys().collect(),
        "the checkpoints hold different tensors"
    );
    for (name, value) in &ta {
        assert!(
            *value == tb[name],
            "tensor '{name}' differs between {} and {}",
            a.path.display(),
            b.path.display()
        );
    }
}

/// The epochs of a results.json without their timings (the only figures that may differ).
fn epochs_of(results: &Path) -> Vec<[u32; 6]> {
    let text = std::fs::read_to_string(results).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let epochs: Vec<EpochReport> = serde_json::from_value(json["epochs"].clone()).unwrap();
    epochs
        .iter()
        .map(|r| {
            [
                r.epoch as u32,
                r.lr.to_bits(),
                r.train_loss.to_bits(),
                r.train_accuracy.to_bits(),
                r.test_loss.to_bits(),
                r.test_accuracy.to_bits(),
            ]
        })
        .collect()
}

#[test]
fn a_run_killed_mid_epoch_and_resumed_equals_an_uninterrupted_one() {
    let Some(data) = datasets() else { return };
    let work = tempfile::tempdir().unwrap();
    let (straight, killed) = (work.path().join("straight"), work.path().join("killed"));

    succeed(train(&data, &straight, false));

    // The run to kill: watch its checkpoint, loading it whenever it is there. Once epoch 1 and
    // then epoch 2 have been saved, the time between them is one epoch; half of that after
    // epoch 2 is the middle of epoch 3.
    let last = killed.join("last.safetensors");
    let mut child = train(&data, &killed, false)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the strata binary starts");
    let mut saved_at: HashMap<usize, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let kill_at = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training ended ({status}) before it could be interrupted: make it longer");
        }
        assert!(Instant::now() < deadline, "no checkpoint after two minutes");
        if let Some(stored) = checkpoint_now(&last) {
            saved_at
                .entry(epoch_of(&stored))
                .or_insert_with(Instant::now);
        }
        if let (Some(&one), Some(&two)) = (saved_at.get(&1), saved_at.get(&2)) {
            break two + (two - one) / 2;
        }
        std::thread::sleep(Duration::from_millis(3));
    };
    while Instant::now() < kill_at {
        checkpoint_now(&last);
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "training ended before it could be interrupted"
    );
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");

    let interrupted = checkpoint_now(&last).expect("the checkpoint survives SIGKILL");
    let done = epoch_of(&interrupted);
    assert!(
        (2..EPOCHS).contains(&done),
        "killed after epoch {done} of {EPOCHS}"
    );
    println!("killed in epoch {} of {EPOCHS}", done + 1);

    let output = succeed(train(&data, &killed, true));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&format!("resuming lenet5 after epoch {done}")),
        "{text}"
    );

    // A save cut short by the kill leaves a temporary file; the resumed run clears it away.
    let temporaries: Vec<String> = std::fs::read_dir(&killed)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(temporaries.is_empty(), "left behind: {temporaries:?}");

    assert_same_checkpoint(
        &straight.join("last.safetensors"),
        &killed.join("last.safetensors"),
    );
    assert_same_checkpoint(
        &straight.join("best.safetensors"),
        &killed.join("best.safetensors"),
    );
    let epochs = epochs_of(&straight.join("results.json"));
    assert_eq!(epochs.len(), EPOCHS);
    assert_eq!(epochs, epochs_of(&killed.join("results.json")));
}
