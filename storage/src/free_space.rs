//! Free space on the filesystem that holds a path, as an unprivileged writer
//! may use it (`statvfs`'s available blocks, not the root-reserved ones).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes available to this process on the filesystem holding `path`.
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    usage(path).map(|u| u.available)
}

/// The size of the filesystem holding `path` and what of it this process may still use.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Bytes in all.
    pub size: u64,
    /// Bytes available to an unprivileged writer.
    pub available: u64,
}

/// The size and free space of the filesystem holding `path`.
pub fn usage(path: &Path) -> std::io::Result<Usage> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path; `stat` is plain data that
    // statvfs fills in, and it is read only when the call succeeded.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = stat.f_frsize as u64;
    Ok(Usage { size: (stat.f_blocks as u64).saturating_mul(block), available: (stat.f_bavail as u64).saturating_mul(block) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_directory_has_some_space_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available_bytes(dir.path()).unwrap() > 0);
        let u = usage(dir.path()).unwrap();
        assert!(u.size >= u.available && u.size > 0, "{u:?}");
        assert!(available_bytes(&dir.path().join("no/such/dir")).is_err());
    }
}
