//! Rows replaced in place with Delta deletion vectors: the rows of a table
//! whose key an incremental run re-derives are marked deleted in their files,
//! which stay, and the new rows go to new files, all in one commit.
//!
//! The rows a run changes are few but spread over every file: a cookie that
//! logs in restitches its sessions of any day. Rewriting each file that holds
//! one of them would cost as much as writing the table anew.

use std::collections::{BTreeSet, HashSet};
use std::io::Cursor;

use deltalake::DeltaTable;
use deltalake::arrow::array::{AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::temporal_conversions::date32_to_datetime;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, DeletionVectorDescriptor, StorageType};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt;
use deltalake::{ObjectStore, Path};
use roaring::RoaringTreemap;

use deltalake::DeltaTableError;

use crate::run::conform;

type Result<T, E = DeltaTableError> = std::result::Result<T, E>;

/// The table property that lets a table take deletion vectors.
pub(crate) const ENABLE: &str = "delta.enableDeletionVectors";

/// The RoaringBitmapArray format's magic number (Delta protocol, deletion vector format).
const MAGIC: u32 = 1_681_511_377;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Which rows a replacement removes: those whose `column` is one of `keys`,
/// in the partitions `dates` of `partition` when the table has one.
pub(crate) struct Doomed<'a> {
    pub column: &'a str,
    pub keys: &'a HashSet<String>,
    pub partition: Option<(&'a str, &'a BTreeSet<i32>)>,
}

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

/// One file that loses rows: what the log said of it, and every row now deleted.
struct Marked {
    view: deltalake::kernel::LogicalFileView,
    deleted: RoaringTreemap,
}

/// Replaces the doomed rows of `table` with `rows` in one commit. Returns
/// `false`, having changed nothing, when a file's deletion vector is stored
/// in a way this does not read (inline or at an absolute path).
pub(crate) async fn replace(
    table: &DeltaTable,
    rows: Vec<RecordBatch>,
    doomed: Doomed<'_>,
    properties: CommitProperties,
) -> Result<bool> {
    let state = table.snapshot()?;
    let store = table.object_store();
    let days: Option<HashSet<String>> = doomed.partition.map(|(_, dates)| {
        dates
            .iter()
            .filter_map(|day| date32_to_datetime(*day))
            .map(|day| day.date().to_string())
            .collect()
    });

    let mut marked = Vec::new();
    let files = if doomed.keys.is_empty() {
        Vec::new()
    } else {
        state.log_data().iter().collect()
    };
    for view in files {
        if let (Some((column, _)), Some(days)) = (doomed.partition, &days) {
            let value = view.partition_values_map().get(column).cloned().flatten();
            if !value.is_some_and(|value| days.contains(&value)) {
                continue;
            }
        }
        let path = view.object_store_path();
        let found = positions(store.as_ref(), &path, doomed.column, doomed.keys).await?;
        if found.is_empty() {
            continue;
        }
        let mut deleted = match view.deletion_vector_descriptor() {
            None => RoaringTreemap::new(),
            Some(descriptor) => match read(store.as_ref(), &descriptor).await? {
                Some(deleted) => deleted,
                None => return Ok(false),
            },
        };
        let before = deleted.len();
        deleted.extend(found);
        if deleted.len() > before {
            marked.push(Marked { view, deleted });
        }
    }

    let mut actions = Vec::new();
    if !marked.is_empty() {
        let uuid = uuid::Uuid::new_v4();
        let mut file = vec![1u8];
        let mut descriptors = Vec::with_capacity(marked.len());
        for mark in &marked {
            descriptors.push(append(&mut file, &mark.deleted, uuid)?);
        }
        store
            .put(
                &Path::from(format!("deletion_vector_{uuid}.bin")),
                file.into(),
            )
            .await?;
        let now = chrono_millis();
        for (mark, descriptor) in marked.iter().zip(descriptors) {
            // the file stays; its add is replaced by one carrying the new vector
            #[allow(deprecated)]
            let mut add = mark.view.add_action();
            add.deletion_vector = Some(descriptor);
            add.data_change = true;
            add.modification_time = now;
            actions.push(Action::Remove(mark.view.remove_action(true)));
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
    Ok(true)
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

/// The positions (from 0, in file order) of the rows whose `column` is one of `keys`.
async fn positions(
    store: &dyn ObjectStore,
    path: &Path,
    column: &str,
    keys: &HashSet<String>,
) -> Result<Vec<u64>> {
    let bytes = store.get(path).await?.bytes().await?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), [column]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    let mut found = Vec::new();
    let mut offset = 0u64;
    for batch in reader {
        let batch = batch?;
        let values = cast(batch.column(0), &DataType::Utf8)?;
        for (row, value) in values.as_string::<i32>().iter().enumerate() {
            if value.is_some_and(|value| keys.contains(value)) {
                found.push(offset + row as u64);
            }
        }
        offset += batch.num_rows() as u64;
    }
    Ok(found)
}

/// A deletion vector stored beside the table (`storageType` "u"); `None` for
/// the other storage types.
async fn read(
    store: &dyn ObjectStore,
    descriptor: &DeletionVectorDescriptor,
) -> Result<Option<RoaringTreemap>> {
    if descriptor.storage_type != StorageType::UuidRelativePath {
        return Ok(None);
    }
    let encoded = descriptor.path_or_inline_dv.as_bytes();
    let bad =
        |reason: &str| DeltaTableError::Generic(format!("deletion vector {encoded:?}: {reason}"));
    let split = encoded
        .len()
        .checked_sub(20)
        .ok_or_else(|| bad("too short"))?;
    let uuid = z85::decode(&encoded[split..]).map_err(|_| bad("not z85"))?;
    let uuid = uuid::Uuid::from_slice(&uuid).map_err(|_| bad("not a uuid"))?;
    let prefix = std::str::from_utf8(&encoded[..split]).map_err(|_| bad("prefix not UTF-8"))?;
    let name = format!("deletion_vector_{uuid}.bin");
    let path = if prefix.is_empty() {
        Path::from(name)
    } else {
        Path::from(format!("{prefix}/{name}"))
    };
    let bytes = store.get(&path).await?.bytes().await?;
    let start = usize::try_from(descriptor.offset.unwrap_or(1)).map_err(|_| bad("offset"))?;
    let size = usize::try_from(descriptor.size_in_bytes).map_err(|_| bad("size"))?;
    let data = bytes
        .get(start + 4..start + 4 + size)
        .ok_or_else(|| bad("shorter than its descriptor says"))?;
    let checksum = bytes
        .get(start + 4 + size..start + 8 + size)
        .ok_or_else(|| bad("no checksum"))?;
    if CRC.checksum(data).to_be_bytes() != checksum {
        return Err(bad("checksum mismatch"));
    }
    if data[..4] != MAGIC.to_le_bytes() {
        return Err(bad("not a portable roaring bitmap array"));
    }
    let deleted =
        RoaringTreemap::deserialize_from(Cursor::new(&data[4..])).map_err(|_| bad("corrupt"))?;
    Ok(Some(deleted))
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
