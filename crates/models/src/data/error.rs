//! The one error type of the dataset layer. Every variant names the file (or the command) it is
//! about, so a message alone tells the user where to look.

use std::path::PathBuf;

/// What went wrong reading, checking or fetching a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read, write or rename.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but its content is not what the format promises.
    #[error("{}: {problem}", .path.display())]
    Malformed { path: PathBuf, problem: String },
    /// A file or folder that is needed is not there; `what_to_do` says how to get it.
    #[error("{} is missing. {what_to_do}", .path.display())]
    Missing { path: PathBuf, what_to_do: String },
    /// Downloading a dataset failed: `what` was being done, `detail` is what the tool said,
    /// `hint` is how to do it by hand.
    #[error("{what} failed: {detail}\n{hint}")]
    Fetch {
        what: String,
        detail: String,
        hint: String,
    },
    /// A file's md5 (of its decompressed content) is not the published one.
    #[error("{}: md5 is {actual}, expected {expected} (the file is damaged or not the published one)", .path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
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
