//! Signed checkpoints: the journal's head `(seq, hash)` signed with an ed25519 key that is
//! kept outside the database, so whoever can write the file cannot rewrite history and
//! recompute the chain without the rewrite showing.
//!
//! A checkpoint is an ordinary `checkpoint` event whose payload is a [`Checkpoint`]; the store
//! appends it only when it signs the head it directly follows (`head_seq = seq − 1`,
//! `head_hash = prev_hash`). Verifying needs only the public key.
//!
//! Key files are one line of text: `airlock-ed25519-secret:HEX` (the 32-byte seed) and
//! `airlock-ed25519-public:HEX` (the 32-byte public key).

use crate::{EventQuery, Journal, StoreError};
use airlock_core::event::{Event, EventKind, GENESIS, NewEvent};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

const SECRET_PREFIX: &str = "airlock-ed25519-secret:";
const PUBLIC_PREFIX: &str = "airlock-ed25519-public:";

/// The payload of a `checkpoint` event: a signed journal head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The seq of the newest event the signature covers.
    pub head_seq: i64,
    /// That event's hash (`GENESIS` for an empty journal).
    pub head_hash: String,
    /// When it was signed, in ms since the Unix epoch (signed too).
    pub signed_at: i64,
    /// Why it was signed: `events`, `interval`, `shutdown` (not signed; informative).
    pub reason: String,
    /// The signing key's fingerprint (see [`key_id`]).
    pub key_id: String,
    /// The public key, hex.
    pub public_key: String,
    /// The ed25519 signature of [`Checkpoint::message`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes that are signed: a domain tag, the head and the signing time.
    pub fn message(head_seq: i64, head_hash: &str, signed_at: i64) -> Vec<u8> {
        format!("airlock-journal-checkpoint-v1\n{head_seq}\n{head_hash}\n{signed_at}\n")
            .into_bytes()
    }

    /// Reads a checkpoint event's payload.
    pub fn from_payload(payload: &serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(payload.clone())
            .map_err(|e| format!("the checkpoint's payload is unreadable: {e}"))
    }

    /// The event that records this checkpoint.
    pub fn to_event(&self) -> Result<NewEvent, KeyError> {
        let payload = serde_json::to_value(self).map_err(|e| KeyError(e.to_string()))?;
        Ok(NewEvent::new(
            self.signed_at,
            EventKind::Checkpoint,
            payload,
        ))
    }
}

/// A key file that cannot be read, written or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// The fingerprint of a public key: the first 16 bytes of BLAKE3 over a tag and the key, hex.
pub fn key_id(public: &VerifyingKey) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"airlock-key-id\0");
    h.update(public.as_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// The private key that signs checkpoints. Its `Debug` never shows the key.
pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// A signer from a 32-byte seed (from the OS's random source in `airlock keygen`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id }
    }

    /// Reads a private key file written by `airlock keygen`.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        // As ssh does with its keys: a private key others can read is refused, not used.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                return Err(KeyError(format!(
                    "the signing key `{}` can be read by others (mode {:o}): `chmod 600 {}`",
                    path.display(),
                    meta.permissions().mode() & 0o777,
                    path.display()
                )));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            KeyError(format!(
                "cannot read the signing key `{}`: {e}",
                path.display()
            ))
        })?;
        let hex = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            KeyError(format!(
                "`{}` is not an airlock signing key (make one with `airlock keygen --out PATH`)",
                path.display()
            ))
        })?;
        let seed = decode32(hex).map_err(|e| {
            KeyError(format!(
                "the signing key `{}` is damaged: {e}",
                path.display()
            ))
        })?;
        Ok(Self::from_seed(&seed))
    }

    /// The private key file's text.
    pub fn secret_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", encode(&self.key.to_bytes()))
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
            key_id: self.key_id.clone(),
        }
    }

    /// The key's fingerprint.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs the head `(head_seq, head_hash)` at `signed_at`.
    pub fn sign(&self, head_seq: i64, head_hash: &str, signed_at: i64, reason: &str) -> Checkpoint {
        let sig = self
            .key
            .sign(&Checkpoint::message(head_seq, head_hash, signed_at));
        Checkpoint {
            head_seq,
            head_hash: head_hash.to_string(),
            signed_at,
            reason: reason.to_string(),
            key_id: self.key_id.clone(),
            public_key: encode(self.key.verifying_key().as_bytes()),
            signature: encode(&sig.to_bytes()),
        }
    }
}

/// A public key that checkpoints are verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    key_id: String,
}

impl PublicKey {
    /// Parses `airlock-ed25519-public:HEX` (or the bare 64 hex digits).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        let hex = t.strip_prefix(PUBLIC_PREFIX).unwrap_or(t);
        let bytes = decode32(hex).map_err(|e| KeyError(format!("not a public key: {e}")))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError("not a valid ed25519 public key".into()))?;
        Ok(Self {
            key_id: key_id(&key),
            key,
        })
    }

    /// Reads a public key file (`PATH.pub` of `airlock keygen`).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            KeyError(format!(
                "cannot read the public key `{}`: {e}",
                path.display()
            ))
        })?;
        if text.trim_start().starts_with(SECRET_PREFIX) {
            return Err(KeyError(format!(
                "`{}` is a private key: give the public key (`{}.pub`)",
                path.display(),
                path.display()
            )));
        }
        Self::parse(&text).map_err(|e| KeyError(format!("`{}`: {e}", path.display())))
    }

    /// The public key file's text.
    pub fn text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", encode(self.key.as_bytes()))
    }

    /// The key's fingerprint.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `cp` claims to be signed by this key (its key id and public key match).
    pub fn claims(&self, cp: &Checkpoint) -> bool {
        cp.key_id == self.key_id && cp.public_key == encode(self.key.as_bytes())
    }

    /// Checks `cp`'s signature; the message says what is wrong.
    pub fn verify(&self, cp: &Checkpoint) -> Result<(), String> {
        if !self.claims(cp) {
            return Err(format!(
                "the checkpoint is signed by key `{}`, not by `{}`",
                cp.key_id, self.key_id
            ));
        }
        let bytes = decode(&cp.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| "the checkpoint's signature is not 64 hex bytes".to_string())?;
        let sig = Signature::from_bytes(&bytes);
        self.key
            .verify_strict(
                &Checkpoint::message(cp.head_seq, &cp.head_hash, cp.signed_at),
                &sig,
            )
            .map_err(|_| "the checkpoint's signature does not verify".to_string())
    }
}

/// Checks `cp` against every key: `Ok` when one of them signed it.
pub fn verify_any(keys: &[PublicKey], cp: &Checkpoint) -> Result<(), String> {
    match keys.iter().find(|k| k.claims(cp)) {
        Some(k) => k.verify(cp),
        None => Err(format!(
            "the checkpoint is signed by key `{}`, which is not among the given public keys",
            cp.key_id
        )),
    }
}

/// Signs the journal's current head and appends it as a `checkpoint` event; `Ok(None)` when
/// the head is already a checkpoint (nothing new to sign). The store refuses a checkpoint of
/// a head that moved on meanwhile; then the new head is signed, a few times at most.
pub async fn sign_head(
    journal: &dyn Journal,
    signer: &CheckpointSigner,
    now: i64,
    reason: &str,
) -> Result<Option<Event>, StoreError> {
    let mut last = None;
    for _ in 0..5 {
        let head = journal
            .read(EventQuery {
                descending: true,
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        let (seq, hash) = match head.first() {
            Some(e) if e.kind == EventKind::Checkpoint => return Ok(None),
            Some(e) => (e.seq, e.hash.clone()),
            None => (0, GENESIS.to_string()),
        };
        let cp = signer.sign(seq, &hash, now, reason);
        let ev = cp
            .to_event()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        match journal.append(ev).await {
            Ok(stored) => return Ok(Some(stored)),
            Err(e @ StoreError::Conflict(_)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| StoreError::Conflict("the journal's head kept moving".into())))
}

fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("expected hex digits".into());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

fn decode32(hex: &str) -> Result<[u8; 32], String> {
    let bytes = decode(hex)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "expected 64 hex digits (32 bytes), found {} characters",
            hex.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_private_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let signer = CheckpointSigner::from_seed(&[3; 32]);
        std::fs::write(&path, signer.secret_text()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = CheckpointSigner::from_file(&path).unwrap_err();
        assert!(err.0.contains("chmod 600"), "{}", err.0);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let loaded = CheckpointSigner::from_file(&path).unwrap();
        assert_eq!(loaded.key_id(), signer.key_id());
    }

    #[test]
    fn a_signed_head_verifies_and_any_change_to_it_does_not() {
        let signer = CheckpointSigner::from_seed(&[7; 32]);
        let public = signer.public_key();
        let cp = signer.sign(41, "ab".repeat(32).as_str(), 1_000, "interval");
        assert_eq!(public.verify(&cp), Ok(()));
        let mut moved = cp.clone();
        moved.head_seq = 40;
        assert!(public.verify(&moved).is_err());
        let mut later = cp.clone();
        later.signed_at = 2_000;
        assert!(public.verify(&later).is_err());
        let other = CheckpointSigner::from_seed(&[8; 32]).public_key();
        assert!(other.verify(&cp).unwrap_err().contains("not by"));
    }

    #[test]
    fn key_text_round_trips_and_the_debug_form_hides_the_key() {
        let signer = CheckpointSigner::from_seed(&[9; 32]);
        let text = signer.secret_text();
        assert!(text.starts_with(SECRET_PREFIX));
        let dir = std::env::temp_dir().join(format!("airlock-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        std::fs::write(&path, &text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let back = CheckpointSigner::from_file(&path).unwrap();
        assert_eq!(back.key_id(), signer.key_id());
        assert_eq!(
            PublicKey::parse(&signer.public_key().text()).unwrap(),
            signer.public_key()
        );
        let secret_hex = &text.trim()[SECRET_PREFIX.len()..];
        assert!(!format!("{signer:?}").contains(secret_hex));
        let err = PublicKey::from_file(&path).unwrap_err();
        assert!(err.0.contains("is a private key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
