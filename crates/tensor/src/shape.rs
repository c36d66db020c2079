//! Shape arithmetic shared by the ops.

/// The shape two operands broadcast to (NumPy rules: align from the right; each pair of sizes
/// must be equal or one of them 1). Panics naming `op` and both shapes otherwise.
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() {
            1
        } else {
            a[i - (rank - a.len())]
        };
        let db = if i < rank - b.len() {
            1
        } else {
            b[i - (rank - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => panic!("{op}: shapes {a:?} and {b:?} cannot be broadcast together"),
        };
    }
    out
}

/// Strides that view a tensor of `shape`/`strides` as the larger `target` shape: new leading
/// dimensions and expanded size-1 dimensions get stride 0.
pub(crate) fn broadcast_strides(
    op: &str,
    shape: &[usize],
    strides: &[usize],
    target: &[usize],
) -> Vec<usize> {
    assert!(
        target.len() >= shape.len(),
        "{op}: cannot broadcast shape {shape:?} to the smaller rank of {target:?}"
    );
    let lead = target.len() - shape.len();
    (0..target.len())
        .map(|i| {
            if i < lead {
                0
            } else if shape[i - lead] == target[i] {
                strides[i - lead]
            } else if shape[i - lead] == 1 {
                0
            } else {
                panic!("{op}: cannot broadcast shape {shape:?} to {target:?}")
            }
        })
        .collect()
}

/// Resolves a possibly negative axis (`-1` = last) against `rank`, panicking with `op` otherwise.
pub(crate) fn normalize_axis(op: &str, axis: isize, rank: usize) -> usize {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    assert!(
        (0..r).contains(&a),
        "{op}: axis {axis} is out of range for a tensor of rank {rank}"
    );
    a as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes("t", &[2, 1, 3], &[4, 1]), vec![2, 4, 3]);
        assert_eq!(broadcast_shapes("t", &[], &[5]), vec![5]);
        assert_eq!(
            broadcast_strides("t", &[4, 1], &[1, 1], &[2, 4, 3]),
            vec![0, 1, 0]
        );
    }

    #[test]
    #[should_panic(expected = "add: shapes [2, 3] and [4] cannot be broadcast")]
    fn incompatible_shapes_name_the_op() {
        broadcast_shapes("add", &[2, 3], &[4]);
    }
}
