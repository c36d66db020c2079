//! Recycled buffers for op outputs.
//!
//! A training step allocates the same activation and gradient sizes batch after batch. A fresh
//! `vec![0.0; n]` is zeroed every time, by `memset` or, for large buffers, by the kernel one
//! page fault at a time, only for the op's kernel to overwrite every element. Instead a
//! storage hands its buffer back here when the last tensor using it is dropped, and ops whose
//! kernels overwrite their whole output take it from here: next step, the same sizes come back
//! without being zeroed.
//!
//! The cache is bounded (per length and in total), so memory stays flat whatever the sizes;
//! when it is full, the lengths used longest ago make room (one program often trains several
//! networks in turn, and the last one's sizes are the ones that matter).

use std::collections::HashMap;
use std::sync::Mutex;

/// Buffers shorter than this come straight from the allocator, which is fast for them.
const MIN_LEN: usize = 2048;
/// At most this many idle buffers of one length.
const MAX_PER_LEN: usize = 32;
/// At most this many idle bytes in all.
const MAX_BYTES: usize = 256 << 20;

struct BufferCache {
    by_len: HashMap<usize, Idle>,
    bytes: usize,
    /// Counts takes and recycles: the time in "least recently used".
    clock: u64,
}

/// The idle buffers of one length, and when that length was last taken or given back.
#[derive(Default)]
struct Idle {
    buffers: Vec<Vec<f32>>,
    last_used: u64,
}

impl BufferCache {
    fn new() -> BufferCache {
        BufferCache {
            by_len: HashMap::new(),
            bytes: 0,
            clock: 0,
        }
    }

    /// Drops the idle buffers of the least recently used lengths other than `keep` until
    /// `needed` more bytes fit; false if they cannot.
    fn make_room(&mut self, needed: usize, keep: usize) -> bool {
        while self.bytes + needed > MAX_BYTES {
            let oldest = self
                .by_len
                .iter()
                .filter(|(&len, idle)| len != keep && !idle.buffers.is_empty())
                .min_by_key(|(_, idle)| idle.last_used)
                .map(|(&len, _)| len);
            let Some(len) = oldest else { return false };
            let freed = self
                .by_len
                .remove(&len)
                .map_or(0, |idle| idle.buffers.len());
            self.bytes -= freed * len * 4;
        }
        true
    }
}

static CACHE: Mutex<Option<BufferCache>> = Mutex::new(None);

/// A buffer of exactly `len` floats whose contents are unspecified (initialised, but
/// whatever an earlier tensor left there): only for outputs a kernel overwrites entirely.
pub(crate) fn take_for_overwrite(len: usize) -> Vec<f32> {
    if len >= MIN_LEN {
        let mut guard = CACHE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cache = guard.get_or_insert_with(BufferCache::new);
        cache.clock += 1;
        let now = cache.clock;
        // Asking for a length is what makes the cache keep buffers of it (see `recycle`).
        let idle = cache.by_len.entry(len).or_default();
        idle.last_used = now;
        if let Some(buffer) = idle.buffers.pop() {
            cache.bytes -= len * 4;
            return buffer;
        }
    }
    vec![0.0; len]
}

/// Keeps `buffer` for a later [`take_for_overwrite`] of the same length, if there is room.
pub(crate) fn recycle(buffer: Vec<f32>) {
    let len = buffer.len();
    // Only exact-capacity buffers: a recycled buffer must not hold memory it does not show.
    if len < MIN_LEN || buffer.capacity() != len {
        return;
    }
    let mut guard = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = guard.get_or_insert_with(BufferCache::new);
    cache.clock += 1;
    let now = cache.clock;
    // Only lengths that ops have asked for: a buffer no op will take (a data loader's input
    // batch, say) would sit here until the per-length cap, growing memory epoch after epoch.
    let Some(idle) = cache.by_len.get_mut(&len) else {
        return;
    };
    idle.last_used = now;
    if idle.buffers.len() >= MAX_PER_LEN || !cache.make_room(len * 4, len) {
        return;
    }
    let idle = cache.by_len.entry(len).or_default();
    idle.buffers.push(buffer);
    cache.bytes += len * 4;
}

/// Idle buffers of length `len` and idle bytes in all, held by the cache now.
#[cfg(test)]
pub(crate) fn idle(len: usize) -> (usize, usize) {
    let guard = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.as_ref().map_or((0, 0), |cache| {
        (
            cache.by_len.get(&len).map_or(0, |idle| idle.buffers.len()),
            cache.bytes,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache is one per process: these tests take turns with it.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn a_recycled_buffer_comes_back_for_its_length_only() {
        let _turn = serial();
        let len = MIN_LEN + 12_345;
        let mut buffer = take_for_overwrite(len);
        buffer[7] = 3.5;
        let address = buffer.as_ptr();
        recycle(buffer);
        assert_eq!(idle(len).0, 1);
        assert_eq!(take_for_overwrite(len + 1).len(), len + 1);
        let again = take_for_overwrite(len);
        assert_eq!((again.len(), again.as_ptr(), again[7]), (len, address, 3.5));
        // Small buffers are not kept.
        recycle(vec![1.0; 16]);
        assert_eq!(take_for_overwrite(16), vec![0.0; 16]);
    }

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let _turn = serial();
        let len = MIN_LEN + 777;
        drop(take_for_overwrite(len));
        drop(take_for_overwrite(len + 1));
        for _ in 0..MAX_PER_LEN + 10 {
            recycle(vec![0.0; len]);
        }
        let (kept, bytes) = idle(len);
        assert_eq!(kept, MAX_PER_LEN);
        assert!(bytes <= MAX_BYTES);
        // Buffers with spare capacity are not kept: they would hide memory.
        let mut roomy = Vec::with_capacity(2 * len);
        roomy.resize(len + 1, 0.0);
        recycle(roomy);
        assert_eq!(idle(len + 1).0, 0);
    }

    #[test]
    fn a_full_cache_drops_the_least_recently_used_lengths_for_new_ones() {
        let _turn = serial();
        // Fill the budget with one length, then give back buffers of another: the old
        // length's buffers make room for them.
        let (old, new) = (MAX_BYTES / 4 / MAX_PER_LEN + 1, MIN_LEN + 4242);
        drop(take_for_overwrite(old));
        drop(take_for_overwrite(new));
        for _ in 0..MAX_PER_LEN {
            recycle(vec![0.0; old]);
        }
        recycle(vec![0.0; new]);
        let (kept_new, bytes) = idle(new);
        assert_eq!(kept_new, 1, "no room was made for a new length");
        assert!(idle(old).0 < MAX_PER_LEN && bytes <= MAX_BYTES);
    }

    #[test]
    fn lengths_no_op_asks_for_are_not_kept() {
        let _turn = serial();
        // An input batch made by a data loader is dropped after its step; no op output has
        // its length, so keeping it would only grow memory.
        let len = MIN_LEN + 9_191;
        for _ in 0..4 {
            recycle(vec![0.0; len]);
        }
        assert_eq!(idle(len).0, 0);
        drop(take_for_overwrite(len));
        recycle(vec![0.0; len]);
        assert_eq!(idle(len).0, 1);
    }
}
