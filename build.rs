//! Generates `include/arenalloc.h` from the `extern "C"` functions in `src/ffi/` with
//! cbindgen.  The header is committed; `tests/header_fresh.sh` fails when it is stale.

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let out = format!("{crate_dir}/include/arenalloc.h");
    match cbindgen::Builder::new().with_crate(&crate_dir).with_config(config).generate() {
        // write_to_file only rewrites the file when its contents change.
        Ok(bindings) => {
            bindings.write_to_file(out);
        }
        Err(e) => panic!("cbindgen could not generate the header: {e}"),
    }
}
