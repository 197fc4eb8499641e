//! The raw log on local disk: a folder of append-only segment files.
//!
//! Each segment is named by the offset of its first record
//! (`00000000000000000000.log`) and holds frames
//! `[length: u32 LE][crc32c(length ‖ payload): u32 LE][payload]`.
//! One writer task appends: requests that arrive while it is writing and
//! syncing queue up, and the next round writes them all with one `writev` and
//! covers them with one `fdatasync` (group commit) before any of them is
//! acknowledged. The blocking calls run on tokio's blocking pool, once per
//! round, so waking the waiting requests stays on the runtime's own threads.
//! (Overlapping the sync of one round with the write of the next was tried:
//! it made rounds smaller and the disk slower.)
//! On open, the last segment is scanned and a torn tail (a frame cut short by
//! a crash, or whose checksum fails) is moved aside and cut, never misread.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};
use weft_core::config::RawLogConfig;

use super::{LogError, LogRecord, Offset, RawLog, Result, validate_consumer};
use crate::payload::CollectorPayload;

const FRAME_HEADER_BYTES: usize = 8;
/// No frame is larger: the body limit is 2 MiB by default; this leaves room for
/// a raised limit and headers while a torn length field is still caught.
const MAX_FRAME_PAYLOAD: usize = 64 * 1024 * 1024;
/// Caps one group commit so a flood of requests still gets answered in slices.
const MAX_BATCH_RECORDS: usize = 4096;
const QUEUE_CAPACITY: usize = 16 * 1024;
/// How many times a round waits for more requests to join it before writing.
const MAX_GATHER_YIELDS: usize = 8;

#[derive(Debug, Clone)]
pub struct FileLogOptions {
    pub segment_bytes: u64,
    pub fsync: bool,
}

impl Default for FileLogOptions {
    fn default() -> Self {
        Self::from(&RawLogConfig::default())
    }
}

impl From<&RawLogConfig> for FileLogOptions {
    fn from(config: &RawLogConfig) -> Self {
        Self {
            segment_bytes: config.segment_bytes,
            fsync: config.fsync,
        }
    }
}

/// Counters of the writer, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub syncs: AtomicU64,
}

pub struct FileLog {
    sender: mpsc::Sender<AppendRequest>,
    shared: Arc<Shared>,
}

struct AppendRequest {
    frame: Vec<u8>,
    done: oneshot::Sender<Result<Offset>>,
}

struct Shared {
    dir: PathBuf,
    /// Every record below this offset is written and synced.
    durable_end: AtomicU64,
    /// Base offset → segment path; the last one is being written.
    segments: Mutex<BTreeMap<Offset, PathBuf>>,
    /// Where the last `read` stopped, so a consumer reading on does not rescan.
    cursor: Mutex<Option<Cursor>>,
    poisoned: AtomicBool,
    stats: WriterStats,
}

impl Shared {
    fn new(dir: PathBuf, next: Offset, segments: BTreeMap<Offset, PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            dir,
            durable_end: AtomicU64::new(next),
            segments: Mutex::new(segments),
            cursor: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            stats: WriterStats::default(),
        })
    }
}

struct Cursor {
    base: Offset,
    next: Offset,
    reader: BufReader<File>,
}

impl FileLog {
    /// Opens (or creates) the log in `dir`, cutting a torn tail if the last run crashed.
    pub fn open(dir: impl Into<PathBuf>, options: FileLogOptions) -> Result<Self> {
        let dir = dir.into();
        let Tail {
            segments,
            base,
            len,
            next,
            file,
        } = open_tail(&dir)?;
        let shared = Shared::new(dir.clone(), next, segments);
        let writer = Writer {
            shared: Arc::clone(&shared),
            file: Arc::new(file),
            base,
            len,
            next,
            options,
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LogError::NoRuntime)?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        runtime.spawn(writer.run(receiver));
        info!(dir = %dir.display(), next_offset = next, "raw log opened");
        let log = Self { sender, shared };
        log.apply_retention()?;
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn stats(&self) -> &WriterStats {
        &self.shared.stats
    }

    /// The oldest offset still kept.
    pub fn start_offset(&self) -> Offset {
        lock(&self.shared.segments)
            .first_key_value()
            .map_or(0, |(&base, _)| base)
    }

    /// Number of segment files on disk.
    pub fn segment_count(&self) -> usize {
        lock(&self.shared.segments).len()
    }

    /// Deletes closed segments whose records every consumer has committed past.
    fn apply_retention(&self) -> Result<()> {
        let consumers = self.consumers()?;
        let Some(min_committed) = consumers.iter().map(|(_, offset)| *offset).min() else {
            return Ok(()); // nobody has read anything: keep everything
        };
        let mut segments = lock(&self.shared.segments);
        loop {
            let mut bases = segments.keys();
            let (Some(&first), Some(&second)) = (bases.next(), bases.next()) else {
                break; // never delete the segment being written
            };
            if second > min_committed {
                break;
            }
            let path = segments.remove(&first).expect("present");
            fs::remove_file(&path).map_err(io_at(&path))?;
            info!(segment = %path.display(), "raw log segment deleted after every consumer committed past it");
        }
        Ok(())
    }

    fn read_locked(
        &self,
        cursor: &mut Option<Cursor>,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LogRecord>> {
        let end = self.end_offset();
        let mut out = Vec::new();
        if from >= end || max == 0 {
            return Ok(out);
        }
        if cursor.as_ref().is_none_or(|c| c.next != from) {
            *cursor = Some(self.seek(from)?);
        }
        let cursor_ref = cursor.as_mut().expect("positioned");
        while out.len() < max && cursor_ref.next < end {
            let next_base = lock(&self.shared.segments)
                .range(cursor_ref.base + 1..)
                .next()
                .map(|(&base, path)| (base, path.clone()));
            if let Some((base, path)) = next_base
                && cursor_ref.next == base
            {
                let file = File::open(&path).map_err(io_at(&path))?;
                *cursor_ref = Cursor {
                    base,
                    next: base,
                    reader: BufReader::with_capacity(256 * 1024, file),
                };
            }
            let offset = cursor_ref.next;
            let payload_bytes = match read_frame(&mut cursor_ref.reader) {
                Ok(Some(bytes)) => bytes,
                failed => {
                    let reason = match failed {
                        Err(reason) => reason,
                        _ => "end of segment before the end of the log".to_owned(),
                    };
                    let path = segment_path(&self.shared.dir, cursor_ref.base);
                    *cursor = None;
                    return Err(LogError::Corrupt {
                        path: path.display().to_string(),
                        offset,
                        reason,
                    });
                }
            };
            let payload = CollectorPayload::decode(&payload_bytes)
                .map_err(|source| LogError::Decode { offset, source })?;
            out.push(LogRecord { offset, payload });
            cursor_ref.next += 1;
        }
        Ok(out)
    }

    /// Opens the segment holding `from` and skips to it.
    fn seek(&self, from: Offset) -> Result<Cursor> {
        let (base, path) = {
            let segments = lock(&self.shared.segments);
            let oldest = segments.first_key_value().map_or(0, |(&b, _)| b);
            match segments.range(..=from).next_back() {
                Some((&base, path)) => (base, path.clone()),
                None => {
                    return Err(LogError::Deleted {
                        requested: from,
                        oldest,
                    });
                }
            }
        };
        let file = File::open(&path).map_err(io_at(&path))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        for offset in base..from {
            skip_frame(&mut reader).map_err(|reason| LogError::Corrupt {
                path: path.display().to_string(),
                offset,
                reason,
            })?;
        }
        Ok(Cursor {
            base,
            next: from,
            reader,
        })
    }
}

#[async_trait]
impl RawLog for FileLog {
    async fn append(&self, payload: &CollectorPayload) -> Result<Offset> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(LogError::Poisoned);
        }
        let frame = encode_frame(payload);
        let (done, result) = oneshot::channel();
        self.sender
            .send(AppendRequest { frame, done })
            .await
            .map_err(|_| LogError::Closed)?;
        result.await.map_err(|_| LogError::Closed)?
    }

    fn end_offset(&self) -> Offset {
        self.shared.durable_end.load(Ordering::Acquire)
    }

    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<LogRecord>> {
        let mut cursor = lock(&self.shared.cursor);
        self.read_locked(&mut cursor, from, max_records)
    }

    fn commit(&self, consumer: &str, next: Offset) -> Result<()> {
        validate_consumer(consumer)?;
        let end = self.end_offset();
        if next > end {
            return Err(LogError::CommitPastEnd {
                consumer: consumer.to_owned(),
                next,
                end,
            });
        }
        let dir = self.shared.dir.join("consumers");
        let tmp = dir.join(format!(".{consumer}.tmp"));
        let path = dir.join(consumer);
        let mut file = File::create(&tmp).map_err(io_at(&tmp))?;
        file.write_all(next.to_string().as_bytes())
            .map_err(io_at(&tmp))?;
        file.sync_all().map_err(io_at(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        sync_dir(&dir)?;
        self.apply_retention()
    }

    fn committed(&self, consumer: &str) -> Result<Option<Offset>> {
        validate_consumer(consumer)?;
        let path = self.shared.dir.join("consumers").join(consumer);
        match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| LogError::Corrupt {
                    path: path.display().to_string(),
                    offset: 0,
                    reason: format!("consumer offset {text:?} is not a number"),
                }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_at(&path)(error)),
        }
    }

    fn writer_stats(&self) -> Option<&WriterStats> {
        Some(&self.shared.stats)
    }

    fn consumers(&self) -> Result<Vec<(String, Offset)>> {
        let dir = self.shared.dir.join("consumers");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(offset) = self.committed(&name)? {
                out.push((name, offset));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The open end of a log folder: its segments and the last one ready to append to.
struct Tail {
    segments: BTreeMap<Offset, PathBuf>,
    base: Offset,
    len: u64,
    next: Offset,
    file: File,
}

fn open_tail(dir: &Path) -> Result<Tail> {
    fs::create_dir_all(dir.join("consumers")).map_err(io_at(dir))?;
    let mut segments = list_segments(dir)?;
    if segments.is_empty() {
        let path = segment_path(dir, 0);
        File::create(&path).map_err(io_at(&path))?;
        sync_dir(dir)?;
        segments.insert(0, path);
    }
    let (&base, last_path) = segments.last_key_value().expect("at least one segment");
    let last_path = last_path.clone();
    let scan = scan_segment(&last_path, base)?;
    if scan.file_len > scan.valid_len {
        cut_torn_tail(&last_path, &scan)?;
    }
    let file = OpenOptions::new()
        .append(true)
        .open(&last_path)
        .map_err(io_at(&last_path))?;
    Ok(Tail {
        segments,
        base,
        len: scan.valid_len,
        next: base + scan.records,
        file,
    })
}

/// Appends to a log folder from one thread, without a runtime: for offline
/// writers such as a simulated backfill, which must hold the data directory
/// alone. Frames are encoded by the caller ([`encode_frame`], on any thread)
/// and written in large batches, each synced before `append` returns.
pub struct BulkWriter {
    writer: Writer,
}

impl BulkWriter {
    pub fn open(dir: impl Into<PathBuf>, options: FileLogOptions) -> Result<Self> {
        let dir = dir.into();
        let Tail {
            segments,
            base,
            len,
            next,
            file,
        } = open_tail(&dir)?;
        let shared = Shared::new(dir, next, segments);
        Ok(Self {
            writer: Writer {
                shared,
                file: Arc::new(file),
                base,
                len,
                next,
                options,
            },
        })
    }

    /// Writes the frames in order and syncs them; returns the offset after the last.
    pub fn append(&mut self, frames: &[Vec<u8>]) -> Result<Offset> {
        self.writer.write_batch(frames)?;
        Ok(self.writer.next)
    }

    /// The offset the next record gets.
    pub fn end_offset(&self) -> Offset {
        self.writer.next
    }

    pub fn bytes_written(&self) -> u64 {
        self.writer.shared.stats.bytes.load(Ordering::Relaxed)
    }
}

/// The write stage: owns the open segment.
struct Writer {
    shared: Arc<Shared>,
    file: Arc<File>,
    base: Offset,
    len: u64,
    next: Offset,
    options: FileLogOptions,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<AppendRequest>) {
        let mut batch = Vec::with_capacity(256);
        while receiver.recv_many(&mut batch, MAX_BATCH_RECORDS).await > 0 {
            // let requests already being handled on the runtime join this round, for as
            // long as more keep coming: on a virtual disk one sync costs as much CPU as
            // dozens of requests, so a sync for many beats a sync each
            for _ in 0..MAX_GATHER_YIELDS {
                tokio::task::yield_now().await;
                let before = batch.len();
                while batch.len() < MAX_BATCH_RECORDS {
                    match receiver.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                if batch.len() == before {
                    break;
                }
            }
            let frames: Vec<Vec<u8>> = batch
                .iter_mut()
                .map(|r| std::mem::take(&mut r.frame))
                .collect();
            let first_offset = self.next;
            // requests arriving meanwhile queue for the next round
            let joined = tokio::task::spawn_blocking(move || {
                let result = self.write_batch(&frames);
                (self, result)
            })
            .await;
            let Ok((writer, result)) = joined else {
                // the blocking task panicked and took the writer with it
                poison_all(batch.drain(..));
                return;
            };
            self = writer;
            match result {
                Ok(()) => {
                    for (index, request) in batch.drain(..).enumerate() {
                        let _ = request.done.send(Ok(first_offset + index as u64));
                    }
                }
                Err(error) => {
                    // after a failed write or fsync the page cache cannot be trusted: stop
                    warn!(%error, records = batch.len(), "raw log write failed; refusing further writes until restart");
                    self.shared.poisoned.store(true, Ordering::Release);
                    poison_all(batch.drain(..));
                }
            }
        }
    }

    fn write_batch(&mut self, frames: &[Vec<u8>]) -> Result<()> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(LogError::Poisoned);
        }
        let mut start = 0;
        let mut pending_bytes = 0u64;
        for (index, frame) in frames.iter().enumerate() {
            let frame_len = frame.len() as u64;
            let segment_used = self.len + pending_bytes;
            if segment_used > 0 && segment_used + frame_len > self.options.segment_bytes {
                self.write_out(&frames[start..index])?;
                self.roll()?;
                start = index;
                pending_bytes = 0;
            }
            pending_bytes += frame_len;
        }
        self.write_out(&frames[start..])?;
        if self.options.fsync {
            self.file.sync_data().map_err(io_at(&self.path()))?;
            self.shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.durable_end.store(self.next, Ordering::Release);
        Ok(())
    }

    /// Writes whole frames with as few `writev` calls as the kernel allows.
    fn write_out(&mut self, frames: &[Vec<u8>]) -> Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let total: usize = frames.iter().map(Vec::len).sum();
        let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
        let mut remaining = &mut slices[..];
        let mut written = 0;
        while written < total {
            match (&*self.file).write_vectored(remaining) {
                Ok(0) => {
                    return self
                        .undo_partial(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing"));
                }
                Ok(n) => {
                    written += n;
                    IoSlice::advance_slices(&mut remaining, n);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return self.undo_partial(error),
            }
        }
        let records = frames.len() as u64;
        self.len += total as u64;
        self.next += records;
        self.shared
            .stats
            .records
            .fetch_add(records, Ordering::Relaxed);
        self.shared
            .stats
            .bytes
            .fetch_add(total as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Best effort: leave no half batch behind for the next start-up to find.
    fn undo_partial(&mut self, error: io::Error) -> Result<()> {
        let _ = self.file.set_len(self.len);
        Err(io_at(&self.path())(error))
    }

    /// Closes the current segment (synced) and starts the next one at `self.next`.
    fn roll(&mut self) -> Result<()> {
        self.file.sync_data().map_err(io_at(&self.path()))?;
        let path = segment_path(&self.shared.dir, self.next);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_at(&path))?;
        sync_dir(&self.shared.dir)?;
        self.file = Arc::new(file);
        self.base = self.next;
        self.len = 0;
        lock(&self.shared.segments).insert(self.base, path);
        // records up to the roll are durable even if the rest of the batch fails
        self.shared.durable_end.store(self.next, Ordering::Release);
        Ok(())
    }

    fn path(&self) -> PathBuf {
        segment_path(&self.shared.dir, self.base)
    }
}

fn poison_all(requests: impl Iterator<Item = AppendRequest>) {
    for request in requests {
        let _ = request.done.send(Err(LogError::Poisoned));
    }
}

/// The payload encoded straight after room for the frame header, which is filled in last.
pub fn encode_frame(payload: &CollectorPayload) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.encoded_size_hint());
    frame.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    payload.encode_into(&mut frame);
    let length = u32::try_from(frame.len() - FRAME_HEADER_BYTES).expect("payload under 4 GiB");
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&length.to_le_bytes()),
        &frame[FRAME_HEADER_BYTES..],
    );
    frame[..4].copy_from_slice(&length.to_le_bytes());
    frame[4..FRAME_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    frame
}

/// Reads one frame; `Ok(None)` at a clean end of file, `Err` for a short or
/// corrupt frame (with the reason).
fn read_frame(reader: &mut impl Read) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    match read_full(reader, &mut header) {
        Ok(0) => return Ok(None),
        Ok(n) if n < FRAME_HEADER_BYTES => {
            return Err(format!("frame header cut short after {n} bytes"));
        }
        Ok(_) => {}
        Err(error) => return Err(error.to_string()),
    }
    let length_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes");
    let length = u32::from_le_bytes(length_bytes) as usize;
    let expected_crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if length == 0 || length > MAX_FRAME_PAYLOAD {
        return Err(format!("implausible frame length {length}"));
    }
    let mut payload = vec![0u8; length];
    let n = read_full(reader, &mut payload).map_err(|e| e.to_string())?;
    if n < length {
        return Err(format!("frame cut short: {n} of {length} bytes"));
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&length_bytes), &payload);
    if crc != expected_crc {
        return Err("checksum mismatch".into());
    }
    Ok(Some(payload))
}

fn skip_frame(reader: &mut BufReader<File>) -> std::result::Result<(), String> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    reader.read_exact(&mut header).map_err(|e| e.to_string())?;
    let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    reader
        .seek_relative(i64::from(length))
        .map_err(|e| e.to_string())
}

/// Like `read_exact`, but reports how much was read instead of failing at end of file.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

struct SegmentScan {
    records: u64,
    valid_len: u64,
    file_len: u64,
    problem: Option<String>,
}

fn scan_segment(path: &Path, base: Offset) -> Result<SegmentScan> {
    let file = File::open(path).map_err(io_at(path))?;
    let file_len = file.metadata().map_err(io_at(path))?.len();
    let mut reader = BufReader::with_capacity(1024 * 1024, file);
    let mut records = 0;
    let mut valid_len = 0;
    let problem = loop {
        match read_frame(&mut reader) {
            Ok(Some(payload)) => {
                records += 1;
                valid_len += (FRAME_HEADER_BYTES + payload.len()) as u64;
            }
            Ok(None) => break None,
            Err(reason) => break Some(format!("record {}: {reason}", base + records)),
        }
    };
    Ok(SegmentScan {
        records,
        valid_len,
        file_len,
        problem,
    })
}

/// Moves the bytes after the last whole record into a side file, then truncates.
fn cut_torn_tail(path: &Path, scan: &SegmentScan) -> Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(scan.valid_len))
        .map_err(io_at(path))?;
    file.read_to_end(&mut tail).map_err(io_at(path))?;
    let side = path.with_extension(format!("torn-{}", scan.valid_len));
    fs::write(&side, &tail).map_err(io_at(&side))?;
    file.set_len(scan.valid_len).map_err(io_at(path))?;
    file.sync_all().map_err(io_at(path))?;
    warn!(
        segment = %path.display(),
        cut_bytes = scan.file_len - scan.valid_len,
        kept_records = scan.records,
        reason = scan.problem.as_deref().unwrap_or("unknown"),
        saved_to = %side.display(),
        "raw log had a torn tail (a write cut short by a crash); cut it"
    );
    Ok(())
}

fn list_segments(dir: &Path) -> Result<BTreeMap<Offset, PathBuf>> {
    let mut segments = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        if path.extension().is_some_and(|ext| ext == "log")
            && let Some(base) = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| stem.parse::<Offset>().ok())
        {
            segments.insert(base, path);
        }
    }
    Ok(segments)
}

fn segment_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // a panic while holding these locks leaves no half-updated state worth refusing
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
