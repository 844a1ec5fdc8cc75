//! The allocator's pool of freed big mappings ([`lstm_dse::bigalloc`]) and its trim, alone in
//! a test binary (the pool is the process's: other tests freeing big blocks would race).

#[cfg(target_os = "linux")]
#[test]
fn trim_returns_the_kept_mappings_to_the_kernel() {
    use lstm_dse::bigalloc::{kept_bytes, trim, BIG};
    let before = kept_bytes();
    drop(std::hint::black_box(vec![1u8; 3 * BIG]));
    assert!(
        kept_bytes() >= before + 3 * BIG,
        "a freed big block is kept"
    );
    trim();
    assert_eq!(kept_bytes(), 0);
}
