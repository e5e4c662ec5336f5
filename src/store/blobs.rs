//! Blob rows (the files live in `blobstore`) and firmware signing keys.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub id: String,
    pub size: u64,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub id: String,
    pub name: String,
    pub key_crc: u32,
    pub public_key: Vec<u8>,
    pub created_at: String,
}

impl Store {
    /// Registers a durable blob file; the same Id again returns the first row.
    pub async fn insert_blob(&self, b: BlobRow) -> Result<BlobRow, StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO blobs (id, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
                params![b.id, b.size, b.created_at],
            )?;
            Ok(c.query_row("SELECT id, size, created_at FROM blobs WHERE id = ?1", [&b.id], |r| {
                Ok(BlobRow {
                    id: r.get(0)?,
                    size: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?)
        })
        .await
    }

    pub async fn blob(&self, id: String) -> Result<BlobRow, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT id, size, created_at FROM blobs WHERE id = ?1",
                [id],
                |r| {
                    Ok(BlobRow {
                        id: r.get(0)?,
                        size: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )?)
        })
        .await
    }

    /// Every blob Id, for start-up's check of rows against files.
    pub async fn blob_ids(&self) -> Result<Vec<String>, StoreError> {
        self.run(|c| {
            let mut s = c.prepare("SELECT id FROM blobs")?;
            let rows = s.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Blobs in upload order, after blob `after` (a page's NextToken), at most `limit`.
    pub async fn list_blobs(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<BlobRow>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare(
                "SELECT id, size, created_at FROM blobs
                  WHERE ?1 IS NULL OR (created_at, id) > (SELECT created_at, id FROM blobs WHERE id = ?1)
                  ORDER BY created_at, id LIMIT ?2",
            )?;
            let rows = s.query_map(params![after, limit as i64], |r| {
                Ok(BlobRow {
                    id: r.get(0)?,
                    size: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes a blob row unless a task definition uses it.
    pub async fn delete_blob(&self, id: String) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let user: Option<String> = tx
                .query_row(
                    "SELECT id FROM task_definitions WHERE blob_id = ?1 LIMIT 1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(def) = user {
                return Err(StoreError::Conflict(format!(
                    "blob {id} is the update of task definition {def}; delete that definition first"
                )));
            }
            let fuota: Option<String> = tx
                .query_row(
                    "SELECT id FROM fuota_tasks WHERE blob_id = ?1 LIMIT 1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(task) = fuota {
                return Err(StoreError::Conflict(format!(
                    "blob {id} is the image of FUOTA task {task}; delete that task first"
                )));
            }
            if tx.execute("DELETE FROM blobs WHERE id = ?1", [&id])? == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn insert_signing_key(&self, k: SigningKeyRow) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO signing_keys (id, name, key_crc, public_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![k.id, k.name, k.key_crc, k.public_key, k.created_at],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        self.list_signing_keys(None, usize::MAX >> 1).await
    }

    /// Keys in registration order, after key `after` (a page's NextToken), at most `limit`.
    pub async fn list_signing_keys(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<SigningKeyRow>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare(
                "SELECT id, name, key_crc, public_key, created_at FROM signing_keys
                  WHERE ?1 IS NULL OR (created_at, id) > (SELECT created_at, id FROM signing_keys WHERE id = ?1)
                  ORDER BY created_at, id LIMIT ?2",
            )?;
            let rows = s.query_map(params![after, limit as i64], |r| {
                Ok(SigningKeyRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    key_crc: r.get(2)?,
                    public_key: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn delete_signing_key(&self, id: String) -> Result<(), StoreError> {
        self.run(move |c| {
            if c.execute("DELETE FROM signing_keys WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }
}
