//! Tags: AWS's `{"Key", "Value"}` pairs on any resource, kept in one table keyed by
//! (resource type, Id, key). The API's create and update bodies, the Tags calls
//! and campaign targets all read and write them here; a resource's tags go with it
//! when it is deleted (`untag_all`).

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// The resource types that carry tags, as AWS names them in ARNs.
pub const GATEWAY: &str = "WirelessGateway";
pub const TASK_DEFINITION: &str = "WirelessGatewayTaskDefinition";
pub const MULTICAST_GROUP: &str = "MulticastGroup";
pub const FUOTA_TASK: &str = "FuotaTask";
pub const DEVICE: &str = "WirelessDevice";
pub const DEVICE_PROFILE: &str = "DeviceProfile";
pub const SERVICE_PROFILE: &str = "ServiceProfile";

/// AWS's limits: at most 50 tags per resource, keys 1–128 and values 0–256 characters,
/// and the `aws:` prefix is reserved.
pub const MAX_TAGS: usize = 50;

/// AWS's tag: `{"Key", "Value"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// Checks a set of tags against AWS's rules; the message names the tag and the rule.
pub fn validate(tags: &[Tag]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "Tags has {} entries; at most {MAX_TAGS} are allowed",
            tags.len()
        ));
    }
    for (i, t) in tags.iter().enumerate() {
        let klen = t.key.chars().count();
        if !(1..=128).contains(&klen) {
            return Err(format!("Tags[{i}].Key must be 1 to 128 characters"));
        }
        if t.value.chars().count() > 256 {
            return Err(format!("Tags[{i}].Value must be at most 256 characters"));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(format!(
                "Tags[{i}].Key {:?} uses the reserved prefix aws:",
                crate::logguard::Clipped(&t.key)
            ));
        }
        if tags[..i].iter().any(|o| o.key == t.key) {
            return Err(format!(
                "Tags[{i}].Key {:?} appears twice",
                crate::logguard::Clipped(&t.key)
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Adds tags to a resource, overwriting the value of keys it already has
    /// (`TagResource`). The resource's total stays within `MAX_TAGS`.
    pub async fn tag(
        &self,
        kind: &'static str,
        id: String,
        tags: Vec<Tag>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            upsert(&tx, kind, &id, &tags)?;
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM tags WHERE resource_type = ?1 AND resource_id = ?2",
                params![kind, id],
                |r| r.get(0),
            )?;
            if n as usize > MAX_TAGS {
                return Err(StoreError::Invalid(format!(
                    "the resource would carry {n} tags; at most {MAX_TAGS} are allowed"
                )));
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Replaces every tag of a resource with `tags` (an update body's `Tags`).
    pub async fn replace_tags(
        &self,
        kind: &'static str,
        id: String,
        tags: Vec<Tag>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            untag_all(&tx, kind, &id)?;
            upsert(&tx, kind, &id, &tags)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Removes the named keys from a resource (`UntagResource`); absent keys are no error.
    pub async fn untag(
        &self,
        kind: &'static str,
        id: String,
        keys: Vec<String>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM tags WHERE resource_type = ?1 AND resource_id = ?2 AND key = ?3",
                )?;
                for k in &keys {
                    stmt.execute(params![kind, id, k])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// A resource's tags, ordered by key.
    pub async fn tags(&self, kind: &'static str, id: String) -> Result<Vec<Tag>, StoreError> {
        self.run(move |c| tags_of(c, kind, &id)).await
    }
}

pub(super) fn tags_of(c: &Connection, kind: &str, id: &str) -> Result<Vec<Tag>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT key, value FROM tags WHERE resource_type = ?1 AND resource_id = ?2 ORDER BY key",
    )?;
    let rows = stmt.query_map(params![kind, id], |r| {
        Ok(Tag {
            key: r.get(0)?,
            value: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn upsert(c: &Connection, kind: &str, id: &str, tags: &[Tag]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO tags (resource_type, resource_id, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (resource_type, resource_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for t in tags {
        stmt.execute(params![kind, id, t.key, t.value])?;
    }
    Ok(())
}

/// Removes every tag of a resource; called in the same transaction that deletes it.
pub(super) fn untag_all(c: &Connection, kind: &str, id: &str) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM tags WHERE resource_type = ?1 AND resource_id = ?2",
        params![kind, id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn validate_names_the_broken_rule() {
        assert!(validate(&[t("site", "north"), t("ring", "")]).is_ok());
        assert!(validate(&[t("", "x")]).unwrap_err().contains("Tags[0].Key"));
        assert!(validate(&[t("AWS:x", "1")])
            .unwrap_err()
            .contains("reserved"));
        assert!(validate(&[t("a", "1"), t("a", "2")])
            .unwrap_err()
            .contains("twice"));
        let many: Vec<Tag> = (0..51).map(|i| t(&i.to_string(), "")).collect();
        assert!(validate(&many).unwrap_err().contains("at most 50"));
    }

    #[tokio::test]
    async fn tag_overwrites_untag_removes_replace_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let id = "g1".to_string();
        s.tag(
            GATEWAY,
            id.clone(),
            vec![t("site", "north"), t("ring", "1")],
        )
        .await
        .unwrap();
        s.tag(GATEWAY, id.clone(), vec![t("ring", "2")])
            .await
            .unwrap();
        assert_eq!(
            s.tags(GATEWAY, id.clone()).await.unwrap(),
            vec![t("ring", "2"), t("site", "north")]
        );
        s.untag(GATEWAY, id.clone(), vec!["ring".into(), "absent".into()])
            .await
            .unwrap();
        assert_eq!(
            s.tags(GATEWAY, id.clone()).await.unwrap(),
            vec![t("site", "north")]
        );
        s.replace_tags(GATEWAY, id.clone(), vec![t("x", "y")])
            .await
            .unwrap();
        assert_eq!(
            s.tags(GATEWAY, id.clone()).await.unwrap(),
            vec![t("x", "y")]
        );
        let too_many: Vec<Tag> = (0..50).map(|i| t(&format!("k{i}"), "")).collect();
        assert!(matches!(
            s.tag(GATEWAY, id.clone(), too_many).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(s.tags(GATEWAY, id).await.unwrap(), vec![t("x", "y")]);
    }
}
