//! Data augmentation on batches of images `[N, C, H, W]`.
//!
//! Rotation follows torchvision's `RandomRotation(degrees, InterpolationMode.BILINEAR, fill)`:
//! each output pixel samples the input at the inversely rotated position, about the image
//! centre `((W-1)/2, (H-1)/2)`, and a positive angle turns the content counter-clockwise as
//! displayed (row 0 at the top). With `y` pointing down, output pixel `(x, y)` reads
//!
//! ```text
//! x_in = cos θ (x - cx) - sin θ (y - cy) + cx
//! y_in = sin θ (x - cx) + cos θ (y - cy) + cy
//! ```
//!
//! bilinearly from its four neighbours, where a neighbour outside the image counts as `fill`
//! (as if the image were padded with `fill`). Interior pixels match torchvision exactly; on the
//! border torchvision's tensor path blends with an interpolated mask instead, which differs by a
//! fraction of a grey level there.

use rayon::prelude::*;
use strata_tensor::{Generator, Tensor};

/// Batches smaller than this many values are rotated on one thread.
const PARALLEL_VALUES: usize = 1 << 15;

/// Rotates one CHW image (`image.len() == channels*height*width`) by `degrees`
/// counter-clockwise about its centre, into `out` (same size).
pub fn rotate_image_into(
    image: &[f32],
    out: &mut [f32],
    channels: usize,
    height: usize,
    width: usize,
    degrees: f32,
    fill: f32,
) {
    let plane = height * width;
    assert_eq!(
        image.len(),
        channels * plane,
        "rotate_image: {} values are not one {channels}x{height}x{width} image",
        image.len()
    );
    assert_eq!(
        out.len(),
        image.len(),
        "rotate_image: output size differs from input size"
    );
    let theta = (degrees as f64).to_radians();
    let (sin, cos) = (theta.sin() as f32, theta.cos() as f32);
    let cx = (width as f32 - 1.0) * 0.5;
    let cy = (height as f32 - 1.0) * 0.5;
    let (w, h) = (width as isize, height as isize);
    for y in 0..height {
        let dy = y as f32 - cy;
        // x_in and y_in are affine in x: start of the row plus x times (cos, sin).
        let row_x = cx - cos * cx - sin * dy;
        let row_y = cy - sin * cx + cos * dy;
        for x in 0..width {
            let xf = x as f32;
            let xi = row_x + cos * xf;
            let yi = row_y + sin * xf;
            // floor() without a libm call on baseline x86-64 (no SSE4.1 round): truncation of
            // a value shifted positive. It is exact for coordinates above -2; below that the
            // sample lies wholly outside either way, and the weights are not used.
            let x0 = (xi + 2.0) as isize - 2;
            let y0 = (yi + 2.0) as isize - 2;
            let (fx, fy) = (xi - x0 as f32, yi - y0 as f32);
            let at = y * width + x;
            if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                // All four neighbours inside: the common case, no per-tap checks.
                let i = y0 as usize * width + x0 as usize;
                let (w00, w01) = ((1.0 - fx) * (1.0 - fy), fx * (1.0 - fy));
                let (w10, w11) = ((1.0 - fx) * fy, fx * fy);
                for c in 0..channels {
                    let src = &image[c * plane..];
                    out[c * plane + at] = w00 * src[i]
                        + w01 * src[i + 1]
                        + w10 * src[i + width]
                        + w11 * src[i + width + 1];
                }
            } else if x0 < -1 || y0 < -1 || x0 >= w || y0 >= h {
                // All four neighbours outside.
                for c in 0..channels {
                    out[c * plane + at] = fill;
                }
            } else {
                let taps = [
                    (x0, y0, (1.0 - fx) * (1.0 - fy)),
                    (x0 + 1, y0, fx * (1.0 - fy)),
                    (x0, y0 + 1, (1.0 - fx) * fy),
                    (x0 + 1, y0 + 1, fx * fy),
                ];
                for c in 0..channels {
                    let src = &image[c * plane..(c + 1) * plane];
                    let mut v = 0.0;
                    for &(tx, ty, wt) in &taps {
                        v += wt
                            * if tx >= 0 && ty >= 0 && tx < w && ty < h {
                                src[ty as usize * width + tx as usize]
                            } else {
                                fill
                            };
                    }
                    out[c * plane + at] = v;
                }
            }
        }
    }
}

/// One CHW image rotated by `degrees` (counter-clockwise) about its centre, bilinear, with
/// `fill` where the rotated image does not cover.
pub fn rotate_image(
    image: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    degrees: f32,
    fill: f32,
) -> Vec<f32> {
    let mut out = vec![0.0; image.len()];
    rotate_image_into(image, &mut out, channels, height, width, degrees, fill);
    out
}

/// Rotates every image of `batch` (`[N, C, H, W]`) by `angles[i]` degrees.
pub fn rotate_batch(batch: &Tensor, angles: &[f32], fill: f32) -> Tensor {
    let shape = batch.shape().to_vec();
    assert!(
        shape.len() == 4,
        "rotate_batch: expected a batch of images [N, C, H, W], got shape {shape:?}"
    );
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    assert_eq!(
        angles.len(),
        n,
        "rotate_batch: {} angles for a batch of {n} images",
        angles.len()
    );
    let per = c * h * w;
    let mut out = vec![0.0f32; n * per];
    if per > 0 {
        batch.with_contiguous(|src| {
            let rotate = |((dst, img), &deg): ((&mut [f32], &[f32]), &f32)| {
                rotate_image_into(img, dst, c, h, w, deg, fill)
            };
            if out.len() >= PARALLEL_VALUES {
                out.par_chunks_mut(per)
                    .zip(src.par_chunks(per))
                    .zip(angles.par_iter())
                    .for_each(rotate);
            } else {
                out.chunks_mut(per)
                    .zip(src.chunks(per))
                    .zip(angles.iter())
                    .for_each(rotate);
            }
        });
    }
    Tensor::from_vec(out, &shape)
}

/// The angles [`random_rotation`] draws: one per image, uniform in `[-max, max]` degrees,
/// drawn in order from `generator`.
pub fn random_angles(n: usize, max_degrees: f32, generator: &mut Generator) -> Vec<f32> {
    (0..n)
        .map(|_| max_degrees * (2.0 * generator.uniform() - 1.0))
        .collect()
}

/// torchvision's `RandomRotation(max_degrees, BILINEAR, fill=fill)` applied to each image of
/// `batch` (`[N, C, H, W]`) with its own angle, uniform in `[-max, max]`. The angles come from
/// `generator` in image order, so a seed fixes the result at any thread count. `fill` is in the
/// batch's units (for a normalised batch, the normalised value of black: `-mean/std`).
pub fn random_rotation(
    batch: &Tensor,
    max_degrees: f32,
    fill: f32,
    generator: &mut Generator,
) -> Tensor {
    let rows = batch.shape().first().copied().unwrap_or(0);
    random_rotation_of_rows(batch, max_degrees, fill, generator, 0..rows, rows)
}

/// [`random_rotation`] of rows `rows` of a global batch of `global_rows` images, as a
/// data-parallel rank holds them: the generator draws the whole batch's angles, as one process
/// would, and these rows take theirs, so an image turns by the same angle whatever the number
/// of ranks.
pub fn random_rotation_of_rows(
    batch: &Tensor,
    max_degrees: f32,
    fill: f32,
    generator: &mut Generator,
    rows: std::ops::Range<usize>,
    global_rows: usize,
) -> Tensor {
    assert!(
        batch.shape().len() == 4,
        "random_rotation: expected a batch of images [N, C, H, W], got shape {:?}",
        batch.shape()
    );
    assert!(
        rows.len() == batch.shape()[0] && rows.end <= global_rows,
        "random_rotation: rows {rows:?} of a batch of {global_rows} do not match a batch of \
         shape {:?}",
        batch.shape()
    );
    let angles = random_angles(global_rows, max_degrees, generator);
    rotate_batch(batch, &angles[rows], fill)
}
