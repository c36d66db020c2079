//! The tar reader behind the dataset fetchers does not trust a package before its checksums are
//! checked: a member that claims, or decompresses to, more than the package's largest file is
//! an error before anything of that size is allocated.

use std::io::Write;
use std::path::Path;

use strata_models::data::{read_tar_members, DataError, MNIST_LARGEST_FILE_BYTES};

/// A tar stream of `members` (path, bytes); each header's size field says `claimed(len)`.
fn tar_stream(members: &[(&str, &[u8])], claimed: impl Fn(u64) -> u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_path(path).unwrap();
        header.set_size(claimed(bytes.len() as u64));
        header.set_mode(0o644);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn read(stream: &[u8], limit: u64) -> Result<Vec<u8>, DataError> {
    read_tar_members(stream, Path::new("pkg.tgz"), "data", &["images"], limit)
        .map(|mut found| found.remove("images").unwrap())
}

#[test]
fn members_within_the_bound_are_read_and_decompressed() {
    let plain = vec![7u8; 3000];
    let stream = tar_stream(&[("data/images", &plain)], |n| n);
    assert_eq!(read(&stream, 3000).unwrap(), plain);
    let stream = tar_stream(&[("./data/images.gz", &gzip(&plain))], |n| n);
    assert_eq!(read(&stream, 3000).unwrap(), plain);
}

/// Rules out sizing the buffer from the header's claim: a member claiming an exabyte would abort
/// the process (or exhaust memory) before any checksum could reject it.
#[test]
fn a_member_claiming_more_than_the_largest_file_is_refused_before_allocating() {
    let stream = tar_stream(&[("data/images", b"tiny")], |_| 1 << 60);
    let message = read(&stream, MNIST_LARGEST_FILE_BYTES)
        .unwrap_err()
        .to_string();
    for part in [
        "pkg.tgz",
        "data/images",
        "claims 1152921504606846976 bytes",
        "47040016",
    ] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

/// Rules out an unbounded gunzip: a few kilobytes that inflate past the package's largest file
/// are refused, having inflated at most one byte more than the bound.
#[test]
fn a_member_decompressing_past_the_bound_is_refused() {
    let bomb = gzip(&vec![0u8; 200_000]);
    assert!(bomb.len() < 1_000, "{} bytes", bomb.len());
    let stream = tar_stream(&[("data/images.gz", &bomb)], |n| n);
    let message = read(&stream, 100_000).unwrap_err().to_string();
    assert!(
        message.contains("decompresses to more than 100000 bytes"),
        "{message}"
    );
    assert!(read(&stream, 200_000).is_ok());
}
