//! Journal events and their hash chain.
//!
//! Each event's hash covers its sequence number, time, kind, subject ids, payload and the
//! previous event's hash, so altering or removing any row breaks every link after it.
//!
//! Two rules exist. Format 2 ([`row_hash`], what every new event is hashed with) covers the
//! exact bytes of each stored column, so any one-byte edit of a row is found. Format 1
//! ([`chain_hash`]) is the rule of journals written before it: it hashes the payload's
//! canonical JSON, so an edit that keeps the JSON's meaning (added whitespace, a duplicate
//! key) goes unnoticed in those old rows.

use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The hash the first event links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An agent's request arrived (and was planned).
    Request,
    /// The gate decided.
    Verdict,
    /// An operator (or a scenario's approver) approved or denied a hold.
    Approval,
    /// A change is about to be applied: the write-ahead intent, journaled before the
    /// provider is called (its outcome follows as `applied` or `apply_failed`, or is
    /// reconciled after a crash).
    Applying,
    /// A change was applied.
    Applied,
    /// Applying failed; nothing was changed or the provider reported a partial failure.
    ApplyFailed,
    /// A change's bake passed.
    Settled,
    /// A change's bake window passed without any rule judged on data: not settled.
    Unjudged,
    /// A change's bake found a breach.
    Breach,
    /// A change is about to be restored from its snapshot: the write-ahead intent of a revert.
    Reverting,
    /// A change was reverted from its snapshot.
    Reverted,
    /// A revert stopped because the resource moved on; a human must look.
    NeedsAttention,
    /// A revert failed.
    RevertFailed,
    /// An agent's breaker opened or was reset.
    Breaker,
    /// The kill switch was turned on or off.
    Killswitch,
    /// An agent was registered or its token changed.
    Agent,
    /// An alert was sent to a receiver (firing or resolved).
    Alert,
    /// A watched service regressed after its changes settled: the changes that could
    /// explain it, ranked.
    Suspects,
    /// A coding agent reported that a tool call it was handed back actually ran (the
    /// hook's PostToolUse), and whether it succeeded.
    Ran,
    /// The journal's head, signed with the operator's key (a signed checkpoint).
    Checkpoint,
    /// A replica took over a change whose replica stopped (its bake, or its unfinished
    /// apply): from here on it judges, settles or reverts the change.
    Takeover,
}

impl EventKind {
    /// The snake_case name stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Request => "request",
            EventKind::Verdict => "verdict",
            EventKind::Approval => "approval",
            EventKind::Applying => "applying",
            EventKind::Applied => "applied",
            EventKind::ApplyFailed => "apply_failed",
            EventKind::Settled => "settled",
            EventKind::Unjudged => "unjudged",
            EventKind::Breach => "breach",
            EventKind::Reverting => "reverting",
            EventKind::Reverted => "reverted",
            EventKind::NeedsAttention => "needs_attention",
            EventKind::RevertFailed => "revert_failed",
            EventKind::Breaker => "breaker",
            EventKind::Killswitch => "killswitch",
            EventKind::Agent => "agent",
            EventKind::Alert => "alert",
            EventKind::Suspects => "suspects",
            EventKind::Ran => "ran",
            EventKind::Checkpoint => "checkpoint",
            EventKind::Takeover => "takeover",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub ts: Timestamp,
    pub kind: EventKind,
    pub agent: Option<String>,
    pub action_id: Option<String>,
    pub change_id: Option<String>,
    pub payload: serde_json::Value,
}

impl NewEvent {
    /// An event with no subject ids.
    pub fn new(ts: Timestamp, kind: EventKind, payload: serde_json::Value) -> Self {
        Self {
            ts,
            kind,
            agent: None,
            action_id: None,
            change_id: None,
            payload,
        }
    }
    /// Sets the agent.
    pub fn agent(mut self, agent: &str) -> Self {
        self.agent = Some(agent.to_string());
        self
    }
    /// Sets the action id.
    pub fn action(mut self, id: &str) -> Self {
        self.action_id = Some(id.to_string());
        self
    }
    /// Sets the change id.
    pub fn change(mut self, id: &str) -> Self {
        self.change_id = Some(id.to_string());
        self
    }
}

/// One journal event. `hash` covers the event's content and `prev_hash`, chaining every
/// event to the one before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Its place in the journal, from 1.
    pub seq: i64,
    /// When it was stored, in ms since the Unix epoch.
    #[schema(value_type = i64)]
    pub ts: Timestamp,
    pub kind: EventKind,
    pub agent: Option<String>,
    pub action_id: Option<String>,
    pub change_id: Option<String>,
    /// Kind-specific content.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The format every new event is stored and hashed in (see [`row_hash`]).
pub const FORMAT: i64 = 2;

/// An event row exactly as stored: every column's text or number, byte for byte.
#[derive(Debug, Clone, Copy)]
pub struct RowBytes<'a> {
    pub seq: i64,
    pub ts: i64,
    pub kind: &'a str,
    pub agent: Option<&'a str>,
    pub action_id: Option<&'a str>,
    pub change_id: Option<&'a str>,
    /// The digest of the `principals` or `changes` row written in the same transaction,
    /// as `principal:HEX` or `change:HEX`; `None` for an event that wrote no such row.
    pub row_digest: Option<&'a str>,
    /// The payload's JSON text as stored (not re-serialized).
    pub payload: &'a str,
    pub prev_hash: &'a str,
}

/// The format-2 hash of a stored row: BLAKE3 over a domain tag and every column, each text
/// length-prefixed (u64 LE), each optional one `0x00` when absent or `0x01` and the text.
///
/// ```text
/// hash = blake3("airlock-journal-event-v2\0" || text(prev_hash) || seq i64 LE || ts i64 LE
///               || text(kind) || opt(agent) || opt(action_id) || opt(change_id)
///               || opt(row_digest) || text(payload))
/// ```
pub fn row_hash(row: &RowBytes<'_>) -> String {
    fn text(h: &mut blake3::Hasher, s: &str) {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let mut h = blake3::Hasher::new();
    h.update(b"airlock-journal-event-v2\0");
    text(&mut h, row.prev_hash);
    h.update(&row.seq.to_le_bytes());
    h.update(&row.ts.to_le_bytes());
    text(&mut h, row.kind);
    for part in [row.agent, row.action_id, row.change_id, row.row_digest] {
        match part {
            Some(s) => {
                h.update(&[1]);
                text(&mut h, s);
            }
            None => {
                h.update(&[0]);
            }
        }
    }
    text(&mut h, row.payload);
    h.finalize().to_hex().to_string()
}

/// The format-1 hash of an event at `seq` linking to `prev_hash`: the rule of journals
/// written before format 2, kept to verify their old rows. It hashes the payload's
/// canonical JSON, not the stored text.
pub fn chain_hash(prev_hash: &str, seq: i64, ev: &NewEvent) -> String {
    let mut h = blake3::Hasher::new();
    h.update(prev_hash.as_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&ev.ts.to_le_bytes());
    h.update(ev.kind.as_str().as_bytes());
    for part in [&ev.agent, &ev.action_id, &ev.change_id] {
        match part {
            Some(s) => {
                h.update(&[1]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => {
                h.update(&[0]);
            }
        }
    }
    h.update(ev.payload.to_string().as_bytes());
    h.finalize().to_hex().to_string()
}

impl Event {
    /// Builds the stored form of `ev` at `seq` after `prev_hash`, hashed by the current
    /// rule ([`row_hash`]) with the payload stored as `ev.payload.to_string()` and no row
    /// digest.
    pub fn link(prev_hash: &str, seq: i64, ev: NewEvent) -> Self {
        Self::link_with(prev_hash, seq, ev, None)
    }
    /// As [`Event::link`], for an event that records the digest of the row written with it.
    pub fn link_with(prev_hash: &str, seq: i64, ev: NewEvent, row_digest: Option<&str>) -> Self {
        let payload = ev.payload.to_string();
        let hash = row_hash(&RowBytes {
            seq,
            ts: ev.ts,
            kind: ev.kind.as_str(),
            agent: ev.agent.as_deref(),
            action_id: ev.action_id.as_deref(),
            change_id: ev.change_id.as_deref(),
            row_digest,
            payload: &payload,
            prev_hash,
        });
        Self {
            seq,
            ts: ev.ts,
            kind: ev.kind,
            agent: ev.agent,
            action_id: ev.action_id,
            change_id: ev.change_id,
            payload: ev.payload,
            prev_hash: prev_hash.to_string(),
            hash,
        }
    }
    /// Recomputes this event's hash by the current rule, for an event stored with its
    /// payload as `payload.to_string()` and no row digest (the stored row, not this value,
    /// is what `verify` hashes).
    pub fn recompute(&self) -> String {
        let payload = self.payload.to_string();
        row_hash(&RowBytes {
            seq: self.seq,
            ts: self.ts,
            kind: self.kind.as_str(),
            agent: self.agent.as_deref(),
            action_id: self.action_id.as_deref(),
            change_id: self.change_id.as_deref(),
            row_digest: None,
            payload: &payload,
            prev_hash: &self.prev_hash,
        })
    }
}
