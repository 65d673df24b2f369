//! The export format of `airlock journal export`: one JSON object per line, each an event
//! row exactly as stored (the payload is the stored JSON text, byte for byte), so an auditor
//! can verify the chain and its signed checkpoints offline with only the public key.

use crate::StoreError;
use crate::checkpoint::Checkpoint;
use crate::journal::{Audit, AuditOptions, ChainCheck, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::io::BufRead;

/// One exported event row. The fields of an event, plus the row's `format` and
/// `row_digest`; an export written before them (no `format`) reads as format 1.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    pub seq: i64,
    pub ts: i64,
    pub kind: String,
    pub agent: Option<String>,
    pub action_id: Option<String>,
    pub change_id: Option<String>,
    /// The payload's JSON text exactly as stored.
    pub payload: Box<RawValue>,
    pub prev_hash: String,
    pub hash: String,
    #[serde(default = "format_one")]
    pub format: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_digest: Option<String>,
}

fn format_one() -> i64 {
    1
}

impl ExportLine {
    /// The line for a stored row; refuses a payload that is not JSON exactly as stored
    /// (`verify` names such a row).
    pub(crate) fn from_stored(row: StoredEvent) -> Result<Self, StoreError> {
        let seq = row.seq;
        let payload = RawValue::from_string(row.payload.clone())
            .ok()
            .filter(|raw| raw.get() == row.payload)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "event {seq}'s payload is not JSON as written: run `airlock journal verify`"
                ))
            })?;
        Ok(Self {
            seq,
            ts: row.ts,
            kind: row.kind,
            agent: row.agent,
            action_id: row.action_id,
            change_id: row.change_id,
            payload,
            prev_hash: row.prev_hash,
            hash: row.hash,
            format: row.format,
            row_digest: row.row_digest,
        })
    }

    fn into_stored(self) -> StoredEvent {
        StoredEvent {
            seq: self.seq,
            ts: self.ts,
            kind: self.kind,
            agent: self.agent,
            action_id: self.action_id,
            change_id: self.change_id,
            payload: self.payload.get().to_string(),
            prev_hash: self.prev_hash,
            hash: self.hash,
            format: self.format,
            row_digest: self.row_digest,
        }
    }
}

/// A checkpoint event as one exported line, for a witness file kept outside the store
/// (`[journal] witness`): `checkpoints_in_export` reads such a file like an export. Only its
/// signed payload is compared with a journal, so the payload's text need not be the stored
/// bytes.
pub fn witness_line(e: &airlock_core::Event) -> Result<String, StoreError> {
    let payload = RawValue::from_string(e.payload.to_string())
        .map_err(|err| StoreError::Invalid(format!("a checkpoint's payload: {err}")))?;
    let line = ExportLine {
        seq: e.seq,
        ts: e.ts,
        kind: e.kind.as_str().to_string(),
        agent: e.agent.clone(),
        action_id: e.action_id.clone(),
        change_id: e.change_id.clone(),
        payload,
        prev_hash: e.prev_hash.clone(),
        hash: e.hash.clone(),
        format: 2,
        row_digest: None,
    };
    serde_json::to_string(&line).map_err(|err| StoreError::Invalid(err.to_string()))
}

/// Verifies an export: the chain over the exact exported bytes, and its checkpoints. The
/// `principals` and `changes` tables are not in an export, so no row is checked.
pub fn audit_export(reader: impl BufRead, opts: AuditOptions) -> Result<Audit, StoreError> {
    let mut check = ChainCheck::new(opts);
    for (i, line) in reader.lines().enumerate() {
        let line =
            line.map_err(|e| StoreError::Unavailable(format!("cannot read the export: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ExportLine>(&line) {
            Ok(row) => {
                if !check.push(row.into_stored()) {
                    break;
                }
            }
            Err(e) => {
                check.fail(format!("line {} is not an exported event: {e}", i + 1));
                break;
            }
        }
    }
    Ok(check.finish())
}

/// The checkpoints in an export (or any file of exported lines), to compare a journal with.
pub fn checkpoints_in_export(reader: impl BufRead) -> Result<Vec<Checkpoint>, StoreError> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line =
            line.map_err(|e| StoreError::Unavailable(format!("cannot read the export: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: ExportLine = serde_json::from_str(&line).map_err(|e| {
            StoreError::Invalid(format!("line {} is not an exported event: {e}", i + 1))
        })?;
        if row.kind == airlock_core::EventKind::Checkpoint.as_str() {
            let cp: Checkpoint = serde_json::from_str(row.payload.get()).map_err(|e| {
                StoreError::Invalid(format!("line {}: unreadable checkpoint: {e}", i + 1))
            })?;
            out.push(cp);
        }
    }
    Ok(out)
}
