//! Datasets: readers for the MNIST IDX and CIFAR-10 binary formats, their checksums, the
//! synthetic dnn3 set, normalisation, seeded shuffling and batching.

mod augment;
mod cifar;
mod dnn3;
mod error;
mod idx;
mod image;
mod verify;

pub use augment::{
    random_angles, random_rotation, random_rotation_of_rows, rotate_batch, rotate_image,
    rotate_image_into,
};
pub use cifar::{
    cifar10_sets, load_cifar10_dir, parse_cifar10_file, read_cifar10_file, CIFAR10_CLASS_NAMES,
    CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES,
};
pub use dnn3::{dnn3_split, Dnn3};
pub use error::DataError;
pub use idx::{
    decode_maybe_gzip, load_mnist_dir, mnist_sets, mnist_split, parse_idx_images, parse_idx_labels,
    read_idx_images, read_idx_labels, read_maybe_gzip, MNIST_FILE_NAMES,
};
pub use image::ImageDataset;
pub use verify::{
    check_folder, file_md5, install_verified, md5_hex, read_tar_members, read_tgz_members,
    verify_folder, FolderState, FASHION_MNIST_MD5, MNIST_LARGEST_FILE_BYTES, MNIST_MD5,
};

use strata_tensor::Tensor;

/// A labelled dataset that can cut itself into batches.
pub trait Dataset: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;
    /// `true` when the dataset holds no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of classes of the labels.
    fn classes(&self) -> usize;
    /// Shape of one example (no batch dimension).
    fn example_shape(&self) -> Vec<usize>;
    /// The examples at `indices` as one input tensor `[B, ..example_shape]`, and their labels.
    fn batch(&self, indices: &[usize]) -> (Tensor, Vec<u32>);
}

/// Splits `0..n` into consecutive batches of `batch_size` (the last one may be smaller).
pub fn batches(order: &[usize], batch_size: usize) -> impl Iterator<Item = &[usize]> {
    assert!(batch_size > 0, "batches: batch size must be positive");
    order.chunks(batch_size)
}
