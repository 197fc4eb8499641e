//! A full build reads the events once: each batch is split by session into
//! buckets and every bucket appended to its own Arrow IPC file, so a bucket's
//! sessions are then derived from its files alone, with only that bucket in
//! memory, instead of rescanning every Parquet file for every bucket.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::ipc::CompressionType;
use deltalake::arrow::ipc::reader::StreamReader;
use deltalake::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::physical_expr::expressions::col;
use deltalake::datafusion::physical_plan::metrics::Time;
use deltalake::datafusion::physical_plan::repartition::BatchPartitioner;
use deltalake::datafusion::physical_plan::{Partitioning, SendableRecordBatchStream};
use deltalake::datafusion::prelude::DataFrame;
use futures::StreamExt;

use crate::run::{compact, conform, nullable};
use crate::{ModelError, Result};

/// The session column events are split by.
const SESSION: &str = "domain_sessionid";

/// Events split into buckets by session, on disk; the folder goes when this does.
pub(crate) struct Spill {
    dir: PathBuf,
    schema: SchemaRef,
    /// `files[partition][bucket]`, where that partition wrote rows of the bucket.
    files: Vec<Vec<Option<PathBuf>>>,
    rows: u64,
}

impl Spill {
    /// Runs `frame` once, its partitions side by side, writing its rows under
    /// `dir` (created, and removed when the spill is dropped).
    pub(crate) async fn write(frame: DataFrame, dir: PathBuf, buckets: usize) -> Result<Spill> {
        let started = std::time::Instant::now();
        std::fs::create_dir_all(&dir).map_err(|source| io_error(&dir, source))?;
        // the folder is removed from here on, whatever happens
        let mut spill = Spill {
            dir,
            schema: nullable(frame.schema().as_arrow()),
            files: Vec::new(),
            rows: 0,
        };
        let streams = frame.execute_stream_partitioned().await?;
        let partitions = streams.len();
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(partition, stream)| {
                let (dir, schema) = (spill.dir.clone(), spill.schema.clone());
                tokio::spawn(write_partition(
                    stream, dir, schema, partition, partitions, buckets,
                ))
            })
            .collect();
        for task in tasks {
            let (files, rows) = task
                .await
                .map_err(|error| ModelError::Sql(format!("splitting events: {error}")))??;
            spill.files.push(files);
            spill.rows += rows;
        }
        tracing::debug!(rows = spill.rows, buckets, elapsed = ?started.elapsed(), "events split");
        Ok(spill)
    }

    /// How many rows were written.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The rows of one bucket, one list of batches per partition that wrote them
    /// (at least one list).
    pub(crate) fn read(&self, bucket: usize) -> Result<Vec<Vec<RecordBatch>>> {
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        for path in self.files.iter().filter_map(|files| files[bucket].as_ref()) {
            let file = File::open(path).map_err(|source| io_error(path, source))?;
            let reader = StreamReader::try_new(BufReader::new(file), None)?;
            out.push(reader.collect::<Result<Vec<_>, _>>()?);
        }
        if out.is_empty() {
            // a bucket no session fell in: one partition without rows
            out.push(Vec::new());
        }
        tracing::debug!(bucket, elapsed = ?started.elapsed(), "bucket read");
        Ok(out)
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot remove spilled events");
        }
    }
}

type Writer = StreamWriter<BufWriter<File>>;

/// One partition's rows, split into a file per bucket it has rows of.
async fn write_partition(
    mut stream: SendableRecordBatchStream,
    dir: PathBuf,
    schema: SchemaRef,
    partition: usize,
    partitions: usize,
    buckets: usize,
) -> Result<(Vec<Option<PathBuf>>, u64)> {
    let mut writers: Vec<Option<(PathBuf, Writer)>> = (0..buckets).map(|_| None).collect();
    let mut split = partitioner(&schema, partition, partitions, buckets)?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = conform(&batch?, &schema)?;
        rows += batch.num_rows() as u64;
        split.partition(batch, |bucket, part| {
            let slot = &mut writers[bucket];
            if slot.is_none() {
                let path = dir.join(format!("p{partition}-b{bucket}.arrow"));
                let file = File::create(&path).map_err(|source| {
                    DataFusionError::External(Box::new(io_error(&path, source)))
                })?;
                // LZ4: text-heavy events shrink severalfold, for less to write and read back
                let options = IpcWriteOptions::default()
                    .try_with_compression(Some(CompressionType::LZ4_FRAME))?;
                let writer =
                    StreamWriter::try_new_with_options(BufWriter::new(file), &schema, options)?;
                *slot = Some((path, writer));
            }
            if let Some((_, writer)) = slot {
                // views copied out: the file gets the bucket's strings, not the whole batch's
                writer.write(&compact(&part))?;
            }
            Ok(())
        })?;
    }
    let mut files = Vec::with_capacity(buckets);
    for slot in writers {
        files.push(match slot {
            Some((path, mut writer)) => {
                writer.finish()?;
                Some(path)
            }
            None => None,
        });
    }
    Ok((files, rows))
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
    use deltalake::arrow::array::{ArrayRef, StringArray};
    use std::sync::Arc;

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
