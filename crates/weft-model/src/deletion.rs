//! Rows replaced in place with Delta deletion vectors: the rows of a table
//! whose key an incremental run re-derives are marked deleted in their files,
//! which stay, and the new rows go to new files, all in one commit.
//!
//! The rows a run changes are few but spread over every file: a cookie that
//! logs in restitches its sessions of any day. Rewriting each file that holds
//! one of them would cost as much as writing the table anew.
//!
//! A run finds those rows once, reading only the key column of each file:
//! where they lie gives the dates the run reads events from, the rows it
//! restitches (read again by position) and the positions it marks deleted.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{AsArray, RecordBatch, RecordBatchOptions, new_null_array};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::common::ScalarValue;
use deltalake::kernel::LogicalFileView;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, DeletionVectorDescriptor, StorageType};
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection};
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::ParquetObjectReader;
use deltalake::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::file::metadata::PageIndexPolicy;
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt;
use deltalake::{ObjectStore, Path};
use futures::{StreamExt, TryStreamExt};
use roaring::RoaringTreemap;

use deltalake::DeltaTableError;

use crate::run::conform;

type Result<T, E = DeltaTableError> = std::result::Result<T, E>;

/// The table property that lets a table take deletion vectors.
pub(crate) const ENABLE: &str = "delta.enableDeletionVectors";

/// The RoaringBitmapArray format's magic number (Delta protocol, deletion vector format).
const MAGIC: u32 = 1_681_511_377;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Whether the table takes deletion vectors (created with [`ENABLE`]).
pub(crate) fn supported(table: &DeltaTable) -> bool {
    let Ok(state) = table.snapshot() else {
        return false;
    };
    let enabled = state
        .metadata()
        .configuration()
        .get(ENABLE)
        .is_some_and(|value| value == "true");
    let featured = state.protocol().writer_features().is_some_and(|features| {
        features
            .iter()
            .any(|feature| feature.to_string() == "deletionVectors")
    });
    enabled && featured
}

/// The rows of a table whose key is one of a set, file by file, as one
/// snapshot of the table holds them: found once, then read again (rows
/// restitched) and marked deleted (rows replaced) without another scan.
pub(crate) struct Located {
    pub files: Vec<Found>,
}

/// The rows of one file whose key is one of the set.
pub(crate) struct Found {
    view: LogicalFileView,
    /// The rows deleted before.
    deleted: RoaringTreemap,
    /// Each row found, not deleted before: its position (from 0, in file
    /// order) and its key.
    pub rows: Vec<(u64, String)>,
}

impl Found {
    /// The file's value of a partition column.
    pub fn partition(&self, column: &str) -> Option<String> {
        self.view.partition_values_map().remove(column).flatten()
    }
}

/// Finds the rows of `table` whose `column` is one of `keys`, reading that
/// column alone of each file, the files side by side.
pub(crate) async fn locate(
    table: &DeltaTable,
    column: &str,
    keys: &HashSet<String>,
) -> Result<Located> {
    let state = table.snapshot()?;
    let mapping = state
        .metadata()
        .configuration()
        .get("delta.columnMapping.mode");
    if mapping.is_some_and(|mode| mode != "none") {
        // file columns then have other names than the table's
        return Err(DeltaTableError::Generic(
            "tables with column mapping cannot be modelled incrementally".into(),
        ));
    }
    if keys.is_empty() {
        return Ok(Located { files: Vec::new() });
    }
    let store = table.object_store();
    let root = table.table_url().to_string();
    let keys = Arc::new(keys.clone());
    let views: Vec<LogicalFileView> = state.log_data().iter().collect();
    let searches: Vec<_> = views
        .into_iter()
        .map(|view| {
            let store = Arc::clone(&store);
            let keys = Arc::clone(&keys);
            let column = column.to_owned();
            let root = root.clone();
            async move {
                let deleted = match view.deletion_vector_descriptor() {
                    None => RoaringTreemap::new(),
                    Some(descriptor) => read(store.as_ref(), &descriptor, &root).await?,
                };
                let rows = positions(file_reader(store, &view), &column, &keys, &deleted).await?;
                Ok(Found {
                    view,
                    deleted,
                    rows,
                })
            }
        })
        .collect();
    let mut found = side_by_side(searches).await?;
    found.retain(|found| !found.rows.is_empty());
    Ok(Located { files: found })
}

/// The found rows for which `keep` holds, every column read, in the
/// table's schema (partition values included): a task that owns what it
/// reads, so it can run while the caller does other work.
pub(crate) fn read_rows(
    table: &DeltaTable,
    located: &Located,
    keep: impl Fn(&str) -> bool,
) -> Result<impl Future<Output = Result<Vec<RecordBatch>>> + Send + 'static> {
    let state = table.snapshot()?;
    let schema = state.snapshot().arrow_schema();
    let store = table.object_store();
    let reads = located.files.iter().filter_map(|found| {
        let mut positions: Vec<u64> = found
            .rows
            .iter()
            .filter(|(_, key)| keep(key))
            .map(|(position, _)| *position)
            .collect();
        if positions.is_empty() {
            return None;
        }
        positions.sort_unstable();
        let reader = file_reader(Arc::clone(&store), &found.view);
        let partitions = found.view.partition_values_map();
        let schema = Arc::clone(&schema);
        Some(async move {
            // the page index lets the reader skip the pages without a wanted row
            let options =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
            let builder =
                ParquetRecordBatchStreamBuilder::new_with_options(reader, options).await?;
            let total = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
            let ranges = positions.iter().map(|&at| at as usize..at as usize + 1);
            let selection = RowSelection::from_consecutive_ranges(ranges, total);
            let mut stream = builder.with_row_selection(selection).build()?;
            let mut batches = Vec::new();
            while let Some(batch) = stream.try_next().await? {
                batches.push(logical(&batch, &schema, &partitions)?);
            }
            Ok(batches)
        })
    });
    let reads: Vec<_> = reads.collect();
    Ok(async move {
        let read: Vec<Vec<RecordBatch>> = side_by_side(reads).await?;
        Ok(read.into_iter().flatten().collect())
    })
}

/// Runs one task per file, as many at once as there are cores, so the files
/// are decoded on every core; the results in the order of the tasks.
async fn side_by_side<T: Send + 'static>(
    tasks: Vec<impl Future<Output = Result<T>> + Send + 'static>,
) -> Result<Vec<T>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    futures::stream::iter(tasks.into_iter().map(tokio::spawn))
        .buffered(cores)
        .map(|joined| joined.map_err(|error| DeltaTableError::Generic(error.to_string()))?)
        .try_collect()
        .await
}

/// A file's batch in the table's schema: partition columns from the file's
/// values, columns the file predates as nulls.
fn logical(
    batch: &RecordBatch,
    schema: &SchemaRef,
    partitions: &HashMap<String, Option<String>>,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            if let Some(value) = partitions.get(field.name()) {
                let scalar = match value {
                    Some(value) => ScalarValue::try_from_string(value.clone(), field.data_type()),
                    None => ScalarValue::try_from(field.data_type()),
                };
                return scalar
                    .and_then(|scalar| scalar.to_array_of_size(rows))
                    .map_err(|error| DeltaTableError::Generic(error.to_string()));
            }
            match batch.column_by_name(field.name()) {
                Some(column) => Ok(cast(column, field.data_type())?),
                None => Ok(new_null_array(field.data_type(), rows)),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// Replaces the located rows of `table` with `rows` in one commit: the files
/// stay, with the rows marked deleted, and the new rows go to new files.
pub(crate) async fn replace(
    table: &DeltaTable,
    rows: Vec<RecordBatch>,
    located: Located,
    properties: CommitProperties,
) -> Result<()> {
    let state = table.snapshot()?;
    let store = table.object_store();
    let mut actions = Vec::new();
    if !located.files.is_empty() {
        let uuid = uuid::Uuid::new_v4();
        let mut file = vec![1u8];
        let mut descriptors = Vec::with_capacity(located.files.len());
        let mut marked = Vec::with_capacity(located.files.len());
        for found in located.files {
            let mut deleted = found.deleted;
            deleted.extend(found.rows.iter().map(|(position, _)| *position));
            descriptors.push(append(&mut file, &deleted, uuid)?);
            marked.push(found.view);
        }
        store
            .put(
                &Path::from(format!("deletion_vector_{uuid}.bin")),
                file.into(),
            )
            .await?;
        let now = chrono_millis();
        for (view, descriptor) in marked.iter().zip(descriptors) {
            // the file stays; its add is replaced by one carrying the new vector
            #[allow(deprecated)]
            let mut add = view.add_action();
            add.deletion_vector = Some(descriptor);
            add.data_change = true;
            add.modification_time = now;
            actions.push(Action::Remove(view.remove_action(true)));
            actions.push(Action::Add(add));
        }
    }

    let schema = state.snapshot().arrow_schema();
    let partitions = state.metadata().partition_columns();
    let config = WriterConfig::new(
        schema.clone(),
        partitions.to_vec(),
        None,
        None,
        None,
        state.table_config().num_indexed_cols(),
        None,
    );
    let mut writer = DeltaWriter::new(store.clone(), config);
    for batch in &rows {
        if batch.num_rows() > 0 {
            let batch = conform(batch, &schema)
                .map_err(|error| DeltaTableError::Generic(error.to_string()))?;
            writer.write(&batch).await?;
        }
    }
    actions.extend(writer.close().await?.into_iter().map(Action::Add));
    // with no actions, the commit still records how far the table is modelled
    commit(table, state, actions, properties).await?;
    Ok(())
}

async fn commit(
    table: &DeltaTable,
    state: &deltalake::table::state::DeltaTableState,
    actions: Vec<Action>,
    properties: CommitProperties,
) -> Result<()> {
    CommitBuilder::from(properties)
        .with_actions(actions)
        .build(
            Some(state.snapshot() as &dyn deltalake::kernel::transaction::TableReference),
            table.log_store(),
            DeltaOperation::Update {
                predicate: Some("rows of the sessions re-derived".to_owned()),
            },
        )
        .await?;
    Ok(())
}

/// A reader of one of the table's files that fetches only the byte ranges asked for.
// deprecated in favour of writing one's own; it is the reader deltalake reads its files with
#[allow(deprecated)]
fn file_reader(store: ObjectStoreRef, view: &LogicalFileView) -> ParquetObjectReader {
    let reader = ParquetObjectReader::new(store, view.object_store_path());
    match u64::try_from(view.size()) {
        Ok(size) => reader.with_file_size(size),
        Err(_) => reader,
    }
}

/// The rows of a file whose `column` is one of `keys`, but for those deleted.
#[allow(deprecated)]
async fn positions(
    reader: ParquetObjectReader,
    column: &str,
    keys: &HashSet<String>,
    deleted: &RoaringTreemap,
) -> Result<Vec<(u64, String)>> {
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), [column]);
    let mut stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    let mut found = Vec::new();
    let mut offset = 0u64;
    while let Some(batch) = stream.try_next().await? {
        let values = cast(batch.column(0), &DataType::Utf8)?;
        for (row, value) in values.as_string::<i32>().iter().enumerate() {
            let position = offset + row as u64;
            if let Some(value) = value
                && keys.contains(value)
                && !deleted.contains(position)
            {
                found.push((position, value.to_owned()));
            }
        }
        offset += batch.num_rows() as u64;
    }
    Ok(found)
}

/// The rows a deletion vector marks deleted, however it is stored: in a
/// file beside the table, at an absolute path under `root` (the table's
/// URL), or inline in the log.
async fn read(
    store: &dyn ObjectStore,
    descriptor: &DeletionVectorDescriptor,
    root: &str,
) -> Result<RoaringTreemap> {
    let encoded = descriptor.path_or_inline_dv.as_str();
    let bad =
        |reason: &str| DeltaTableError::Generic(format!("deletion vector {encoded:?}: {reason}"));
    let size = usize::try_from(descriptor.size_in_bytes).map_err(|_| bad("size"))?;
    let path = match descriptor.storage_type {
        StorageType::Inline => {
            let bytes = z85::decode(encoded).map_err(|_| bad("not z85"))?;
            let data = bytes
                .get(..size)
                .ok_or_else(|| bad("shorter than its size"))?;
            return bitmap(data).ok_or_else(|| bad("not a portable roaring bitmap array"));
        }
        StorageType::AbsolutePath => {
            let relative = encoded
                .strip_prefix(root.trim_end_matches('/'))
                .and_then(|rest| rest.strip_prefix('/'))
                .ok_or_else(|| bad("outside the table"))?;
            Path::from(relative)
        }
        StorageType::UuidRelativePath => {
            let split = encoded
                .len()
                .checked_sub(20)
                .ok_or_else(|| bad("too short"))?;
            let uuid = z85::decode(&encoded[split..]).map_err(|_| bad("not z85"))?;
            let uuid = uuid::Uuid::from_slice(&uuid).map_err(|_| bad("not a uuid"))?;
            let prefix = &encoded[..split];
            let name = format!("deletion_vector_{uuid}.bin");
            if prefix.is_empty() {
                Path::from(name)
            } else {
                Path::from(format!("{prefix}/{name}"))
            }
        }
    };
    let bytes = store.get(&path).await?.bytes().await?;
    let start = usize::try_from(descriptor.offset.unwrap_or(1)).map_err(|_| bad("offset"))?;
    let data = bytes
        .get(start + 4..start + 4 + size)
        .ok_or_else(|| bad("shorter than its descriptor says"))?;
    let checksum = bytes
        .get(start + 4 + size..start + 8 + size)
        .ok_or_else(|| bad("no checksum"))?;
    if CRC.checksum(data).to_be_bytes() != checksum {
        return Err(bad("checksum mismatch"));
    }
    bitmap(data).ok_or_else(|| bad("not a portable roaring bitmap array"))
}

/// A RoaringBitmapArray: the magic number, then a portable 64-bit roaring bitmap.
fn bitmap(data: &[u8]) -> Option<RoaringTreemap> {
    let rest = data.strip_prefix(&MAGIC.to_le_bytes())?;
    RoaringTreemap::deserialize_from(Cursor::new(rest)).ok()
}

/// Appends one deletion vector to a deletion vector file's bytes: its size,
/// the magic number and the bitmap, and their checksum.
fn append(
    file: &mut Vec<u8>,
    deleted: &RoaringTreemap,
    uuid: uuid::Uuid,
) -> Result<DeletionVectorDescriptor> {
    let offset = i32::try_from(file.len())
        .map_err(|_| DeltaTableError::Generic("deletion vector file too large".into()))?;
    let mut data = MAGIC.to_le_bytes().to_vec();
    deleted
        .serialize_into(&mut data)
        .map_err(|error| DeltaTableError::Generic(format!("deletion vector: {error}")))?;
    let size = i32::try_from(data.len())
        .map_err(|_| DeltaTableError::Generic("deletion vector too large".into()))?;
    file.extend_from_slice(&(size as u32).to_be_bytes());
    file.extend_from_slice(&data);
    file.extend_from_slice(&CRC.checksum(&data).to_be_bytes());
    Ok(DeletionVectorDescriptor {
        storage_type: StorageType::UuidRelativePath,
        path_or_inline_dv: z85::encode(uuid.as_bytes()),
        offset: Some(offset),
        size_in_bytes: size,
        cardinality: deleted.len() as i64,
    })
}

fn chrono_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use deltalake::logstore::object_store::memory::InMemory;

    use super::*;

    fn deleted() -> RoaringTreemap {
        [0u64, 3, 7, 70_000, 1 << 33].into_iter().collect()
    }

    #[tokio::test]
    async fn a_deletion_vector_reads_back_from_beside_the_table_an_absolute_path_and_inline() {
        let store = InMemory::new();
        let uuid = uuid::Uuid::new_v4();
        let mut file = vec![1u8];
        // a second vector in the same file, so the offset matters
        append(&mut file, &[5u64].into_iter().collect(), uuid).unwrap();
        let beside = append(&mut file, &deleted(), uuid).unwrap();
        let name = format!("deletion_vector_{uuid}.bin");
        store
            .put(&Path::from(name.as_str()), file.into())
            .await
            .unwrap();
        let root = "file:///lake/derived/page_views/";
        assert_eq!(read(&store, &beside, root).await.unwrap(), deleted());

        let absolute = DeletionVectorDescriptor {
            storage_type: StorageType::AbsolutePath,
            path_or_inline_dv: format!("{root}{name}"),
            ..beside.clone()
        };
        assert_eq!(read(&store, &absolute, root).await.unwrap(), deleted());
        let elsewhere = DeletionVectorDescriptor {
            path_or_inline_dv: format!("file:///other/{name}"),
            ..absolute
        };
        let error = read(&store, &elsewhere, root).await.unwrap_err();
        assert!(error.to_string().contains("outside the table"), "{error}");

        let mut data = MAGIC.to_le_bytes().to_vec();
        deleted().serialize_into(&mut data).unwrap();
        let size = data.len();
        // Z85 takes whole 4-byte words; the size says where the vector ends
        data.resize(size.div_ceil(4) * 4, 0);
        let inline = DeletionVectorDescriptor {
            storage_type: StorageType::Inline,
            path_or_inline_dv: z85::encode(&data),
            offset: None,
            size_in_bytes: size as i32,
            cardinality: 5,
        };
        assert_eq!(read(&store, &inline, root).await.unwrap(), deleted());
    }

    #[tokio::test]
    async fn a_damaged_deletion_vector_is_an_error_naming_it() {
        let store = InMemory::new();
        let uuid = uuid::Uuid::new_v4();
        let mut file = vec![1u8];
        let descriptor = append(&mut file, &deleted(), uuid).unwrap();
        let last = file.len() - 6;
        file[last] ^= 0xff;
        let name = format!("deletion_vector_{uuid}.bin");
        store
            .put(&Path::from(name.as_str()), file.into())
            .await
            .unwrap();
        let error = read(&store, &descriptor, "file:///t/").await.unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");

        let longer = DeletionVectorDescriptor {
            size_in_bytes: descriptor.size_in_bytes + 100,
            ..descriptor.clone()
        };
        let error = read(&store, &longer, "file:///t/").await.unwrap_err();
        assert!(error.to_string().contains("shorter"), "{error}");

        let inline = DeletionVectorDescriptor {
            storage_type: StorageType::Inline,
            path_or_inline_dv: "not z85 at all ~~~".into(),
            ..descriptor
        };
        let error = read(&store, &inline, "file:///t/").await.unwrap_err();
        assert!(error.to_string().contains("not z85"), "{error}");
    }
}
