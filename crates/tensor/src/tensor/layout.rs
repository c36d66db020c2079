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
}
