//! The store's error kinds; driver errors are mapped here and never leak out of the crate.

/// Why a store operation failed.
///
/// Each kind maps to one caller reaction: `NotFound` and `Invalid` are the caller's to fix,
/// `Conflict` means someone else got there first, `Unavailable` means the journal cannot be
/// written or read right now (fail closed), `Corrupt` means its contents cannot be trusted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The write clashes with what is already stored.
    #[error("{0}")]
    Conflict(String),
    /// The journal cannot be reached, opened or written (permissions, disk, locks).
    #[error("journal unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back as written.
    #[error("journal corrupt: {0}")]
    Corrupt(String),
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
}

// SQLite primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_CONSTRAINT: i64 = 19;
const SQLITE_NOTADB: i64 = 26;

/// Maps a driver error to a store error; `doing` says what was attempted, e.g.
/// ``cannot append to `/var/lib/airlock/journal.db` ``.
pub(crate) fn from_sqlx(doing: &str, err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message().to_string();
            let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
            match code & 0xff {
                SQLITE_CANTOPEN => StoreError::Unavailable(format!(
                    "{doing}: {message} (is the directory writable?)"
                )),
                SQLITE_READONLY => StoreError::Unavailable(format!(
                    "{doing}: {message} (check the permissions of the file and its directory)"
                )),
                SQLITE_BUSY | SQLITE_LOCKED => StoreError::Unavailable(format!(
                    "{doing}: {message} (another process holds the journal's write lock; retry)"
                )),
                SQLITE_FULL => {
                    StoreError::Unavailable(format!("{doing}: {message} (free some disk space)"))
                }
                SQLITE_IOERR => StoreError::Unavailable(format!("{doing}: {message}")),
                SQLITE_NOTADB => {
                    StoreError::Corrupt(format!("{doing}: {message} (is this an airlock journal?)"))
                }
                SQLITE_CORRUPT => StoreError::Corrupt(format!("{doing}: {message}")),
                SQLITE_CONSTRAINT => StoreError::Conflict(format!("{doing}: {message}")),
                _ => StoreError::Unavailable(format!("{doing}: {message}")),
            }
        }
        other => from_sqlx_common(doing, other),
    }
}

/// Maps the driver errors that are the same for every database.
fn from_sqlx_common(doing: &str, err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => StoreError::Unavailable(format!("{doing}: {}", db.message())),
        sqlx::Error::Io(e) => StoreError::Unavailable(format!("{doing}: {e}")),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable(format!("{doing}: timed out waiting for a connection"))
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable(format!("{doing}: the store is closed")),
        sqlx::Error::ColumnDecode { index, source } => {
            StoreError::Corrupt(format!("{doing}: column {index} is unreadable: {source}"))
        }
        sqlx::Error::Decode(e) => StoreError::Corrupt(format!("{doing}: {e}")),
        other => StoreError::Unavailable(format!("{doing}: {other}")),
    }
}

/// Maps a PostgreSQL driver error to a store error by its SQLSTATE class; everything else
/// as [`from_sqlx`] does.
pub(crate) fn from_pg(doing: &str, err: sqlx::Error) -> StoreError {
    let sqlx::Error::Database(db) = err else {
        return from_sqlx_common(doing, err);
    };
    let message = db.message().to_string();
    let code = db.code().map(|c| c.to_string()).unwrap_or_default();
    match code.get(..2).unwrap_or("") {
        // Integrity constraint violation: someone else wrote first.
        "23" => StoreError::Conflict(format!("{doing}: {message}")),
        // Read-only transaction.
        "25" => StoreError::Unavailable(format!(
            "{doing}: {message} (the session is read-only, or the server is a standby)"
        )),
        "28" => StoreError::Unavailable(format!(
            "{doing}: {message} (check the user and password in the store URL)"
        )),
        "3D" => StoreError::Unavailable(format!(
            "{doing}: {message} (create the database first: createdb NAME)"
        )),
        "42" if code == "42501" => StoreError::Unavailable(format!(
            "{doing}: {message} (grant the store's user rights on the airlock tables)"
        )),
        "53" => StoreError::Unavailable(format!(
            "{doing}: {message} (the database is out of resources: disk, memory or connections)"
        )),
        "XX" => StoreError::Corrupt(format!("{doing}: {message}")),
        _ => StoreError::Unavailable(format!("{doing}: {message} (SQLSTATE {code})")),
    }
}

/// Maps a migration error to a store error; `driver` maps the database's own errors
/// ([`from_sqlx`] or [`from_pg`]).
pub(crate) fn from_migrate(
    doing: &str,
    err: sqlx::migrate::MigrateError,
    driver: fn(&str, sqlx::Error) -> StoreError,
) -> StoreError {
    use sqlx::migrate::MigrateError;
    match err {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => driver(doing, e),
        MigrateError::VersionMissing(v) => StoreError::Unavailable(format!(
            "{doing}: it was written by a newer airlock (schema version {v}); upgrade airlock"
        )),
        MigrateError::VersionMismatch(v) => StoreError::Corrupt(format!(
            "{doing}: schema migration {v} differs from the one this airlock ships"
        )),
        MigrateError::Dirty(v) => StoreError::Corrupt(format!(
            "{doing}: schema migration {v} was interrupted part way"
        )),
        other => StoreError::Unavailable(format!("{doing}: {other}")),
    }
}
