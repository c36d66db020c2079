//! Labelled u8 images held in memory, normalised to f32 only when a batch is cut.
//!
//! The pixels stay as bytes (an MNIST train set is 47 MB of u8 instead of 188 MB of f32) and are
//! turned into `(p/255 - mean)/std` while a batch is gathered.

use rayon::prelude::*;
use strata_tensor::Tensor;

use super::{DataError, Dataset};

/// Below this many output values a batch is cut on one thread: spreading the work over rayon
/// costs more than it saves (a 100-image MNIST batch, 78,400 values, takes ~20 µs serially).
const PARALLEL_BATCH_VALUES: usize = 1 << 18;

/// A labelled set of `channels x height x width` u8 images, stored CHW per image.
#[derive(Clone)]
pub struct ImageDataset {
    name: String,
    pixels: Vec<u8>,
    labels: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
    classes: usize,
    mean: f32,
    std: f32,
}

impl std::fmt::Debug for ImageDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageDataset")
            .field("name", &self.name)
            .field("len", &self.labels.len())
            .field("shape", &[self.channels, self.height, self.width])
            .field("classes", &self.classes)
            .field("mean", &self.mean)
            .field("std", &self.std)
            .finish()
    }
}

impl ImageDataset {
    /// A dataset of `labels.len()` images; `pixels` holds them one after another, each CHW.
    /// Normalisation starts as `p/255` (mean 0, std 1). Fails when the sizes disagree or a label
    /// is not below `classes`; the error names the dataset.
    ///
    /// ```
    /// use strata_models::data::{Dataset, ImageDataset};
    /// // Two 1x2x2 grey images with labels 0 and 1.
    /// let pixels = vec![0, 255, 0, 255, 51, 51, 51, 51];
    /// let data = ImageDataset::new("tiny", pixels, vec![0, 1], 1, 2, 2, 2)?
    ///     .with_normalization(0.5, 0.5);
    /// let (x, labels) = data.batch(&[1, 0]);
    /// assert_eq!(x.shape(), &[2, 1, 2, 2]); // [N, C, H, W]
    /// assert_eq!(labels, vec![1, 0]);
    /// // Image 0 comes second: (p/255 - 0.5) / 0.5 maps 0 to -1 and 255 to 1.
    /// for (got, want) in x.to_vec()[4..].iter().zip([-1.0, 1.0, -1.0, 1.0]) {
    ///     assert!((got - want).abs() < 1e-6);
    /// }
    ///
    /// // A label that is not below `classes` is refused.
    /// assert!(ImageDataset::new("bad", vec![0; 4], vec![2], 1, 2, 2, 2).is_err());
    /// # Ok::<(), strata_models::data::DataError>(())
    /// ```
    pub fn new(
        name: impl Into<String>,
        pixels: Vec<u8>,
        labels: Vec<u8>,
        channels: usize,
        height: usize,
        width: usize,
        classes: usize,
    ) -> Result<ImageDataset, DataError> {
        let name = name.into();
        let bad = |problem: String| DataError::malformed(&name, problem);
        if channels == 0 || height == 0 || width == 0 {
            return Err(bad(format!(
                "image shape {channels}x{height}x{width} has a zero dimension"
            )));
        }
        if classes == 0 || classes > 256 {
            return Err(bad(format!("{classes} classes: u8 labels allow 1..=256")));
        }
        let per_image = channels * height * width;
        let expected = labels.len().checked_mul(per_image);
        if expected != Some(pixels.len()) {
            return Err(bad(format!(
                "{} pixel bytes do not make {} images of {channels}x{height}x{width} ({} bytes each)",
                pixels.len(),
                labels.len(),
                per_image
            )));
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            return Err(bad(format!(
                "label {label} at index {index} is out of range ({classes} classes)"
            )));
        }
        Ok(ImageDataset {
            name,
            pixels,
            labels,
            channels,
            height,
            width,
            classes,
            mean: 0.0,
            std: 1.0,
        })
    }

    /// The same images, batched as `(p/255 - mean) / std`.
    pub fn with_normalization(mut self, mean: f32, std: f32) -> ImageDataset {
        assert!(
            std.is_finite() && std > 0.0 && mean.is_finite(),
            "ImageDataset::with_normalization: std must be positive and finite and mean finite, got mean {mean} std {std}"
        );
        self.mean = mean;
        self.std = std;
        self
    }

    /// The name given at construction (e.g. `cifar10-train`); errors and logs use it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` when the dataset holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Channels per image: 1 for MNIST, 3 (RGB) for CIFAR-10.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of classes; every label is below it.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// `(mean, std)` applied after scaling to [0, 1].
    pub fn normalization(&self) -> (f32, f32) {
        (self.mean, self.std)
    }

    /// Bytes per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The label of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Every label, in image order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The raw CHW bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// All images' bytes, one image after another.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// How many examples each class has, indexed by class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// A new dataset of the examples at `indices` (in that order), same normalisation; e.g. to
    /// hold out a validation split.
    pub fn subset(&self, name: impl Into<String>, indices: &[usize]) -> ImageDataset {
        self.check_indices("subset", indices);
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        ImageDataset {
            name: name.into(),
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..*self
        }
    }

    fn check_indices(&self, op: &str, indices: &[usize]) {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.labels.len()) {
            panic!(
                "ImageDataset::{op}: index {bad} is out of range for {} ({} examples)",
                self.name,
                self.labels.len()
            );
        }
    }

    /// The normalised values of the images at `indices`, `[B, C, H, W]` flattened.
    pub fn normalized(&self, indices: &[usize]) -> Vec<f32> {
        self.check_indices("batch", indices);
        let n = self.image_len();
        let mut out = vec![0.0f32; indices.len() * n];
        // (p/255 - mean)/std as one multiply-add, which vectorises (a division or a table
        // lookup per value costs ~5x more); it differs from the formula by at most an ulp or two.
        let scale = 1.0 / (255.0 * self.std);
        let offset = -self.mean / self.std;
        let fill = |(dst, &i): (&mut [f32], &usize)| {
            for (d, &p) in dst.iter_mut().zip(&self.pixels[i * n..(i + 1) * n]) {
                *d = p as f32 * scale + offset;
            }
        };
        if out.len() >= PARALLEL_BATCH_VALUES {
            out.par_chunks_mut(n).zip(indices.par_iter()).for_each(fill);
        } else {
            out.chunks_mut(n).zip(indices.iter()).for_each(fill);
        }
        out
    }
}

impl Dataset for ImageDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn example_shape(&self) -> Vec<usize> {
        vec![self.channels, self.height, self.width]
    }

    fn batch(&self, indices: &[usize]) -> (Tensor, Vec<u32>) {
        let data = self.normalized(indices);
        let labels = indices.iter().map(|&i| self.labels[i] as u32).collect();
        (
            Tensor::from_vec(
                data,
                &[indices.len(), self.channels, self.height, self.width],
            ),
            labels,
        )
    }
}
