//! Course examples with known answers, through the tensor API.

use approx::assert_abs_diff_eq;
use strata_tensor::Tensor;

fn course_input() -> Tensor {
    Tensor::from_vec(
        vec![
            1.0, 2.0, 3.0, 0.0, //
            0.0, 1.0, 2.0, 3.0, //
            3.0, 0.0, 1.0, 2.0, //
            2.0, 3.0, 0.0, 1.0,
        ],
        &[1, 1, 4, 4],
    )
}

fn course_kernel() -> Tensor {
    Tensor::from_vec(
        vec![2.0, 0.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 2.0],
        &[1, 1, 3, 3],
    )
}

#[test]
fn convolution_of_the_course_example() {
    let y = course_input().conv2d(&course_kernel(), None, (1, 1), (0, 0));
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.to_vec(), vec![15.0, 16.0, 6.0, 15.0]);
    let bias = Tensor::from_vec(vec![3.0], &[1]);
    let y = course_input().conv2d(&course_kernel(), Some(&bias), (1, 1), (0, 0));
    assert_eq!(y.to_vec(), vec![18.0, 19.0, 9.0, 18.0]);
}

#[test]
fn padding_one_keeps_the_size() {
    let y = course_input().conv2d(&course_kernel(), None, (1, 1), (1, 1));
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    // Top-left: only the kernel's bottom-right 2x2 [1,2;0,2] overlaps input [1,2;0,1] -> 1+4+0+2.
    assert_eq!(y.get(&[0, 0, 0, 0]), 7.0);
    // The interior 2x2 is the unpadded result.
    assert_eq!(y.get(&[0, 0, 1, 1]), 15.0);
    assert_eq!(y.get(&[0, 0, 2, 2]), 15.0);
}

#[test]
fn output_size_formula_holds_for_stride_two() {
    for (h, k, p, s) in [(7, 3, 1, 2), (8, 3, 0, 2), (28, 5, 2, 2), (9, 2, 1, 3)] {
        let x = Tensor::ones(&[1, 1, h, h]);
        let w = Tensor::ones(&[1, 1, k, k]);
        let y = x.conv2d(&w, None, (s, s), (p, p));
        let expected = (h + 2 * p - k) / s + 1;
        assert_eq!(
            y.shape(),
            &[1, 1, expected, expected],
            "H={h} K={k} P={p} S={s}"
        );
    }
}

#[test]
fn max_pool_of_the_course_example() {
    let x = Tensor::from_vec(
        vec![
            1.0, 2.0, 1.0, 0.0, //
            0.0, 1.0, 2.0, 3.0, //
            3.0, 0.0, 1.0, 2.0, //
            2.0, 4.0, 0.0, 1.0,
        ],
        &[1, 1, 4, 4],
    )
    .set_requires_grad(true);
    let y = x.max_pool2d((2, 2), (2, 2), (0, 0));
    assert_eq!(y.to_vec(), vec![2.0, 3.0, 4.0, 2.0]);
    y.sum_all().backward();
    // The gradient lands on each window's maximum.
    let g = x.grad().unwrap().to_vec();
    let expected_positions = [1, 7, 13, 11];
    for (i, &v) in g.iter().enumerate() {
        assert_eq!(
            v,
            if expected_positions.contains(&i) {
                1.0
            } else {
                0.0
            },
            "at {i}"
        );
    }
}

#[test]
fn softmax_cross_entropy_of_uniform_logits_is_log_classes() {
    let loss = Tensor::zeros(&[4, 3]).softmax_cross_entropy(&[0, 1, 2, 1]);
    assert_abs_diff_eq!(loss.item(), 3f32.ln(), epsilon = 1e-6);
}
