//! Why the narrow-float lanes do not use AMX-BF16 (results/bench/engine.md): `tdpbf16ps`
//! does not give the bits of NUMERICS.md §6's sequential f32 sums of bf16 products. This
//! ignored measurement runs the instruction on random bf16 tiles and counts the elements that
//! differ from three candidate definitions: k in order (even element of a pair first), odd
//! first, and each pair summed exactly before one rounding. Run with
//! `cargo test --release --test amx_bf16 -- --ignored --nocapture` on a CPU with AMX-BF16.
//!
//! The second measurement shows that AVX512-BF16's `vdpbf16ps`, by contrast, does give the
//! sequential sums when term k sits in the high half of each pair. The engine runs bf16 and
//! fp8e4m3 lanes on it on AMD CPUs only (`eval::pairs`): on the Intel machine measured here it
//! was slower than two full FMA ports, on a Zen 4 a third faster (engine.md).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
#[ignore = "a measurement on AMX hardware, quoted in results/bench/engine.md"]
fn tdpbf16ps_is_not_a_sequential_f32_sum() {
    use std::arch::asm;
    #[repr(C, align(64))]
    struct Config([u8; 64]);
    let id = std::arch::x86_64::__cpuid_count(7, 0);
    // EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
    // SAFETY: a plain system call (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
    if (id.edx >> 22) & 1 == 0
        || (id.edx >> 24) & 1 == 0
        || unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1023, 18) } != 0
    {
        return eprintln!("skipping: no AMX-BF16 here");
    }
    let bf = |x: f32| {
        let b = x.to_bits();
        (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
    };
    let f = |x: u16| f32::from_bits((x as u32) << 16);
    let mut cfg = Config([0; 64]);
    cfg.0[0] = 1;
    for t in 0..8 {
        cfg.0[16 + 2 * t] = 64;
        cfg.0[48 + t] = 16;
    }
    let mut s = 12345u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let (mut even, mut odd, mut pair, mut total) = (0u64, 0u64, 0u64, 0u64);
    for trial in 0..2000 {
        // A: 16 rows x 32 bf16; B: 16 pair rows x 16 columns x 2 bf16; C: 16 x 16 f32.
        let spread = (trial % 4) * 6 + 1;
        let val = |r: u64| {
            let e = (r % spread) as i32 - spread as i32 / 2;
            bf((((r >> 8) % 256) as f32 / 128.0 - 1.0) * 2f32.powi(e))
        };
        let a: Vec<u16> = (0..512).map(|_| val(rnd())).collect();
        let b: Vec<u16> = (0..512).map(|_| val(rnd())).collect();
        let c0: Vec<f32> = (0..256).map(|_| f(val(rnd())) * 4.0).collect();
        let mut c = c0.clone();
        // SAFETY: AMX-BF16 and the tile permission were checked above; every tile is 16 rows
        // of 64 bytes, read from or written to buffers of 1 KiB.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr());
            asm!("tileloadd tmm0, [{p} + {s}*1]", p = in(reg) c.as_ptr(), s = in(reg) 64usize);
            asm!("tileloadd tmm4, [{p} + {s}*1]", p = in(reg) a.as_ptr(), s = in(reg) 64usize);
            asm!("tileloadd tmm5, [{p} + {s}*1]", p = in(reg) b.as_ptr(), s = in(reg) 64usize);
            asm!("tdpbf16ps tmm0, tmm4, tmm5");
            asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) c.as_mut_ptr(), s = in(reg) 64usize);
            asm!("tilerelease");
        }
        for m in 0..16 {
            for n in 0..16 {
                let (mut se, mut so, mut sp) = (c0[m * 16 + n], c0[m * 16 + n], c0[m * 16 + n]);
                for k in 0..16 {
                    let p0 = f(a[m * 32 + 2 * k]) * f(b[k * 32 + 2 * n]);
                    let p1 = f(a[m * 32 + 2 * k + 1]) * f(b[k * 32 + 2 * n + 1]);
                    se = (se + p0) + p1;
                    so = (so + p1) + p0;
                    sp = (sp as f64 + (p0 as f64 + p1 as f64)) as f32;
                }
                let got = c[m * 16 + n].to_bits();
                total += 1;
                even += u64::from(got != se.to_bits());
                odd += u64::from(got != so.to_bits());
                pair += u64::from(got != sp.to_bits());
            }
        }
    }
    eprintln!("{total} elements differ from: k in order {even}, odd first {odd}, pair sums {pair}");
    assert!(
        even > 0,
        "tdpbf16ps matched the sequential sums: worth using for bf16 lanes"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
#[ignore = "a measurement on AVX512-BF16 hardware, quoted in results/bench/engine.md"]
fn vdpbf16ps_is_the_sequential_f32_sum_with_term_k_high() {
    use std::arch::x86_64::*;
    if !is_x86_feature_detected!("avx512f") || !is_x86_feature_detected!("avx512bf16") {
        return eprintln!("skipping: no AVX512-BF16 here");
    }
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn dp(acc: __m512, a: __m512i, b: __m512i) -> __m512 {
        let (a, b) = (
            std::mem::transmute::<__m512i, __m512bh>(a),
            std::mem::transmute::<__m512i, __m512bh>(b),
        );
        _mm512_dpbf16_ps(acc, a, b)
    }
    let bf = |x: f32| {
        let b = x.to_bits();
        (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
    };
    let f = |x: u16| f32::from_bits((x as u32) << 16);
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    };
    let k = 1024;
    let (mut k_first, mut swapped, mut total) = (0, 0, 0);
    for trial in 0..2000 {
        let scale = if trial % 2 == 0 { 1.0 } else { 100.0 };
        let a: Vec<u16> = (0..k).map(|_| bf(rnd() * scale)).collect();
        let b: Vec<u16> = (0..k * 16).map(|_| bf(rnd())).collect();
        let pair = |hi: u16, lo: u16| ((hi as u32) << 16 | lo as u32) as i32;
        let mut got = [0f32; 16];
        // SAFETY: the CPU was checked above; every load reads 16 i32 of a local array.
        unsafe {
            let mut acc = _mm512_setzero_ps();
            for kk in (0..k).step_by(2) {
                let bp: [i32; 16] =
                    std::array::from_fn(|j| pair(b[kk * 16 + j], b[(kk + 1) * 16 + j]));
                let bv = _mm512_loadu_si512(bp.as_ptr().cast());
                acc = dp(acc, _mm512_set1_epi32(pair(a[kk], a[kk + 1])), bv);
            }
            _mm512_storeu_ps(got.as_mut_ptr(), acc);
        }
        for (j, g) in got.iter().enumerate() {
            let (mut seq, mut other) = (0f32, 0f32);
            for kk in (0..k).step_by(2) {
                seq += f(a[kk]) * f(b[kk * 16 + j]);
                seq += f(a[kk + 1]) * f(b[(kk + 1) * 16 + j]);
                other += f(a[kk + 1]) * f(b[(kk + 1) * 16 + j]);
                other += f(a[kk]) * f(b[kk * 16 + j]);
            }
            total += 1;
            k_first += usize::from(g.to_bits() == seq.to_bits());
            swapped += usize::from(g.to_bits() == other.to_bits());
        }
    }
    eprintln!("{total} sums: equal to k order {k_first}, to the swapped pair order {swapped}");
    assert_eq!(
        k_first, total,
        "vdpbf16ps is the sequential sum with term k high"
    );
    assert!(
        swapped < total,
        "the measurement tells the two orders apart"
    );
}
