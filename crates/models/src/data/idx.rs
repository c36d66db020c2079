//! The IDX format of MNIST and Fashion-MNIST: a big-endian header, then u8 data.
//!
//! ```text
//! images: 0x00000803 (2051)  count  rows  cols   then count*rows*cols pixel bytes, row-major
//! labels: 0x00000801 (2049)  count               then count label bytes
//! ```
//! The magic's third byte is the element type (0x08 = u8), the fourth the number of
//! dimensions. Files may be gzip'd (detected by the gzip magic 1f 8b, not by the name).

use std::io::Read;
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder, LittleEndian};

use super::{DataError, ImageDataset};

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

/// Classes of MNIST and Fashion-MNIST.
const MNIST_CLASSES: usize = 10;

/// The four files of an MNIST-style folder, each plain or with a `.gz` suffix.
pub const MNIST_FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The whole content of `path`, decompressed if it starts with the gzip magic. A truncated or
/// corrupt gzip stream is an error, never a short result.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_maybe_gzip(raw, path)
}

/// `raw`, the bytes of the file `path`, decompressed if they start with the gzip magic, else
/// as they are. `path` only names the file in errors; [`read_maybe_gzip`] is this on a file.
pub fn decode_maybe_gzip(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    if raw.len() < 2 || raw[..2] != [0x1f, 0x8b] {
        return Ok(raw);
    }
    // The gzip trailer stores the uncompressed size mod 2^32: a good capacity hint, but only a
    // claim. Deflate expands at most 1032-fold, so a reservation beyond that would be memory
    // a few damaged (or hostile) bytes could ask for without the data to fill it.
    const DEFLATE_MAX_RATIO: usize = 1032;
    let hint = if raw.len() >= 8 {
        LittleEndian::read_u32(&raw[raw.len() - 4..]) as usize
    } else {
        0
    };
    let mut out = Vec::with_capacity(hint.min(raw.len().saturating_mul(DEFLATE_MAX_RATIO)));
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| {
            let problem = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                format!(
                    "the gzip stream is truncated ({} compressed bytes end before the stream does)",
                    raw.len()
                )
            } else {
                format!("the gzip stream is corrupt: {e}")
            };
            DataError::malformed(path, problem)
        })?;
    Ok(out)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    BigEndian::read_u32(&bytes[at..at + 4])
}

fn check_magic(path: &Path, data: &[u8], want: u32, what: &str) -> Result<(), DataError> {
    let magic = be_u32(data, 0);
    if magic == want {
        return Ok(());
    }
    let guess = match magic {
        IMAGES_MAGIC => " (that is an IDX image file)".to_string(),
        LABELS_MAGIC => " (that is an IDX label file)".to_string(),
        _ if data[..2] == [0x1f, 0x8b] => " (a gzip stream inside a gzip stream?)".to_string(),
        _ => String::new(),
    };
    Err(DataError::malformed(
        path,
        format!(
            "wrong magic number {magic} (0x{magic:08x}), expected {want} for IDX {what}{guess}"
        ),
    ))
}

/// Checks that `data` holds exactly `header + body` bytes.
fn check_length(
    path: &Path,
    data: &[u8],
    header: usize,
    body: Option<usize>,
    promise: &str,
) -> Result<(), DataError> {
    let have = data.len() - header;
    let Some(body) = body else {
        return Err(DataError::malformed(
            path,
            format!("the header promises {promise}, more bytes than can be addressed"),
        ));
    };
    if have < body {
        return Err(DataError::malformed(
            path,
            format!(
                "short read: the header promises {promise} = {body} bytes after the {header}-byte header, the file holds {have} (truncated)"
            ),
        ));
    }
    if have > body {
        return Err(DataError::malformed(
            path,
            format!(
                "{} bytes of trailing garbage after the {body} bytes the header promises ({promise})",
                have - body
            ),
        ));
    }
    Ok(())
}

/// An IDX image file: `(count, rows, cols, pixels)` with `count*rows*cols` pixel bytes.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    parse_idx_images(read_maybe_gzip(path)?, path)
}

/// The content of an IDX image file, already decompressed (see [`decode_maybe_gzip`]), as
/// [`read_idx_images`] returns it. `path` only names the file in errors.
pub fn parse_idx_images(
    data: Vec<u8>,
    path: &Path,
) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    if data.len() >= 4 {
        check_magic(path, &data, IMAGES_MAGIC, "images")?;
    }
    if data.len() < 16 {
        return Err(DataError::malformed(
            path,
            format!(
                "{} bytes are too few for the 16-byte IDX image header (short read)",
                data.len()
            ),
        ));
    }
    let (count, rows, cols) = (
        be_u32(&data, 4) as usize,
        be_u32(&data, 8) as usize,
        be_u32(&data, 12) as usize,
    );
    let body = count.checked_mul(rows).and_then(|n| n.checked_mul(cols));
    check_length(
        path,
        &data,
        16,
        body,
        &format!("{count} images of {rows}x{cols}"),
    )?;
    let mut pixels = data;
    pixels.drain(..16);
    Ok((count, rows, cols, pixels))
}

/// An IDX label file: the labels, one byte each (not range-checked; see [`load_mnist_dir`]).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    parse_idx_labels(read_maybe_gzip(path)?, path)
}

/// The content of an IDX label file, already decompressed (see [`decode_maybe_gzip`]), as
/// [`read_idx_labels`] returns it. `path` only names the file in errors.
pub fn parse_idx_labels(data: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    if data.len() >= 4 {
        check_magic(path, &data, LABELS_MAGIC, "labels")?;
    }
    if data.len() < 8 {
        return Err(DataError::malformed(
            path,
            format!(
                "{} bytes are too few for the 8-byte IDX label header (short read)",
                data.len()
            ),
        ));
    }
    let count = be_u32(&data, 4) as usize;
    check_length(path, &data, 8, Some(count), &format!("{count} labels"))?;
    let mut labels = data;
    labels.drain(..8);
    Ok(labels)
}

/// `dir/name` if it exists, else `dir/name.gz`; Missing naming both otherwise.
fn find_plain_or_gz(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::Missing {
        path: plain,
        what_to_do: format!(
            "Neither {name} nor {name}.gz is in {}. {}",
            dir.display(),
            MNIST_FOLDER_HELP
        ),
    })
}

const MNIST_FOLDER_HELP: &str = "An MNIST-style folder holds the four IDX files \
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and \
t10k-labels-idx1-ubyte, each plain or gzip'd (.gz). `make data` fetches MNIST into \
datasets/mnist/ and Fashion-MNIST into datasets/fashion-mnist/.";

/// Images and labels of one split, read in parallel, checked against each other.
fn load_split(
    images_path: &Path,
    labels_path: &Path,
    name: String,
) -> Result<ImageDataset, DataError> {
    let (images, labels) = rayon::join(
        || read_idx_images(images_path),
        || read_idx_labels(labels_path),
    );
    mnist_split(images?, images_path, labels?, labels_path, name)
}

/// One MNIST split named `name` from its parsed image file (as [`parse_idx_images`] returns
/// it) and label file: as many labels as images, each below 10, and at least one image.
/// The paths only name the files in errors; [`load_mnist_dir`] builds both splits with this.
pub fn mnist_split(
    images: (usize, usize, usize, Vec<u8>),
    images_path: &Path,
    labels: Vec<u8>,
    labels_path: &Path,
    name: String,
) -> Result<ImageDataset, DataError> {
    let (count, rows, cols, pixels) = images;
    if labels.len() != count {
        return Err(DataError::malformed(
            labels_path,
            format!(
                "holds {} labels but {} holds {count} images (the counts must agree)",
                labels.len(),
                images_path.display()
            ),
        ));
    }
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= MNIST_CLASSES)
    {
        return Err(DataError::malformed(
            labels_path,
            format!("label {label} at index {index} is out of range ({MNIST_CLASSES} classes)"),
        ));
    }
    if count == 0 {
        return Err(DataError::malformed(images_path, "holds no images"));
    }
    ImageDataset::new(name, pixels, labels, 1, rows, cols, MNIST_CLASSES)
}

/// The train and test sets of an MNIST-style folder (MNIST, Fashion-MNIST): the four IDX files,
/// each plain or `.gz`. The sets are named `{name}-train` and `{name}-test`, and batch as
/// `p/255` until given a normalisation.
///
/// Beyond finding the files, this is [`decode_maybe_gzip`], [`parse_idx_images`],
/// [`parse_idx_labels`], [`mnist_split`] and [`mnist_sets`], the byte-level functions the
/// `idx_reader` fuzz target runs.
pub fn load_mnist_dir(dir: &Path, name: &str) -> Result<(ImageDataset, ImageDataset), DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            what_to_do: format!("The folder does not exist. {MNIST_FOLDER_HELP}"),
        });
    }
    let paths = MNIST_FILE_NAMES
        .iter()
        .map(|f| find_plain_or_gz(dir, f))
        .collect::<Result<Vec<_>, _>>()?;
    let (train, test) = rayon::join(
        || load_split(&paths[0], &paths[1], format!("{name}-train")),
        || load_split(&paths[2], &paths[3], format!("{name}-test")),
    );
    mnist_sets(train?, &paths[0], test?, &paths[2])
}

/// The train and test splits as a pair, if their images have the same size. The paths (of
/// the two image files) only name the files in errors.
pub fn mnist_sets(
    train: ImageDataset,
    train_images_path: &Path,
    test: ImageDataset,
    test_images_path: &Path,
) -> Result<(ImageDataset, ImageDataset), DataError> {
    if (train.height(), train.width()) != (test.height(), test.width()) {
        return Err(DataError::malformed(
            test_images_path,
            format!(
                "images are {}x{} but the train images in {} are {}x{}",
                test.height(),
                test.width(),
                train_images_path.display(),
                train.height(),
                train.width()
            ),
        ));
    }
    Ok((train, test))
}
