//! Links the bare-metal blob with our linker script as a static PIE; nothing for host builds.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rerun-if-changed=../linker.ld");
    if target == "aarch64-unknown-none" {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        for arg in ["-pie", "--no-dynamic-linker", "-z", "notext", "-z", "norelro", "--pack-dyn-relocs=relr"] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
        println!("cargo:rustc-link-arg-bins=-T{manifest}/../linker.ld");
    }
}
