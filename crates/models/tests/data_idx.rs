//! The IDX reader on generated files: round trips, and every kind of bad input yields an error
//! naming the file and the fault, never a panic and never partial data.

use std::io::Write;
use std::path::{Path, PathBuf};

use strata_models::data::{load_mnist_dir, read_idx_images, read_idx_labels, DataError, Dataset};

fn idx_images(count: usize, rows: usize, cols: usize, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [2051u32, count as u32, rows as u32, cols as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&2049u32.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `n` images of `rows x cols` whose pixel values encode image, row and column.
fn pattern(n: usize, rows: usize, cols: usize) -> Vec<u8> {
    (0..n * rows * cols)
        .map(|i| ((i * 7 + i / (rows * cols) * 13) % 256) as u8)
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A complete MNIST-style folder: 6 train / 4 test images of 5x3, train files gzip'd.
fn mnist_folder(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let train_px = pattern(6, 5, 3);
    let train_lb = vec![5, 0, 4, 1, 9, 2];
    let test_px = pattern(4, 5, 3).iter().map(|p| 255 - p).collect::<Vec<_>>();
    let test_lb = vec![7, 2, 1, 0];
    write(
        dir,
        "train-images-idx3-ubyte.gz",
        &gzip(&idx_images(6, 5, 3, &train_px)),
    );
    write(
        dir,
        "train-labels-idx1-ubyte.gz",
        &gzip(&idx_labels(&train_lb)),
    );
    write(
        dir,
        "t10k-images-idx3-ubyte",
        &idx_images(4, 5, 3, &test_px),
    );
    write(dir, "t10k-labels-idx1-ubyte", &idx_labels(&test_lb));
    (train_px, train_lb, test_px, test_lb)
}

fn message(result: Result<impl std::fmt::Debug, DataError>) -> String {
    let e = result.expect_err("expected an error");
    e.to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not mention {p:?}");
    }
}

#[test]
fn images_and_labels_round_trip_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let px = pattern(7, 4, 6);
    let labels = vec![3, 1, 4, 1, 5, 9, 2];
    let plain = write(dir.path(), "img", &idx_images(7, 4, 6, &px));
    let gz = write(dir.path(), "img.gz", &gzip(&idx_images(7, 4, 6, &px)));
    // The gzip magic decides, not the name.
    let gz_no_suffix = write(
        dir.path(),
        "img-gz-no-suffix",
        &gzip(&idx_images(7, 4, 6, &px)),
    );
    for path in [&plain, &gz, &gz_no_suffix] {
        let (count, rows, cols, pixels) = read_idx_images(path).unwrap();
        assert_eq!((count, rows, cols), (7, 4, 6));
        assert_eq!(pixels, px);
    }
    let lp = write(dir.path(), "lab", &idx_labels(&labels));
    let lg = write(dir.path(), "lab.gz", &gzip(&idx_labels(&labels)));
    assert_eq!(read_idx_labels(&lp).unwrap(), labels);
    assert_eq!(read_idx_labels(&lg).unwrap(), labels);
    // Zero images is a well-formed file.
    let empty = write(dir.path(), "empty", &idx_images(0, 28, 28, &[]));
    assert_eq!(read_idx_images(&empty).unwrap(), (0, 28, 28, vec![]));
}

#[test]
fn mnist_folder_loads_with_mixed_plain_and_gzip_files() {
    let dir = tempfile::tempdir().unwrap();
    let (train_px, train_lb, test_px, test_lb) = mnist_folder(dir.path());
    let (train, test) = load_mnist_dir(dir.path(), "toy").unwrap();
    assert_eq!(train.name(), "toy-train");
    assert_eq!(test.name(), "toy-test");
    assert_eq!((train.len(), test.len()), (6, 4));
    assert_eq!(train.example_shape(), vec![1, 5, 3]);
    assert_eq!(Dataset::classes(&train), 10);
    assert_eq!(train.labels(), &train_lb[..]);
    assert_eq!(test.labels(), &test_lb[..]);
    assert_eq!(train.image(2), &train_px[30..45]);
    assert_eq!(test.image(3), &test_px[45..60]);
    assert_eq!(train.pixels(), &train_px[..]);
    // Unnormalised: p / 255.
    let (x, y) = test.batch(&[1]);
    assert_eq!(x.shape(), &[1, 1, 5, 3]);
    assert_eq!(y, vec![2]);
    let want: Vec<f32> = test_px[15..30].iter().map(|&p| p as f32 / 255.0).collect();
    let got = x.to_vec();
    assert!(
        got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-7),
        "{got:?} vs {want:?}"
    );
}

#[test]
fn truncated_image_file_is_a_short_read() {
    let dir = tempfile::tempdir().unwrap();
    let full = idx_images(3, 4, 4, &pattern(3, 4, 4));
    let path = write(
        dir.path(),
        "train-images-idx3-ubyte",
        &full[..full.len() - 5],
    );
    let msg = message(read_idx_images(&path));
    assert_mentions(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "short read",
            "truncated",
            "3 images of 4x4",
            "43",
        ],
    );
    // A file shorter than the header.
    let path = write(
        dir.path(),
        "t10k-labels-idx1-ubyte",
        &idx_labels(&[1, 2])[..6],
    );
    let msg = message(read_idx_labels(&path));
    assert_mentions(&msg, &["t10k-labels-idx1-ubyte", "too few", "header"]);
}

#[test]
fn truncated_gzip_stream_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let gz = gzip(&idx_images(20, 8, 8, &pattern(20, 8, 8)));
    for cut in [gz.len() - 1, gz.len() - 8, gz.len() / 2, 12] {
        let path = write(dir.path(), "train-images-idx3-ubyte.gz", &gz[..cut]);
        let msg = message(read_idx_images(&path));
        assert_mentions(&msg, &["train-images-idx3-ubyte.gz", "gzip"]);
    }
    let path = write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        &gz[..gz.len() / 2],
    );
    assert_mentions(&message(read_idx_images(&path)), &["truncated"]);
    // A flipped byte in the deflate data fails the CRC (or the stream) instead of yielding
    // wrong pixels.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let path = write(dir.path(), "flipped.gz", &bad);
    assert_mentions(&message(read_idx_images(&path)), &["flipped.gz", "gzip"]);
}

#[test]
fn wrong_magic_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let labels = write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &idx_labels(&[1, 2, 3]),
    );
    let msg = message(read_idx_images(&labels));
    assert_mentions(
        &msg,
        &[
            "train-labels-idx1-ubyte",
            "wrong magic number 2049",
            "expected 2051",
            "label file",
        ],
    );
    let images = write(dir.path(), "imgs", &idx_images(1, 2, 2, &[0; 4]));
    let msg = message(read_idx_labels(&images));
    assert_mentions(&msg, &["imgs", "wrong magic number 2051", "expected 2049"]);
    let junk = write(dir.path(), "junk", b"<html>not found</html>");
    assert_mentions(&message(read_idx_images(&junk)), &["junk", "wrong magic"]);
}

#[test]
fn trailing_garbage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = idx_labels(&[1, 2, 3]);
    bytes.extend_from_slice(b"xyz!");
    let path = write(dir.path(), "labels", &bytes);
    assert_mentions(
        &message(read_idx_labels(&path)),
        &["labels", "4 bytes of trailing garbage"],
    );
    let mut bytes = idx_images(2, 2, 2, &[9; 8]);
    bytes.push(0);
    let path = write(dir.path(), "images.gz", &gzip(&bytes));
    assert_mentions(
        &message(read_idx_images(&path)),
        &["images.gz", "1 bytes of trailing garbage"],
    );
}

#[test]
fn label_out_of_range_names_file_label_and_index() {
    let dir = tempfile::tempdir().unwrap();
    mnist_folder(dir.path());
    std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte.gz")).unwrap();
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &idx_labels(&[5, 0, 4, 10, 9, 2]),
    );
    let msg = message(load_mnist_dir(dir.path(), "mnist"));
    assert_mentions(
        &msg,
        &["train-labels-idx1-ubyte: label 10 at index 3 is out of range (10 classes)"],
    );
}

#[test]
fn image_and_label_counts_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    mnist_folder(dir.path());
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte",
        &idx_labels(&[7, 2, 1]),
    );
    let msg = message(load_mnist_dir(dir.path(), "mnist"));
    assert_mentions(
        &msg,
        &[
            "t10k-labels-idx1-ubyte",
            "3 labels",
            "t10k-images-idx3-ubyte",
            "4 images",
        ],
    );
}

#[test]
fn train_and_test_image_sizes_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    mnist_folder(dir.path());
    write(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &idx_images(4, 3, 5, &pattern(4, 3, 5)),
    );
    let msg = message(load_mnist_dir(dir.path(), "mnist"));
    assert_mentions(&msg, &["t10k-images-idx3-ubyte", "3x5", "5x3"]);
}

#[test]
fn missing_file_or_folder_says_what_to_put_where() {
    let dir = tempfile::tempdir().unwrap();
    mnist_folder(dir.path());
    std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
    let msg = message(load_mnist_dir(dir.path(), "mnist"));
    assert_mentions(
        &msg,
        &[
            "t10k-images-idx3-ubyte",
            "t10k-images-idx3-ubyte.gz",
            "missing",
            "make data",
        ],
    );
    let absent = dir.path().join("nowhere");
    let e = load_mnist_dir(&absent, "mnist").unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
    assert_mentions(
        &e.to_string(),
        &["nowhere", "does not exist", "train-labels-idx1-ubyte"],
    );
}

#[test]
fn every_truncation_and_byte_flip_is_an_error_or_the_full_data_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let px = pattern(3, 3, 3);
    let plain = idx_images(3, 3, 3, &px);
    let gz = gzip(&plain);
    for (name, bytes) in [("p", &plain), ("g.gz", &gz)] {
        for cut in 0..bytes.len() {
            let path = write(dir.path(), name, &bytes[..cut]);
            let r = std::panic::catch_unwind(|| read_idx_images(&path));
            assert!(matches!(r, Ok(Err(_))), "{name} cut at {cut}: {r:?}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x80;
            let path = write(dir.path(), name, &bad);
            match std::panic::catch_unwind(|| read_idx_images(&path)) {
                Err(_) => panic!("{name} flipped at {at}: panicked"),
                // Gzip header flags or pixel bytes may change without detection; a result
                // must still be whole.
                Ok(Ok((n, r, c, p))) => assert_eq!(p.len(), n * r * c),
                Ok(Err(e)) => assert!(e.to_string().contains(name), "{e}"),
            }
        }
    }
}
