//! Embeds libtorch's library folder as an RPATH so that test and bench binaries run without
//! LD_LIBRARY_PATH (tch's own build script links libtorch but sets no RPATH).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    }
}
