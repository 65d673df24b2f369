//! The `Journal` trait every backend implements, its query and record types, and the chain
//! check that `verify` runs over stored rows.

use crate::StoreError;
use crate::checkpoint::{Checkpoint, PublicKey};
use airlock_core::clock::Timestamp;
use airlock_core::event::{
    Event, EventKind, FORMAT, GENESIS, NewEvent, RowBytes, chain_hash, row_hash,
};
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

/// A lock held across every process that shares the store (see [`Journal::lock_shared`]).
#[async_trait]
pub trait SharedLock: Send + Sync {
    /// Releases the lock. A lock dropped without being released is released when the
    /// connection that holds it is closed, which dropping it does.
    async fn release(self: Box<Self>);
}

/// What [`Journal::put_changes`] answers: the appended batch, then each change's event.
pub type ChangesWritten = (
    Result<Vec<Event>, StoreError>,
    Vec<Result<Event, StoreError>>,
);

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

    /// Appends the record of a decision that changes nothing (a read allowed or denied):
    /// like [`Journal::append_all`], except that a journal may answer before the events are
    /// durable, within a bound it documents (the gate's `Notifying` journal with
    /// `[store] read_audit = "deferred"`). By default it is [`Journal::append_all`].
    async fn append_audit(&self, evs: Vec<NewEvent>) -> Result<(), StoreError> {
        self.append_all(evs).await.map(|_| ())
    }

    /// Writes whatever [`Journal::append_audit`] has not written yet, and returns once it is
    /// durable. Nothing to do by default.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Takes the lock named `key` across every process sharing this store, waiting for it;
    /// `None` when the store is not shared (an embedded file has one writer process, whose
    /// own locks suffice).
    ///
    /// Replicas hold it while they read what the others recorded and decide on it, so two
    /// decisions that must see each other (the last of a budget) never run at once.
    async fn lock_shared(&self, key: &str) -> Result<Option<Box<dyn SharedLock>>, StoreError> {
        let _ = key;
        Ok(None)
    }

    /// Whether some process holds the shared lock named `key` right now (without taking
    /// it); `None` when the store is not shared.
    async fn lock_is_held(&self, key: &str) -> Result<Option<bool>, StoreError> {
        let _ = key;
        Ok(None)
    }

    /// Reads events matching `q`, oldest first unless `q.descending`.
    async fn read(&self, q: EventQuery) -> Result<Vec<Event>, StoreError>;

    /// Recomputes the whole chain and names the first broken link.
    async fn verify(&self) -> Result<VerifyReport, StoreError>;

    /// Verifies everything: the chain (each row hashed by its format's rule), every
    /// `principals` and `changes` row against the digest its event recorded, and the
    /// checkpoints (with `opts.keys`, their signatures; with `opts.external`, heads signed
    /// elsewhere).
    ///
    /// The default refuses with [`StoreError::Unavailable`], so a wrapper that does not
    /// forward it says so rather than answering a partial check.
    async fn audit(&self, opts: AuditOptions) -> Result<Audit, StoreError> {
        let _ = opts;
        Err(StoreError::Unavailable(
            "this journal cannot be audited".into(),
        ))
    }

    /// Event rows exactly as stored, for `journal export`: those after `after_seq`, oldest
    /// first, at most `limit`. The default refuses with [`StoreError::Unavailable`].
    async fn export_rows(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<crate::ExportLine>, StoreError> {
        let _ = (after_seq, limit);
        Err(StoreError::Unavailable(
            "this journal cannot be exported".into(),
        ))
    }

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

    /// Appends `before` (one batch, contiguous) and then writes each change as
    /// [`Journal::put_change`] would, answering each part on its own: a change that is
    /// refused fails alone. A backend may write everything in one transaction (one fsync for
    /// the lot) when every part is accepted; this default writes them one by one.
    async fn put_changes(
        &self,
        before: Vec<NewEvent>,
        changes: Vec<(ChangeRecord, NewEvent)>,
    ) -> ChangesWritten {
        one_by_one(self, before, changes).await
    }

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
    /// The chain rule the row was hashed with: 1 (the old rule) or 2 (exact bytes).
    pub format: i64,
    /// `principal:HEX` or `change:HEX` for an event written with such a row.
    pub row_digest: Option<String>,
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

    /// Recomputes the row's hash by the rule of its format, or says why it cannot.
    pub fn rehash(&self) -> Result<String, String> {
        let kind = EventKind::parse(&self.kind)
            .ok_or_else(|| format!("unknown event kind `{}`", self.kind))?;
        match self.format {
            FORMAT => Ok(row_hash(&RowBytes {
                seq: self.seq,
                ts: self.ts,
                kind: &self.kind,
                agent: self.agent.as_deref(),
                action_id: self.action_id.as_deref(),
                change_id: self.change_id.as_deref(),
                row_digest: self.row_digest.as_deref(),
                payload: &self.payload,
                prev_hash: &self.prev_hash,
            })),
            1 => {
                if self.row_digest.is_some() {
                    return Err("a format-1 event cannot carry a row digest".into());
                }
                let payload = serde_json::from_str(&self.payload)
                    .map_err(|e| format!("payload is not valid JSON: {e}"))?;
                let ev = NewEvent {
                    ts: self.ts,
                    kind,
                    agent: self.agent.clone(),
                    action_id: self.action_id.clone(),
                    change_id: self.change_id.clone(),
                    payload,
                };
                Ok(chain_hash(&self.prev_hash, self.seq, &ev))
            }
            other => Err(format!("unknown row format {other}")),
        }
    }
}

/// What to check besides the chain: checkpoint signatures, and heads signed elsewhere.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// Public keys whose checkpoints are trusted. When any is given, every checkpoint must
    /// verify under one of them, and at least one checkpoint must.
    pub keys: Vec<PublicKey>,
    /// Checkpoints kept outside the journal (an earlier export): each must verify and
    /// match the journal's chain at the head it signed.
    pub external: Vec<Checkpoint>,
}

/// A checkpoint that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedHead {
    /// The seq of the newest event it covers.
    pub head_seq: i64,
    /// When it was signed (ms since the Unix epoch).
    pub signed_at: i64,
    /// The key that signed it.
    pub key_id: String,
}

/// A problem `audit` found besides the first broken link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The event it concerns (for a row: the event the row points at), if any.
    pub seq: Option<i64>,
    /// What is wrong.
    pub reason: String,
}

/// Everything `audit` checked: the chain, the rows kept beside it, the checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// The chain: intact events, head, first broken link.
    pub chain: VerifyReport,
    /// Intact events hashed by the old rule (written before format 2): they prove the
    /// canonical meaning of their payload, not its exact bytes.
    pub legacy_events: u64,
    /// `principals` and `changes` rows checked against the digest their event recorded.
    pub rows_checked: u64,
    /// Rows last written before format 2, which carry no digest and cannot be proven.
    pub rows_unproven: u64,
    /// Checkpoints in the chain.
    pub checkpoints: u64,
    /// Checkpoints (in the chain or given) whose signature verified under the given keys.
    pub signed: u64,
    /// The newest head a verified signature covers.
    pub last_signed: Option<SignedHead>,
    /// Whether signatures were checked (keys were given).
    pub keys_given: bool,
    /// Every other problem: rows, signatures, heads signed elsewhere.
    pub problems: Vec<Problem>,
}

impl Audit {
    /// Whether everything holds.
    pub fn ok(&self) -> bool {
        self.chain.ok() && self.problems.is_empty()
    }

    /// The chain report with the first problem of any kind as its broken link.
    pub fn into_report(self) -> VerifyReport {
        let mut report = self.chain;
        if report.first_broken.is_none()
            && let Some(p) = self.problems.into_iter().next()
        {
            report.first_broken = Some(BrokenLink {
                seq: p.seq.unwrap_or(0),
                reason: p.reason,
            });
        }
        report
    }
}

/// Walks stored events in seq order and stops at the first link that does not hold; checks
/// checkpoints on the way.
///
/// Backends feed it rows in batches so a large journal is never loaded at once.
#[derive(Debug)]
pub(crate) struct ChainCheck {
    expected_seq: i64,
    head: String,
    intact: u64,
    broken: Option<BrokenLink>,
    seen_format2: bool,
    legacy: u64,
    checkpoints: u64,
    signed: u64,
    last_signed: Option<SignedHead>,
    problems: Vec<Problem>,
    opts: AuditOptions,
    /// Hashes at the seqs the external checkpoints signed, as the walk passes them.
    wanted: std::collections::BTreeMap<i64, Option<String>>,
}

impl ChainCheck {
    pub fn new(opts: AuditOptions) -> Self {
        let wanted = opts
            .external
            .iter()
            .filter(|c| c.head_seq > 0)
            .map(|c| (c.head_seq, None))
            .collect();
        Self {
            expected_seq: 1,
            head: GENESIS.to_string(),
            intact: 0,
            broken: None,
            seen_format2: false,
            legacy: 0,
            checkpoints: 0,
            signed: 0,
            last_signed: None,
            problems: Vec::new(),
            opts,
            wanted,
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
        } else if row.format < FORMAT && self.seen_format2 {
            Some(format!(
                "format {} after a format-{FORMAT} event: rows are never written in an older format",
                row.format
            ))
        } else {
            match row.rehash() {
                Err(why) => Some(why),
                Ok(h) if h != row.hash => Some("hash does not match content".to_string()),
                Ok(_) => self.checkpoint(&row).err(),
            }
        };
        if let Some(reason) = reason {
            self.broken = Some(BrokenLink { seq, reason });
            return false;
        }
        self.seen_format2 |= row.format == FORMAT;
        if row.format < FORMAT {
            self.legacy += 1;
        }
        if let Some(slot) = self.wanted.get_mut(&seq) {
            *slot = Some(row.hash.clone());
        }
        self.expected_seq += 1;
        self.head = row.hash;
        self.intact += 1;
        true
    }

    /// A checkpoint must sign the head it follows; with keys, its signature must verify.
    /// `Err` is a broken link; a bad signature is a problem of its own.
    fn checkpoint(&mut self, row: &StoredEvent) -> Result<(), String> {
        if row.kind != EventKind::Checkpoint.as_str() {
            return Ok(());
        }
        let cp: Checkpoint = serde_json::from_str(&row.payload)
            .map_err(|e| format!("the checkpoint's payload is unreadable: {e}"))?;
        if cp.head_seq != row.seq - 1 || cp.head_hash != row.prev_hash {
            return Err(format!(
                "the checkpoint signs event {} but follows event {}: a checkpoint signs the \
                 head it follows",
                cp.head_seq,
                row.seq - 1
            ));
        }
        self.checkpoints += 1;
        if !self.opts.keys.is_empty() {
            match crate::checkpoint::verify_any(&self.opts.keys, &cp) {
                Ok(()) => self.note_signed(&cp),
                Err(why) => self.problems.push(Problem {
                    seq: Some(row.seq),
                    reason: why,
                }),
            }
        }
        Ok(())
    }

    fn note_signed(&mut self, cp: &Checkpoint) {
        self.signed += 1;
        if self
            .last_signed
            .as_ref()
            .is_none_or(|l| cp.head_seq >= l.head_seq)
        {
            self.last_signed = Some(SignedHead {
                head_seq: cp.head_seq,
                signed_at: cp.signed_at,
                key_id: cp.key_id.clone(),
            });
        }
    }

    /// The seq after which the next batch starts.
    pub fn last_seq(&self) -> i64 {
        self.expected_seq - 1
    }

    /// Stops the walk at the next expected seq for a reason outside any row (an unreadable
    /// export line).
    pub fn fail(&mut self, reason: String) {
        if self.broken.is_none() {
            self.broken = Some(BrokenLink {
                seq: self.expected_seq,
                reason,
            });
        }
    }

    /// Whether the walk stopped at a broken link.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Ends the walk: checks the heads signed elsewhere against it.
    pub fn finish(mut self) -> Audit {
        let external = std::mem::take(&mut self.opts.external);
        for cp in &external {
            if !self.opts.keys.is_empty() {
                if let Err(why) = crate::checkpoint::verify_any(&self.opts.keys, cp) {
                    self.problems.push(Problem {
                        seq: Some(cp.head_seq),
                        reason: format!("a checkpoint given to compare with: {why}"),
                    });
                    continue;
                }
                self.note_signed(cp);
            }
            let at = if cp.head_seq == 0 {
                Some(GENESIS.to_string())
            } else {
                self.wanted.get(&cp.head_seq).cloned().flatten()
            };
            match at {
                Some(h) if h == cp.head_hash => {}
                Some(_) => self.problems.push(Problem {
                    seq: Some(cp.head_seq),
                    reason: format!(
                        "event {} differs from the one a checkpoint signed (signed at {} ms): \
                         history was rewritten",
                        cp.head_seq, cp.signed_at
                    ),
                }),
                None if self.broken.is_some() => self.problems.push(Problem {
                    seq: Some(cp.head_seq),
                    reason: format!(
                        "a checkpoint signed event {}, past the chain's first broken link",
                        cp.head_seq
                    ),
                }),
                None => self.problems.push(Problem {
                    seq: Some(cp.head_seq),
                    reason: format!(
                        "a checkpoint signed event {} (at {} ms), but the journal ends at \
                         event {}: events were removed from its end",
                        cp.head_seq, cp.signed_at, self.intact
                    ),
                }),
            }
        }
        if !self.opts.keys.is_empty() && self.signed == 0 {
            self.problems.push(Problem {
                seq: None,
                reason: "no checkpoint is signed by the given key: nothing shows the chain was \
                         not rewritten"
                    .into(),
            });
        }
        Audit {
            chain: VerifyReport {
                events: self.intact,
                head: self.head,
                first_broken: self.broken,
            },
            legacy_events: self.legacy,
            rows_checked: 0,
            rows_unproven: 0,
            checkpoints: self.checkpoints,
            signed: self.signed,
            last_signed: self.last_signed,
            keys_given: !self.opts.keys.is_empty(),
            problems: self.problems,
        }
    }
}

/// The digest a `principal` event records of the `principals` row written with it: every
/// column but `event_seq` (which must point at that event). The token hash is hashed again,
/// never recorded.
pub(crate) fn principal_digest(
    name: &str,
    kind: &str,
    token_hash: &str,
    created_at: i64,
    revoked: i64,
    profile: Option<&str>,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"airlock-principal-row-v1\0");
    for s in [name, kind, token_hash] {
        text(&mut h, s);
    }
    h.update(&created_at.to_le_bytes());
    h.update(&revoked.to_le_bytes());
    opt(&mut h, profile);
    format!("principal:{}", h.finalize().to_hex())
}

/// What a change row is written with, given what the store already holds of the change
/// (its action, agent and first `created_at`): the `created_at` to keep (an update keeps
/// the first), the record as its stored text and the row's digest for its event. Refuses
/// a change that belongs to another action or agent.
pub(crate) fn change_row(
    rec: &ChangeRecord,
    existing: Option<(&str, &str, i64)>,
) -> Result<(i64, String, String), StoreError> {
    let created_at = match existing {
        Some((action_id, agent, _)) if action_id != rec.action_id || agent != rec.agent => {
            return Err(StoreError::Conflict(format!(
                "change `{}` belongs to action `{action_id}` of agent `{agent}`, \
                 not action `{}` of agent `{}`",
                rec.id, rec.action_id, rec.agent
            )));
        }
        Some((_, _, created_at)) => created_at,
        None => rec.created_at,
    };
    let record = rec.record.to_string();
    let digest = change_digest(
        &rec.id,
        &rec.action_id,
        &rec.agent,
        rec.status.as_str(),
        &record,
        created_at,
        rec.updated_at,
    );
    Ok((created_at, record, digest))
}

/// The digest an event records of the `changes` row written with it: every column but
/// `event_seq`, the record as its stored text.
pub(crate) fn change_digest(
    id: &str,
    action_id: &str,
    agent: &str,
    status: &str,
    record: &str,
    created_at: i64,
    updated_at: i64,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"airlock-change-row-v1\0");
    for s in [id, action_id, agent, status, record] {
        text(&mut h, s);
    }
    h.update(&created_at.to_le_bytes());
    h.update(&updated_at.to_le_bytes());
    format!("change:{}", h.finalize().to_hex())
}

fn text(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn opt(h: &mut blake3::Hasher, s: Option<&str>) {
    match s {
        Some(s) => {
            h.update(&[1]);
            text(h, s);
        }
        None => {
            h.update(&[0]);
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
    if ev.kind == EventKind::Checkpoint {
        Checkpoint::from_payload(&ev.payload).map_err(StoreError::Invalid)?;
    }
    Ok(())
}

/// A checkpoint is appended on its own: the head it signs is checked inside its write.
pub fn validate_batch(evs: &[NewEvent]) -> Result<(), StoreError> {
    evs.iter().try_for_each(validate_event)?;
    if evs.len() > 1 && evs.iter().any(|e| e.kind == EventKind::Checkpoint) {
        return Err(StoreError::Invalid(
            "a `checkpoint` event is appended on its own, not in a batch".into(),
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

/// [`Journal::put_changes`] without a shared transaction: the batch, then each change on
/// its own.
pub(crate) async fn one_by_one<J: Journal + ?Sized>(
    j: &J,
    before: Vec<NewEvent>,
    changes: Vec<(ChangeRecord, NewEvent)>,
) -> ChangesWritten {
    let appended = if before.is_empty() {
        Ok(Vec::new())
    } else {
        j.append_all(before).await
    };
    let mut out = Vec::with_capacity(changes.len());
    for (rec, ev) in changes {
        out.push(j.put_change(rec, ev).await);
    }
    (appended, out)
}

/// [`Journal::put_changes`] in one transaction where the backend can: `write` stores the
/// appends, then the change records, atomically, and answers each. A part refused before
/// any write (see [`validate_change`]) fails alone; if the store refuses one while writing
/// (a change id owned by another action), the transaction is rolled back and every part is
/// written again on its own, so only the refused one fails. Any other error is not retried:
/// the transaction may have committed, and a retry could store the events twice.
pub(crate) async fn together<J, W, F>(
    j: &J,
    before: Vec<NewEvent>,
    mut changes: Vec<(ChangeRecord, NewEvent)>,
    write: W,
) -> ChangesWritten
where
    J: Journal + ?Sized,
    W: FnOnce(Vec<NewEvent>, Vec<(ChangeRecord, NewEvent)>) -> F,
    F: std::future::Future<Output = Result<(Vec<Event>, Vec<Event>), StoreError>>,
{
    let refused: Vec<Option<StoreError>> = changes
        .iter_mut()
        .map(|(rec, ev)| validate_change(rec, ev).err())
        .collect();
    let good: Vec<(ChangeRecord, NewEvent)> = (changes.iter().zip(&refused))
        .filter(|(_, r)| r.is_none())
        .map(|(c, _)| c.clone())
        .collect();
    let valid =
        validate_batch(&before).is_ok() && before.iter().all(|e| e.kind != EventKind::Checkpoint);
    if valid && !good.is_empty() {
        match write(before.clone(), good).await {
            Ok((appended, written)) => {
                let mut written = written.into_iter();
                let out = refused
                    .into_iter()
                    .map(|r| match r {
                        Some(e) => Err(e),
                        None => written.next().ok_or_else(|| {
                            StoreError::Unavailable("the journal stored a partial group".into())
                        }),
                    })
                    .collect();
                return (Ok(appended), out);
            }
            // A refusal rolled the whole write back: each part again on its own.
            Err(StoreError::Conflict(_) | StoreError::Invalid(_)) => {}
            Err(e) => {
                let out = refused
                    .into_iter()
                    .map(|r| Err(r.unwrap_or_else(|| e.clone())))
                    .collect();
                return (Err(e), out);
            }
        }
    }
    one_by_one(j, before, changes).await
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
            format: FORMAT,
            row_digest: None,
        }
    }

    #[test]
    fn an_intact_chain_reports_its_head() {
        let a = stored(GENESIS, 1, json!({"n": 1}));
        let b = stored(&a.hash, 2, json!({"n": 2}));
        let head = b.hash.clone();
        let mut check = ChainCheck::new(AuditOptions::default());
        assert!(check.push(a));
        assert!(check.push(b));
        let report = check.finish().chain;
        assert!(report.ok());
        assert_eq!(report.events, 2);
        assert_eq!(report.head, head);
    }

    #[test]
    fn an_unknown_kind_is_a_broken_link_not_an_error() {
        let mut a = stored(GENESIS, 1, json!({}));
        a.kind = "teleport".into();
        let mut check = ChainCheck::new(AuditOptions::default());
        assert!(!check.push(a));
        let report = check.finish().chain;
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
