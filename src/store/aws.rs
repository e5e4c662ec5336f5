//! The AWS drop-in's rows: access keys (SigV4 secrets, kept as issued because
//! verification re-signs with them), `ClientRequestToken` records (the first answer
//! of a create, replayed for the same body), and S3 object names that point at
//! blobs.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// An access key. `secret` never leaves the server after creation: the API's
/// answers are built from `AccessKeyInfo`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyRow {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub enabled: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl std::fmt::Debug for AccessKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret", &"(hidden)")
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// A stored create answer for a `ClientRequestToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAnswer {
    pub body_sha256: String,
    pub status: u16,
    pub answer: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
    pub blob_id: String,
    pub size: u64,
    pub created_at: String,
}

const KEY_COLS: &str = "id, name, secret, enabled, created_at, last_used_at";

fn key_row(r: &rusqlite::Row) -> rusqlite::Result<AccessKeyRow> {
    Ok(AccessKeyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        secret: r.get(2)?,
        enabled: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
    })
}

fn object_row(r: &rusqlite::Row) -> rusqlite::Result<S3Object> {
    Ok(S3Object {
        bucket: r.get(0)?,
        key: r.get(1)?,
        blob_id: r.get(2)?,
        size: r.get(3)?,
        created_at: r.get(4)?,
    })
}

impl Store {
    pub async fn insert_access_key(&self, k: AccessKeyRow) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO access_keys (id, name, secret, enabled, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![k.id, k.name, k.secret, k.enabled, k.created_at],
            )
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "an access key named {:?} exists already; pick another name or delete that key",
                    crate::logguard::Clipped(&k.name)
                )),
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    /// The key with this AccessKeyId, or with this name.
    pub async fn access_key(&self, id_or_name: String) -> Result<AccessKeyRow, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {KEY_COLS} FROM access_keys WHERE id = ?1 OR name = ?1"),
                [id_or_name],
                key_row,
            )?)
        })
        .await
    }

    /// Keys in creation order, after key `after`, at most `limit`.
    pub async fn list_access_keys(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<AccessKeyRow>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare(&format!(
                "SELECT {KEY_COLS} FROM access_keys
                  WHERE ?1 IS NULL OR (created_at, id) > (SELECT created_at, id FROM access_keys WHERE id = ?1)
                  ORDER BY created_at, id LIMIT ?2"
            ))?;
            let rows = s.query_map(params![after, limit as i64], key_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn set_access_key_enabled(
        &self,
        id: String,
        enabled: bool,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            match c.execute(
                "UPDATE access_keys SET enabled = ?2 WHERE id = ?1",
                params![id, enabled],
            )? {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
        .await
    }

    pub async fn delete_access_key(&self, id: String) -> Result<(), StoreError> {
        self.run(
            move |c| match c.execute("DELETE FROM access_keys WHERE id = ?1", [id])? {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            },
        )
        .await
    }

    /// Notes a successful use (shown by list, so unused keys can be retired).
    pub async fn touch_access_key(&self, id: String, at: String) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE access_keys SET last_used_at = ?2 WHERE id = ?1",
                params![id, at],
            )?;
            Ok(())
        })
        .await
    }

    /// Claims (operation, token) for a create about to run, or returns the
    /// record already there (`status` 0: that create is still running). A claim
    /// older than `stale_before` that never finished (the process stopped) is
    /// taken over.
    pub async fn claim_idempotency(
        &self,
        operation: String,
        token: String,
        body_sha256: String,
        at: String,
        stale_before: String,
    ) -> Result<Option<IdempotentAnswer>, StoreError> {
        self.run(move |c| {
            c.execute(
                "DELETE FROM idempotency WHERE operation = ?1 AND token = ?2 AND status = 0 AND created_at < ?3",
                params![operation, token, stale_before],
            )?;
            let inserted = c.execute(
                "INSERT INTO idempotency (operation, token, body_sha256, status, answer, created_at)
                 VALUES (?1, ?2, ?3, 0, '', ?4) ON CONFLICT DO NOTHING",
                params![operation, token, body_sha256, at],
            )?;
            if inserted == 1 {
                return Ok(None);
            }
            Ok(Some(c.query_row(
                "SELECT body_sha256, status, answer FROM idempotency WHERE operation = ?1 AND token = ?2",
                params![operation, token],
                |r| {
                    Ok(IdempotentAnswer {
                        body_sha256: r.get(0)?,
                        status: r.get(1)?,
                        answer: r.get(2)?,
                    })
                },
            )?))
        })
        .await
    }

    /// Stores the create's answer under its claimed token.
    pub async fn finish_idempotency(
        &self,
        operation: String,
        token: String,
        status: u16,
        answer: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE idempotency SET status = ?3, answer = ?4 WHERE operation = ?1 AND token = ?2",
                params![operation, token, status, answer],
            )?;
            Ok(())
        })
        .await
    }

    /// Gives a claim back after the create failed, so the client may retry.
    pub async fn release_idempotency(
        &self,
        operation: String,
        token: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "DELETE FROM idempotency WHERE operation = ?1 AND token = ?2 AND status = 0",
                params![operation, token],
            )?;
            Ok(())
        })
        .await
    }

    /// CreateBucket: creating one that exists is no error (as in us-east-1).
    pub async fn create_bucket(&self, name: String, at: String) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO s3_buckets (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![name, at],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn bucket_exists(&self, name: String) -> Result<bool, StoreError> {
        self.run(move |c| {
            Ok(
                c.query_row("SELECT 1 FROM s3_buckets WHERE name = ?1", [name], |_| {
                    Ok(())
                })
                .optional()?
                .is_some(),
            )
        })
        .await
    }

    /// Names `blob_id` `bucket/key` (the bucket is created on first use),
    /// replacing what the name pointed at before.
    pub async fn put_object(&self, o: S3Object) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO s3_buckets (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![o.bucket, o.created_at],
            )?;
            tx.execute(
                "INSERT INTO s3_objects (bucket, key, blob_id, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (bucket, key) DO UPDATE SET blob_id = excluded.blob_id, size = excluded.size,
                   created_at = excluded.created_at",
                params![o.bucket, o.key, o.blob_id, o.size, o.created_at],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn object(&self, bucket: String, key: String) -> Result<S3Object, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT bucket, key, blob_id, size, created_at FROM s3_objects WHERE bucket = ?1 AND key = ?2",
                params![bucket, key],
                object_row,
            )?)
        })
        .await
    }

    /// DeleteObject removes the name; the blob stays (a task definition may use it).
    pub async fn delete_object(&self, bucket: String, key: String) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2",
                params![bucket, key],
            )?;
            Ok(())
        })
        .await
    }

    /// Objects of `bucket` whose key starts with `prefix`, in key order after
    /// `after`, at most `limit`.
    pub async fn list_objects(
        &self,
        bucket: String,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<S3Object>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare(
                "SELECT bucket, key, blob_id, size, created_at FROM s3_objects
                  WHERE bucket = ?1 AND substr(key, 1, length(?2)) = ?2 AND (?3 IS NULL OR key > ?3)
                  ORDER BY key LIMIT ?4",
            )?;
            let rows = s.query_map(params![bucket, prefix, after, limit as i64], object_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
