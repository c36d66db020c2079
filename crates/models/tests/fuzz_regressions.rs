//! Inputs the fuzz targets of fuzz/ found problems with, replayed through the same framing as
//! the target. Every reader must return (an error or data) without asking for more memory
//! than the input could fill: this test binary's allocator records the largest request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use strata_models::data::{load_mnist_dir, read_idx_images, read_idx_labels, MNIST_FILE_NAMES};

/// The system allocator, remembering the largest single request since the last reset.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The idx_reader target's framing: two bytes choose where the input is cut into an image file
/// and a label file, which are also written as the test set of a whole MNIST folder.
fn replay_idx(dir: &Path, data: &[u8]) {
    let cut = 2 + usize::from(u16::from_le_bytes([data[0], data[1]])) % (data.len() - 1);
    let (images, labels) = data[2..].split_at(cut - 2);
    for (name, bytes) in MNIST_FILE_NAMES
        .iter()
        .zip([images, labels, images, labels])
    {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let _ = read_idx_images(&dir.join(MNIST_FILE_NAMES[0]));
    let _ = read_idx_labels(&dir.join(MNIST_FILE_NAMES[1]));
    let _ = load_mnist_dir(dir, "fuzz");
}

/// fuzz/artifacts/idx_reader/oom-da20e2d36efa451dc10047c4de64148b7c0cbf33: two small gzip
/// streams where one part's last four bytes, read as the gzip size trailer, claimed about
/// 2^32 bytes; the reader reserved 2 GiB for an 87-byte input before decompressing anything.
const GZIP_TRAILER_CLAIMS_GIGABYTES: [u8; 87] = [
    51, 0, 31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 99, 96, 224, 96, 102, 50, 254, 217, 180, 96, 96, 96, 2,
    98, 16, 205, 204, 168, 230, 93, 48, 117, 215, 125, 22, 77, 191, 226, 25, 123, 31, 177, 235, 4,
    150, 1, 0, 147, 227, 227, 214, 34, 0, 0, 0, 31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 99, 96, 224, 96,
    100, 96, 96, 96, 98, 102, 7, 0, 121, 106, 213, 32, 10, 0, 0, 0,
];

#[test]
fn idx_inputs_found_by_fuzzing_allocate_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    // One gzip stream whose trailer is patched to claim 4 GiB - 1: the same problem, built by
    // hand (the decoder then rejects the size, but only after the reservation was made).
    let mut patched = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4])
            .unwrap();
        gz.finish().unwrap()
    };
    let n = patched.len();
    patched[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut framed = (patched.len() as u16).to_le_bytes().to_vec();
    framed.extend_from_slice(&patched);
    framed.extend_from_slice(&[0, 0, 8, 1, 0, 0, 0, 1, 7]);

    for (name, input) in [
        ("oom-da20e2d3", &GZIP_TRAILER_CLAIMS_GIGABYTES[..]),
        ("patched trailer", &framed[..]),
    ] {
        LARGEST.store(0, Ordering::Relaxed);
        replay_idx(dir.path(), input);
        let largest = LARGEST.load(Ordering::Relaxed);
        // A few hundred bytes of input expand to at most ~1000 times as much; 16 MiB leaves
        // room for the allocator's and the thread pool's own needs.
        assert!(
            largest < 16 << 20,
            "{name}: a {}-byte input made a {largest}-byte allocation",
            input.len()
        );
    }
}
