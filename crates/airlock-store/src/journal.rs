//! The `Journal` trait every backend implements, its query and record types, and the chain
//! check that `verify` runs over stored rows.

use crate::StoreError;
use airlock_core::clock::Timestamp;
use airlock_core::event::{Event, EventKind, GENESIS, NewEvent};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Which events to read.
///
/// Filters combine with AND. Paging is by cursor: pass the last `seq` of one page as
/// `after_seq` of the next. The cursor follows the reading order, so with `descending` it
/// returns events with a *smaller* `seq` than `after_seq`.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events past this seq in reading order (greater, or smaller when `descending`).
    pub after_seq: Option<i64>,
    /// At most this many events; all of them when `None`.
    pub limit: Option<u32>,
    /// Only events of this kind.
    pub kind: Option<EventKind>,
    /// Only events about this agent.
    pub agent: Option<String>,
    /// Only events about this action.
    pub action_id: Option<String>,
    /// Only events about this change.
    pub change_id: Option<String>,
    /// Newest first instead of oldest first.
    pub descending: bool,
}

/// The outcome of recomputing the whole hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Events found intact: all of them when the chain is whole, else those before the break.
    pub events: u64,
    /// The hash of the last intact event (`GENESIS` for an empty journal).
    pub head: String,
    /// The first event whose link does not hold, if any.
    pub first_broken: Option<BrokenLink>,
}

impl VerifyReport {
    /// Whether the whole chain holds.
    pub fn ok(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The seq of the first stored event that does not link.
    pub seq: i64,
    /// What is wrong, e.g. `hash does not match content`.
    pub reason: String,
}

/// A principal: an agent that proposes actions or an operator who approves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Unique name, e.g. `cost-bot`.
    pub name: String,
    /// `agent` or `operator`.
    pub kind: String,
    /// The hash of the principal's bearer token (the token itself is never stored).
    pub token_hash: String,
    /// When the principal was first registered (kept when it is re-keyed).
    pub created_at: Timestamp,
    /// Whether the token no longer authenticates.
    pub revoked: bool,
    /// An agent's guard profile (`[profile.NAME]`): its budgets, rate limits and anomaly
    /// settings; `None` for the top-level ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// The current state of an applied change; its history is in the journal's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeRecord {
    /// The change id (`chg_…`).
    pub id: String,
    /// The action that produced it.
    pub action_id: String,
    /// The agent that asked for it.
    pub agent: String,
    /// Where the change stands.
    pub status: airlock_core::ChangeStatus,
    /// The full record (plan, snapshot, applied state, baseline, bake window …) as the gate
    /// shapes it, secrets redacted.
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
    /// When the change was first stored (kept on update), in ms since the Unix epoch.
    #[schema(value_type = i64)]
    pub created_at: Timestamp,
    /// When the change was last stored, in ms since the Unix epoch.
    #[schema(value_type = i64)]
    pub updated_at: Timestamp,
}

/// The append-only, hash-chained journal, and the state that must change together with it.
///
/// Every mutation writes its row(s) and its event in one transaction, so the state never
/// runs ahead of the record that explains it.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Appends one event to the hash chain; durable (fsynced) when it returns.
    ///
    /// An [`EventKind::Agent`] event is refused with [`StoreError::Invalid`]: it records a
    /// principal, so it is written by [`Journal::put_principal`] together with the principal.
    async fn append(&self, ev: NewEvent) -> Result<Event, StoreError>;

    /// Appends several events in order, in one transaction: all of them are stored,
    /// contiguous in the chain (no other event between them) and durable when it returns,
    /// or none is.
    ///
    /// A refusal of any one event (as [`Journal::append`] would refuse it) refuses the whole
    /// batch. There is deliberately no default built on `append`: appending one by one
    /// would leave half a batch behind on failure and let other writers in between.
    async fn append_all(&self, evs: Vec<NewEvent>) -> Result<Vec<Event>, StoreError>;

    /// Reads events matching `q`, oldest first unless `q.descending`.
    async fn read(&self, q: EventQuery) -> Result<Vec<Event>, StoreError>;

    /// Recomputes the whole chain and names the first broken link.
    async fn verify(&self) -> Result<VerifyReport, StoreError>;

    /// Registers or re-keys a principal, together with its [`EventKind::Agent`] event, in one
    /// transaction.
    ///
    /// The event's payload must not contain the token hash. A principal keeps its kind and
    /// `created_at` when re-keyed; a token hash belongs to one principal only.
    async fn put_principal(&self, rec: AgentRecord, ev: NewEvent) -> Result<Event, StoreError>;

    /// The principal holding the token with this hash, revoked or not.
    async fn principal_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AgentRecord>, StoreError>;

    /// The principal with this name.
    async fn principal(&self, name: &str) -> Result<Option<AgentRecord>, StoreError>;

    /// Every principal, revoked or not, ordered by name. The records carry token hashes:
    /// whoever shows them leaves those out.
    ///
    /// The default refuses with [`StoreError::Unavailable`] rather than answering an empty
    /// list, so a backend or wrapper that does not list principals says so.
    async fn principals(&self) -> Result<Vec<AgentRecord>, StoreError> {
        Err(StoreError::Unavailable(
            "this journal cannot list principals".into(),
        ))
    }

    /// Inserts or updates a change row together with its event, in one transaction.
    ///
    /// The event is about the change: its `change_id` is set to `rec.id` when missing. On
    /// update, `action_id`, `agent` and `created_at` keep their first values.
    async fn put_change(&self, rec: ChangeRecord, ev: NewEvent) -> Result<Event, StoreError>;

    /// The change with this id.
    async fn change(&self, id: &str) -> Result<Option<ChangeRecord>, StoreError>;

    /// Changes currently in `status`, oldest first.
    async fn changes_with_status(
        &self,
        status: airlock_core::ChangeStatus,
    ) -> Result<Vec<ChangeRecord>, StoreError>;
}

/// An event row as stored, before its kind and payload are trusted.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub seq: i64,
    pub ts: Timestamp,
    pub kind: String,
    pub agent: Option<String>,
    pub action_id: Option<String>,
    pub change_id: Option<String>,
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEvent {
    /// Decodes the row into an event, or says what is wrong with it.
    pub fn decode(self) -> Result<Event, String> {
        let kind = EventKind::parse(&self.kind)
            .ok_or_else(|| format!("unknown event kind `{}`", self.kind))?;
        let payload = serde_json::from_str(&self.payload)
            .map_err(|e| format!("payload is not valid JSON: {e}"))?;
        Ok(Event {
            seq: self.seq,
            ts: self.ts,
            kind,
            agent: self.agent,
            action_id: self.action_id,
            change_id: self.change_id,
            payload,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Walks stored events in seq order and stops at the first link that does not hold.
///
/// Backends feed it rows in batches so a large journal is never loaded at once.
#[derive(Debug)]
pub(crate) struct ChainCheck {
    expected_seq: i64,
    head: String,
    intact: u64,
    broken: Option<BrokenLink>,
}

impl ChainCheck {
    pub fn new() -> Self {
        Self {
            expected_seq: 1,
            head: GENESIS.to_string(),
            intact: 0,
            broken: None,
        }
    }

    /// Checks the next row; returns `false` once the chain is broken (stop feeding rows).
    pub fn push(&mut self, row: StoredEvent) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let seq = row.seq;
        let reason = if seq != self.expected_seq {
            Some(format!("sequence gap: expected {}", self.expected_seq))
        } else if row.prev_hash != self.head {
            Some("prev_hash does not match previous event".to_string())
        } else {
            let stored_hash = row.hash.clone();
            match row.decode() {
                Err(why) => Some(why),
                Ok(ev) if ev.recompute() != stored_hash => {
                    Some("hash does not match content".to_string())
                }
                Ok(_) => {
                    self.expected_seq += 1;
                    self.head = stored_hash;
                    self.intact += 1;
                    None
                }
            }
        };
        match reason {
            Some(reason) => {
                self.broken = Some(BrokenLink { seq, reason });
                false
            }
            None => true,
        }
    }

    /// The seq after which the next batch starts.
    pub fn last_seq(&self) -> i64 {
        self.expected_seq - 1
    }

    pub fn finish(self) -> VerifyReport {
        VerifyReport {
            events: self.intact,
            head: self.head,
            first_broken: self.broken,
        }
    }
}

/// Checks the parts of an event that every backend's `append` must refuse.
pub(crate) fn validate_event(ev: &NewEvent) -> Result<(), StoreError> {
    if ev.kind == EventKind::Agent {
        return Err(StoreError::Invalid(
            "an `agent` event is recorded only together with its principal: register, re-key \
             or revoke the principal instead"
                .into(),
        ));
    }
    Ok(())
}

/// Checks the parts of a principal that every backend must refuse.
pub(crate) fn validate_principal(rec: &AgentRecord, ev: &mut NewEvent) -> Result<(), StoreError> {
    if rec.name.trim().is_empty() {
        return Err(StoreError::Invalid("a principal needs a name".into()));
    }
    if !["agent", "operator", "admin"].contains(&rec.kind.as_str()) {
        return Err(StoreError::Invalid(format!(
            "unknown principal kind `{}`: use `agent`, `operator` or `admin`",
            rec.kind
        )));
    }
    if rec.token_hash.is_empty() {
        return Err(StoreError::Invalid(format!(
            "principal `{}` needs a token hash",
            rec.name
        )));
    }
    if ev.kind != EventKind::Agent {
        return Err(StoreError::Invalid(format!(
            "a principal is recorded with an `agent` event, not `{}`",
            ev.kind
        )));
    }
    match &ev.agent {
        None => ev.agent = Some(rec.name.clone()),
        Some(a) if *a != rec.name => {
            return Err(StoreError::Invalid(format!(
                "the event names agent `{a}` but the principal is `{}`",
                rec.name
            )));
        }
        Some(_) => {}
    }
    // Short strings would match by chance; real token hashes are long hex digests.
    if rec.token_hash.len() >= 8 && ev.payload.to_string().contains(&rec.token_hash) {
        return Err(StoreError::Invalid(
            "the event payload contains the token hash; journal events are readable by \
             everyone who can read the journal, so leave it out"
                .into(),
        ));
    }
    Ok(())
}

/// Checks the parts of a change that every backend must refuse.
pub(crate) fn validate_change(rec: &ChangeRecord, ev: &mut NewEvent) -> Result<(), StoreError> {
    if rec.id.trim().is_empty() {
        return Err(StoreError::Invalid("a change needs an id".into()));
    }
    match &ev.change_id {
        None => ev.change_id = Some(rec.id.clone()),
        Some(c) if *c != rec.id => {
            return Err(StoreError::Invalid(format!(
                "the event names change `{c}` but the record is change `{}`",
                rec.id
            )));
        }
        Some(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(prev: &str, seq: i64, payload: serde_json::Value) -> StoredEvent {
        let ev = Event::link(
            prev,
            seq,
            NewEvent::new(seq * 10, EventKind::Request, payload),
        );
        StoredEvent {
            seq: ev.seq,
            ts: ev.ts,
            kind: ev.kind.as_str().to_string(),
            agent: ev.agent,
            action_id: ev.action_id,
            change_id: ev.change_id,
            payload: ev.payload.to_string(),
            prev_hash: ev.prev_hash,
            hash: ev.hash,
        }
    }

    #[test]
    fn an_intact_chain_reports_its_head() {
        let a = stored(GENESIS, 1, json!({"n": 1}));
        let b = stored(&a.hash, 2, json!({"n": 2}));
        let head = b.hash.clone();
        let mut check = ChainCheck::new();
        assert!(check.push(a));
        assert!(check.push(b));
        let report = check.finish();
        assert!(report.ok());
        assert_eq!(report.events, 2);
        assert_eq!(report.head, head);
    }

    #[test]
    fn an_unknown_kind_is_a_broken_link_not_an_error() {
        let mut a = stored(GENESIS, 1, json!({}));
        a.kind = "teleport".into();
        let mut check = ChainCheck::new();
        assert!(!check.push(a));
        let report = check.finish();
        assert_eq!(
            report.first_broken,
            Some(BrokenLink {
                seq: 1,
                reason: "unknown event kind `teleport`".into()
            })
        );
        assert_eq!(report.head, GENESIS);
    }

    #[test]
    fn a_principal_event_must_not_carry_the_token_hash() {
        let rec = AgentRecord {
            name: "cost-bot".into(),
            kind: "agent".into(),
            token_hash: "abc123def456".into(),
            created_at: 0,
            revoked: false,
            profile: None,
        };
        let mut ev = NewEvent::new(0, EventKind::Agent, json!({"token_hash": "abc123def456"}));
        let err = validate_principal(&rec, &mut ev).unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    }
}
