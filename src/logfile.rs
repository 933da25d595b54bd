//! A log file that rotates by size: when a write would take `log.file` past `log.max_size_mb`,
//! the file becomes `<file>.1` (older ones move up to `<file>.<max_files - 1>`, the oldest is
//! deleted) and a new file starts. At most `log.max_files` files exist, the current one included.
//!
//! Rotation happens only between whole lines: writes are collected until a newline (slog-json
//! serializes a record in many small writes), so no line is split across files. A failed
//! rotation keeps writing to the current file rather than losing lines.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: usize,
    /// Bytes of a line not yet ended by a newline.
    pending: Vec<u8>,
}

impl RotatingFile {
    /// Opens (appends to) `path`; rotates past `max_size` bytes, keeping `max_files` files.
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size,
            max_size: max_size.max(1),
            max_files: max_files.max(1),
            pending: Vec::new(),
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.max_files == 1 {
            // Only the current file is kept: start it again.
            self.file = File::create(&self.path)?;
            self.size = 0;
            return Ok(());
        }
        let oldest = self.numbered(self.max_files - 1);
        if oldest.exists() {
            fs::remove_file(&oldest)?;
        }
        for n in (1..self.max_files - 1).rev() {
            let from = self.numbered(n);
            if from.exists() {
                fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        fs::rename(&self.path, self.numbered(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl RotatingFile {
    /// Writes whole lines, rotating first if they would not fit.
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + lines.len() as u64 > self.max_size {
            // Keep logging into the current file if the rotation fails (a full disk, say).
            let _ = self.rotate();
        }
        self.file.write_all(lines)?;
        self.size += lines.len() as u64;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            let lines = std::mem::replace(&mut self.pending, rest);
            self.write_lines(&lines)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let partial = std::mem::take(&mut self.pending);
            self.write_lines(&partial)?;
        }
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_at_most_max_files() {
        let dir = std::env::temp_dir().join(format!("hb-logs-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("heartbeat.log");
        let mut f = RotatingFile::open(&path, 100, 3).unwrap();
        for i in 0..50 {
            writeln!(f, "line {i:03} {}", "x".repeat(20)).unwrap();
        }
        f.flush().unwrap();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["heartbeat.log", "heartbeat.log.1", "heartbeat.log.2"]
        );
        for name in &names {
            let len = fs::metadata(dir.join(name)).unwrap().len();
            assert!(len <= 100, "{name} is {len} bytes");
        }
        // The newest lines are in the current file, whole.
        let current = fs::read_to_string(&path).unwrap();
        assert!(current.ends_with(&format!("line 049 {}\n", "x".repeat(20))));
        assert!(current.lines().all(|l| l.starts_with("line ")));
        fs::remove_dir_all(&dir).unwrap();
    }
}
