//! Journal events and their hash chain.
//!
//! Each event's hash covers its sequence number, time, kind, subject ids, payload and the
//! previous event's hash, so altering or removing any row breaks every link after it.

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

/// The hash of an event at `seq` linking to `prev_hash`.
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
    /// Builds the stored form of `ev` at `seq` after `prev_hash`.
    pub fn link(prev_hash: &str, seq: i64, ev: NewEvent) -> Self {
        let hash = chain_hash(prev_hash, seq, &ev);
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
    /// Recomputes this event's hash from its content and `prev_hash`.
    pub fn recompute(&self) -> String {
        let ev = NewEvent {
            ts: self.ts,
            kind: self.kind,
            agent: self.agent.clone(),
            action_id: self.action_id.clone(),
            change_id: self.change_id.clone(),
            payload: self.payload.clone(),
        };
        chain_hash(&self.prev_hash, self.seq, &ev)
    }
}
