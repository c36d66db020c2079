//! User-defined differentiable ops join the graph like built-in ones.

use approx::assert_abs_diff_eq;
use strata_tensor::gradcheck::{gradcheck, GradcheckOptions};
use strata_tensor::{no_grad, Context, Function, Generator, Tensor};

/// softplus(x) = ln(1 + eˣ), written as a user would: forward on tensors, backward by hand.
struct Softplus;

impl Function for Softplus {
    fn name(&self) -> &'static str {
        "softplus"
    }
    fn forward(&self, ctx: &mut Context, inputs: &[Tensor]) -> Tensor {
        ctx.save_for_backward(&[&inputs[0]]);
        inputs[0].exp().add_scalar(1.0).log()
    }
    fn backward(&self, ctx: &Context, grad_output: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(grad_output.mul(&ctx.saved_tensors()[0].sigmoid()))]
    }
}

/// f(a [m,k], b [k,n]) = tanh(a·b), computed from raw values to show that a forward pass
/// need not use tensor ops at all. da = (dy ⊙ (1 - y²))·bᵀ, db = aᵀ·(dy ⊙ (1 - y²)).
struct TanhMatmul;

impl Function for TanhMatmul {
    fn name(&self) -> &'static str {
        "tanh_matmul"
    }
    fn forward(&self, ctx: &mut Context, inputs: &[Tensor]) -> Tensor {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
        let (av, bv) = (a.to_vec(), b.to_vec());
        let mut y = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f32 = (0..k).map(|p| av[i * k + p] * bv[p * n + j]).sum();
                y[i * n + j] = dot.tanh();
            }
        }
        let y = Tensor::from_vec(y, &[m, n]);
        ctx.save_for_backward(&[a, b, &y]);
        y
    }
    fn backward(&self, ctx: &Context, dy: &Tensor) -> Vec<Option<Tensor>> {
        let [a, b, y] = ctx.saved_tensors() else {
            unreachable!("forward saves three tensors")
        };
        let dz = dy.mul(&y.mul(y).neg().add_scalar(1.0));
        vec![
            ctx.needs_input_grad(0).then(|| dz.matmul(&b.t())),
            ctx.needs_input_grad(1).then(|| a.t().matmul(&dz)),
        ]
    }
}

#[test]
fn a_user_op_matches_its_closed_form_and_passes_gradcheck() {
    let x = Tensor::from_vec(vec![-2.0, -0.5, 0.0, 0.7, 3.0], &[5]).set_requires_grad(true);
    let y = Tensor::apply(Softplus, &[&x]);
    assert_eq!(y.op_name(), Some("softplus"));
    for (v, out) in x.to_vec().iter().zip(y.to_vec()) {
        assert_abs_diff_eq!(out, (1.0 + v.exp()).ln(), epsilon = 1e-6);
    }
    let report = gradcheck(
        |t| Tensor::apply(Softplus, &[&t[0]]),
        &[x],
        &GradcheckOptions::default(),
    )
    .expect("softplus gradients");
    assert_eq!(report.elements_checked, 5);
}

#[test]
fn a_two_input_user_op_inside_a_larger_graph_passes_gradcheck() {
    let mut g = Generator::seed(3);
    let a = Tensor::normal(&[3, 4], 0.0, 0.5, &mut g).set_requires_grad(true);
    let b = Tensor::normal(&[4, 2], 0.0, 0.5, &mut g).set_requires_grad(true);
    let c = Tensor::normal(&[3, 2], 0.0, 1.0, &mut g).set_requires_grad(true);
    let report = gradcheck(
        // The user op's output feeds built-in ops, and its input is itself computed.
        |t| Tensor::apply(TanhMatmul, &[&t[0].mul_scalar(2.0), &t[1]]).mul(&t[2]),
        &[a, b, c],
        &GradcheckOptions::default(),
    )
    .expect("tanh_matmul gradients");
    assert_eq!(report.inputs_checked, 3);
    assert_eq!(report.elements_checked, 12 + 8 + 6);
}

#[test]
fn inputs_that_need_no_gradient_are_told_so_and_get_none() {
    let a = Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4], &[2, 2]).set_requires_grad(true);
    let b = Tensor::from_vec(vec![1.0, -1.0, 0.5, 2.0], &[2, 2]);
    Tensor::apply(TanhMatmul, &[&a, &b]).sum_all().backward();
    assert!(a.grad().is_some());
    assert!(b.grad().is_none());
}

#[test]
fn under_no_grad_nothing_is_recorded() {
    let x = Tensor::ones(&[3]).set_requires_grad(true);
    let y = {
        let _guard = no_grad();
        Tensor::apply(Softplus, &[&x])
    };
    assert!(!y.requires_grad());
    assert_eq!(y.op_name(), None);
}

struct WrongShape;

impl Function for WrongShape {
    fn name(&self) -> &'static str {
        "wrong_shape"
    }
    fn forward(&self, _ctx: &mut Context, inputs: &[Tensor]) -> Tensor {
        inputs[0].mul_scalar(2.0)
    }
    fn backward(&self, _ctx: &Context, _grad_output: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(Tensor::ones(&[7]))]
    }
}

#[test]
#[should_panic(expected = "wrong_shape: backward produced a gradient of shape [7]")]
fn a_backward_of_the_wrong_shape_is_named_in_the_panic() {
    let x = Tensor::ones(&[3]).set_requires_grad(true);
    Tensor::apply(WrongShape, &[&x]).sum_all().backward();
}

/// softplus with the classic slip of differentiating through the wrong function (tanh instead
/// of sigmoid): gradcheck must notice.
struct SoftplusWithWrongBackward;

impl Function for SoftplusWithWrongBackward {
    fn name(&self) -> &'static str {
        "softplus_wrong"
    }
    fn forward(&self, ctx: &mut Context, inputs: &[Tensor]) -> Tensor {
        Softplus.forward(ctx, inputs)
    }
    fn backward(&self, ctx: &Context, grad_output: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(grad_output.mul(&ctx.saved_tensors()[0].tanh()))]
    }
}

#[test]
fn gradcheck_catches_a_wrong_user_backward() {
    let x = Tensor::from_vec(vec![-1.0, 0.5, 2.0], &[3]).set_requires_grad(true);
    let failure = gradcheck(
        |t| Tensor::apply(SoftplusWithWrongBackward, &[&t[0]]),
        &[x],
        &GradcheckOptions::default(),
    )
    .expect_err("a wrong backward must fail the check");
    assert_eq!(failure.input, 0);
}
