//! ImageDataset: validation, gathering and normalisation.

use strata_models::data::{DataError, Dataset, ImageDataset};
use strata_models::zoo::Normalization;

fn toy() -> ImageDataset {
    // 5 images of 1x2x3 whose pixels are 10*i + position, except image 4 which is 0 and 255.
    let mut pixels: Vec<u8> = (0..4)
        .flat_map(|i| (0..6).map(move |p| (10 * i + p) as u8))
        .collect();
    pixels.extend_from_slice(&[0, 255, 0, 255, 128, 1]);
    ImageDataset::new("toy", pixels, vec![3, 1, 4, 1, 5], 1, 2, 3, 10).unwrap()
}

#[test]
fn batch_gathers_in_index_order_and_normalises() {
    let (mean, std) = Normalization::Mnist.mean_std();
    let data = toy().with_normalization(mean, std);
    assert_eq!(data.normalization(), (0.1307, 0.3081));
    let (x, y) = data.batch(&[4, 0, 4]);
    assert_eq!(x.shape(), &[3, 1, 2, 3]);
    assert_eq!(y, vec![5, 3, 5]);
    let v = x.to_vec();
    let norm = |p: f32| (p / 255.0 - 0.1307) / 0.3081;
    // Pixel 255 with the MNIST normalisation.
    assert!((v[1] - (1.0 - 0.1307) / 0.3081).abs() < 1e-6, "{}", v[1]);
    assert!((v[0] - (-0.1307 / 0.3081)).abs() < 1e-6, "{}", v[0]);
    for p in 0..6 {
        assert!((v[6 + p] - norm(p as f32)).abs() < 1e-6);
        assert_eq!(v[12 + p], v[p]);
    }
    // Raw: p/255; CIFAR: (p/255 - 0.5)/0.5 spans [-1, 1].
    let (x, _) = toy().batch(&[4]);
    let want = [0.0, 1.0, 0.0, 1.0, 128.0 / 255.0, 1.0 / 255.0];
    assert!(
        x.to_vec()
            .iter()
            .zip(want)
            .all(|(a, b)| (a - b).abs() < 1e-7),
        "{:?}",
        x.to_vec()
    );
    let (x, _) = toy().with_normalization(0.5, 0.5).batch(&[4]);
    assert_eq!(&x.to_vec()[..2], &[-1.0, 1.0]);
    // An empty batch is a [0, ...] tensor.
    let (x, y) = toy().batch(&[]);
    assert_eq!(x.shape(), &[0, 1, 2, 3]);
    assert!(y.is_empty());
}

#[test]
fn large_batches_match_the_pixels_exactly() {
    // 600 images of 3x32x32: large enough to take the parallel path.
    let n = 600;
    let per = 3 * 32 * 32;
    let pixels: Vec<u8> = (0..n * per)
        .map(|i| ((i * 2654435761usize) >> 7) as u8)
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let data = ImageDataset::new("big", pixels.clone(), labels, 3, 32, 32, 10)
        .unwrap()
        .with_normalization(0.5, 0.25);
    let order: Vec<usize> = (0..n).rev().collect();
    let (x, y) = data.batch(&order);
    assert_eq!(x.shape(), &[n, 3, 32, 32]);
    let v = x.to_vec();
    for (k, &i) in order.iter().enumerate() {
        assert_eq!(y[k], (i % 10) as u32);
        for p in [0, 1, per / 2, per - 1] {
            let want = (pixels[i * per + p] as f32 / 255.0 - 0.5) / 0.25;
            assert!(
                (v[k * per + p] - want).abs() < 1e-6,
                "{} vs {want}",
                v[k * per + p]
            );
        }
    }
}

#[test]
fn accessors_and_class_counts() {
    let data = toy();
    assert_eq!(data.len(), 5);
    assert_eq!(Dataset::len(&data), 5);
    assert_eq!(data.label(2), 4);
    assert_eq!(data.labels(), &[3, 1, 4, 1, 5]);
    assert_eq!(data.image(1), &[10, 11, 12, 13, 14, 15]);
    assert_eq!(data.class_counts(), vec![0, 2, 0, 1, 1, 1, 0, 0, 0, 0]);
    assert_eq!(data.example_shape(), vec![1, 2, 3]);
    assert_eq!((data.channels(), data.height(), data.width()), (1, 2, 3));
    let sub = data.with_normalization(0.5, 0.5).subset("toy-val", &[3, 0]);
    assert_eq!(sub.name(), "toy-val");
    assert_eq!(sub.labels(), &[1, 3]);
    assert_eq!(sub.image(0), &[30, 31, 32, 33, 34, 35]);
    assert_eq!(sub.normalization(), (0.5, 0.5));
}

#[test]
fn constructor_rejects_inconsistent_sizes_and_labels() {
    let msg = |r: Result<ImageDataset, DataError>| r.unwrap_err().to_string();
    let m = msg(ImageDataset::new(
        "odd",
        vec![0; 11],
        vec![0, 1],
        1,
        2,
        3,
        10,
    ));
    assert!(m.contains("odd") && m.contains("11 pixel bytes"), "{m}");
    let m = msg(ImageDataset::new(
        "lbl",
        vec![0; 12],
        vec![0, 10],
        1,
        2,
        3,
        10,
    ));
    assert!(
        m.contains("lbl: label 10 at index 1 is out of range (10 classes)"),
        "{m}"
    );
    let m = msg(ImageDataset::new("zero", vec![], vec![], 1, 0, 3, 10));
    assert!(m.contains("zero dimension"), "{m}");
}

#[test]
#[should_panic(expected = "index 5 is out of range for toy (5 examples)")]
fn out_of_range_index_panics_with_a_message() {
    toy().batch(&[0, 5]);
}
