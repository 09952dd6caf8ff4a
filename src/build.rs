//! Lists the agent console's files (`src/web/app/`) for the binary to embed,
//! so that `cargo build` alone builds a server that serves them. The list is
//! sorted, so the same files always give the same output.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src/web");
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&root).join("src/web/app");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out =
        String::from("/// Every file of the agent console's folder, by name.\npub(crate) static APP_FILES: &[(&str, &[u8])] = &[\n");
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("console file names are UTF-8");
        // Named from the crate's directory when the crate compiles, not here: a
        // build cache shared by clones in other places keeps this output.
        out.push_str(&format!("    ({name:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/src/web/app/{name}\"))),\n"));
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web_files.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}
