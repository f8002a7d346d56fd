//! One segment file: its header, checksummed frames, recovery and reads.
//!
//! Why frames are read one at a time from a buffered file rather than whole files: a read of a
//! few records (a sink's batch, the age of a backlog) costs a seek and a few KiB, and nothing read
//! from disk is trusted: a bad length, checksum or payload ends the readable part, never panics.

use crate::ledger::Span;
use crate::{io, Record, WalError};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub(crate) const MAGIC: &[u8; 4] = b"VWAL";
pub(crate) const VERSION: u8 = 1;
pub(crate) const HEADER_LEN: u64 = 5;
/// A record's payload is at most 29 bytes; a longer length field is garbage, not a record.
const MAX_PAYLOAD: u32 = 256;
/// Every this many records the index keeps `(seq, offset)`, so reads seek instead of scanning.
const INDEX_EVERY: u64 = 64;

/// Appends one record's frame to `buf`; returns its size.
pub(crate) fn encode(r: &Record, buf: &mut Vec<u8>) -> Result<usize, WalError> {
    let mut tmp = [0u8; 64];
    let payload = postcard::to_slice(r, &mut tmp).map_err(|e| WalError::Encode(e.to_string()))?;
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(8 + payload.len())
}

/// What the next frame of a segment is.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A record and its frame size.
    Record(Record, u64),
    /// The readable part ends exactly here.
    End,
    /// The frame runs past the end of the data: a write cut short.
    Torn,
    /// A whole frame that is not a record (bad length, checksum or payload).
    Corrupt(&'static str),
}

/// Reads frames from `pos` up to `limit` (the bytes known to be written).
pub(crate) struct Frames {
    r: BufReader<File>,
    pub pos: u64,
    limit: u64,
}

impl Frames {
    pub fn open(path: &Path, pos: u64, limit: u64) -> std::io::Result<Frames> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(pos))?;
        Ok(Frames {
            r: BufReader::with_capacity(16 << 10, f),
            pos,
            limit,
        })
    }

    /// Fills `buf` completely; false if the file ends first.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        match self.r.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The frame at `pos`; advances past it only if it is a record.
    pub fn next_frame(&mut self) -> std::io::Result<Frame> {
        if self.pos >= self.limit {
            return Ok(Frame::End);
        }
        let avail = self.limit - self.pos;
        let mut head = [0u8; 8];
        if avail < 8 || !self.fill(&mut head)? {
            return Ok(Frame::Torn);
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_PAYLOAD {
            return Ok(Frame::Corrupt("length"));
        }
        let mut payload = [0u8; MAX_PAYLOAD as usize];
        let payload = &mut payload[..len as usize];
        if avail < 8 + u64::from(len) || !self.fill(payload)? {
            return Ok(Frame::Torn);
        }
        if crc32fast::hash(payload) != crc {
            return Ok(Frame::Corrupt("checksum"));
        }
        match postcard::take_from_bytes::<Record>(payload) {
            Ok((r, [])) => {
                let size = 8 + u64::from(len);
                self.pos += size;
                Ok(Frame::Record(r, size))
            }
            _ => Ok(Frame::Corrupt("payload")),
        }
    }
}

/// What recovering a segment found.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Recovered {
    /// Bytes cut off the end (newest segment only).
    pub truncated: u64,
    pub corrupt: u64,
    /// Records beyond `limit` (they overlap the next segment's numbers).
    pub surplus: u64,
}

pub(crate) struct Segment {
    pub span: Span,
    pub path: PathBuf,
    /// `(seq, offset)` of every `INDEX_EVERY`th record.
    index: Vec<(u64, u64)>,
}

impl Segment {
    pub fn file_name(first_seq: u64) -> String {
        format!("{first_seq:020}.seg")
    }

    /// `Some(first_seq)` for a segment file name (exactly 20 digits + `.seg`).
    pub fn parse_name(name: &str) -> Option<u64> {
        let digits = name.strip_suffix(".seg")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Far from overflowing when counts are added to it.
        digits.parse().ok().filter(|s| *s <= u64::MAX / 2)
    }

    fn empty(first_seq: u64, path: PathBuf) -> Segment {
        Segment {
            span: Span {
                first_seq,
                count: 0,
                bytes: HEADER_LEN,
            },
            path,
            index: Vec::new(),
        }
    }

    /// Creates a segment (header written and synced, directory synced).
    pub fn create(dir: &Path, first_seq: u64) -> Result<Segment, WalError> {
        let path = dir.join(Self::file_name(first_seq));
        write_header(&path)?;
        crate::sync_dir(dir);
        Ok(Self::empty(first_seq, path))
    }

    /// Checks every frame of a segment. The newest (`last`) is cut back to its last good record;
    /// in an older one a bad frame ends its readable part. At most `limit` records are taken.
    pub fn recover(
        first_seq: u64,
        path: PathBuf,
        last: bool,
        limit: u64,
    ) -> Result<(Segment, Recovered), WalError> {
        let mut found = Recovered::default();
        let file = path.display().to_string();
        let mut f = File::open(&path).map_err(io(&path))?;
        let len = f.metadata().map_err(io(&path))?.len();
        let mut head = [0u8; HEADER_LEN as usize];
        let whole = match f.read_exact(&mut head) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(io(&path)(e)),
        };
        drop(f);
        if whole && head[..4] == MAGIC[..] && head[4] != VERSION {
            return Err(WalError::Version {
                path: file,
                version: head[4],
            });
        }
        if !whole || head[..4] != MAGIC[..] {
            if last {
                // A header cut short or never written (zeros) is a torn creation, not corruption.
                found.corrupt = u64::from(whole && !all_zero(&path, 0)?);
                found.truncated = len;
                tracing::warn!(%file, bytes = len, "history log segment without a valid header: emptied");
                write_header(&path)?;
            } else {
                found.corrupt = 1;
                tracing::warn!(%file, offset = 0, "history log segment without a valid header: its records are unreadable");
            }
            let mut seg = Self::empty(first_seq, path);
            if !last {
                // The disk budget counts what the file takes, readable or not.
                seg.span.bytes = len;
            }
            return Ok((seg, found));
        }
        let mut seg = Self::empty(first_seq, path);
        let mut frames = Frames::open(&seg.path, HEADER_LEN, len).map_err(io(&seg.path))?;
        let (at, bad) = loop {
            let at = frames.pos;
            match frames.next_frame().map_err(io(&seg.path))? {
                Frame::End => return Ok((seg, found)),
                Frame::Record(..) if seg.span.count >= limit => {
                    found.surplus = 1 + count_rest(&mut frames);
                    tracing::warn!(%file, offset = at, records = found.surplus,
                        "history log segment overlaps the next one: its last records are ignored");
                    seg.span.bytes = len;
                    return Ok((seg, found));
                }
                Frame::Record(_, size) => seg.note(at, size),
                Frame::Torn => break (at, "torn"),
                Frame::Corrupt(_) if all_zero(&seg.path, at)? => break (at, "torn"),
                Frame::Corrupt(what) => break (at, what),
            }
        };
        if bad != "torn" || !last {
            // A torn frame is only expected at the very end: a segment is synced before the
            // next one starts.
            found.corrupt = 1;
            tracing::warn!(%file, offset = at, bad, last_segment = last,
                "corrupt record in the history log: the rest of this segment is unreadable");
        }
        if last {
            found.truncated = len - at;
            tracing::warn!(%file, offset = at, bytes = len - at,
                "history log tail cut off after the last whole record");
            let f = OpenOptions::new()
                .write(true)
                .open(&seg.path)
                .map_err(io(&seg.path))?;
            f.set_len(at).map_err(io(&seg.path))?;
            f.sync_all().map_err(io(&seg.path))?;
        } else {
            seg.span.bytes = len;
        }
        Ok((seg, found))
    }

    fn note(&mut self, offset: u64, size: u64) {
        if self.span.count.is_multiple_of(INDEX_EVERY) {
            self.index.push((self.span.end(), offset));
        }
        self.span.count += 1;
        self.span.bytes = offset + size;
    }

    /// Records appended at the end: their frame sizes in order.
    pub fn note_appended(&mut self, sizes: &[usize]) {
        for s in sizes {
            self.note(self.span.bytes, *s as u64);
        }
    }

    /// Calls `f` for every record with seq >= `from`, in order, until it returns false.
    pub fn each_from(
        &self,
        from: u64,
        mut f: impl FnMut(u64, Record) -> bool,
    ) -> Result<(), WalError> {
        let from = from.max(self.span.first_seq);
        if from >= self.span.end() {
            return Ok(());
        }
        let i = self.index.partition_point(|(s, _)| *s <= from);
        let (mut seq, offset) = match i.checked_sub(1).and_then(|i| self.index.get(i)) {
            Some(&e) => e,
            None => (self.span.first_seq, HEADER_LEN),
        };
        let mut frames =
            Frames::open(&self.path, offset, self.span.bytes).map_err(io(&self.path))?;
        while seq < self.span.end() {
            let at = frames.pos;
            match frames.next_frame().map_err(io(&self.path))? {
                Frame::Record(r, _) => {
                    if seq >= from && !f(seq, r) {
                        return Ok(());
                    }
                    seq += 1;
                }
                // It was whole when the log was opened: the file changed under us.
                _ => {
                    return Err(WalError::Corrupt {
                        path: self.path.display().to_string(),
                        offset: at,
                    })
                }
            }
        }
        Ok(())
    }
}

fn write_header(path: &Path) -> Result<(), WalError> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(MAGIC).map_err(io(path))?;
    f.write_all(&[VERSION]).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Whether everything from `offset` on is zero bytes: blocks allocated but never written before
/// a power cut are a torn tail, not corruption.
fn all_zero(path: &Path, offset: u64) -> Result<bool, WalError> {
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut buf = [0u8; 8192];
    loop {
        match f.read(&mut buf).map_err(io(path))? {
            0 => return Ok(true),
            n if buf[..n].iter().any(|b| *b != 0) => return Ok(false),
            _ => {}
        }
    }
}

fn count_rest(frames: &mut Frames) -> u64 {
    let mut n = 0;
    while let Ok(Frame::Record(..)) = frames.next_frame() {
        n += 1;
    }
    n
}
