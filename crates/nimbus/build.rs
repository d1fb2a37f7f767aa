//! Link settings of the `nimbus` binary.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        // Relative relocations packed (DT_RELR): the dynamic loader reads about 10 KiB
        // instead of 600 KiB of relocation entries at every start. GNU ld and lld apply
        // it only when the C library supports it (glibc 2.36+), else ignore it.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
