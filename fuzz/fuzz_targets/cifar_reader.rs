//! The CIFAR-10 binary reader on arbitrary bytes: an error, or whole records with labels in
//! range that make a dataset, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_models::data::{read_cifar10_file, Dataset, ImageDataset};

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::file("data_batch_1.bin", data);
    if let Ok((labels, pixels)) = read_cifar10_file(&path) {
        assert_eq!(pixels.len(), labels.len() * 3 * 32 * 32);
        let set = ImageDataset::new("fuzz", pixels, labels, 3, 32, 32, 10)
            .expect("a file the reader accepts makes a dataset");
        let (x, y) = set.batch(&[0]);
        assert_eq!((x.shape(), y.len()), (&[1, 3, 32, 32][..], 1));
    }
});
