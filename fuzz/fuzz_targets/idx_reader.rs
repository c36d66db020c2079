//! The MNIST IDX reader on arbitrary bytes, plain or gzip'd: every input is an error naming its
//! file, or a dataset whose sizes agree with its header; never a panic or an allocation the
//! header alone asks for.
//!
//! The input is cut in two at a position given by its first two bytes: an image file and a
//! label file, which also form both splits of an MNIST folder (the same pair as train and test
//! set). Everything `load_mnist_dir` does with a folder's files runs here in memory:
//! `decode_maybe_gzip`, `parse_idx_images`, `parse_idx_labels`, `mnist_split` and
//! `mnist_sets`; the folder function only finds and reads the files around them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use strata_models::data::{
    decode_maybe_gzip, mnist_sets, mnist_split, parse_idx_images, parse_idx_labels, DataError,
    Dataset, MNIST_FILE_NAMES,
};

/// `result`, after checking that an error names `path`.
fn named<T>(result: Result<T, DataError>, path: &Path) -> Result<T, DataError> {
    if let Err(e) = &result {
        let name = path.to_str().expect("a UTF-8 name");
        assert!(e.to_string().contains(name), "{e}");
    }
    result
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cut = 2 + usize::from(u16::from_le_bytes([data[0], data[1]])) % (data.len() - 1);
    let (images, labels) = data[2..].split_at(cut - 2);
    let [images_path, labels_path, test_images_path, _] = MNIST_FILE_NAMES.map(Path::new);

    let images = named(
        decode_maybe_gzip(images.to_vec(), images_path)
            .and_then(|d| parse_idx_images(d, images_path)),
        images_path,
    );
    if let Ok((count, rows, cols, pixels)) = &images {
        assert_eq!(Some(pixels.len()), count.checked_mul(rows * cols));
    }
    let labels = named(
        decode_maybe_gzip(labels.to_vec(), labels_path)
            .and_then(|d| parse_idx_labels(d, labels_path)),
        labels_path,
    );
    let (Ok(images), Ok(labels)) = (images, labels) else {
        return;
    };
    let label_count = labels.len();
    let split = |name: &str| {
        let split = mnist_split(
            images.clone(),
            images_path,
            labels.clone(),
            labels_path,
            name.into(),
        );
        if let Err(e) = &split {
            let text = e.to_string();
            assert!(
                text.contains(MNIST_FILE_NAMES[0]) || text.contains(MNIST_FILE_NAMES[1]),
                "{text}"
            );
        }
        split
    };
    let Ok(train) = split("fuzz-train") else {
        return;
    };
    let test = split("fuzz-test").expect("the files that made the train split make the test split");
    let (train, test) = mnist_sets(train, images_path, test, test_images_path)
        .expect("splits of the same image file have the same image size");
    assert_eq!(train.len(), label_count);
    assert_eq!(train.len(), test.len());
    let first: Vec<usize> = (0..train.len().min(3)).collect();
    let (x, y) = train.batch(&first);
    assert_eq!(x.shape()[0], first.len());
    assert!(y.iter().all(|&l| l < 10));
});
