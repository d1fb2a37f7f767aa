//! The durable state of nimbus: one redb file in the data directory, holding
//! every service's records as byte keys and values in named tables.
//!
//! Writes go through [`Store::commit`], which returns only after the batch is
//! durable on disk. A single writer thread gathers every batch that arrives
//! while the previous transaction is being synced into the next transaction
//! (group commit), so concurrent callers share one fsync instead of paying one
//! each. Reads open their own MVCC snapshot and never wait for the writer.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use std::fmt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The on-disk layout version, kept in the `nimbus_meta` table so that a
/// later release can migrate older data instead of misreading it.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

fn err(e: impl fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

#[derive(Debug)]
enum Op {
    Put {
        table: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: String,
        key: Vec<u8>,
    },
}

/// Changes that become durable together, or not at all.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            table: table.to_string(),
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, table: &str, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            table: table.to_string(),
            key: key.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// One record as stored: key and value bytes.
pub type Record = (Vec<u8>, Vec<u8>);

type Pending = (Batch, oneshot::Sender<Result<(), StoreError>>);

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: mpsc::Sender<Pending>,
}

impl Store {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Arc::new(Database::create(path).map_err(err)?);
        Self::check_format(&db)?;
        let (writer, queue) = mpsc::channel::<Pending>();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(&writer_db, queue))
            .map_err(err)?;
        Ok(Store { db, writer })
    }

    fn check_format(db: &Database) -> Result<(), StoreError> {
        const META: TableDefinition<&str, u32> = TableDefinition::new("nimbus_meta");
        let txn = db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(META).map_err(err)?;
            let found = table.get("format").map_err(err)?.map(|v| v.value());
            match found {
                None => {
                    table.insert("format", FORMAT_VERSION).map_err(err)?;
                }
                Some(v) if v == FORMAT_VERSION => {}
                Some(v) => {
                    return Err(StoreError(format!(
                        "data format {v} is newer than this nimbus understands ({FORMAT_VERSION})"
                    )))
                }
            }
        }
        txn.commit().map_err(err)
    }

    /// Makes `batch` durable; returns once it is on disk.
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.writer
            .send((batch, done))
            .map_err(|_| StoreError("writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError("writer stopped".into()))?
    }

    /// Blocking form of [`Store::commit`] for code outside the async runtime.
    pub fn commit_blocking(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.writer
            .send((batch, done))
            .map_err(|_| StoreError("writer stopped".into()))?;
        wait.blocking_recv()
            .map_err(|_| StoreError("writer stopped".into()))?
    }

    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
        let txn = self.db.begin_read().map_err(err)?;
        let table = match txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        Ok(table.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    /// Every record of `table` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, table: &str, prefix: &[u8]) -> Result<Vec<Record>, StoreError> {
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
        let txn = self.db.begin_read().map_err(err)?;
        let table = match txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

fn write_loop(db: &Database, queue: mpsc::Receiver<Pending>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while let Ok(more) = queue.try_recv() {
            group.push(more);
        }
        let result = apply(db, &group);
        if let Err(e) = &result {
            tracing::error!("store commit failed: {e}");
        }
        for (_, done) in group {
            let _ = done.send(result.clone());
        }
    }
}

fn apply(db: &Database, group: &[Pending]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(err)?;
    for (batch, _) in group {
        for op in &batch.ops {
            match op {
                Op::Put { table, key, value } => {
                    let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
                    let mut t = txn.open_table(def).map_err(err)?;
                    t.insert(key.as_slice(), value.as_slice()).map_err(err)?;
                }
                Op::Delete { table, key } => {
                    let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
                    let mut t = txn.open_table(def).map_err(err)?;
                    t.remove(key.as_slice()).map_err(err)?;
                }
            }
        }
    }
    txn.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn commits_are_visible_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            let mut tasks = Vec::new();
            for i in 0..50u32 {
                let s = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut b = Batch::new();
                    b.put(
                        "t",
                        format!("k{i:03}").into_bytes(),
                        i.to_be_bytes().to_vec(),
                    );
                    s.commit(b).await.unwrap();
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let mut b = Batch::new();
            b.delete("t", b"k000".to_vec());
            store.commit(b).await.unwrap();
        }
        // The writer thread lets go of the file once it sees the last sender dropped.
        let store = (0..200)
            .find_map(|_| {
                Store::open(&path).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                })
            })
            .unwrap();
        let all = store.scan_prefix("t", b"k").unwrap();
        assert_eq!(all.len(), 49);
        assert_eq!(all[0].0, b"k001");
        assert_eq!(
            store.get("t", b"k007").unwrap(),
            Some(7u32.to_be_bytes().to_vec())
        );
        assert_eq!(store.get("missing", b"x").unwrap(), None);
    }
}
