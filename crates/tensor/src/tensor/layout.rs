//! Where a tensor's elements sit in its storage: shape, strides and offset.
//!
//! Element `[i0, i1, ..]` of a tensor is `storage[offset + i0·strides[0] + i1·strides[1] + ..]`.
//! Views (transpose, narrow, expand, ...) make a new layout over the same storage; nothing is
//! copied until an op needs the elements dense.

use strata_kernels::strided::{contiguous_strides, is_contiguous, numel, Strided};

/// Shape, strides (in elements) and offset of one tensor over its storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) shape: Vec<usize>,
    pub(crate) strides: Vec<usize>,
    pub(crate) offset: usize,
}

impl Layout {
    /// Row-major strides over `shape`, starting at element 0: the layout of a fresh tensor.
    pub(crate) fn contiguous(shape: &[usize]) -> Layout {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// Number of elements: the product of the shape (1 for a scalar).
    pub(crate) fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Whether the elements are row-major and adjacent.
    pub(crate) fn is_contiguous(&self) -> bool {
        is_contiguous(&self.shape, &self.strides)
    }

    /// Row-major, adjacent and starting at element 0: the storage's first `numel` elements
    /// are exactly this tensor's, in order, so a kernel can take the buffer as it is.
    pub(crate) fn is_dense(&self) -> bool {
        self.offset == 0 && self.is_contiguous()
    }

    /// This layout over a storage slice.
    pub(crate) fn strided<'a>(&'a self, data: &'a [f32]) -> Strided<'a> {
        Strided::new(data, self.offset, &self.strides)
    }
}

/// The strided CUDA kernels' limit on dimensions (`MAX_DIMS` in kernels/elementwise.cu).
const MAX_DIMS: usize = 6;

/// The shape and operand strides as the strided kernels take them: dimensions of size 1
/// dropped and neighbours that step alike in every operand merged, so any view of up to
/// `MAX_DIMS` effective dimensions fits; a scalar becomes one dimension of size 1.
pub(crate) fn kernel_layout(
    op: &str,
    shape: &[usize],
    strides: &[&[usize]],
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides
                .iter()
                .zip(&out_strides)
                .all(|(s, o)| *o.last().unwrap() == s[d] * shape[d]);
        if mergeable {
            *out_shape.last_mut().unwrap() *= shape[d];
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                *o.last_mut().unwrap() = s[d];
            }
        } else {
            out_shape.push(shape[d]);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    if out_shape.is_empty() {
        out_shape.push(1);
        for o in out_strides.iter_mut() {
            o.push(0);
        }
    }
    assert!(
        out_shape.len() <= MAX_DIMS,
        "{op}: a view of {} dimensions that do not merge; the CUDA kernels take at most \
         {MAX_DIMS} (shape {shape:?})",
        out_shape.len()
    );
    (out_shape, out_strides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_layout_is_dense_and_views_are_not() {
        let fresh = Layout::contiguous(&[2, 3]);
        assert_eq!((fresh.strides.as_slice(), fresh.numel()), (&[3, 1][..], 6));
        assert!(fresh.is_dense());
        let transposed = Layout {
            shape: vec![3, 2],
            strides: vec![1, 3],
            offset: 0,
        };
        assert!(!transposed.is_contiguous());
        let row = Layout {
            shape: vec![3],
            strides: vec![1],
            offset: 3,
        };
        assert!(row.is_contiguous() && !row.is_dense());
    }

    #[test]
    fn kernel_layout_drops_ones_and_merges_neighbours() {
        // [2, 1, 3, 4] row-major is one run of 24; a transposed operand keeps two dims.
        let (shape, strides) = kernel_layout("t", &[2, 1, 3, 4], &[&[12, 12, 4, 1]]);
        assert_eq!((shape, strides), (vec![24], vec![vec![1]]));
        let (shape, strides) = kernel_layout("t", &[3, 4], &[&[4, 1], &[1, 3]]);
        assert_eq!((shape, strides), (vec![3, 4], vec![vec![4, 1], vec![1, 3]]));
        let (shape, strides) = kernel_layout("t", &[], &[&[]]);
        assert_eq!((shape, strides), (vec![1], vec![vec![0]]));
    }
}
