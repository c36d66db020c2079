//! The CIFAR-10 binary format: records of 1 label byte and 3,072 pixel bytes (the 32x32 red
//! plane, then green, then blue, each row-major), which is already CHW per image.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{DataError, ImageDataset};

const SIDE: usize = 32;
const CHANNELS: usize = 3;
const PIXELS: usize = CHANNELS * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;
const CLASSES: usize = 10;

/// The five training files, then the test file.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file: 10,000 images in the same format as the training files.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";

/// The class names, indexed by label.
pub const CIFAR10_CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn cifar_help(dir: &Path) -> String {
    format!(
        "Put the six files data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, \
data_batch_4.bin, data_batch_5.bin and test_batch.bin in {}: they come from the \
\"CIFAR-10 binary version\" tarball cifar-10-binary.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html); \
extract it and copy the contents of its cifar-10-batches-bin/ folder into {}. \
strata cannot download CIFAR-10 itself (it is in no package registry this machine reaches).",
        dir.display(),
        dir.display()
    )
}

/// Labels and CHW pixels of one binary batch file. Any whole number (> 0) of records is
/// accepted, so tests can use small files; the published files hold 10,000 each.
pub fn read_cifar10_file(path: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let data = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_cifar10_file(&data, path)
}

/// Labels and CHW pixels of `data`, the content of the binary batch file `path`, as
/// [`read_cifar10_file`] returns them. `path` only names the file in errors.
pub fn parse_cifar10_file(data: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    if data.is_empty() {
        return Err(DataError::malformed(path, "the file is empty (no records)"));
    }
    if !data.len().is_multiple_of(RECORD) {
        return Err(DataError::malformed(
            path,
            format!(
                "{} bytes are not a whole number of {RECORD}-byte records \
({} whole records and a partial record of {} bytes; truncated?)",
                data.len(),
                data.len() / RECORD,
                data.len() % RECORD
            ),
        ));
    }
    let records = data.len() / RECORD;
    let mut labels = Vec::with_capacity(records);
    let mut pixels = Vec::with_capacity(records * PIXELS);
    for (index, record) in data.chunks_exact(RECORD).enumerate() {
        let label = record[0];
        if label as usize >= CLASSES {
            return Err(DataError::malformed(
                path,
                format!("label {label} in record {index} is out of range ({CLASSES} classes)"),
            ));
        }
        labels.push(label);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok((labels, pixels))
}

/// The folder that holds the files: `dir` itself, or `dir/cifar-10-batches-bin` when the
/// tarball was extracted as it is.
fn locate(dir: &Path) -> PathBuf {
    let nested = dir.join("cifar-10-batches-bin");
    if !dir.join(CIFAR10_TEST_FILE).is_file() && nested.join(CIFAR10_TEST_FILE).is_file() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// The CIFAR-10 train (data_batch_1..5.bin, in order) and test (test_batch.bin) sets of `dir`,
/// named `cifar10-train` / `cifar10-test`, batching as `p/255` until given a normalisation.
///
/// Beyond finding and reading the files, this is [`parse_cifar10_file`] and [`cifar10_sets`],
/// the byte-level functions the `cifar_reader` fuzz target runs.
pub fn load_cifar10_dir(dir: &Path) -> Result<(ImageDataset, ImageDataset), DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            what_to_do: format!("The CIFAR-10 folder does not exist. {}", cifar_help(dir)),
        });
    }
    let dir = locate(dir);
    let all: Vec<&str> = CIFAR10_TRAIN_FILES
        .iter()
        .copied()
        .chain([CIFAR10_TEST_FILE])
        .collect();
    let missing: Vec<&str> = all
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(DataError::Missing {
            path: dir.join(missing[0]),
            what_to_do: format!(
                "Missing from {}: {}. {}",
                dir.display(),
                missing.join(", "),
                cifar_help(&dir)
            ),
        });
    }
    // Indexed parallel collection keeps the file order.
    let mut files = all
        .par_iter()
        .map(|f| read_cifar10_file(&dir.join(f)))
        .collect::<Result<Vec<_>, _>>()?;
    let test = files.pop().expect("the test file is read last");
    cifar10_sets(files, test)
}

/// The train set, from the parsed training files (labels and pixels, as [`parse_cifar10_file`]
/// returns them) in order, and the test set from the parsed test file, named `cifar10-train`
/// / `cifar10-test`.
pub fn cifar10_sets(
    train_files: Vec<(Vec<u8>, Vec<u8>)>,
    test_file: (Vec<u8>, Vec<u8>),
) -> Result<(ImageDataset, ImageDataset), DataError> {
    let (test_labels, test_pixels) = test_file;
    let mut labels = Vec::with_capacity(train_files.iter().map(|f| f.0.len()).sum());
    let mut pixels = Vec::with_capacity(labels.capacity() * PIXELS);
    for (l, p) in train_files {
        labels.extend_from_slice(&l);
        pixels.extend_from_slice(&p);
    }
    let train = ImageDataset::new(
        "cifar10-train",
        pixels,
        labels,
        CHANNELS,
        SIDE,
        SIDE,
        CLASSES,
    )?;
    let test = ImageDataset::new(
        "cifar10-test",
        test_pixels,
        test_labels,
        CHANNELS,
        SIDE,
        SIDE,
        CLASSES,
    )?;
    Ok((train, test))
}
