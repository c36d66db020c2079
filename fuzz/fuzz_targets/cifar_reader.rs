//! The CIFAR-10 binary reader on arbitrary bytes: an error naming the file, or whole records
//! with labels in range that make a dataset, never a panic.
//!
//! The input is one batch file, used as the one training file and as the test file. Everything
//! `load_cifar10_dir` does with a folder's files runs here in memory: `parse_cifar10_file` and
//! `cifar10_sets`; the folder function only finds and reads the files around them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use strata_models::data::{cifar10_sets, parse_cifar10_file, Dataset};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("data_batch_1.bin");
    let (labels, pixels) = match parse_cifar10_file(data, path) {
        Ok(file) => file,
        Err(e) => {
            assert!(e.to_string().contains("data_batch_1.bin"), "{e}");
            return;
        }
    };
    assert_eq!(pixels.len(), labels.len() * 3 * 32 * 32);
    let file = (labels, pixels);
    let (train, test) =
        cifar10_sets(vec![file.clone()], file).expect("a file the reader accepts makes a dataset");
    assert_eq!(train.len(), test.len());
    for set in [&train, &test] {
        let (x, y) = set.batch(&[0]);
        assert_eq!((x.shape(), y.len()), (&[1, 3, 32, 32][..], 1));
    }
});
