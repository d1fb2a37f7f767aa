//! Link settings of the `nimbus` binary.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        // Relative relocations packed (DT_RELR): the dynamic loader reads about 10 KiB
        // instead of 600 KiB of relocation entries at every start. GNU ld and lld apply
        // it only when the C library supports it (glibc 2.36+), else ignore it.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        startup_order();
    }
}

/// Places the functions a start runs (`startup-functions.txt`, written by
/// `tools/startup-order.py`) together at the front of the code, in release builds
/// for x86-64 (where rustc links with lld).
///
/// The kernel maps a binary's code in blocks of 64 KiB or more around each page a
/// process touches (fault-around, whole page-cache folios): the 1.5 MiB of code of
/// a start, spread over the 13 MiB of `.text`, kept 7-8 MiB of it mapped in every
/// idle nimbus; together they keep about 2 MiB. The list names functions without
/// their hashes (v0 mangling, `.cargo/config.toml`), as linker-script patterns: a
/// name that no longer exists matches nothing, and code new to the start stays
/// where it was. Matching costs the link 4-6 s, hence release builds only.
/// `NIMBUS_STARTUP_ORDER=0` turns it off (for linkers without linker scripts, such as mold).
fn startup_order() {
    println!("cargo:rerun-if-changed=startup-functions.txt");
    println!("cargo:rerun-if-env-changed=NIMBUS_STARTUP_ORDER");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let disabled = std::env::var("NIMBUS_STARTUP_ORDER").as_deref() == Ok("0");
    if arch != "x86_64" || profile != "release" || disabled {
        return;
    }
    // Without the placement the binary works the same, only with more code
    // resident: anything missing here skips it rather than failing the build.
    let (Some(dir), Some(out_dir)) = (
        std::env::var_os("CARGO_MANIFEST_DIR"),
        std::env::var_os("OUT_DIR"),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let Ok(list) = std::fs::read_to_string(dir.join("startup-functions.txt")) else {
        return;
    };
    // One input-section description with every pattern: lld then matches each input
    // section against the list once (a description per pattern: 15 s for half as many).
    // Static constructors of C code (mimalloc) are in `.text.startup`; a cold Rust
    // function is in `.text.unlikely.<symbol>`, the others in `.text.<symbol>`.
    let mut script =
        String::from("SECTIONS {\n  .text.start : {\n    *(.text.startup .text.startup.*\n");
    for name in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let _ = writeln!(script, "      .text.{name}\n      .text.unlikely.{name}");
    }
    script.push_str("    )\n  }\n} INSERT BEFORE .text;\n");
    let out = PathBuf::from(out_dir).join("startup.ld");
    if let Err(e) = std::fs::write(&out, script) {
        println!(
            "cargo:warning=startup code placement skipped: writing {}: {e}",
            out.display()
        );
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", out.display());
}
