//! Rotation: exact results for right angles, torchvision's direction convention, bilinear
//! interpolation checked on linear images, fill, and seeded determinism.

use approx::assert_abs_diff_eq;
use strata_models::data::{random_angles, random_rotation, rotate_batch, rotate_image};
use strata_tensor::{Generator, Tensor};

/// numpy's `rot90(a, k=1)` of an n x n image: counter-clockwise, `out[i][j] = a[j][n-1-i]`.
fn rot90_ccw(a: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = a[j * n + (n - 1 - i)];
        }
    }
    out
}

#[test]
fn zero_degrees_is_the_identity() {
    let img: Vec<f32> = (0..2 * 5 * 7).map(|i| (i * 37 % 101) as f32).collect();
    assert_eq!(rotate_image(&img, 2, 5, 7, 0.0, -9.0), img);
}

#[test]
fn ninety_degrees_turns_counter_clockwise() {
    // 3x3: [[1,2,3],[4,5,6],[7,8,9]] turned counter-clockwise is [[3,6,9],[2,5,8],[1,4,7]].
    let img: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let out = rotate_image(&img, 1, 3, 3, 90.0, 0.0);
    assert_abs_diff_eq!(
        out.as_slice(),
        &[3., 6., 9., 2., 5., 8., 1., 4., 7.][..],
        epsilon = 1e-5
    );
    // -90 turns clockwise.
    let out = rotate_image(&img, 1, 3, 3, -90.0, 0.0);
    assert_abs_diff_eq!(
        out.as_slice(),
        &[7., 4., 1., 8., 5., 2., 9., 6., 3.][..],
        epsilon = 1e-5
    );
    // 4x4 (centre between pixels) with two channels.
    let img: Vec<f32> = (0..32).map(|v| v as f32).collect();
    let out = rotate_image(&img, 2, 4, 4, 90.0, 0.0);
    let mut want = rot90_ccw(&img[..16], 4);
    want.extend(rot90_ccw(&img[16..], 4));
    assert_abs_diff_eq!(out.as_slice(), want.as_slice(), epsilon = 1e-4);
    // 270 = three quarter turns.
    let out = rotate_image(&img[..16], 1, 4, 4, 270.0, 0.0);
    let want = rot90_ccw(&rot90_ccw(&rot90_ccw(&img[..16], 4), 4), 4);
    assert_abs_diff_eq!(out.as_slice(), want.as_slice(), epsilon = 1e-4);
}

#[test]
fn half_turn_twice_is_the_identity() {
    let (h, w) = (9, 12);
    let img: Vec<f32> = (0..h * w)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let once = rotate_image(&img, 1, h, w, 180.0, 0.0);
    // One half turn is the point reflection through the centre.
    for y in 0..h {
        for x in 0..w {
            let want = img[(h - 1 - y) * w + (w - 1 - x)];
            assert!((once[y * w + x] - want).abs() < 1e-5, "({y},{x})");
        }
    }
    let twice = rotate_image(&once, 1, h, w, 180.0, 0.0);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            assert!(
                (twice[y * w + x] - img[y * w + x]).abs() < 1e-5,
                "({y},{x})"
            );
        }
    }
}

#[test]
fn bilinear_sampling_reproduces_a_linear_image_at_the_rotated_position() {
    // Bilinear interpolation is exact on a linear image, so every pixel whose source lies
    // inside the image must equal the linear function at the inversely rotated position:
    // x_in = cos(x-cx) - sin(y-cy) + cx, y_in = sin(x-cx) + cos(y-cy) + cy.
    let (h, w) = (28usize, 28usize);
    let f = |x: f32, y: f32| 0.3 * x - 0.7 * y + 2.0;
    let img: Vec<f32> = (0..h * w)
        .map(|i| f((i % w) as f32, (i / w) as f32))
        .collect();
    for degrees in [30.0f32, -17.5, 45.0, 123.0] {
        let out = rotate_image(&img, 1, h, w, degrees, f32::NAN);
        let (s, c) = degrees.to_radians().sin_cos();
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let mut checked = 0;
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                let (xi, yi) = (c * dx - s * dy + cx, s * dx + c * dy + cy);
                if xi >= 0.0 && yi >= 0.0 && xi <= (w - 1) as f32 && yi <= (h - 1) as f32 {
                    let got = out[y * w + x];
                    assert!(
                        (got - f(xi, yi)).abs() < 1e-3,
                        "{degrees}° ({y},{x}): {got} vs {}",
                        f(xi, yi)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > h * w / 2);
    }
}

#[test]
fn fill_shows_in_the_corners_at_45_degrees() {
    let (h, w) = (28, 28);
    let img = vec![1.0f32; h * w];
    let fill = -0.4242;
    let out = rotate_image(&img, 1, h, w, 45.0, fill);
    for (y, x) in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (1, 1)] {
        assert_eq!(out[y * w + x], fill, "corner ({y},{x})");
    }
    // The centre and the middle of each edge stay inside the turned square.
    for (y, x) in [(13, 13), (14, 14), (13, 1), (1, 14)] {
        assert!(
            (out[y * w + x] - 1.0).abs() < 1e-5,
            "({y},{x}) = {}",
            out[y * w + x]
        );
    }
    // Along the edge of the turned square values blend between 1 and the fill.
    assert!(out.iter().any(|&v| v > fill + 0.1 && v < 0.9));
}

#[test]
fn random_rotation_is_seeded_and_per_image() {
    let (n, h, w) = (128, 28, 28);
    let data: Vec<f32> = (0..n * h * w)
        .map(|i| ((i * 2654435761usize) >> 11 & 255) as f32 / 255.0)
        .collect();
    let batch = Tensor::from_vec(data.clone(), &[n, 1, h, w]);
    let a = random_rotation(&batch, 15.0, -0.5, &mut Generator::seed(7)).to_vec();
    let b = random_rotation(&batch, 15.0, -0.5, &mut Generator::seed(7)).to_vec();
    let c = random_rotation(&batch, 15.0, -0.5, &mut Generator::seed(8)).to_vec();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // The angles come from the generator in image order, each within [-15, 15], and the
    // parallel batch equals rotating each image on its own.
    let angles = random_angles(n, 15.0, &mut Generator::seed(7));
    assert!(angles.iter().all(|a| (-15.0..=15.0).contains(a)));
    assert!(angles.windows(2).any(|p| p[0] != p[1]));
    let per = h * w;
    for i in [0, 1, 63, 127] {
        let one = rotate_image(&data[i * per..(i + 1) * per], 1, h, w, angles[i], -0.5);
        assert_eq!(&a[i * per..(i + 1) * per], &one[..], "image {i}");
    }
    // rotate_batch with explicit angles agrees, and keeps the shape.
    let r = rotate_batch(&batch, &angles, -0.5);
    assert_eq!(r.shape(), &[n, 1, h, w]);
    assert_eq!(r.to_vec(), a);
    // Max 0 degrees leaves the batch as it was.
    let same = random_rotation(&batch, 0.0, -0.5, &mut Generator::seed(1)).to_vec();
    assert_eq!(same, data);
}

#[test]
#[should_panic(expected = "expected a batch of images [N, C, H, W], got shape [28, 28]")]
fn a_batch_must_be_four_dimensional() {
    random_rotation(
        &Tensor::from_vec(vec![0.0; 784], &[28, 28]),
        10.0,
        0.0,
        &mut Generator::seed(0),
    );
}
