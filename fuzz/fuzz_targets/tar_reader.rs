//! The tar reader behind the dataset fetchers on arbitrary bytes: an error naming the archive,
//! or the wanted members, each within the package's largest file; never a panic, and never an
//! allocation that a header's claimed size or a gzip member's expansion alone asks for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use strata_models::data::{read_tar_members, MNIST_LARGEST_FILE_BYTES};

const WANTED: [&str; 2] = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"];

fuzz_target!(|data: &[u8]| {
    let archive = Path::new("fuzz.tar");
    match read_tar_members(data, archive, "package/data", &WANTED, MNIST_LARGEST_FILE_BYTES) {
        Ok(found) => {
            assert_eq!(found.len(), WANTED.len());
            for name in WANTED {
                assert!(found[name].len() as u64 <= MNIST_LARGEST_FILE_BYTES);
            }
        }
        Err(e) => assert!(e.to_string().contains("fuzz.tar"), "{e}"),
    }
});
