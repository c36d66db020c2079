//! The CIFAR-10 binary reader on generated records.

use std::path::Path;

use strata_models::data::{
    load_cifar10_dir, read_cifar10_file, DataError, Dataset, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES,
};

const RECORD: usize = 3073;

/// A record whose pixels encode (file, record, channel, position), so order mix-ups show.
fn record(file: usize, index: usize, label: u8) -> Vec<u8> {
    let mut r = vec![label];
    for c in 0..3 {
        for p in 0..1024 {
            r.push(((file * 31 + index * 17 + c * 85 + p) % 256) as u8);
        }
    }
    r
}

/// Writes the six files; file `f` holds `counts[f]` records with labels `(f + i) % 10`.
fn write_folder(dir: &Path, counts: [usize; 6]) {
    let names: Vec<&str> = CIFAR10_TRAIN_FILES
        .iter()
        .copied()
        .chain([CIFAR10_TEST_FILE])
        .collect();
    for (f, name) in names.iter().enumerate() {
        let bytes: Vec<u8> = (0..counts[f])
            .flat_map(|i| record(f, i, ((f + i) % 10) as u8))
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not mention {p:?}");
    }
}

#[test]
fn generated_records_load_in_file_order_with_rgb_planes() {
    let dir = tempfile::tempdir().unwrap();
    let counts = [3, 2, 1, 2, 4, 3];
    write_folder(dir.path(), counts);
    let (train, test) = load_cifar10_dir(dir.path()).unwrap();
    assert_eq!(train.name(), "cifar10-train");
    assert_eq!((train.len(), test.len()), (12, 3));
    assert_eq!(train.example_shape(), vec![3, 32, 32]);
    // Train: data_batch_1's records, then data_batch_2's, ...
    let mut expected_labels = Vec::new();
    let mut expected_images = Vec::new();
    for (f, &n) in counts[..5].iter().enumerate() {
        for i in 0..n {
            expected_labels.push(((f + i) % 10) as u8);
            expected_images.push(record(f, i, 0)[1..].to_vec());
        }
    }
    assert_eq!(train.labels(), &expected_labels[..]);
    for (k, img) in expected_images.iter().enumerate() {
        assert_eq!(train.image(k), &img[..], "train image {k}");
    }
    assert_eq!(test.labels(), &[5, 6, 7]);
    assert_eq!(test.image(2), &record(5, 2, 0)[1..]);
    // Batching with the CIFAR normalisation: red plane first, (p/255 - 0.5)/0.5.
    let test = test.with_normalization(0.5, 0.5);
    let (x, y) = test.batch(&[1]);
    assert_eq!(x.shape(), &[1, 3, 32, 32]);
    assert_eq!(y, vec![6]);
    let v = x.to_vec();
    let raw = record(5, 1, 0);
    for at in [0, 1, 1023, 1024, 2047, 2048, 3071] {
        let want = (raw[1 + at] as f32 / 255.0 - 0.5) / 0.5;
        assert!(
            (v[at] - want).abs() < 1e-6,
            "value {at}: {} vs {want}",
            v[at]
        );
    }
}

#[test]
fn extracted_tarball_folder_is_found_one_level_down() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&nested).unwrap();
    write_folder(&nested, [1, 1, 1, 1, 1, 2]);
    let (train, test) = load_cifar10_dir(dir.path()).unwrap();
    assert_eq!((train.len(), test.len()), (5, 2));
}

#[test]
fn partial_record_names_file_and_byte_count() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), [2, 2, 2, 2, 2, 2]);
    let path = dir.path().join("data_batch_3.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..RECORD + 100]).unwrap();
    let msg = load_cifar10_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            "data_batch_3.bin",
            "3173 bytes",
            "3073-byte records",
            "1 whole records",
            "partial record of 100 bytes",
        ],
    );
    std::fs::write(&path, b"").unwrap();
    let msg = read_cifar10_file(&path).unwrap_err().to_string();
    assert_mentions(&msg, &["data_batch_3.bin", "empty"]);
}

#[test]
fn label_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), [2, 2, 2, 2, 2, 2]);
    let path = dir.path().join(CIFAR10_TEST_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[RECORD] = 10;
    std::fs::write(&path, &bytes).unwrap();
    let msg = load_cifar10_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            "test_batch.bin",
            "label 10 in record 1 is out of range (10 classes)",
        ],
    );
}

#[test]
fn missing_folder_says_which_files_and_where_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("cifar10");
    let e = load_cifar10_dir(&absent).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
    let msg = e.to_string();
    assert_mentions(
        &msg,
        &[
            "cifar10",
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
            "CIFAR-10 binary version",
            "cifar-10-binary.tar.gz",
            "cifar-10-batches-bin/",
            "cannot download",
        ],
    );
}

#[test]
fn missing_files_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), [1; 6]);
    std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
    std::fs::remove_file(dir.path().join("test_batch.bin")).unwrap();
    let msg = load_cifar10_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            "Missing from",
            "data_batch_4.bin, test_batch.bin.",
            "cifar-10-binary.tar.gz",
        ],
    );
}
