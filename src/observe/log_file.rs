//! A log file that rotates by size: `utalk.log` is written until the next
//! line would take it past `max_bytes`, then it becomes `utalk.log.1`, the
//! older ones move up a number, and the oldest past `keep` is removed; so is
//! any rotated file last written longer ago than `max_age`, at each rotation
//! and at start.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The open log file and its rotation rule.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    max_age: Option<std::time::Duration>,
    file: File,
    size: u64,
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingFile {
    /// Opens (appending to) `path`, creating its directory; rotated files
    /// older than `max_age` are removed now and at each rotation.
    pub fn open(path: &Path, max_bytes: u64, keep: usize, max_age: Option<std::time::Duration>) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let f = RotatingFile { path: path.to_path_buf(), max_bytes: max_bytes.max(1), keep, max_age, file, size };
        f.prune();
        Ok(f)
    }

    /// Removes the rotated files last written before `max_age` ago.
    fn prune(&self) {
        let Some(max_age) = self.max_age else { return };
        for n in 1..=self.keep {
            let p = numbered(&self.path, n);
            let old = std::fs::metadata(&p).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > max_age);
            if old {
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            self.file = File::create(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(&self.path, self.keep));
            for n in (1..self.keep).rev() {
                let from = numbered(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
            self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        }
        self.size = 0;
        self.prune();
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Writes come as whole lines, several at a time from the log buffer.
        // A line never straddles two files: the lines that fit are written,
        // and the file rotates before the first that would not.
        let room = usize::try_from(self.max_bytes.saturating_sub(self.size)).unwrap_or(usize::MAX);
        let take = if buf.len() <= room {
            buf.len()
        } else {
            match buf[..room].iter().rposition(|b| *b == b'\n') {
                Some(end) => end + 1,
                None if self.size > 0 => {
                    self.rotate()?;
                    return self.write(buf);
                }
                // One line longer than a whole file: it gets a file of its own.
                None => buf.iter().position(|b| *b == b'\n').map_or(buf.len(), |end| end + 1),
            }
        };
        let n = self.file.write(&buf[..take])?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_by_size_and_only_keep_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/utalk.log");
        let mut f = RotatingFile::open(&path, 100, 3, None).expect("open");
        for i in 0..40 {
            f.write_all(format!("{{\"line\":{i:03},\"pad\":\"xxxxxxxxxx\"}}\n").as_bytes()).expect("write");
        }
        let sizes: Vec<u64> = (0..=4)
            .map(|n| if n == 0 { path.clone() } else { numbered(&path, n) })
            .map(|p| std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0))
            .collect();
        assert!(sizes[..4].iter().all(|s| *s > 0 && *s <= 100), "{sizes:?}");
        assert_eq!(sizes[4], 0, "only 3 old files are kept");
        let newest = std::fs::read_to_string(&path).expect("read");
        assert!(newest.ends_with("{\"line\":039,\"pad\":\"xxxxxxxxxx\"}\n"), "{newest}");
        assert!(std::fs::read_to_string(numbered(&path, 1)).expect("read").lines().all(|l| l.starts_with('{') && l.ends_with('}')));
    }

    #[test]
    fn a_chunk_of_many_lines_is_split_between_files_at_line_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("utalk.log");
        let mut f = RotatingFile::open(&path, 100, 5, None).expect("open");
        let chunk: String = (0..12).map(|i| format!("{{\"line\":{i:03},\"p\":\"xx\"}}\n")).collect();
        f.write_all(chunk.as_bytes()).expect("write");
        let mut all = String::new();
        for n in (1..=5).rev() {
            let text = std::fs::read_to_string(numbered(&path, n)).unwrap_or_default();
            assert!(text.len() <= 100, "{text}");
            all.push_str(&text);
        }
        let newest = std::fs::read_to_string(&path).expect("read");
        assert!(newest.len() <= 100);
        all.push_str(&newest);
        assert_eq!(all, chunk, "every line once, whole and in order");
    }

    #[test]
    fn rotated_files_older_than_the_age_limit_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("utalk.log");
        for n in 1..=3 {
            std::fs::write(numbered(&path, n), "{}\n").expect("write");
        }
        // The second is ten days old; the others are new.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
        std::fs::File::options().write(true).open(numbered(&path, 2)).and_then(|f| f.set_modified(old)).expect("age");
        let _f = RotatingFile::open(&path, 100, 3, Some(std::time::Duration::from_secs(7 * 86_400))).expect("open");
        assert!(numbered(&path, 1).exists() && numbered(&path, 3).exists());
        assert!(!numbered(&path, 2).exists(), "a file past the age limit is removed");
    }
}
