//! The allocator's pool of freed big mappings ([`lstm_dse::bigalloc`]) and its trim, alone in
//! a test binary (the pool is the process's: other tests freeing big blocks would race). The
//! kernel is the oracle: `mincore` on a freed block's pages succeeds while the pool keeps its
//! mapping and fails with ENOMEM once the trim has unmapped it.

#[cfg(target_os = "linux")]
#[test]
fn trim_returns_the_kept_mappings_to_the_kernel() {
    use lstm_dse::bigalloc::{kept_bytes, trim, BIG};
    let mapped = |at: usize, len: usize| {
        let mut pages = vec![0u8; len.div_ceil(4096)];
        // SAFETY: mincore only reads the page tables of the range; `pages` has a byte a page.
        let r = unsafe { libc::mincore(at as *mut libc::c_void, len, pages.as_mut_ptr()) };
        r == 0
    };
    let before = kept_bytes();
    let block = std::hint::black_box(vec![1u8; 3 * BIG]);
    let (at, len) = (block.as_ptr() as usize, block.len());
    drop(block);
    assert!(
        kept_bytes() >= before + 3 * BIG,
        "a freed big block is kept"
    );
    assert!(mapped(at, len), "a kept block is still mapped");
    trim();
    assert_eq!(kept_bytes(), 0);
    assert!(!mapped(at, len), "the trim unmapped the block");
}
