//! Where a bench keeps its data: a fresh directory under `UTALK_BENCH_DIR`
//! (created when missing), else under the working directory, removed when
//! the bench drops it.

/// A fresh directory for one bench's data.
pub fn temp_dir() -> tempfile::TempDir {
    let base = std::env::var("UTALK_BENCH_DIR").unwrap_or_else(|_| ".".into());
    if let Err(e) = std::fs::create_dir_all(&base) {
        panic!("cannot create UTALK_BENCH_DIR {base}: {e}");
    }
    match tempfile::tempdir_in(&base) {
        Ok(dir) => dir,
        Err(e) => panic!("cannot make a directory in {base} (UTALK_BENCH_DIR): {e}"),
    }
}
