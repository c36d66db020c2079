//! Walking strided data in row-major order.
//!
//! A strided operand is a flat slice plus, per dimension, a step in elements: element
//! `[i0, i1, ..]` lives at `offset + i0*s0 + i1*s1 + ..`. Transposes swap strides and
//! broadcasting uses a stride of 0, so no kernel needs to know how a view was made.

/// A read-only strided operand: `data[offset + Σ index[d] * strides[d]]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    /// The backing storage; every element the view can reach must lie inside it
    /// (see [`Strided::check_bounds`]).
    pub data: &'a [f32],
    /// Position in `data` of element `[0, 0, ..]`.
    pub offset: usize,
    /// Step in elements per dimension; 0 repeats (broadcasts) a dimension.
    pub strides: &'a [usize],
}

impl<'a> Strided<'a> {
    /// A contiguous row-major operand of the given strides (as computed by [`contiguous_strides`]).
    pub fn new(data: &'a [f32], offset: usize, strides: &'a [usize]) -> Self {
        Strided {
            data,
            offset,
            strides,
        }
    }

    /// Panics, naming `op`, if any index of `shape` would fall outside `data`.
    pub fn check_bounds(&self, op: &str, shape: &[usize]) {
        assert_eq!(
            shape.len(),
            self.strides.len(),
            "{op}: shape {shape:?} has {} dimensions but strides {:?} have {}",
            shape.len(),
            self.strides,
            self.strides.len()
        );
        if shape.contains(&0) {
            return;
        }
        let last = max_offset(shape, self.strides) + self.offset;
        assert!(
            last < self.data.len(),
            "{op}: strided view (shape {shape:?}, strides {:?}, offset {}) reaches element {last} \
             but storage holds {}",
            self.strides,
            self.offset,
            self.data.len()
        );
    }

    /// True when the operand is plain row-major for `shape` (ignoring size-1 dimensions).
    pub fn is_contiguous(&self, shape: &[usize]) -> bool {
        is_contiguous(shape, self.strides)
    }
}

/// Row-major strides of a contiguous tensor of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut step = 1;
    for d in (0..shape.len()).rev() {
        strides[d] = step;
        step *= shape[d];
    }
    strides
}

/// Whether `strides` describe row-major contiguous data for `shape`. Dimensions of size 1
/// may carry any stride since they are never stepped over.
pub fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1;
    for d in (0..shape.len()).rev() {
        if shape[d] != 1 && strides[d] != expected {
            return false;
        }
        expected *= shape[d];
    }
    true
}

/// The largest offset (relative to the view's start) any index of `shape` reaches.
pub fn max_offset(shape: &[usize], strides: &[usize]) -> usize {
    shape
        .iter()
        .zip(strides)
        .map(|(&n, &s)| n.saturating_sub(1) * s)
        .sum()
}

/// Number of elements of `shape`.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Calls `row(k, starts)` for every row (all dimensions but the last) in row-major order,
/// starting at row `first_row` and covering `count` rows, where `starts[j]` is the offset of the
/// row's first element in operand `j`. The caller walks the row itself using the last
/// stride, which keeps the innermost loop free of index arithmetic.
pub fn for_each_row<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
    offsets: [usize; N],
    first_row: usize,
    count: usize,
    mut row: impl FnMut(usize, [usize; N]),
) {
    let outer = &shape[..shape.len().saturating_sub(1)];
    // Odometer over the outer dimensions, started at `first_row`.
    let mut index = vec![0usize; outer.len()];
    let mut rest = first_row;
    for d in (0..outer.len()).rev() {
        index[d] = rest % outer[d];
        rest /= outer[d];
    }
    let mut starts = offsets;
    for (j, s) in strides.iter().enumerate() {
        starts[j] += index
            .iter()
            .zip(s.iter())
            .map(|(i, st)| i * st)
            .sum::<usize>();
    }
    for k in 0..count {
        row(first_row + k, starts);
        // Advance the odometer by one row, adjusting each operand's start incrementally.
        for d in (0..outer.len()).rev() {
            index[d] += 1;
            for (j, s) in strides.iter().enumerate() {
                starts[j] += s[d];
            }
            if index[d] < outer[d] {
                break;
            }
            for (j, s) in strides.iter().enumerate() {
                starts[j] -= s[d] * outer[d];
            }
            index[d] = 0;
        }
    }
}

/// Copies `src` (a view of `shape`) into the strided destination `dst[dst_offset + Σ i·dst_strides]`.
/// Used to scatter a gradient back into a slice of a larger tensor. Panics, naming
/// `copy_strided`, if either side would go out of bounds.
pub fn copy_strided(
    shape: &[usize],
    src: Strided<'_>,
    dst: &mut [f32],
    dst_offset: usize,
    dst_strides: &[usize],
) {
    src.check_bounds("copy_strided (source)", shape);
    Strided::new(dst, dst_offset, dst_strides).check_bounds("copy_strided (destination)", shape);
    if numel(shape) == 0 {
        return;
    }
    let row_len = *shape.last().unwrap_or(&1);
    let rows = numel(shape) / row_len;
    let s_last = *src.strides.last().unwrap_or(&0);
    let d_last = *dst_strides.last().unwrap_or(&0);
    for_each_row(
        shape,
        [src.strides, dst_strides],
        [src.offset, dst_offset],
        0,
        rows,
        |_, [s, d]| {
            for j in 0..row_len {
                dst[d + j * d_last] = src.data[s + j * s_last];
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_transposed_view_visit_the_right_offsets() {
        // A 2x3 row-major matrix viewed transposed as 3x2 (strides [1, 3]).
        let mut seen = Vec::new();
        for_each_row(&[3, 2], [&[1, 3]], [0], 0, 3, |_, [start]| {
            seen.push(start);
        });
        assert_eq!(seen, vec![0, 1, 2]);
        let mut seen = Vec::new();
        for_each_row(&[2, 2, 2], [&[4, 2, 1]], [1], 1, 3, |k, [start]| {
            seen.push((k, start));
        });
        assert_eq!(seen, vec![(1, 3), (2, 5), (3, 7)]);
    }

    #[test]
    fn contiguity_ignores_unit_dimensions() {
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(!is_contiguous(&[3, 2], &[1, 3]));
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
