//! The graph itself: accumulation, shared sub-expressions, no_grad, detach, views, errors.

use strata_tensor::{no_grad, Tensor};

#[test]
fn a_tensor_used_twice_receives_the_sum_of_both_gradients() {
    // y = x·x + 3x  => dy/dx = 2x + 3
    let x = Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3]).set_requires_grad(true);
    let y = x.mul(&x).add(&x.mul_scalar(3.0)).sum_all();
    y.backward();
    assert_eq!(x.grad().unwrap().to_vec(), vec![5.0, -1.0, 4.0]);
}

#[test]
fn diamond_graph_orders_nodes_topologically() {
    // a = x·2; b = a + x; c = a·b  => dc/dx = b·2 + a·(2 + 1) = 2(3x) + 2x·3 = 12x
    let x = Tensor::from_vec(vec![1.5, -1.0], &[2]).set_requires_grad(true);
    let a = x.mul_scalar(2.0);
    let b = a.add(&x);
    a.mul(&b).sum_all().backward();
    assert_eq!(x.grad().unwrap().to_vec(), vec![18.0, -12.0]);
}

#[test]
fn gradients_accumulate_across_backward_calls_until_cleared() {
    let w = Tensor::from_vec(vec![2.0], &[1]).set_requires_grad(true);
    w.mul_scalar(3.0).sum_all().backward();
    w.mul_scalar(3.0).sum_all().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![6.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
fn no_grad_and_detach_stop_the_graph() {
    let x = Tensor::ones(&[2]).set_requires_grad(true);
    {
        let _guard = no_grad();
        assert!(!x.exp().requires_grad());
    }
    assert!(x.exp().requires_grad());
    let y = x.detach().mul(&x).sum_all();
    y.backward();
    // Only the non-detached factor contributes: d(c·x)/dx = c = 1.
    assert_eq!(x.grad().unwrap().to_vec(), vec![1.0, 1.0]);
}

#[test]
fn views_share_storage_and_never_copy() {
    let x = Tensor::arange(12).reshape(&[3, 4]);
    let t = x.t();
    assert!(t.shares_storage_with(&x));
    assert!(!t.is_contiguous());
    assert_eq!(t.shape(), &[4, 3]);
    assert_eq!(t.get(&[1, 2]), 9.0);
    let n = x.narrow(1, 1, 2);
    assert!(n.shares_storage_with(&x));
    assert_eq!(n.to_vec(), vec![1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
    let e = Tensor::from_vec(vec![1.0, 2.0], &[2, 1]).expand(&[2, 3]);
    assert_eq!(e.strides(), &[1, 0]);
    assert_eq!(e.to_vec(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    let s = x.unsqueeze(0).squeeze(0);
    assert!(s.shares_storage_with(&x));
    // reshape of a non-contiguous view must copy, and give row-major order of the view.
    let r = t.reshape(&[12]);
    assert!(!r.shares_storage_with(&x));
    assert_eq!(&r.to_vec()[..4], &[0.0, 4.0, 8.0, 1.0]);
    // Writes through the base are seen by the view.
    x.update_data(|d| d[9] = -1.0);
    assert_eq!(t.get(&[1, 2]), -1.0);
}

#[test]
fn matmul_of_transposed_views_matches_known_product() {
    // A = [[1,2],[3,4]], B = [[5,6],[7,8]]; Aᵀ·B = [[26,30],[38,44]]
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = Tensor::from_vec(vec![5.0, 6.0, 7.0, 8.0], &[2, 2]);
    assert_eq!(a.t().matmul(&b).to_vec(), vec![26.0, 30.0, 38.0, 44.0]);
    assert_eq!(a.matmul(&b).to_vec(), vec![19.0, 22.0, 43.0, 50.0]);
}

#[test]
fn reductions_give_known_values() {
    let x = Tensor::from_vec(vec![1.0, 5.0, 2.0, 7.0, 0.0, 7.0], &[2, 3]);
    assert_eq!(x.sum(&[0], false).to_vec(), vec![8.0, 5.0, 9.0]);
    assert_eq!(x.sum(&[1], true).shape(), &[2, 1]);
    assert_eq!(x.mean_all().item(), 22.0 / 6.0);
    assert_eq!(x.max(&[1], false).to_vec(), vec![5.0, 7.0]);
    assert_eq!(x.argmax(1, false).to_vec(), vec![1.0, 0.0]);
}

#[test]
fn display_shows_values_shape_and_graph() {
    let x = Tensor::from_vec(vec![1.0, 2.5, -3.0, 4.0], &[2, 2]).set_requires_grad(true);
    let text = format!("{}", x.relu());
    assert!(text.starts_with("tensor([[1.0000, 2.5000],"), "{text}");
    assert!(
        text.contains("shape=[2, 2]") && text.contains("grad_fn=relu"),
        "{text}"
    );
    let big = format!("{}", Tensor::zeros(&[100, 100]));
    assert!(big.contains("..."), "long tensors are elided");
}

#[test]
fn seeded_creation_is_reproducible() {
    let a = Tensor::uniform(&[5], -1.0, 1.0, &mut strata_tensor::Generator::seed(3));
    let b = Tensor::uniform(&[5], -1.0, 1.0, &mut strata_tensor::Generator::seed(3));
    let c = Tensor::normal(&[5], 0.0, 1.0, &mut strata_tensor::Generator::seed(4));
    assert_eq!(a.to_vec(), b.to_vec());
    assert_ne!(a.to_vec(), c.to_vec());
    assert!(a.to_vec().iter().all(|v| (-1.0..1.0).contains(v)));
}

#[test]
#[should_panic(expected = "matmul: shapes [2, 3] and [4, 5] do not chain")]
fn matmul_shape_error_names_both_shapes() {
    Tensor::zeros(&[2, 3]).matmul(&Tensor::zeros(&[4, 5]));
}

#[test]
#[should_panic(expected = "add: shapes [2, 3] and [4] cannot be broadcast")]
fn broadcast_error_names_both_shapes() {
    Tensor::zeros(&[2, 3]).add(&Tensor::zeros(&[4]));
}

#[test]
#[should_panic(
    expected = "conv2d: input [1, 2, 5, 5] must be [N, Cin, H, W] and weight [3, 1, 3, 3]"
)]
fn conv_channel_mismatch_names_both_shapes() {
    Tensor::zeros(&[1, 2, 5, 5]).conv2d(&Tensor::zeros(&[3, 1, 3, 3]), None, (1, 1), (0, 0));
}

#[test]
#[should_panic(expected = "narrow: range 2..5 is out of bounds")]
fn narrow_out_of_range_is_refused() {
    Tensor::zeros(&[4, 3]).narrow(0, 2, 3);
}

#[test]
#[should_panic(
    expected = "softmax_cross_entropy: label 10 at row 1 is out of range for 10 classes"
)]
fn label_out_of_range_is_refused() {
    Tensor::zeros(&[2, 10]).softmax_cross_entropy(&[3, 10]);
}

#[test]
#[should_panic(expected = "already freed")]
fn a_second_backward_through_a_freed_graph_is_an_error() {
    let x = Tensor::ones(&[2]).set_requires_grad(true);
    let h = x.exp();
    let y = h.sum_all();
    y.backward();
    // h's node is gone; a new loss that goes through h cannot reach x any more.
    h.mul_scalar(2.0).sum_all().backward();
}

#[test]
fn tensors_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tensor>();
    let x = Tensor::arange(4);
    let sum = std::thread::spawn(move || x.sum_all().item())
        .join()
        .unwrap();
    assert_eq!(sum, 6.0);
}
