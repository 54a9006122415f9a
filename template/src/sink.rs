//! [`LinesSink`]: an exactly-once, partitioned sink written with `#[bwx::sink]`.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use bwx::outputs::Delivery;

use crate::LinesError;

/// Writes the values of a keyed stream as lines of `count` files `part-<i>.txt` in a
/// directory (created if missing), a key always to the same file.
///
/// Exactly-once: a file is made durable (fsync) when an epoch closes, before its length is
/// stored with recovery; a resumed partition truncates its file back to the stored length,
/// dropping what the stopped run wrote after the last durable epoch, which the resumed flow
/// writes again.
#[derive(Clone, Debug)]
pub struct LinesSink {
    dir: PathBuf,
    count: usize,
}

impl LinesSink {
    /// Writes `count` files (at least 1) into `dir`.
    pub fn new(dir: impl Into<PathBuf>, count: usize) -> Self {
        LinesSink {
            dir: dir.into(),
            count: count.max(1),
        }
    }
}

/// One file of a [`LinesSink`]; its recovery state ([`LinesSinkPartState`]) is the length
/// written.
#[bwx::sink]
pub struct LinesSinkPart {
    path: PathBuf,
    file: File,
    #[state]
    len: u64,
    buf: Vec<u8>,
}

#[bwx::sink]
impl LinesSinkPart {
    /// The same list on every worker: items are routed by their key over it.
    fn list_parts(sink: &LinesSink) -> Vec<String> {
        (0..sink.count).map(|i| format!("part-{i}.txt")).collect()
    }

    /// Which file a key goes to (an index into the list, taken modulo its length).
    fn part_fn(_sink: &LinesSink, key: &u64) -> u64 {
        *key
    }

    fn delivery(_sink: &LinesSink) -> Delivery {
        Delivery::ExactlyOnce
    }

    /// Opens a file and truncates it to the stored length (to empty on a fresh start).
    fn open(sink: &LinesSink, part: &str, resume: Option<LinesSinkPartState>) -> Result<Self, LinesError> {
        std::fs::create_dir_all(&sink.dir).map_err(LinesError::io("create directory", &sink.dir))?;
        let path = sink.dir.join(part);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(LinesError::io("open", &path))?;
        let len = resume.map_or(0, |r| r.len);
        let actual = file
            .metadata()
            .map_err(LinesError::io("read the length of", &path))?
            .len();
        if actual < len {
            return Err(LinesError::PastEnd {
                path,
                len: actual,
                position: len,
            });
        }
        file.set_len(len).map_err(LinesError::io("truncate", &path))?;
        file.seek(SeekFrom::Start(len))
            .map_err(LinesError::io("seek in", &path))?;
        Ok(LinesSinkPart {
            path,
            file,
            len,
            buf: Vec::new(),
        })
    }

    fn write_batch(&mut self, values: &mut Vec<String>) -> Result<(), LinesError> {
        self.buf.clear();
        for value in values.drain(..) {
            self.buf.extend_from_slice(value.as_bytes());
            self.buf.push(b'\n');
        }
        self.file
            .write_all(&self.buf)
            .map_err(LinesError::io("write", &self.path))?;
        self.len += self.buf.len() as u64;
        Ok(())
    }

    /// The epoch closed: its lines must be durable before their length is stored.
    fn pre_commit(&mut self, _epoch: u64) -> Result<(), LinesError> {
        self.file.sync_data().map_err(LinesError::io("fsync", &self.path))
    }
}
