use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::payload::sample_payload;

fn open(dir: &Path, segment_bytes: u64) -> FileLog {
    FileLog::open(
        dir,
        FileLogOptions {
            segment_bytes,
            fsync: true,
        },
    )
    .unwrap()
}

fn body_of(record: &LogRecord) -> Vec<u8> {
    record.payload.body.clone().unwrap().to_vec()
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn appends_are_read_back_in_order_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1 << 20);
    for i in 0..10u8 {
        let offset = log.append(&sample_payload(&[i])).await.unwrap();
        assert_eq!(offset, u64::from(i));
    }
    assert_eq!(log.end_offset(), 10);
    let records = log.read(3, 4).unwrap();
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [3, 4, 5, 6]
    );
    assert_eq!(body_of(&records[0]), [3]);
    // reading on continues from where the last read stopped
    assert_eq!(log.read(7, 100).unwrap().len(), 3);
    assert!(log.read(10, 100).unwrap().is_empty());
    drop(log);

    let log = open(dir.path(), 1 << 20);
    assert_eq!(log.end_offset(), 10);
    assert_eq!(log.append(&sample_payload(b"after")).await.unwrap(), 10);
    assert_eq!(body_of(&log.read(10, 1).unwrap()[0]), b"after");
    assert_eq!(body_of(&log.read(0, 1).unwrap()[0]), [0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_syncs_and_get_distinct_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), 1 << 20));
    let mut tasks = Vec::new();
    for client in 0..32u8 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..20u8 {
                offsets.push(log.append(&sample_payload(&[client, i])).await.unwrap());
            }
            offsets
        }));
    }
    let mut offsets = Vec::new();
    for task in tasks {
        offsets.extend(task.await.unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..640).collect::<Vec<_>>());
    let syncs = log.stats().syncs.load(std::sync::atomic::Ordering::Relaxed);
    assert!(syncs < 640, "group commit should share syncs, got {syncs}");
    // each offset holds what its appender wrote
    let records = log.read(0, 1000).unwrap();
    assert_eq!(records.len(), 640);
}

#[tokio::test]
async fn segments_roll_and_reads_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2000);
    for i in 0..40u8 {
        log.append(&sample_payload(&[i; 100])).await.unwrap();
    }
    assert!(log.segment_count() > 3, "{}", log.segment_count());
    let all = log.read(0, 100).unwrap();
    assert_eq!(all.len(), 40);
    for (i, record) in all.iter().enumerate() {
        assert_eq!(record.offset, i as u64);
        assert_eq!(body_of(record), vec![i as u8; 100]);
    }
    // a read starting inside a later segment seeks there
    assert_eq!(body_of(&log.read(33, 1).unwrap()[0]), vec![33u8; 100]);
    drop(log);
    let log = open(dir.path(), 2000);
    assert_eq!(log.end_offset(), 40);
}

#[tokio::test]
async fn segments_are_deleted_only_once_every_consumer_is_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2000);
    for i in 0..40u8 {
        log.append(&sample_payload(&[i; 100])).await.unwrap();
    }
    let before = log.segment_count();
    // a consumer is known once it has committed, so both register first
    log.commit("audit", 0).unwrap();
    log.commit("loader", 0).unwrap();
    log.commit("loader", 40).unwrap();
    assert_eq!(log.segment_count(), before, "audit has read nothing yet");
    assert_eq!(log.committed("loader").unwrap(), Some(40));
    assert_eq!(log.committed("nobody").unwrap(), None);

    log.commit("audit", 25).unwrap();
    assert!(log.segment_count() < before);
    let oldest = log.start_offset();
    assert!(oldest <= 25 && oldest > 0, "{oldest}");
    assert_eq!(body_of(&log.read(25, 1).unwrap()[0]), vec![25u8; 100]);
    assert!(matches!(log.read(0, 1), Err(LogError::Deleted { .. })));
    assert_eq!(
        log.consumers().unwrap(),
        vec![("audit".to_owned(), 25), ("loader".to_owned(), 40)]
    );
    assert!(matches!(
        log.commit("loader", 41),
        Err(LogError::CommitPastEnd { .. })
    ));
    assert!(matches!(
        log.commit("../etc", 1),
        Err(LogError::InvalidConsumer(_))
    ));
}

#[tokio::test]
async fn torn_tail_is_cut_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1 << 20);
    for i in 0..5u8 {
        log.append(&sample_payload(&[i; 50])).await.unwrap();
    }
    drop(log);
    let segment = segment_files(dir.path()).pop().unwrap();
    let whole = fs::metadata(&segment).unwrap().len();

    // a crash in the middle of writing the sixth record
    let sixth = {
        let log = open(dir.path(), 1 << 20);
        log.append(&sample_payload(&[5; 50])).await.unwrap();
        drop(log);
        fs::read(&segment).unwrap()[whole as usize..].to_vec()
    };
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(whole + sixth.len() as u64 / 2).unwrap();
    drop(file);

    let log = open(dir.path(), 1 << 20);
    assert_eq!(log.end_offset(), 5, "the half record is not misread");
    assert_eq!(fs::metadata(&segment).unwrap().len(), whole);
    let side_files = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("torn")
        })
        .count();
    assert_eq!(side_files, 1);
    assert_eq!(log.append(&sample_payload(b"new")).await.unwrap(), 5);
    assert_eq!(body_of(&log.read(5, 1).unwrap()[0]), b"new");
}

#[tokio::test]
async fn garbage_and_bit_flips_at_the_tail_are_cut() {
    for damage in ["garbage", "flip", "zeros"] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 1 << 20);
        for i in 0..3u8 {
            log.append(&sample_payload(&[i; 30])).await.unwrap();
        }
        drop(log);
        let segment = segment_files(dir.path()).pop().unwrap();
        let mut bytes = fs::read(&segment).unwrap();
        match damage {
            "garbage" => bytes.extend_from_slice(b"\xde\xad\xbe\xef not a frame"),
            "flip" => {
                let last = bytes.len() - 3;
                bytes[last] ^= 0x40;
            }
            _ => bytes.extend_from_slice(&[0u8; 4096]),
        }
        fs::write(&segment, &bytes).unwrap();
        let log = open(dir.path(), 1 << 20);
        let expected = if damage == "flip" { 2 } else { 3 };
        assert_eq!(log.end_offset(), expected, "{damage}");
        assert_eq!(log.read(0, 10).unwrap().len() as u64, expected);
        log.append(&sample_payload(b"ok")).await.unwrap();
        drop(log);
        let log = open(dir.path(), 1 << 20);
        assert_eq!(
            log.end_offset(),
            expected + 1,
            "{damage}: clean after reopen"
        );
    }
}

#[tokio::test]
async fn fsync_off_still_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(
        dir.path(),
        FileLogOptions {
            segment_bytes: 1 << 20,
            fsync: false,
        },
    )
    .unwrap();
    log.append(&sample_payload(b"a")).await.unwrap();
    assert_eq!(log.read(0, 1).unwrap().len(), 1);
    assert_eq!(
        log.stats().syncs.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join("consumers").join("x"))
        .or_else(|_| fs::File::create(dir.path().join("consumers").join("x")))
        .unwrap();
    f.write_all(b"not a number").unwrap();
    assert!(log.committed("x").is_err());
}

#[tokio::test]
async fn bulk_writes_are_read_by_the_log_and_appended_after() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut writer = BulkWriter::open(
            dir.path(),
            FileLogOptions {
                segment_bytes: 600,
                fsync: true,
            },
        )
        .unwrap();
        let frames: Vec<Vec<u8>> = (0..20u8)
            .map(|i| encode_frame(&sample_payload(&[i; 40])))
            .collect();
        assert_eq!(writer.append(&frames[..5]).unwrap(), 5);
        assert_eq!(writer.append(&frames[5..]).unwrap(), 20);
    }
    assert!(segment_files(dir.path()).len() > 1, "rolled segments");
    // a bulk writer on an existing log appends after what is there
    {
        let mut writer = BulkWriter::open(
            dir.path(),
            FileLogOptions {
                segment_bytes: 600,
                fsync: true,
            },
        )
        .unwrap();
        assert_eq!(writer.end_offset(), 20);
        writer
            .append(&[encode_frame(&sample_payload(b"last"))])
            .unwrap();
    }
    let log = open(dir.path(), 600);
    assert_eq!(log.end_offset(), 21);
    let records = log.read(0, 100).unwrap();
    assert_eq!(records.len(), 21);
    assert_eq!(body_of(&records[3]), vec![3u8; 40]);
    assert_eq!(body_of(&records[20]), b"last".to_vec());
}
