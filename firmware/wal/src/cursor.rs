//! Cursor files: one small text file per sink, `cursors/{sink}` = `"{cursor} {lost_records}\n"`
//! (the log's eviction totals, `evicted` = `"{records} {bytes}\n"`, use the same two-number form).
//!
//! Why text and one file per sink: an operator can read (and, with the daemon stopped, reset) a
//! sink's position with `cat`/`echo`, and a sink's file is replaced atomically (write a temp
//! file, fsync, rename, fsync the directory) without touching the others. When a moved cursor is
//! written is decided by [`crate::ledger`] (`persist_due`); this module only does the I/O.

use crate::ledger::{persist_due, CursorBook, SinkCursor};
use crate::{io, WalError};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A sink name: 1-64 characters of `[A-Za-z0-9_-]` (it is a file name).
pub(crate) fn valid_sink(sink: &str) -> bool {
    !sink.is_empty()
        && sink.len() <= 64
        && sink
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Replaces `dir/name` with `text` atomically: temp file, fsync, rename, fsync of `dir`.
pub(crate) fn write_atomic(dir: &Path, name: &str, text: &str) -> Result<(), WalError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    crate::sync_dir(dir);
    Ok(())
}

/// Parses `"{a} [{b}]"` (a cursor file); `None` if it is anything else.
pub(crate) fn parse(text: &str) -> Option<SinkCursor> {
    let mut it = text.split_whitespace();
    let cursor = it.next()?.parse().ok()?;
    let lost = match it.next() {
        Some(t) => t.parse().ok()?,
        None => 0,
    };
    it.next().is_none().then_some(SinkCursor { cursor, lost })
}

pub(crate) struct CursorFiles {
    dir: PathBuf,
    /// A moved cursor waits at most this long in memory.
    pub every: Duration,
    written: BTreeMap<String, Instant>,
    pending: BTreeSet<String>,
}

impl CursorFiles {
    /// Reads every cursor file in `dir` (created if missing). A file that is not a cursor
    /// starts its sink at `fallback` (the oldest record: re-delivery rather than loss).
    pub fn load(
        dir: &Path,
        fallback: u64,
        every: Duration,
    ) -> Result<(CursorFiles, Vec<(String, SinkCursor)>), WalError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut found = Vec::new();
        for e in fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !valid_sink(&name) {
                continue;
            }
            let c = match fs::read(e.path()) {
                Ok(b) => parse(&String::from_utf8_lossy(&b)),
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot read a sink cursor");
                    None
                }
            };
            let c = c.unwrap_or_else(|| {
                tracing::warn!(file = %e.path().display(), "unreadable sink cursor: the sink starts at the oldest record");
                SinkCursor {
                    cursor: fallback,
                    lost: 0,
                }
            });
            found.push((name, c));
        }
        let files = CursorFiles {
            dir: dir.to_path_buf(),
            every,
            written: BTreeMap::new(),
            pending: BTreeSet::new(),
        };
        Ok((files, found))
    }

    /// Writes a sink's cursor now, atomically (it stays pending if that fails).
    pub fn write(&mut self, sink: &str, c: SinkCursor) -> Result<(), WalError> {
        self.pending.insert(sink.to_string());
        write_atomic(&self.dir, sink, &format!("{} {}\n", c.cursor, c.lost))?;
        self.pending.remove(sink);
        self.written.insert(sink.to_string(), Instant::now());
        Ok(())
    }

    /// A sink's cursor moved: written now if due, else kept for [`CursorFiles::flush`].
    pub fn moved(&mut self, sink: &str, book: &CursorBook) -> Result<(), WalError> {
        let since = self.written.get(sink).map(Instant::elapsed);
        match book.get(sink) {
            Some(c) if persist_due(since, self.every) => self.write(sink, c),
            _ => {
                self.pending.insert(sink.to_string());
                Ok(())
            }
        }
    }

    /// Writes every cursor that moved since it was last written (`all`), or only those due.
    pub fn flush(&mut self, book: &CursorBook, all: bool) -> Result<(), WalError> {
        let pending: Vec<String> = self.pending.iter().cloned().collect();
        for sink in pending {
            let since = self.written.get(&sink).map(Instant::elapsed);
            if !all && !persist_due(since, self.every) {
                continue;
            }
            match book.get(&sink) {
                Some(c) => self.write(&sink, c)?,
                None => {
                    self.pending.remove(&sink);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_files_parse_strictly() {
        let c = |cursor, lost| Some(SinkCursor { cursor, lost });
        assert_eq!(parse("12 3\n"), c(12, 3));
        assert_eq!(parse("12"), c(12, 0));
        assert_eq!(parse(""), None);
        assert_eq!(parse("x 1"), None);
        assert_eq!(parse("1 2 3"), None);
        assert_eq!(parse("1 -2"), None);
        assert_eq!(parse("99999999999999999999999"), None);
    }

    #[test]
    fn sink_names_are_safe_file_names() {
        assert!(valid_sink("influxdb"));
        assert!(valid_sink("mqtt-2_b"));
        assert!(!valid_sink(""));
        assert!(!valid_sink("../x"));
        assert!(!valid_sink(".x.tmp"));
        assert!(!valid_sink(&"a".repeat(65)));
    }
}
