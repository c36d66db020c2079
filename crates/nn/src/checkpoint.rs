//! Checkpoints in the safetensors format, with PyTorch's names and layouts.
//!
//! A model file holds `state_dict()`: parameters and buffers by name, f32 little-endian, except
//! BatchNorm's `num_batches_tracked`, an I64 scalar as PyTorch writes it. So
//! `safetensors.torch.save_file(model.state_dict(), path)` in PyTorch and [`save_module`] here
//! write interchangeable files.
//!
//! A training checkpoint adds the optimizer's state under `optimizer.` and the epoch and step
//! counters in the header metadata, so training resumes exactly.
//!
//! Files are written to a temporary file in the same folder, flushed to disk and renamed over
//! the target: a crash or a full disk never leaves a half-written file where a good one was.

use crate::optim::{Optimizer, OptimizerState};
use crate::{Module, ModuleExt};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use strata_tensor::Tensor;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing, syncing or renaming the file failed (missing file, permissions,
    /// full disk).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid safetensors, or is not the kind of checkpoint asked for (e.g. a
    /// model file given to [`load_training`], or one saved with another optimizer).
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The file is valid but its tensors do not fit the model; nothing was loaded.
    #[error("{}: does not match the model: {}", path.display(), problems.join("; "))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Every missing, unexpected, or wrongly shaped or typed tensor, one line each.
        problems: Vec<String>,
    },
}

const OPTIMIZER_PREFIX: &str = "optimizer.";
const KIND_KEY: &str = "strata.kind";
const EPOCH_KEY: &str = "strata.epoch";

fn is_counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Tensors read from a file, by name, with the header metadata.
#[derive(Debug)]
pub struct StoredTensors {
    /// The file they were read from.
    pub path: PathBuf,
    /// Name -> (dtype, shape, values as f32). I64 counters are converted.
    pub tensors: HashMap<String, (Dtype, Vec<usize>, Vec<f32>)>,
    /// The header's `__metadata__` string map (empty if the file has none); training
    /// checkpoints keep the epoch and optimizer counters here under `strata.` and
    /// `optimizer.` keys.
    pub metadata: HashMap<String, String>,
}

/// The little-endian bytes of `values`: one copy on a little-endian machine.
fn f32_to_le_bytes(values: &[f32]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        bytemuck::cast_slice(values).to_vec()
    } else {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

/// Floats from little-endian bytes (a trailing partial float is ignored). A safetensors view
/// need not be 4-aligned, so the bytes are copied into a fresh `Vec<f32>` rather than cast in
/// place.
fn f32_from_le_bytes(data: &[u8]) -> Vec<f32> {
    let mut values: Vec<f32> = bytemuck::pod_collect_to_vec(&data[..data.len() / 4 * 4]);
    if cfg!(target_endian = "big") {
        for bits in bytemuck::cast_slice_mut::<f32, u32>(&mut values) {
            *bits = u32::from_le(*bits);
        }
    }
    values
}

/// Writes `tensors` (and string `metadata`) to `path` atomically.
pub fn save_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            if is_counter(name) {
                let bytes = (t.to_vec()[0] as i64).to_le_bytes().to_vec();
                (name.clone(), Dtype::I64, t.shape().to_vec(), bytes)
            } else {
                let bytes = f32_to_le_bytes(&t.to_vec());
                (name.clone(), Dtype::F32, t.shape().to_vec(), bytes)
            }
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CheckpointError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let format = |message: String| CheckpointError::Format {
        path: path.to_path_buf(),
        message,
    };
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| format(e.to_string()))?;
    write_atomically(path, &with_sorted_header(bytes).map_err(format)?)
}

/// safetensors writes the `__metadata__` map in a `HashMap`'s iteration order, which changes from
/// one process to the next, so two identical runs would write files with different bytes. The
/// header is rewritten here with every key (tensor names and metadata keys) in sorted order:
/// the same tensors and metadata always give the same file. Readers locate tensors by their
/// `data_offsets`, never by their place in the header, and the header keeps its length.
fn with_sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    use std::collections::BTreeMap;
    let declared = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")) as usize)
        .ok_or("the serialised file has no header length")?;
    let header = bytes
        .get(8..8 + declared)
        .ok_or("the serialised header is shorter than its length")?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
    if let Some(metadata) = entries.get_mut("__metadata__") {
        let sorted: BTreeMap<String, String> =
            serde_json::from_value(metadata.take()).map_err(|e| format!("metadata: {e}"))?;
        *metadata = serde_json::to_value(sorted).map_err(|e| format!("metadata: {e}"))?;
    }
    let mut text = serde_json::to_string(&entries).map_err(|e| format!("header: {e}"))?;
    // The format aligns the data that follows the header to eight bytes, padding with spaces.
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - declared);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + declared..]);
    Ok(out)
}

/// Writes `bytes` to a temporary sibling of `path`, syncs it, and renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    write_atomically_with(path, |file| file.write_all(bytes))
}

/// Lets `write` fill a temporary sibling of `path`; only if it succeeds is the file synced and
/// renamed over `path`. On any failure the temporary file is removed and `path` is untouched.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("not a file path")))?;
    let temporary = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = fs::File::create(&temporary)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temporary);
        return Err(io(e));
    }
    Ok(())
}

/// Reads every tensor of a safetensors file. Only F32 tensors and I64 counters are accepted.
pub fn load_tensors(path: &Path) -> Result<StoredTensors, CheckpointError> {
    let bytes = fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_tensors(&bytes, path)
}

/// Every tensor of `bytes`, the content of the safetensors file `path`, as [`load_tensors`]
/// returns them. `path` only names the file in errors (and is kept in the result).
pub fn parse_tensors(bytes: &[u8], path: &Path) -> Result<StoredTensors, CheckpointError> {
    let format = |message: String| CheckpointError::Format {
        path: path.to_path_buf(),
        message,
    };
    let (header_len, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    // read_metadata has checked that the tensors' offsets tile the data after the header
    // exactly, so every slice below is in bounds (as SafeTensors::tensors relies on too).
    let body = &bytes[8 + header_len..];
    let mut tensors = HashMap::new();
    for (name, info) in header.tensors() {
        let data = &body[info.data_offsets.0..info.data_offsets.1];
        let values = match info.dtype {
            Dtype::F32 => f32_from_le_bytes(data),
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk")) as f32)
                .collect(),
            other => {
                return Err(format(format!(
                    "tensor '{name}' has dtype {other:?}; strata reads F32 (and I64 counters)"
                )))
            }
        };
        tensors.insert(name, (info.dtype, info.shape.clone(), values));
    }
    Ok(StoredTensors {
        path: path.to_path_buf(),
        tensors,
        metadata,
    })
}

/// Saves a module's `state_dict()`.
///
/// A round trip through a file, with [`load_module`]:
///
/// ```
/// use strata_nn::checkpoint::{load_module, save_module};
/// use strata_nn::layers::Linear;
/// use strata_nn::{Generator, Module};
///
/// let path = std::env::temp_dir().join(format!("strata-doc-{}.safetensors", std::process::id()));
/// let trained = Linear::new(4, 2, &mut Generator::seed(1));
/// save_module(&trained, &path)?;
///
/// let fresh = Linear::new(4, 2, &mut Generator::seed(2));
/// load_module(&fresh, &path)?;
/// assert_eq!(fresh.weight.to_vec(), trained.weight.to_vec());
///
/// // A model of another shape is refused, naming the tensors that do not fit.
/// let wrong = Linear::new(3, 2, &mut Generator::seed(3));
/// assert!(load_module(&wrong, &path).is_err());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_module(module: &dyn Module, path: &Path) -> Result<(), CheckpointError> {
    save_tensors(path, &module.state_dict(), HashMap::new())
}

/// Checks that `stored` holds exactly the module's tensors with the right shapes and dtypes,
/// then copies them in. Nothing is changed unless everything matches; the error lists every
/// missing, unexpected and mismatched tensor by name. [`load_module`] is this on a file.
pub fn load_module_tensors(
    module: &dyn Module,
    stored: &StoredTensors,
) -> Result<(), CheckpointError> {
    let expected = module.state_dict();
    let mut problems = Vec::new();
    for (name, t) in &expected {
        match stored.tensors.get(name) {
            None => problems.push(format!("missing tensor '{name}'")),
            Some((dtype, shape, _)) => {
                let want = if is_counter(name) {
                    Dtype::I64
                } else {
                    Dtype::F32
                };
                if *dtype != want {
                    problems.push(format!(
                        "tensor '{name}' has dtype {dtype:?}, expected {want:?}"
                    ));
                }
                if shape.as_slice() != t.shape() {
                    problems.push(format!(
                        "tensor '{name}' has shape {shape:?}, expected {:?}",
                        t.shape()
                    ));
                }
            }
        }
    }
    let training = stored.metadata.get(KIND_KEY).map(String::as_str) == Some("training");
    let mut unexpected: Vec<&String> = stored
        .tensors
        .keys()
        .filter(|n| !(training && n.starts_with(OPTIMIZER_PREFIX)))
        .filter(|n| !expected.iter().any(|(e, _)| e == *n))
        .collect();
    unexpected.sort();
    problems.extend(
        unexpected
            .into_iter()
            .map(|n| format!("unexpected tensor '{n}'")),
    );
    if !problems.is_empty() {
        return Err(CheckpointError::Mismatch {
            path: stored.path.clone(),
            problems,
        });
    }
    for (name, t) in &expected {
        let (_, _, values) = &stored.tensors[name];
        t.update_data(|d| d.copy_from_slice(values));
    }
    Ok(())
}

/// Loads a `state_dict()` saved by [`save_module`] or by PyTorch into `module`.
pub fn load_module(module: &dyn Module, path: &Path) -> Result<(), CheckpointError> {
    load_module_tensors(module, &load_tensors(path)?)
}

/// What a training checkpoint says besides the tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingProgress {
    /// Epochs completed.
    pub epoch: usize,
    /// Any other string metadata saved with the checkpoint.
    pub metadata: HashMap<String, String>,
}

/// Saves model, optimizer state and progress, so that training can resume exactly.
pub fn save_training(
    path: &Path,
    module: &dyn Module,
    optimizer: &dyn Optimizer,
    epoch: usize,
    mut metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let OptimizerState { tensors, counters } = optimizer.state();
    let mut all = module.state_dict();
    all.extend(
        tensors
            .into_iter()
            .map(|(n, t)| (format!("{OPTIMIZER_PREFIX}{n}"), t)),
    );
    metadata.insert(KIND_KEY.into(), "training".into());
    metadata.insert(EPOCH_KEY.into(), epoch.to_string());
    metadata.insert("strata.optimizer".into(), optimizer.name().into());
    for (name, value) in counters {
        metadata.insert(format!("{OPTIMIZER_PREFIX}{name}"), value.to_string());
    }
    save_tensors(path, &all, metadata)
}

/// Restores a checkpoint written by [`save_training`] into `module` and `optimizer`.
pub fn load_training(
    path: &Path,
    module: &dyn Module,
    optimizer: &mut dyn Optimizer,
) -> Result<TrainingProgress, CheckpointError> {
    load_training_tensors(load_tensors(path)?, module, optimizer)
}

/// Restores the tensors of a training checkpoint, already read (see [`parse_tensors`]), into
/// `module` and `optimizer`, with the checks of [`load_training`], which is this on a file.
pub fn load_training_tensors(
    stored: StoredTensors,
    module: &dyn Module,
    optimizer: &mut dyn Optimizer,
) -> Result<TrainingProgress, CheckpointError> {
    let path = stored.path.clone();
    let format = |message: String| CheckpointError::Format {
        path: path.clone(),
        message,
    };
    if stored.metadata.get(KIND_KEY).map(String::as_str) != Some("training") {
        return Err(format(
            "not a training checkpoint (no optimizer state); load it with load_module".into(),
        ));
    }
    let saved_optimizer = stored
        .metadata
        .get("strata.optimizer")
        .cloned()
        .unwrap_or_default();
    if saved_optimizer != optimizer.name() {
        return Err(format(format!(
            "checkpoint was trained with optimizer '{saved_optimizer}', not '{}'",
            optimizer.name()
        )));
    }
    let epoch = stored
        .metadata
        .get(EPOCH_KEY)
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| format("training checkpoint has no valid epoch".into()))?;
    let mut state = OptimizerState::default();
    for (name, (_, shape, values)) in &stored.tensors {
        if let Some(slot) = name.strip_prefix(OPTIMIZER_PREFIX) {
            state
                .tensors
                .push((slot.to_string(), Tensor::from_vec(values.clone(), shape)));
        }
    }
    for (key, value) in &stored.metadata {
        if let Some(slot) = key.strip_prefix(OPTIMIZER_PREFIX) {
            let count = value.parse().map_err(|_| {
                format(format!(
                    "optimizer counter '{key}' is not a number: '{value}'"
                ))
            })?;
            state.counters.push((slot.to_string(), count));
        }
    }
    load_module_tensors(module, &stored)?;
    optimizer.load_state(&state).map_err(format)?;
    Ok(TrainingProgress {
        epoch,
        metadata: stored.metadata,
    })
}
