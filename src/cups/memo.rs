//! Settled polls, answered from memory. A station polls every few seconds to
//! minutes with the same body and the same credentials, and once it holds what
//! the server wants, the answer is "nothing to do" until an operator or a job
//! changes something. When a poll went through the whole path (database,
//! authentication, plan) and came out settled, with no task open and no
//! definition waiting for its version, the memo keeps a fingerprint of what the
//! gateway sent (body, token hash, certificate fingerprint) mixed with the
//! store's change counter (`Store::epoch`) at the time its rows were read, and
//! the proof that authenticated it. The next poll with the same fingerprint, and
//! no change written since, gets the same answer without the database.
//!
//! Anything else takes the whole path: another body or credential, any write to
//! a table a poll reads (a revoked token, a new task definition, a changed URI),
//! a gateway with a task in flight (whose plan depends on time). The fingerprint
//! is SipHash with a key drawn at start, so a client cannot construct one that
//! collides with a gateway's. The memo holds at most `[limits] cups_memo_gateways`
//! gateways (rounded up to a multiple of its 16 shards; 24 bytes each), 0 turns
//! it off. The shards also keep the memory a growing table needs while it moves
//! to a larger one at a sixteenth.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;

use crate::eui::Eui;
use crate::identity::{Evidence, Proof};

const SHARDS: usize = 16;

pub struct Memo {
    shards: [Mutex<HashMap<Eui, Settled>>; SHARDS],
    keys: std::collections::hash_map::RandomState,
    /// Gateways per shard.
    limit: usize,
}

struct Settled {
    /// The request's digest mixed with the store epoch it was settled at.
    fingerprint: u64,
    proof: Proof,
}

impl Memo {
    pub fn new(limit: usize) -> Memo {
        Memo {
            shards: Default::default(),
            keys: Default::default(),
            limit: limit.div_ceil(SHARDS),
        }
    }

    /// What a poll sent that its answer depends on: the body exactly as sent,
    /// and the evidence of who sent it.
    pub fn digest(&self, body: &[u8], evidence: &Evidence) -> u64 {
        let mut h = self.keys.build_hasher();
        body.hash(&mut h);
        evidence
            .cert
            .as_ref()
            .map(|c| c.sha256.as_str())
            .hash(&mut h);
        evidence.token_sha256.hash(&mut h);
        h.finish()
    }

    /// The proof of a poll that settled with this digest, if nothing a poll
    /// reads has changed since (`epoch` is the store's epoch now).
    pub fn settled(&self, eui: Eui, digest: u64, epoch: u64) -> Option<Proof> {
        let want = self.fingerprint(digest, epoch);
        self.shard(eui)
            .get(&eui)
            .filter(|s| s.fingerprint == want)
            .map(|s| s.proof)
    }

    /// Remembers a poll that settled with rows read at `epoch`.
    pub fn remember(&self, eui: Eui, digest: u64, epoch: u64, proof: Proof) {
        let fingerprint = self.fingerprint(digest, epoch);
        let mut map = self.shard(eui);
        if map.len() < self.limit || map.contains_key(&eui) {
            map.insert(eui, Settled { fingerprint, proof });
        }
    }

    /// Forgets a gateway whose last poll did not settle.
    pub fn forget(&self, eui: Eui) {
        self.shard(eui).remove(&eui);
    }

    fn fingerprint(&self, digest: u64, epoch: u64) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write_u64(digest);
        h.write_u64(epoch);
        h.finish()
    }

    /// The shard of `eui`, by its top bits after a multiplicative mix (EUIs of
    /// one vendor differ in their low bits).
    fn shard(&self, eui: Eui) -> std::sync::MutexGuard<'_, HashMap<Eui, Settled>> {
        let i = (eui.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{CredKind, PeerCert};

    const EUI: Eui = Eui(0x0016_c001_0000_0001);

    fn token(t: &str) -> Evidence {
        Evidence {
            cert: None,
            token_sha256: Some(t.into()),
        }
    }

    fn proof() -> Proof {
        Proof::Generation {
            kind: CredKind::Token,
            generation: 1,
        }
    }

    #[test]
    fn a_settled_poll_is_answered_again_until_anything_changes() {
        let m = Memo::new(10);
        let d = m.digest(b"{\"router\":1}", &token("aa"));
        assert_eq!(m.settled(EUI, d, 7), None, "nothing remembered yet");
        m.remember(EUI, d, 7, proof());
        assert_eq!(m.settled(EUI, d, 7), Some(proof()));
        assert_eq!(m.settled(EUI, d, 8), None, "a change was written since");
        assert_eq!(m.settled(Eui(2), d, 7), None, "another gateway");
        m.forget(EUI);
        assert_eq!(m.settled(EUI, d, 7), None);
    }

    #[test]
    fn the_digest_covers_the_body_and_every_piece_of_evidence() {
        let m = Memo::new(10);
        let body = b"{\"router\":1}";
        let cert = |sha: &str| Evidence {
            cert: Some(PeerCert {
                sha256: sha.into(),
                cn_eui: None,
            }),
            token_sha256: None,
        };
        let digests = [
            m.digest(body, &token("aa")),
            m.digest(b"{\"router\":2}", &token("aa")),
            m.digest(body, &token("ab")),
            m.digest(body, &cert("aa")),
            m.digest(body, &cert("ab")),
            m.digest(body, &Evidence::default()),
        ];
        for (i, a) in digests.iter().enumerate() {
            for b in &digests[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(digests[0], m.digest(body, &token("aa")));
        assert_ne!(
            digests[0],
            Memo::new(10).digest(body, &token("aa")),
            "each memo draws its own key"
        );
    }

    #[test]
    fn the_map_stays_within_its_limit_and_zero_turns_it_off() {
        let m = Memo::new(32);
        for i in 0..1000 {
            m.remember(Eui(i), i, 0, proof());
        }
        let held: Vec<usize> = m.shards.iter().map(|s| s.lock().unwrap().len()).collect();
        assert_eq!(
            held,
            vec![2; SHARDS],
            "EUIs in a row spread over the shards"
        );
        let kept = (0..1000)
            .find(|&i| m.settled(Eui(i), i, 0).is_some())
            .unwrap();
        m.remember(Eui(kept), 9, 0, proof());
        assert!(
            m.settled(Eui(kept), 9, 0).is_some(),
            "a known gateway is updated"
        );
        let off = Memo::new(0);
        off.remember(EUI, 1, 0, proof());
        assert_eq!(off.settled(EUI, 1, 0), None);
    }
}
