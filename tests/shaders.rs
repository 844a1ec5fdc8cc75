//! Every shader module parses and validates with naga, with no adapter needed; every
//! `shaders/*.wgsl` file belongs to a module; host structs match the WGSL layouts.

use lstm_dse::gpu::shader_modules;

fn source(module: &str) -> &'static str {
    shader_modules()
        .into_iter()
        .find(|(name, _, _)| *name == module)
        .map(|(_, _, src)| src)
        .unwrap_or_else(|| panic!("no shader module {module}"))
}

#[test]
fn every_shader_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let modules = shader_modules();
    for (name, _, src) in &modules {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        // The reduction kernel needs f64 and u64 (SHADER_F64, SHADER_INT64).
        let caps = match *name {
            "reduce" => {
                naga::valid::Capabilities::FLOAT64 | naga::valid::Capabilities::SHADER_INT64
            }
            _ => naga::valid::Capabilities::default(),
        };
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    }
    // No file is left out of the modules (it would never be compiled or checked).
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            modules
                .iter()
                .any(|(_, files, _)| files.contains(&file.as_str())),
            "{file} is in no shader module"
        );
        count += 1;
    }
    assert_eq!(
        count,
        modules.iter().map(|(_, f, _)| f.len()).sum::<usize>()
    );
}

#[test]
fn shader_constants_match_the_cpu_twin() {
    // The reproducible exp/tanh constants must be the same f32 values in WGSL and Rust.
    let src = source("lstm");
    for (name, value) in [
        ("LOG2E", std::f32::consts::LOG2_E),
        ("LN2_HI", 0.693_359_4f32),
        ("LN2_LO", -2.121_944_4e-4f32),
        ("C7", 1.0f32 / 5040.0),
        ("C6", 1.0f32 / 720.0),
        ("C5", 1.0f32 / 120.0),
        ("C4", 1.0f32 / 24.0),
        ("C3", 1.0f32 / 6.0),
        ("T1", -1.0f32 / 3.0),
        ("T2", 2.0f32 / 15.0),
        ("T3", -17.0f32 / 315.0),
        ("MIN_NORMAL", f32::MIN_POSITIVE),
    ] {
        let line = src
            .lines()
            .find(|l| l.starts_with(&format!("const {name}: f32 = ")))
            .unwrap();
        let lit = line
            .split("= ")
            .nth(1)
            .unwrap()
            .trim_end_matches(';')
            .trim_end_matches('f');
        assert_eq!(parse_hex_float(lit), value as f64, "{name}");
    }
}

/// Parses `[-]0x1.abcp-3`.
fn parse_hex_float(s: &str) -> f64 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s.strip_prefix("0x").unwrap();
    let (mant, exp) = s.split_once('p').unwrap();
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut v = u64::from_str_radix(int, 16).unwrap() as f64;
    for (i, c) in frac.chars().enumerate() {
        v += c.to_digit(16).unwrap() as f64 / 16f64.powi(i as i32 + 1);
    }
    let v = v * 2f64.powi(exp.parse().unwrap());
    if neg {
        -v
    } else {
        v
    }
}

#[test]
fn host_structs_match_the_shader_layouts() {
    // Every Rust struct uploaded to a shader has the size and field offsets naga computes for
    // the WGSL struct of the same role (a mismatch shifts every later field on the device).
    for (file, host) in lstm_dse::gpu::host_layouts() {
        let module = naga::front::wgsl::parse_str(source(file)).unwrap();
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(host.wgsl_name))
            .unwrap_or_else(|| panic!("{file}: no struct {}", host.wgsl_name));
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{file}: {} is not a struct", host.wgsl_name);
        };
        assert_eq!(
            *span as usize, host.size,
            "{file}: size of {}",
            host.wgsl_name
        );
        for (field, offset) in &host.fields {
            let m = members
                .iter()
                .find(|m| m.name.as_deref() == Some(field))
                .unwrap_or_else(|| panic!("{file}: {}.{field} missing", host.wgsl_name));
            assert_eq!(
                m.offset as usize, *offset,
                "{file}: offset of {}.{field}",
                host.wgsl_name
            );
        }
    }
}
