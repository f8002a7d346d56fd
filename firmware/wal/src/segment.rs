//! One segment file: header, checksummed records, recovery and reads.

use crate::{io, Record, WalError};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub(crate) const MAGIC: &[u8; 5] = b"VWAL\x01";
/// A record's payload is ~25 bytes; anything this large is garbage, not a record.
const MAX_PAYLOAD: u32 = 1024;
/// Every this many records the index keeps `(seq, offset)`, so reads seek instead of scanning.
const INDEX_EVERY: u64 = 64;

pub(crate) struct Segment {
    pub first_seq: u64,
    pub count: u64,
    pub bytes: u64,
    pub path: PathBuf,
    index: Vec<(u64, u64)>,
}

/// Appends one record's frame to `buf`; returns its size.
pub(crate) fn encode(r: &Record, buf: &mut Vec<u8>) -> Result<usize, WalError> {
    let payload = postcard::to_allocvec(r).map_err(|e| WalError::Encode(e.to_string()))?;
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(8 + payload.len())
}

/// Decodes the record at `at` in `data`: `Ok(Some((record, size)))`, `Ok(None)` at a clean end,
/// `Err(())` for a torn or corrupt frame.
pub(crate) fn decode(data: &[u8], at: usize) -> Result<Option<(Record, usize)>, ()> {
    if at == data.len() {
        return Ok(None);
    }
    let head = data.get(at..at + 8).ok_or(())?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Err(());
    }
    let payload = data.get(at + 8..at + 8 + len as usize).ok_or(())?;
    if crc32fast::hash(payload) != crc {
        return Err(());
    }
    let r: Record = postcard::from_bytes(payload).map_err(|_| ())?;
    Ok(Some((r, 8 + len as usize)))
}

impl Segment {
    pub fn file_name(first_seq: u64) -> String {
        format!("{first_seq:020}.seg")
    }

    pub fn create(dir: &Path, first_seq: u64) -> Result<Segment, WalError> {
        let path = dir.join(Self::file_name(first_seq));
        let mut f = File::create(&path).map_err(io(&path))?;
        f.write_all(MAGIC).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(Segment {
            first_seq,
            count: 0,
            bytes: MAGIC.len() as u64,
            path,
            index: Vec::new(),
        })
    }

    /// Reads and checks a segment. The newest one (`last`) is cut back to its last good record.
    /// Returns the segment, the bytes cut off and the corrupt records found.
    pub fn recover(
        first_seq: u64,
        path: PathBuf,
        last: bool,
    ) -> Result<(Segment, u64, u64), WalError> {
        let data = fs::read(&path).map_err(io(&path))?;
        let mut seg = Segment {
            first_seq,
            count: 0,
            bytes: data.len() as u64,
            path,
            index: Vec::new(),
        };
        if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
            tracing::warn!(file = %seg.path.display(), "history log segment without a valid header: emptied");
            let torn = data.len() as u64;
            let mut f = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&seg.path)
                .map_err(io(&seg.path))?;
            f.write_all(MAGIC).map_err(io(&seg.path))?;
            f.sync_all().map_err(io(&seg.path))?;
            seg.bytes = MAGIC.len() as u64;
            return Ok((seg, torn, u64::from(torn > 0 && !last)));
        }
        let mut at = MAGIC.len();
        loop {
            match decode(&data, at) {
                Ok(None) => return Ok((seg, 0, 0)),
                Ok(Some((_, size))) => {
                    seg.note(at as u64);
                    at += size;
                }
                Err(()) if last => {
                    let cut = (data.len() - at) as u64;
                    tracing::warn!(file = %seg.path.display(), offset = at, bytes = cut, "torn record at the end of the history log: cut off");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&seg.path)
                        .map_err(io(&seg.path))?;
                    f.set_len(at as u64).map_err(io(&seg.path))?;
                    f.sync_all().map_err(io(&seg.path))?;
                    seg.bytes = at as u64;
                    return Ok((seg, cut, 0));
                }
                Err(()) => {
                    tracing::warn!(file = %seg.path.display(), offset = at, "corrupt record inside the history log: the rest of this segment is unreadable");
                    return Ok((seg, 0, 1));
                }
            }
        }
    }

    fn note(&mut self, offset: u64) {
        if self.count.is_multiple_of(INDEX_EVERY) {
            self.index.push((self.first_seq + self.count, offset));
        }
        self.count += 1;
    }

    /// Records appended at the end: their frame sizes in order.
    pub fn note_appended(&mut self, sizes: &[usize]) {
        let mut at = self.bytes;
        for s in sizes {
            self.note(at);
            at += *s as u64;
        }
        self.bytes = at;
    }

    /// Approximate bytes of the records with seq >= `from`.
    pub fn bytes_from(&self, from: u64) -> u64 {
        let end = self.first_seq + self.count;
        if from <= self.first_seq {
            self.bytes
        } else if from >= end || self.count == 0 {
            0
        } else {
            self.bytes * (end - from) / self.count
        }
    }

    /// Appends up to `max` records with seq >= `from` to `out`.
    pub fn read(
        &self,
        from: u64,
        max: usize,
        out: &mut Vec<(u64, Record)>,
    ) -> Result<(), WalError> {
        let i = self
            .index
            .partition_point(|(s, _)| *s <= from.max(self.first_seq));
        let Some(&(mut seq, offset)) = i.checked_sub(1).and_then(|i| self.index.get(i)) else {
            return Ok(());
        };
        let mut f = File::open(&self.path).map_err(io(&self.path))?;
        f.seek(SeekFrom::Start(offset)).map_err(io(&self.path))?;
        let mut data = Vec::new();
        f.take(self.bytes - offset)
            .read_to_end(&mut data)
            .map_err(io(&self.path))?;
        let end = self.first_seq + self.count;
        let mut at = 0;
        let taken = out.len();
        while seq < end && out.len() - taken < max {
            match decode(&data, at) {
                Ok(Some((r, size))) => {
                    if seq >= from {
                        out.push((seq, r));
                    }
                    seq += 1;
                    at += size;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Calls `f` for every record.
    pub fn scan(&self, mut f: impl FnMut(u64, &Record)) -> Result<(), WalError> {
        let mut data = Vec::new();
        BufReader::new(File::open(&self.path).map_err(io(&self.path))?)
            .take(self.bytes)
            .read_to_end(&mut data)
            .map_err(io(&self.path))?;
        let mut at = MAGIC.len();
        let mut seq = self.first_seq;
        while seq < self.first_seq + self.count {
            match decode(&data, at) {
                Ok(Some((r, size))) => {
                    f(seq, &r);
                    seq += 1;
                    at += size;
                }
                _ => break,
            }
        }
        Ok(())
    }
}
