//! Checking MNIST and Fashion-MNIST files against the md5s of their published (decompressed)
//! content, reading them out of a downloaded archive, and installing them: every file is
//! checked before it is moved into place, and moved atomically (written under a temporary name
//! in the same folder, then renamed), so an interrupted install never leaves a half-written
//! file where a good one is expected. Downloading is the command line's job (`strata data`);
//! this module touches only files that are already there.
//!
//! A folder's verification is remembered in a `.verified` stamp (name, size, mtime and md5 of
//! each file), so a second check costs a few `stat`s instead of hashing 55 MB.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use md5::{Digest, Md5};
use rayon::prelude::*;

use super::idx::read_maybe_gzip;
use super::DataError;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderState {
    /// Every file is there with its md5 (or the stamp vouches for it).
    Verified,
    /// Names of files that are absent or whose md5 is wrong (with a reason each).
    Lacking(Vec<String>),
}

/// Checks every file of `table` in `dir` (plain or `.gz`), in parallel, unless the stamp
/// vouches for them; a good folder gets a stamp.
pub fn check_folder(dir: &Path, table: &[(&str, &str)]) -> FolderState {
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

/// The largest file of the MNIST and Fashion-MNIST packages, decompressed: the 60,000 training
/// images, 28x28 bytes each, behind a 16-byte header.
pub const MNIST_LARGEST_FILE_BYTES: u64 = 16 + 60_000 * 28 * 28;

/// Reads from a tar stream the entries whose path, stripped of a leading `./`, is
/// `folder/<name>` for a name in `wanted` (matching `<name>` or `<name>.gz`); returns them
/// decompressed, keyed by name. `archive_path` names the archive in errors.
///
/// The archive is not trusted before its members' checksums are checked: a member that claims,
/// or decompresses to, more than `max_member_bytes` (the package's largest known file) is an
/// error, found before anything of that size is allocated.
pub fn read_tar_members(
    archive_source: impl Read,
    archive_path: &Path,
    folder: &str,
    wanted: &[&str],
    max_member_bytes: u64,
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
        let too_large = |what: &str| {
            DataError::malformed(
                archive_path,
                format!(
                    "{path} {what} more than {max_member_bytes} bytes, the largest file the \
                     package holds"
                ),
            )
        };
        if entry.size() > max_member_bytes {
            return Err(too_large(&format!("claims {} bytes,", entry.size())));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(bad)?;
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .take(max_member_bytes + 1)
                .read_to_end(&mut plain)
                .map_err(|e| {
                    DataError::malformed(
                        archive_path,
                        format!("{path} is not a valid gzip stream: {e}"),
                    )
                })?;
            if plain.len() as u64 > max_member_bytes {
                return Err(too_large("decompresses to"));
            }
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

/// [`read_tar_members`] of a gzip'd tar file.
pub fn read_tgz_members(
    path: &Path,
    label: &Path,
    folder: &str,
    wanted: &[&str],
    max_member_bytes: u64,
) -> Result<HashMap<String, Vec<u8>>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    read_tar_members(
        flate2::read::GzDecoder::new(std::io::BufReader::new(file)),
        label,
        folder,
        wanted,
        max_member_bytes,
    )
}

/// Checks `files` (by name) against `table`, then writes them into `target` atomically and
/// stamps the folder. `source` names where they came from in a checksum error.
pub fn install_verified(
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
