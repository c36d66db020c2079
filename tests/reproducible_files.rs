//! Two identical runs write identical files, byte for byte, at any thread count: a user who
//! checks a run's reproducibility with a checksum is told it reproduces.
//!
//! Rules out: metadata written in a hash map's order (a new random order in every process), and
//! any kernel whose result depends on the number of worker threads.

use std::path::Path;
use std::process::Command;

/// `strata train dnn3 --seed 7` for three epochs into `out`, on `threads` worker threads.
fn train_dnn3(out: &Path, threads: usize) {
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RAYON_NUM_THREADS", threads.to_string())
        .args(["train", "dnn3", "--device", "cpu", "--quiet", "--seed", "7"])
        .args(["--epochs", "3", "--out"])
        .arg(out)
        .output()
        .expect("the strata binary runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// FNV-1a, enough to name a file's contents in a failure message.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn identical_runs_at_one_and_two_threads_write_identical_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    train_dnn3(&one, 1);
    train_dnn3(&two, 2);
    for file in ["last.safetensors", "best.safetensors"] {
        let a = std::fs::read(one.join(file)).unwrap();
        let b = std::fs::read(two.join(file)).unwrap();
        assert!(
            a == b,
            "{file}: {} bytes, hash {:016x} on one thread; {} bytes, hash {:016x} on two",
            a.len(),
            fnv1a(&a),
            b.len(),
            fnv1a(&b)
        );
    }
}
