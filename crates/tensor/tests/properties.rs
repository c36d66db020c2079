//! Property tests: views, broadcasting binary ops and reductions on random shapes and layouts,
//! each checked element by element against a naive reference that only does index arithmetic
//! on row-major values.

use proptest::collection::vec;
use proptest::prelude::*;
use strata_tensor::{Generator, Tensor};

/// Row-major values with their shape: the reference every strided result is compared with.
#[derive(Clone, Debug)]
struct Naive {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The multi-index of row-major position `flat` in `shape`.
fn unravel(shape: &[usize], mut flat: usize) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        index[d] = flat % shape[d];
        flat /= shape[d];
    }
    index
}

/// Row-major position of `index` in `shape`.
fn ravel(shape: &[usize], index: &[usize]) -> usize {
    index
        .iter()
        .zip(shape)
        .fold(0, |flat, (&i, &n)| flat * n + i)
}

impl Naive {
    fn at(&self, index: &[usize]) -> f32 {
        self.values[ravel(&self.shape, index)]
    }

    /// A result of `shape` whose element at each index is `source(index)`.
    fn build(shape: Vec<usize>, source: impl Fn(&[usize]) -> f32) -> Naive {
        let values = (0..numel(&shape))
            .map(|flat| source(&unravel(&shape, flat)))
            .collect();
        Naive { shape, values }
    }

    fn permute(&self, order: &[usize]) -> Naive {
        let shape = order.iter().map(|&d| self.shape[d]).collect();
        Naive::build(shape, |out| {
            let mut index = vec![0; order.len()];
            for (i, &d) in order.iter().enumerate() {
                index[d] = out[i];
            }
            self.at(&index)
        })
    }

    fn narrow(&self, axis: usize, start: usize, len: usize) -> Naive {
        let mut shape = self.shape.clone();
        shape[axis] = len;
        Naive::build(shape, |out| {
            let mut index = out.to_vec();
            index[axis] += start;
            self.at(&index)
        })
    }

    fn reshape(&self, shape: &[usize]) -> Naive {
        assert_eq!(numel(shape), self.values.len());
        Naive {
            shape: shape.to_vec(),
            values: self.values.clone(),
        }
    }

    /// NumPy broadcasting of this operand to `shape`.
    fn broadcast_to(&self, shape: &[usize]) -> Naive {
        let lead = shape.len() - self.shape.len();
        Naive::build(shape.to_vec(), |out| {
            let index: Vec<usize> = self
                .shape
                .iter()
                .enumerate()
                .map(|(d, &n)| if n == 1 { 0 } else { out[d + lead] })
                .collect();
            self.at(&index)
        })
    }
}

/// A shape of `rank` dimensions in `1..=max_dim` (rank drawn from `ranks`).
fn shapes(
    ranks: std::ops::RangeInclusive<usize>,
    max_dim: usize,
) -> impl Strategy<Value = Vec<usize>> {
    ranks.prop_flat_map(move |rank| vec(1..=max_dim, rank))
}

/// `n` values from `seed`: small integers (so maxima tie and sums are exact) or uniform draws.
fn values(n: usize, seed: u64, integers: bool) -> Vec<f32> {
    let mut g = Generator::seed(seed);
    (0..n)
        .map(|_| {
            if integers {
                g.below(7) as f32 - 3.0
            } else {
                8.0 * g.uniform() - 4.0
            }
        })
        .collect()
}

/// A tensor of `shape` holding the row-major `values`, stored in one of four layouts:
/// contiguous; dimensions stored in reverse order and permuted back (every stride "wrong");
/// embedded with padding and an offset in a larger tensor and narrowed out; or both.
fn materialize(shape: &[usize], values: &[f32], layout: u8) -> Tensor {
    materialize_in(shape, values, layout).0
}

/// As [`materialize`], also returning the contiguous tensor that owns the whole storage.
fn materialize_in(shape: &[usize], values: &[f32], layout: u8) -> (Tensor, Tensor) {
    let rank = shape.len();
    let (reversed, padded) = (layout & 1 == 1, layout & 2 == 2);
    // Storage shape: the padded sizes, in stored order.
    let pad = |d: usize| if padded { 1 + d % 2 } else { 0 };
    let stored_dims: Vec<usize> = if reversed {
        (0..rank).rev().collect()
    } else {
        (0..rank).collect()
    };
    let stored_shape: Vec<usize> = stored_dims.iter().map(|&d| shape[d] + pad(d)).collect();
    let mut storage = vec![f32::NAN; numel(&stored_shape)];
    for (flat, &v) in values.iter().enumerate() {
        let index = unravel(shape, flat);
        let stored_index: Vec<usize> = stored_dims.iter().map(|&d| index[d] + pad(d)).collect();
        storage[ravel(&stored_shape, &stored_index)] = v;
    }
    let root = Tensor::from_vec(storage, &stored_shape);
    let mut t = root.clone();
    if padded {
        for (axis, &d) in stored_dims.iter().enumerate() {
            t = t.narrow(axis as isize, pad(d), shape[d]);
        }
    }
    if reversed {
        let back: Vec<usize> = (0..rank).rev().collect();
        t = t.permute(&back);
    }
    assert_eq!(t.shape(), shape);
    (t, root)
}

/// Asserts that `t` holds exactly the reference's elements, read three ways: `to_vec`, `get`
/// at every index, and after `contiguous()`.
fn assert_matches(t: &Tensor, r: &Naive, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(t.shape(), r.shape.as_slice(), "{}: shape", what);
    prop_assert_eq!(
        t.strides().len(),
        t.rank(),
        "{}: one stride per dimension",
        what
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    prop_assert_eq!(bits(&t.to_vec()), bits(&r.values), "{}: to_vec", what);
    for flat in 0..r.values.len() {
        let index = unravel(&r.shape, flat);
        prop_assert_eq!(
            t.get(&index).to_bits(),
            r.values[flat].to_bits(),
            "{}: get({:?})",
            what,
            index
        );
    }
    let c = t.contiguous();
    prop_assert!(c.is_contiguous(), "{}: contiguous() is contiguous", what);
    prop_assert_eq!(bits(&c.to_vec()), bits(&r.values), "{}: contiguous()", what);
    Ok(())
}

/// A factorisation of `n` into `rank` sizes, chosen by `g` (`[0]` padded with ones when n = 0).
fn random_factorisation(n: usize, rank: usize, g: &mut Generator) -> Vec<usize> {
    let mut shape = vec![1; rank.max(1)];
    if n == 0 {
        let at = g.below(shape.len());
        shape[at] = 0;
        return shape;
    }
    let mut rest = n;
    let mut p = 2;
    while rest > 1 {
        while rest.is_multiple_of(p) {
            let at = g.below(shape.len());
            shape[at] *= p;
            rest /= p;
        }
        p += 1;
    }
    shape
}

/// Applies one view op chosen by `choice` to the tensor and to the reference. Returns whether
/// the op may have copied (reshape of a non-contiguous tensor).
fn apply_view(choice: u64, t: &mut Tensor, r: &mut Naive) -> (String, bool) {
    let mut g = Generator::seed(choice);
    let rank = t.rank();
    let signed = |axis: usize, g: &mut Generator| -> isize {
        if g.below(2) == 0 {
            axis as isize
        } else {
            axis as isize - rank as isize
        }
    };
    match choice % 8 {
        0 if rank > 0 => {
            let mut order: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                order.swap(i, g.below(i + 1));
            }
            *t = t.permute(&order);
            *r = r.permute(&order);
            (format!("permute({order:?})"), false)
        }
        1 if rank > 0 => {
            let (a, b) = (g.below(rank), g.below(rank));
            let mut order: Vec<usize> = (0..rank).collect();
            order.swap(a, b);
            *t = if rank == 2 && a != b && g.below(2) == 0 {
                t.t()
            } else {
                t.transpose(signed(a, &mut g), signed(b, &mut g))
            };
            *r = r.permute(&order);
            (format!("transpose({a}, {b})"), false)
        }
        2 if rank > 0 => {
            let axis = g.below(rank);
            let size = t.shape()[axis];
            // Now and then an empty range: size-0 dimensions must work too.
            let len = if g.below(8) == 0 {
                0
            } else {
                g.below(size + 1)
            };
            let start = g.below(size - len + 1);
            *t = t.narrow(signed(axis, &mut g), start, len);
            *r = r.narrow(axis, start, len);
            (format!("narrow({axis}, {start}, {len})"), false)
        }
        3 => {
            let shape = random_factorisation(t.numel(), 1 + g.below(4), &mut g);
            let copies = !t.is_contiguous();
            *t = t.reshape(&shape);
            *r = r.reshape(&shape);
            (format!("reshape({shape:?})"), copies)
        }
        4 if rank < 5 => {
            // Expand one size-1 dimension (if any) and maybe add a leading one.
            let mut shape = t.shape().to_vec();
            if let Some(d) = (0..rank).find(|&d| shape[d] == 1) {
                shape[d] = 1 + g.below(3);
            }
            if g.below(2) == 0 {
                shape.insert(0, 1 + g.below(3));
            }
            *t = t.expand(&shape);
            *r = r.broadcast_to(&shape);
            (format!("expand({shape:?})"), false)
        }
        5 if rank < 5 => {
            let axis = g.below(rank + 1);
            *t = t.unsqueeze(axis);
            let mut shape = r.shape.clone();
            shape.insert(axis, 1);
            *r = r.reshape(&shape);
            (format!("unsqueeze({axis})"), false)
        }
        6 => match (0..rank).find(|&d| t.shape()[d] == 1) {
            Some(axis) => {
                *t = t.squeeze(signed(axis, &mut g));
                let mut shape = r.shape.clone();
                shape.remove(axis);
                *r = r.reshape(&shape);
                (format!("squeeze({axis})"), false)
            }
            None => ("(no size-1 dimension to squeeze)".into(), false),
        },
        7 if rank > 0 => {
            let start = g.below(rank + 1);
            let copies = !t.is_contiguous();
            *t = t.flatten_from(start);
            let mut shape = r.shape[..start].to_vec();
            shape.push(r.shape[start..].iter().product());
            *r = r.reshape(&shape);
            (format!("flatten_from({start})"), copies)
        }
        _ => ("(skipped)".into(), false),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A chain of up to six views of a contiguous or strided tensor reads the elements index
    /// arithmetic says it should, and (unless a reshape had to copy) still shares the storage:
    /// a write through the base shows through the view.
    #[test]
    fn chains_of_views_match_index_arithmetic(
        shape in shapes(1..=4, 5),
        layout in 0u8..4,
        choices in vec(any::<u64>(), 1..=6),
    ) {
        let n = numel(&shape);
        // Distinct values, so any misplaced element shows.
        let start: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let (base, root) = materialize_in(&shape, &start, layout);
        let mut t = base.clone();
        let mut r = Naive { shape: shape.clone(), values: start.clone() };
        let mut copied = false;
        let mut trail = format!("{shape:?} layout {layout}");
        for &choice in &choices {
            let (what, copies) = apply_view(choice, &mut t, &mut r);
            copied |= copies;
            trail += &format!(" -> {what}");
            assert_matches(&t, &r, &trail)?;
        }
        if !copied {
            prop_assert!(t.shares_storage_with(&base), "{}: a view copied", trail);
            // Negate every element of the storage in place: the view must see it.
            root.update_data(|d| d.iter_mut().for_each(|v| *v = -*v));
            let negated = Naive {
                shape: r.shape.clone(),
                values: r.values.iter().map(|v| -v).collect(),
            };
            assert_matches(&t, &negated, &format!("{trail} after writing the storage"))?;
        }
    }

    /// add, sub, mul and div broadcast as NumPy does, on contiguous and strided operands, and
    /// give exactly the f32 result of the scalar op on the broadcast elements.
    #[test]
    fn broadcasting_binary_ops_match_the_naive_loop(
        out_shape in shapes(0..=4, 4),
        drop_a in 0usize..3,
        drop_b in 0usize..3,
        ones_a in any::<u8>(),
        ones_b in any::<u8>(),
        layouts in (0u8..4, 0u8..4),
        op in 0usize..4,
        seed in any::<u64>(),
    ) {
        let operand_shape = |drop: usize, ones: u8| -> Vec<usize> {
            let lead = drop.min(out_shape.len());
            out_shape[lead..]
                .iter()
                .enumerate()
                .map(|(d, &n)| if ones >> d & 1 == 1 { 1 } else { n })
                .collect()
        };
        let (sa, sb) = (operand_shape(drop_a, ones_a), operand_shape(drop_b, ones_b));
        let ra = Naive { values: values(numel(&sa), seed, false), shape: sa.clone() };
        let rb = Naive { values: values(numel(&sb), seed ^ 1, false), shape: sb.clone() };
        let (a, b) = (materialize(&sa, &ra.values, layouts.0), materialize(&sb, &rb.values, layouts.1));
        // The broadcast shape is the output shape, except where both operands have a 1.
        let rank = sa.len().max(sb.len());
        let expected_shape: Vec<usize> = (0..rank)
            .map(|i| {
                let dim = |s: &[usize]| if i + s.len() < rank { 1 } else { s[i + s.len() - rank] };
                dim(&sa).max(dim(&sb))
            })
            .collect();
        let (fa, fb) = (ra.broadcast_to(&expected_shape), rb.broadcast_to(&expected_shape));
        let (name, got, scalar): (&str, Tensor, fn(f32, f32) -> f32) = match op {
            0 => ("add", a.add(&b), |x, y| x + y),
            1 => ("sub", a.sub(&b), |x, y| x - y),
            2 => ("mul", a.mul(&b), |x, y| x * y),
            _ => ("div", a.div(&b), |x, y| x / y),
        };
        let want = Naive {
            shape: expected_shape.clone(),
            values: fa.values.iter().zip(&fb.values).map(|(&x, &y)| scalar(x, y)).collect(),
        };
        assert_matches(&got, &want, &format!("{name}({sa:?} layout {}, {sb:?} layout {})", layouts.0, layouts.1))?;
    }

    /// sum, mean and max over any set of axes (keepdim or not, axes given negative or not),
    /// and argmax along one axis, on contiguous and strided tensors, against a loop over the
    /// reduced elements in row-major order (sums in f64, as the kernel documents).
    #[test]
    fn reductions_match_the_naive_loop(
        shape in shapes(1..=4, 5),
        layout in 0u8..4,
        axis_mask in any::<u8>(),
        negative in any::<bool>(),
        keepdim in any::<bool>(),
        integers in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let rank = shape.len();
        let reference = Naive { values: values(numel(&shape), seed, integers), shape: shape.clone() };
        let t = materialize(&shape, &reference.values, layout);
        let axes: Vec<usize> = (0..rank).filter(|d| axis_mask >> d & 1 == 1).collect();
        let axes_arg: Vec<isize> = axes
            .iter()
            .map(|&a| if negative { a as isize - rank as isize } else { a as isize })
            .collect();
        let kept: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
        let kept_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
        let reduced_shape: Vec<usize> = axes.iter().map(|&d| shape[d]).collect();
        let out_shape: Vec<usize> = if keepdim {
            (0..rank).map(|d| if axes.contains(&d) { 1 } else { shape[d] }).collect()
        } else {
            kept_shape.clone()
        };
        // The elements of one output, in row-major order of the reduced axes.
        let group = |k: usize| -> Vec<f32> {
            let kept_index = unravel(&kept_shape, k);
            (0..numel(&reduced_shape))
                .map(|q| {
                    let reduced_index = unravel(&reduced_shape, q);
                    let mut index = vec![0; rank];
                    for (i, &d) in kept.iter().enumerate() {
                        index[d] = kept_index[i];
                    }
                    for (i, &d) in axes.iter().enumerate() {
                        index[d] = reduced_index[i];
                    }
                    reference.at(&index)
                })
                .collect()
        };
        let outputs = numel(&kept_shape);
        let sums: Vec<f32> = (0..outputs)
            .map(|k| group(k).iter().map(|&v| v as f64).sum::<f64>() as f32)
            .collect();
        let count = numel(&reduced_shape);
        let means: Vec<f32> = sums.iter().map(|&s| s * (1.0 / count as f32)).collect();
        let maxima: Vec<f32> = (0..outputs)
            .map(|k| group(k).into_iter().fold(f32::NEG_INFINITY, f32::max))
            .collect();
        let what = format!("{shape:?} layout {layout} axes {axes_arg:?} keepdim {keepdim}");
        let naive = |values: Vec<f32>| Naive { shape: out_shape.clone(), values };
        assert_matches(&t.sum(&axes_arg, keepdim), &naive(sums), &format!("sum {what}"))?;
        assert_matches(&t.mean(&axes_arg, keepdim), &naive(means), &format!("mean {what}"))?;
        if !axes.is_empty() {
            assert_matches(&t.max(&axes_arg, keepdim), &naive(maxima), &format!("max {what}"))?;
        }
        // argmax along each single axis: the first index of the maximum.
        for axis in 0..rank {
            let others: Vec<usize> = (0..rank).filter(|&d| d != axis).collect();
            let other_shape: Vec<usize> = others.iter().map(|&d| shape[d]).collect();
            let want: Vec<f32> = (0..numel(&other_shape))
                .map(|k| {
                    let o = unravel(&other_shape, k);
                    let mut index = vec![0; rank];
                    for (i, &d) in others.iter().enumerate() {
                        index[d] = o[i];
                    }
                    let mut best = 0;
                    for j in 0..shape[axis] {
                        index[axis] = j;
                        let v = reference.at(&index);
                        index[axis] = best;
                        if v > reference.at(&index) {
                            best = j;
                        }
                    }
                    best as f32
                })
                .collect();
            assert_matches(
                &t.argmax(axis as isize, false),
                &Naive { shape: other_shape, values: want },
                &format!("argmax axis {axis} of {shape:?} layout {layout}"),
            )?;
        }
        // sum_to, the adjoint of broadcasting, on the keepdim shape.
        if keepdim {
            let sums = naive((0..outputs).map(|k| group(k).iter().map(|&v| v as f64).sum::<f64>() as f32).collect());
            assert_matches(&t.sum_to(&out_shape), &sums, &format!("sum_to {what}"))?;
        }
    }
}
