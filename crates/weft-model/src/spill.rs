//! A full build reads the events once: each batch is split by session into
//! buckets, so a bucket's sessions are then derived from its rows alone
//! instead of rescanning every Parquet file for every bucket. The buckets are
//! held in memory up to a budget; beyond it, their rows go to Arrow IPC files.
//! Either way their strings are plain (offsets and bytes), not views: a
//! build's time goes largely to the memory it first touches.
//!
//! Only page views need the wide page, referer, marketing, device and geo
//! columns, and they are a fraction of the events: every event is kept
//! without those columns, and page view events are kept again whole.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltalake::arrow::array::{RecordBatch, Scalar, StringArray};
use deltalake::arrow::compute::kernels::cmp::eq;
use deltalake::arrow::compute::{BatchCoalescer, cast, filter_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::ipc::reader::StreamReader;
use deltalake::arrow::ipc::writer::StreamWriter;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::physical_expr::expressions::col;
use deltalake::datafusion::physical_plan::metrics::Time;
use deltalake::datafusion::physical_plan::repartition::BatchPartitioner;
use deltalake::datafusion::physical_plan::{Partitioning, SendableRecordBatchStream};
use deltalake::datafusion::prelude::DataFrame;
use futures::StreamExt;

use crate::run::{conform, nullable};
use crate::sql::PAGE_VIEW_COLUMNS;
use crate::{ModelError, Result};

/// The session column events are split by.
const SESSION: &str = "domain_sessionid";

/// The columns that scope a run's events, which no model reads: a bucket
/// goes without them.
const SCOPE_COLUMNS: [&str; 2] = ["load_tstamp", "event_date"];

/// Rows in a batch of a bucket.
const BATCH_ROWS: usize = 8192;

/// Events split into buckets by session, in memory and on disk; the folder
/// goes when this does.
pub(crate) struct Spill {
    dir: PathBuf,
    /// Every event, without the page view columns.
    events: Part,
    /// The page view events, whole.
    page_views: Part,
    rows: u64,
    /// Bytes of rows held in memory.
    held: usize,
}

/// One kind of rows of the spill.
struct Part {
    schema: SchemaRef,
    /// `stored[partition][bucket]`: the rows that partition had of the bucket.
    stored: Vec<Vec<Stored>>,
}

/// One partition's rows of one bucket: those held in memory, and the file
/// holding the rest.
#[derive(Default)]
struct Stored {
    held: Vec<RecordBatch>,
    file: Option<PathBuf>,
}

/// How many bytes of rows the buckets may hold in memory, shared by the
/// partitions that split the events.
struct Budget {
    left: AtomicUsize,
}

impl Budget {
    /// Whether `bytes` more fit, and if they do, takes them.
    fn take(&self, bytes: usize) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }
}

/// A bucket's rows, from every partition that split them.
pub(crate) struct Bucket {
    pub(crate) events_schema: SchemaRef,
    pub(crate) events: Vec<RecordBatch>,
    pub(crate) page_views_schema: SchemaRef,
    pub(crate) page_view_events: Vec<RecordBatch>,
}

impl Spill {
    /// Runs `frame` once, its partitions side by side, holding up to `memory`
    /// bytes of its rows and writing the rest under `dir` (created, and
    /// removed when the spill is dropped).
    pub(crate) async fn write(
        frame: DataFrame,
        dir: PathBuf,
        buckets: usize,
        memory: usize,
    ) -> Result<Spill> {
        let started = std::time::Instant::now();
        std::fs::create_dir_all(&dir).map_err(|source| io_error(&dir, source))?;
        let whole = nullable(frame.schema().as_arrow());
        let kept = |without: &[&str]| -> Vec<usize> {
            (0..whole.fields().len())
                .filter(|&i| {
                    let name = whole.field(i).name().as_str();
                    !SCOPE_COLUMNS.contains(&name) && !without.contains(&name)
                })
                .collect()
        };
        let (narrow, wide) = (kept(PAGE_VIEW_COLUMNS), kept(&[]));
        // the folder is removed from here on, whatever happens
        let mut spill = Spill {
            dir,
            events: Part {
                schema: Arc::new(whole.project(&narrow)?),
                stored: Vec::new(),
            },
            page_views: Part {
                schema: Arc::new(whole.project(&wide)?),
                stored: Vec::new(),
            },
            rows: 0,
            held: 0,
        };
        let budget = Arc::new(Budget {
            left: AtomicUsize::new(memory),
        });
        let streams = frame.execute_stream_partitioned().await?;
        let partitions = streams.len();
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(partition, stream)| {
                let split = Split {
                    dir: spill.dir.clone(),
                    schema: Arc::clone(&whole),
                    narrow: narrow.clone(),
                    wide: wide.clone(),
                    partition,
                    partitions,
                    buckets,
                    budget: Arc::clone(&budget),
                };
                tokio::spawn(split.run(stream))
            })
            .collect();
        for task in tasks {
            let (events, page_views, rows) = task
                .await
                .map_err(|error| ModelError::Sql(format!("splitting events: {error}")))??;
            spill.events.stored.push(events);
            spill.page_views.stored.push(page_views);
            spill.rows += rows;
        }
        spill.held = memory - budget.left.load(Ordering::Relaxed);
        tracing::debug!(
            rows = spill.rows,
            buckets,
            held = spill.held,
            elapsed = ?started.elapsed(),
            "events split"
        );
        Ok(spill)
    }

    /// How many rows were split.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// How many bytes of them are held in memory.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// The columns of every event (without the page view columns).
    #[cfg(test)]
    pub(crate) fn events_schema(&self) -> &SchemaRef {
        &self.events.schema
    }

    /// The columns of the page view events (every column but the run's scope).
    #[cfg(test)]
    pub(crate) fn page_views_schema(&self) -> &SchemaRef {
        &self.page_views.schema
    }

    /// The rows of one bucket, which the spill then no longer holds, to be
    /// read (while the spill lasts) by [`Taken::read`].
    pub(crate) fn take(&mut self, bucket: usize) -> Taken {
        Taken {
            bucket,
            events: self.events.take(bucket),
            page_view_events: self.page_views.take(bucket),
        }
    }
}

/// One bucket's rows as the spill kept them.
pub(crate) struct Taken {
    bucket: usize,
    events: (SchemaRef, Vec<Stored>),
    page_view_events: (SchemaRef, Vec<Stored>),
}

impl Taken {
    /// The rows, as the spill's schemas give them: taken in turn, read side
    /// by side, as turning strings back into views takes a while.
    pub(crate) fn read(self) -> Result<Bucket> {
        let started = std::time::Instant::now();
        let read = Bucket {
            events_schema: Arc::clone(&self.events.0),
            events: read_part(self.events)?,
            page_views_schema: Arc::clone(&self.page_view_events.0),
            page_view_events: read_part(self.page_view_events)?,
        };
        tracing::debug!(bucket = self.bucket, elapsed = ?started.elapsed(), "bucket read");
        Ok(read)
    }
}

impl Part {
    fn take(&mut self, bucket: usize) -> (SchemaRef, Vec<Stored>) {
        let stored = self
            .stored
            .iter_mut()
            .map(|buckets| std::mem::take(&mut buckets[bucket]))
            .collect();
        (Arc::clone(&self.schema), stored)
    }
}

/// One part's rows of a bucket, as `schema` gives them.
fn read_part((schema, stored): (SchemaRef, Vec<Stored>)) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for Stored { held, file } in stored {
        for batch in held {
            batches.push(conform(&batch, &schema)?);
        }
        if let Some(path) = file {
            let file = File::open(&path).map_err(|source| io_error(&path, source))?;
            let reader = StreamReader::try_new(BufReader::new(file), None)?;
            for batch in reader {
                batches.push(conform(&batch?, &schema)?);
            }
        }
    }
    Ok(batches)
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot remove spilled events");
        }
    }
}

type Writer = StreamWriter<BufWriter<File>>;

/// How one partition of the events is split.
struct Split {
    dir: PathBuf,
    /// The events' columns.
    schema: SchemaRef,
    /// The columns every event is kept with.
    narrow: Vec<usize>,
    /// The columns the page view events are kept with.
    wide: Vec<usize>,
    partition: usize,
    partitions: usize,
    buckets: usize,
    budget: Arc<Budget>,
}

impl Split {
    /// The partition's rows, split by bucket: its events', its page views'
    /// and how many events there were.
    async fn run(
        self,
        mut stream: SendableRecordBatchStream,
    ) -> Result<(Vec<Stored>, Vec<Stored>, u64)> {
        let narrow_schema = Arc::new(self.schema.project(&self.narrow)?);
        let mut events = Writers::new(&self, "events", narrow_schema)?;
        let wide_schema = Arc::new(self.schema.project(&self.wide)?);
        let mut page_views = Writers::new(&self, "page-views", wide_schema)?;
        let event_name = self.schema.index_of("event_name")?;
        let page_view = Scalar::new(cast(
            &StringArray::from(vec!["page_view"]),
            self.schema.field(event_name).data_type(),
        )?);
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            let batch = conform(&batch?, &self.schema)?;
            rows += batch.num_rows() as u64;
            events.write(batch.project(&self.narrow)?)?;
            let is_page_view = eq(batch.column(event_name), &page_view)?;
            let page_view_rows = filter_record_batch(&batch.project(&self.wide)?, &is_page_view)?;
            if page_view_rows.num_rows() > 0 {
                page_views.write(page_view_rows)?;
            }
        }
        Ok((events.finish()?, page_views.finish()?, rows))
    }
}

/// The buckets of one kind of rows of one partition.
struct Writers {
    dir: PathBuf,
    prefix: String,
    schema: SchemaRef,
    /// The columns as the files hold them (see [`plain`]).
    plain: SchemaRef,
    split: BatchPartitioner,
    budget: Arc<Budget>,
    buckets: Vec<Option<Bucketed>>,
}

/// A bucket's rows, from its first: those not yet a whole batch (a batch
/// split into buckets leaves a few hundred rows a bucket, and small batches
/// are slow to read back and to query), the batches held in memory, and the
/// file of those past the budget.
struct Bucketed {
    rows: BatchCoalescer,
    held: Vec<RecordBatch>,
    file: Option<(PathBuf, Writer)>,
}

impl Bucketed {
    /// Holds the batches filled so far, with the `plain` columns, while the
    /// budget lasts, and writes them to the file at `path` after.
    fn keep_filled(
        &mut self,
        budget: &Budget,
        plain: &SchemaRef,
        path: impl Fn() -> PathBuf,
    ) -> std::result::Result<(), DataFusionError> {
        while let Some(batch) = self.rows.next_completed_batch() {
            let batch = conform(&batch, plain)
                .map_err(|error| DataFusionError::External(Box::new(error)))?;
            // once a bucket spills it goes on spilling: the budget only shrinks
            if self.file.is_none() && budget.take(batch.get_array_memory_size()) {
                // held as plain strings too: a view is 16 bytes beside its
                // string, and each page of memory a build first touches costs
                // more than the copy (`weft bench model`)
                self.held.push(batch);
                continue;
            }
            let (_, writer) = match &mut self.file {
                Some(file) => file,
                None => {
                    let path = path();
                    let file = File::create(&path).map_err(|source| {
                        DataFusionError::External(Box::new(io_error(&path, source)))
                    })?;
                    // uncompressed: LZ4 made the files a third of the size but
                    // took over half of reading them back (`weft bench model`)
                    let writer = StreamWriter::try_new(BufWriter::new(file), plain)?;
                    self.file.insert((path, writer))
                }
            };
            writer.write(&batch)?;
        }
        Ok(())
    }
}

impl Writers {
    fn new(split: &Split, kind: &str, schema: SchemaRef) -> Result<Writers> {
        Ok(Writers {
            dir: split.dir.clone(),
            prefix: format!("{kind}-p{}", split.partition),
            split: partitioner(&schema, split.partition, split.partitions, split.buckets)?,
            plain: plain(&schema),
            schema,
            budget: Arc::clone(&split.budget),
            buckets: (0..split.buckets).map(|_| None).collect(),
        })
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let Writers {
            dir,
            prefix,
            schema,
            plain,
            split,
            budget,
            buckets,
        } = self;
        split.partition(batch, |bucket, part| {
            let bucketed = buckets[bucket].get_or_insert_with(|| Bucketed {
                rows: BatchCoalescer::new(Arc::clone(schema), BATCH_ROWS),
                held: Vec::new(),
                file: None,
            });
            bucketed.rows.push_batch(part)?;
            bucketed.keep_filled(budget, plain, || bucket_path(dir, prefix, bucket))
        })?;
        Ok(())
    }

    fn finish(self) -> Result<Vec<Stored>> {
        let mut stored = Vec::with_capacity(self.buckets.len());
        for (bucket, slot) in self.buckets.into_iter().enumerate() {
            let Some(mut bucketed) = slot else {
                stored.push(Stored::default());
                continue;
            };
            bucketed.rows.finish_buffered_batch()?;
            bucketed.keep_filled(&self.budget, &self.plain, || {
                bucket_path(&self.dir, &self.prefix, bucket)
            })?;
            let file = match bucketed.file {
                Some((path, mut writer)) => {
                    writer.finish()?;
                    Some(path)
                }
                None => None,
            };
            stored.push(Stored {
                held: bucketed.held,
                file,
            });
        }
        Ok(stored)
    }
}

/// Where a partition's rows of `bucket` past the budget go.
fn bucket_path(dir: &Path, prefix: &str, bucket: usize) -> PathBuf {
    dir.join(format!("{prefix}-b{bucket}.arrow"))
}

/// The columns as a bucket's files hold them: string and binary views as
/// plain strings and bytes, which a reader checks a buffer at a time rather
/// than a value at a time, and which become views again without copying.
fn plain(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let kind = match field.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            Field::new(field.name(), kind, field.is_nullable())
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Splits batches by the hash of their session id, as DataFusion's hash
/// repartitioning does (one fixed hash for the whole process, so every
/// partition puts a session in the same bucket).
fn partitioner(
    schema: &SchemaRef,
    partition: usize,
    partitions: usize,
    buckets: usize,
) -> Result<BatchPartitioner> {
    let session = col(SESSION, schema)?;
    Ok(BatchPartitioner::try_new(
        Partitioning::Hash(vec![session], buckets),
        Time::new(),
        partition,
        partitions,
    )?)
}

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Spill {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{ArrayRef, AsArray, StringArray, StringViewArray};
    use deltalake::datafusion::prelude::SessionContext;
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;

    /// Events of `sessions` sessions, every fourth a page view, over several input batches.
    fn events(sessions: usize, per_session: usize) -> Vec<RecordBatch> {
        let rows: Vec<[String; 3]> = (0..sessions * per_session)
            .map(|i| {
                let session = format!("{:08x}-session", i % sessions);
                let name = if i % 4 == 0 { "page_view" } else { "page_ping" };
                [session, name.to_owned(), format!("title {i}")]
            })
            .collect();
        rows.chunks(5000)
            .map(|chunk| {
                let column = |at: usize| -> ArrayRef {
                    Arc::new(StringViewArray::from_iter_values(
                        chunk.iter().map(|row| &row[at]),
                    ))
                };
                RecordBatch::try_from_iter([
                    (SESSION, column(0)),
                    ("event_name", column(1)),
                    ("page_title", column(2)),
                    // a column that only scopes a run: no bucket keeps it
                    ("load_tstamp", column(1)),
                ])
                .unwrap()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_event_goes_without_page_columns_and_page_views_whole_to_its_sessions_bucket() {
        // 60,000 events are about 2.5 MB as the buckets keep them
        for memory in [usize::MAX, 1 << 20, 0] {
            let dir = tempfile::tempdir().unwrap();
            let spill_dir = dir.path().join("spill");
            let spill = split_and_check(spill_dir.clone(), memory).await;
            let files = std::fs::read_dir(&spill_dir).unwrap().count();
            match memory {
                usize::MAX => assert_eq!(files, 0, "files beside a budget for everything"),
                0 => assert_eq!(spill.held(), 0),
                _ => assert!(files > 0 && spill.held() > 0 && spill.held() <= memory),
            }
            assert!(files > 0 || memory == usize::MAX, "no file past the budget");
            drop(spill);
            assert!(!spill_dir.exists());
        }
    }

    /// Splits events into three buckets, checks each comes back whole, and
    /// gives back the spill with its buckets taken.
    async fn split_and_check(dir: PathBuf, memory: usize) -> Spill {
        let input = events(3000, 20);
        let ctx = SessionContext::new();
        let frame = ctx.read_batches(input).unwrap();
        let mut spill = Spill::write(frame, dir, 3, memory).await.unwrap();
        assert_eq!(spill.rows(), 60_000);
        assert!(spill.events_schema().index_of("page_title").is_err());
        assert!(spill.page_views_schema().index_of("page_title").is_ok());
        for schema in [spill.events_schema(), spill.page_views_schema()] {
            assert!(schema.index_of("load_tstamp").is_err());
        }

        let mut bucket_of: HashMap<String, usize> = HashMap::new();
        let (mut events, mut page_views) = (0, 0);
        for bucket in 0..3 {
            let read = spill.take(bucket).read().unwrap();
            for (part, rows) in [
                (&read.events, &mut events),
                (&read.page_view_events, &mut page_views),
            ] {
                for batch in part.iter() {
                    // batches as the queries get them: views again, and not a few rows each
                    assert_eq!(batch.column(0).data_type(), &DataType::Utf8View);
                    assert!(batch.num_rows() <= BATCH_ROWS);
                    *rows += batch.num_rows();
                    for session in batch.column(0).as_string_view().iter().flatten() {
                        let first = *bucket_of.entry(session.to_owned()).or_insert(bucket);
                        assert_eq!(first, bucket, "{session} is in two buckets");
                    }
                }
                let batches = part.len();
                let in_part: usize = part.iter().map(RecordBatch::num_rows).sum();
                // two partitions may each leave one part-filled batch
                assert!(
                    batches <= in_part.div_ceil(BATCH_ROWS) + 2,
                    "{batches} batches"
                );
            }
            let titles: HashSet<String> = read
                .page_view_events
                .iter()
                .flat_map(|batch| {
                    let titles = batch.column_by_name("page_title").unwrap().as_string_view();
                    titles
                        .iter()
                        .flatten()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            assert!(
                titles
                    .iter()
                    .all(|t| t.trim_start_matches("title ").parse::<usize>().unwrap() % 4 == 0)
            );
        }
        assert_eq!((events, page_views), (60_000, 15_000));
        assert_eq!(bucket_of.len(), 3000);
        spill
    }

    #[test]
    fn sessions_spread_over_every_bucket() {
        let ids: Vec<String> = (0..7000).map(|i| format!("{i:08x}-session")).collect();
        let ids = StringArray::from(ids);
        let batch = RecordBatch::try_from_iter([(SESSION, Arc::new(ids) as ArrayRef)]).unwrap();
        let mut counts = [0usize; 7];
        partitioner(&batch.schema(), 0, 1, 7)
            .unwrap()
            .partition(batch, |bucket, part| {
                counts[bucket] += part.num_rows();
                Ok(())
            })
            .unwrap();
        assert!(
            counts.iter().all(|&n| (800..1200).contains(&n)),
            "{counts:?}"
        );
    }
}
