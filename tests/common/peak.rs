//! Memory estimates against measured peaks: the peak resident memory of this test binary's
//! children (`getrusage`; one test per binary, so the children are its own) and the estimate
//! a `--max-memory` refusal prints.

/// Peak resident memory, in bytes, of the largest child waited for so far.
pub fn children_peak() -> u64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) }, 0);
    u.ru_maxrss as u64 * 1024
}

/// The estimate a refusal gives ("needs about 402.3 MiB of memory"), in bytes, rounded up.
pub fn needs(stderr: &str) -> u64 {
    let at = stderr.find("needs about ").expect("an estimate") + "needs about ".len();
    let mut words = stderr[at..].split_whitespace();
    let v: f64 = words.next().unwrap().parse().unwrap();
    let shift = match words.next().unwrap() {
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        u => panic!("unit {u}"),
    };
    ((v + 0.05) * (1u64 << shift) as f64) as u64
}
