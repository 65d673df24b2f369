//! The full check of a stored journal, the same for every backend: the chain, every
//! `principals` and `changes` row against the digest its event recorded, and the checkpoints.
//! A backend answers the few reads it needs ([`AuditSource`]); the judging is here.

use crate::StoreError;
use crate::journal::{
    Audit, AuditOptions, ChainCheck, Problem, StoredEvent, change_digest, principal_digest,
};
use airlock_core::event::{EventKind, FORMAT};
use async_trait::async_trait;

/// Rows per batch when the chain and the change rows are walked.
pub(crate) const BATCH: i64 = 1000;

/// Which table a row check is about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Table {
    Principals,
    Changes,
}

impl Table {
    /// How a row is named in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Table::Principals => "principal",
            Table::Changes => "change",
        }
    }
}

/// A `principals` row as stored: every column, `revoked` as 0 or 1.
pub(crate) struct PrincipalColumns {
    pub name: String,
    pub kind: String,
    pub token_hash: String,
    pub created_at: i64,
    pub revoked: i64,
    pub event_seq: i64,
    pub profile: Option<String>,
}

/// A `changes` row as stored: every column, the record as its stored text.
pub(crate) struct ChangeColumns {
    pub id: String,
    pub action_id: String,
    pub agent: String,
    pub status: String,
    pub record: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub event_seq: i64,
}

/// What a row check needs of the event a row points at.
pub(crate) struct Pointed {
    pub kind: String,
    pub agent: Option<String>,
    pub change_id: Option<String>,
    pub format: i64,
    pub row_digest: Option<String>,
}

/// The reads an audit makes of a backend.
#[async_trait]
pub(crate) trait AuditSource: Send + Sync {
    /// Event rows after `after`, oldest first, at most `limit`.
    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError>;
    /// Every `principals` row, by name.
    async fn principal_rows(&self) -> Result<Vec<PrincipalColumns>, StoreError>;
    /// `changes` rows with an id after `after`, by id, at most `limit`.
    async fn change_rows(&self, after: &str, limit: i64) -> Result<Vec<ChangeColumns>, StoreError>;
    /// The event at `seq`, if there is one.
    async fn pointed(&self, seq: i64) -> Result<Option<Pointed>, StoreError>;
    /// The seq of the newest event that recorded a row digest for `key` in `table`.
    async fn last_recording(
        &self,
        table: Table,
        key: &str,
        end: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Keys the chain recorded a row for whose row is missing, with the newest such event.
    async fn missing_rows(&self, table: Table) -> Result<Vec<(String, i64)>, StoreError>;
}

/// Verifies everything: the chain (each row hashed by its format's rule, format 2 over the
/// exact stored bytes), every `principals` and `changes` row against the digest its event
/// recorded, and the checkpoints (with `opts.keys`, their signatures; with `opts.external`,
/// heads signed elsewhere).
pub(crate) async fn audit(src: &dyn AuditSource, opts: AuditOptions) -> Result<Audit, StoreError> {
    let mut check = ChainCheck::new(opts);
    loop {
        let rows = src.events_after(check.last_seq(), BATCH).await?;
        let full = rows.len() as i64 == BATCH;
        let mut stopped = false;
        for row in rows {
            if !check.push(row) {
                stopped = true;
                break;
            }
        }
        if stopped || !full {
            break;
        }
    }
    let broken = check.is_broken();
    let mut audit = check.finish();
    // Rows are checked against a whole chain only: past a broken link nothing holds.
    if !broken {
        check_rows(src, &mut audit).await?;
    }
    Ok(audit)
}

/// One `principals` or `changes` row, reduced to what its check needs.
struct RowToCheck {
    key: String,
    event_seq: i64,
    digest: String,
}

/// What the check of one row found.
enum RowVerdict {
    /// It matches the digest of the newest event that recorded it.
    Proven,
    /// Written before row digests: nothing to compare it with.
    Unproven,
    /// Why it cannot be trusted.
    Broken(String),
    /// Written after the chain was walked: not judged by this audit.
    Later,
}

/// Checks every `principals` and `changes` row: it must point at the last event that
/// recorded its key's row, and match the digest that event recorded. Rows recorded by a
/// format-1 event predate digests: they are counted as unproven. Every key the chain
/// recorded a row for must have its row.
async fn check_rows(src: &dyn AuditSource, audit: &mut Audit) -> Result<(), StoreError> {
    let rows: Vec<RowToCheck> = src
        .principal_rows()
        .await?
        .into_iter()
        .map(|p| RowToCheck {
            digest: principal_digest(
                &p.name,
                &p.kind,
                &p.token_hash,
                p.created_at,
                p.revoked,
                p.profile.as_deref(),
            ),
            key: p.name,
            event_seq: p.event_seq,
        })
        .collect();
    check_table(src, Table::Principals, rows, audit).await?;
    let mut after = String::new();
    loop {
        let changes = src.change_rows(&after, BATCH).await?;
        let full = changes.len() as i64 == BATCH;
        if let Some(last) = changes.last() {
            after = last.id.clone();
        }
        let rows = changes
            .into_iter()
            .map(|c| RowToCheck {
                digest: change_digest(
                    &c.id,
                    &c.action_id,
                    &c.agent,
                    &c.status,
                    &c.record,
                    c.created_at,
                    c.updated_at,
                ),
                key: c.id,
                event_seq: c.event_seq,
            })
            .collect();
        check_table(src, Table::Changes, rows, audit).await?;
        if !full {
            break;
        }
    }
    for table in [Table::Principals, Table::Changes] {
        for (key, seq) in src.missing_rows(table).await? {
            audit.problems.push(Problem {
                seq: Some(seq),
                reason: format!(
                    "{} `{key}` is recorded at event {seq} but its row is missing",
                    table.noun()
                ),
            });
        }
    }
    Ok(())
}

async fn check_table(
    src: &dyn AuditSource,
    table: Table,
    rows: Vec<RowToCheck>,
    audit: &mut Audit,
) -> Result<(), StoreError> {
    let end = audit.chain.events as i64;
    for row in rows {
        audit.rows_checked += 1;
        match check_row(src, table, &row, end).await? {
            RowVerdict::Proven | RowVerdict::Later => {}
            RowVerdict::Unproven => audit.rows_unproven += 1,
            RowVerdict::Broken(reason) => audit.problems.push(Problem {
                seq: Some(row.event_seq),
                reason: format!("{} `{}`: {reason}", table.noun(), row.key),
            }),
        }
    }
    Ok(())
}

/// Checks one row against the event it points at and the newest event about its key.
async fn check_row(
    src: &dyn AuditSource,
    table: Table,
    row: &RowToCheck,
    end: i64,
) -> Result<RowVerdict, StoreError> {
    let seq = row.event_seq;
    let pointed = if seq >= 1 {
        src.pointed(seq).await?
    } else {
        None
    };
    if seq > end && pointed.is_some() {
        // Written after the walk of the chain ended (a live journal): the next audit
        // checks it.
        return Ok(RowVerdict::Later);
    }
    let Some(pointed) = pointed else {
        return Ok(RowVerdict::Broken(format!(
            "the row points at event {seq}, which is not in the journal"
        )));
    };
    let key = row.key.as_str();
    let about = match table {
        Table::Principals => {
            pointed.kind == EventKind::Agent.as_str() && pointed.agent.as_deref() == Some(key)
        }
        Table::Changes => pointed.change_id.as_deref() == Some(key),
    };
    if !about {
        return Ok(RowVerdict::Broken(format!(
            "the row points at event {seq}, which is not about it"
        )));
    }
    // The newest event up to the walk's end that recorded this key's row.
    let last = src.last_recording(table, key, end).await?;
    Ok(match pointed.row_digest {
        Some(d) if d == row.digest => match last {
            Some(l) if l == seq => RowVerdict::Proven,
            _ => RowVerdict::Broken(format!(
                "the row is the state recorded at event {seq}, but event {} recorded a newer one",
                last.unwrap_or(0)
            )),
        },
        Some(_) => RowVerdict::Broken(format!(
            "the row does not match the digest event {seq} recorded: it was edited outside \
             airlock"
        )),
        None if pointed.format >= FORMAT => RowVerdict::Broken(format!(
            "the row points at event {seq}, which recorded no {}",
            table.noun()
        )),
        None => match last {
            Some(l) => RowVerdict::Broken(format!(
                "the row points at event {seq}, but event {l} recorded a newer state"
            )),
            None => RowVerdict::Unproven,
        },
    })
}

/// A `changes` row as read for a check: every column in table order.
pub(crate) type ChangeCheckRow = (String, String, String, String, String, i64, i64, i64);
/// A `principals` row as read for a check: every column, `revoked` as 0 or 1.
pub(crate) type PrincipalCheckRow = (String, String, String, i64, i64, i64, Option<String>);
/// The event a row points at, as read for a check.
pub(crate) type PointedRow = (String, Option<String>, Option<String>, i64, Option<String>);

pub(crate) fn change_columns(row: ChangeCheckRow) -> ChangeColumns {
    let (id, action_id, agent, status, record, created_at, updated_at, event_seq) = row;
    ChangeColumns {
        id,
        action_id,
        agent,
        status,
        record,
        created_at,
        updated_at,
        event_seq,
    }
}

pub(crate) fn principal_columns(row: PrincipalCheckRow) -> PrincipalColumns {
    let (name, kind, token_hash, created_at, revoked, event_seq, profile) = row;
    PrincipalColumns {
        name,
        kind,
        token_hash,
        created_at,
        revoked,
        event_seq,
        profile,
    }
}

pub(crate) fn pointed(row: PointedRow) -> Pointed {
    let (kind, agent, change_id, format, row_digest) = row;
    Pointed {
        kind,
        agent,
        change_id,
        format,
        row_digest,
    }
}

/// The query for [`AuditSource::missing_rows`]; plain SQL both backends run as is.
pub(crate) fn missing_rows_sql(table: Table) -> &'static str {
    match table {
        Table::Principals => {
            "SELECT agent, MAX(seq) FROM events WHERE kind = 'agent' \
             AND row_digest LIKE 'principal:%' AND agent IS NOT NULL \
             AND agent NOT IN (SELECT name FROM principals) GROUP BY agent ORDER BY agent"
        }
        Table::Changes => {
            "SELECT change_id, MAX(seq) FROM events WHERE row_digest LIKE 'change:%' \
             AND change_id IS NOT NULL AND change_id NOT IN (SELECT id FROM changes) \
             GROUP BY change_id ORDER BY change_id"
        }
    }
}

/// The query for [`AuditSource::last_recording`]: `$1` the key, `$2` the walk's end.
pub(crate) fn last_recording_sql(table: Table) -> &'static str {
    match table {
        Table::Principals => {
            "SELECT MAX(seq) FROM events WHERE agent = $1 AND kind = 'agent' \
             AND row_digest LIKE 'principal:%' AND seq <= $2"
        }
        Table::Changes => {
            "SELECT MAX(seq) FROM events WHERE change_id = $1 AND row_digest LIKE 'change:%' \
             AND seq <= $2"
        }
    }
}
