//! Rows as both backends read them, and what they become.

use crate::StoreError;
use crate::journal::{AgentRecord, ChangeRecord, StoredEvent};

/// An `events` row: every column, in table order.
pub(crate) type EventRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    i64,
    Option<String>,
);
/// A `principals` row as records are read: `revoked` as a boolean.
pub(crate) type PrincipalRow = (String, String, String, i64, bool, Option<String>);
/// A `changes` row as records are read: every column but `event_seq`.
pub(crate) type ChangeRow = (String, String, String, String, String, i64, i64);

pub(crate) fn stored(row: EventRow) -> StoredEvent {
    let (seq, ts, kind, agent, action_id, change_id, payload, prev_hash, hash, format, row_digest) =
        row;
    StoredEvent {
        seq,
        ts,
        kind,
        agent,
        action_id,
        change_id,
        payload,
        prev_hash,
        hash,
        format,
        row_digest,
    }
}

pub(crate) fn principal(row: PrincipalRow) -> AgentRecord {
    let (name, kind, token_hash, created_at, revoked, profile) = row;
    AgentRecord {
        name,
        kind,
        token_hash,
        created_at,
        revoked,
        profile,
    }
}

pub(crate) fn change(row: ChangeRow) -> Result<ChangeRecord, StoreError> {
    let (id, action_id, agent, status, record, created_at, updated_at) = row;
    let record = serde_json::from_str(&record)
        .map_err(|e| StoreError::Corrupt(format!("change `{id}` has an unreadable record: {e}")))?;
    let status = status
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("change `{id}`: {e}")))?;
    Ok(ChangeRecord {
        id,
        action_id,
        agent,
        status,
        record,
        created_at,
        updated_at,
    })
}
