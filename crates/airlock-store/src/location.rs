//! Where a store lives: parsing the `--store` style location a user writes.

use crate::StoreError;
use std::path::PathBuf;

/// A parsed store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A SQLite file.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database (`sqlite::memory:`), gone when the store drops.
    SqliteMemory,
    /// A PostgreSQL database, `postgres://USER:PASSWORD@HOST:PORT/DB?…` as libpq reads it.
    Postgres(String),
}

impl Location {
    /// Parses a plain path, `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`.
    ///
    /// `sqlite://journal.db` is relative to the working directory and
    /// `sqlite:///var/lib/airlock/journal.db` is absolute, as in sqlx and SQLAlchemy.
    pub fn parse(location: &str) -> Result<Self, StoreError> {
        let trimmed = location.trim();
        if trimmed.is_empty() {
            return Err(StoreError::Invalid(
                "the store location is empty: use a path or sqlite://PATH".into(),
            ));
        }
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return Ok(Location::Postgres(trimmed.to_string()));
        }
        if trimmed == ":memory:" || trimmed == "sqlite::memory:" || trimmed == "sqlite://:memory:" {
            return Ok(Location::SqliteMemory);
        }
        let rest = match trimmed.strip_prefix("sqlite://") {
            Some(rest) => Some(rest),
            None => trimmed.strip_prefix("sqlite:"),
        };
        if let Some(rest) = rest {
            if rest.contains('?') {
                return Err(StoreError::Invalid(format!(
                    "store URL `{location}` has query parameters; airlock sets the SQLite \
                     options itself, so use sqlite://PATH"
                )));
            }
            if rest.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "store URL `{location}` has no path: use sqlite://PATH"
                )));
            }
            return Ok(Location::SqliteFile(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = trimmed.split_once("://") {
            let looks_like_scheme = !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if looks_like_scheme {
                return Err(StoreError::Invalid(format!(
                    "unsupported store URL `{}`: use a path, sqlite://PATH or postgres://…",
                    redact(trimmed)
                )));
            }
        }
        Ok(Location::SqliteFile(PathBuf::from(trimmed)))
    }
}

/// Hides the credentials of a URL like `postgres://user:secret@host/db`.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_sqlite_urls_name_files() {
        let file = |p: &str| Location::SqliteFile(PathBuf::from(p));
        assert_eq!(Location::parse("journal.db").unwrap(), file("journal.db"));
        assert_eq!(
            Location::parse("/var/lib/a.db").unwrap(),
            file("/var/lib/a.db")
        );
        assert_eq!(
            Location::parse("sqlite://journal.db").unwrap(),
            file("journal.db")
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/a.db").unwrap(),
            file("/var/lib/a.db")
        );
        assert_eq!(
            Location::parse("sqlite:data/a.db").unwrap(),
            file("data/a.db")
        );
        assert_eq!(
            Location::parse("sqlite::memory:").unwrap(),
            Location::SqliteMemory
        );
    }

    #[test]
    fn other_schemes_are_refused_without_echoing_passwords() {
        let err = Location::parse("mysql://airlock:hunter2@db:3306/airlock").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Invalid(_)));
        assert_eq!(
            msg,
            "unsupported store URL `mysql://***@db:3306/airlock`: use a path, sqlite://PATH or \
             postgres://…"
        );
        assert_eq!(
            redact("postgres://airlock:hunter2@db:5432/airlock"),
            "postgres://***@db:5432/airlock"
        );
        assert_eq!(
            Location::parse("postgresql://db/airlock").unwrap(),
            Location::Postgres("postgresql://db/airlock".into())
        );
    }

    #[test]
    fn query_parameters_and_empty_locations_are_refused() {
        assert!(matches!(
            Location::parse("sqlite://a.db?mode=ro"),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(Location::parse("  "), Err(StoreError::Invalid(_))));
        assert!(matches!(
            Location::parse("sqlite://"),
            Err(StoreError::Invalid(_))
        ));
    }
}
