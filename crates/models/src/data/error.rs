//! The one error type of the dataset layer. Every variant names the file (or the command) it is
//! about, so a message alone tells the user where to look.

use std::path::PathBuf;

/// What went wrong reading, checking or fetching a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read, write or rename.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but its content is not what the format promises.
    #[error("{}: {problem}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. a bad magic number or a size that does not fit the header.
        problem: String,
    },
    /// A file or folder that is needed is not there; `what_to_do` says how to get it.
    #[error("{} is missing. {what_to_do}", .path.display())]
    Missing {
        /// The file or folder that was looked for.
        path: PathBuf,
        /// Instructions for the user, e.g. the command that downloads the dataset.
        what_to_do: String,
    },
    /// Downloading a dataset failed: `what` was being done, `detail` is what the tool said,
    /// `hint` is how to do it by hand.
    #[error("{what} failed: {detail}\n{hint}")]
    Fetch {
        /// The step that failed, e.g. the download command.
        what: String,
        /// Why: the tool is missing, or its exit status and the end of its output.
        detail: String,
        /// How to get the files by hand.
        hint: String,
    },
    /// A file's md5 (of its decompressed content) is not the published one.
    #[error("{}: md5 is {actual}, expected {expected} (the file is damaged or not the published one)", .path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The published md5, as lowercase hex.
        expected: String,
        /// The md5 the file has, as lowercase hex.
        actual: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, problem: impl Into<String>) -> DataError {
        DataError::Malformed {
            path: path.into(),
            problem: problem.into(),
        }
    }
}
