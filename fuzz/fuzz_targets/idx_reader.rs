//! The MNIST IDX reader on arbitrary bytes, plain or gzip'd: every input is an error or a
//! dataset whose sizes agree with its header, never a panic or an allocation the header alone
//! asks for.
//!
//! The input is cut in two at a position given by its first two bytes: an image file and a
//! label file, which also form a whole MNIST folder (the same pair as train and test set).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_models::data::{
    load_mnist_dir, read_idx_images, read_idx_labels, Dataset, MNIST_FILE_NAMES,
};

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cut = 2 + usize::from(u16::from_le_bytes([data[0], data[1]])) % (data.len() - 1);
    let (images, labels) = data[2..].split_at(cut - 2);

    let images_path = scratch::file(MNIST_FILE_NAMES[0], images);
    let labels_path = scratch::file(MNIST_FILE_NAMES[1], labels);
    scratch::file(MNIST_FILE_NAMES[2], images);
    scratch::file(MNIST_FILE_NAMES[3], labels);

    if let Ok((count, rows, cols, pixels)) = read_idx_images(&images_path) {
        assert_eq!(Some(pixels.len()), count.checked_mul(rows * cols));
    }
    let label_count = read_idx_labels(&labels_path).map(|l| l.len());

    if let Ok((train, test)) = load_mnist_dir(scratch::dir(), "fuzz") {
        assert_eq!(
            Ok(train.len()),
            label_count.as_ref().map_err(|_| ()).copied()
        );
        assert_eq!(train.len(), test.len());
        let first: Vec<usize> = (0..train.len().min(3)).collect();
        let (x, y) = train.batch(&first);
        assert_eq!(x.shape()[0], first.len());
        assert!(y.iter().all(|&l| l < 10));
    }
});
