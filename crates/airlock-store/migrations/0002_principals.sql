-- Principals gain the `admin` kind (an operator who also issues and revokes operators' and
-- admins' tokens) and a guard `profile` (`[profile.NAME]` of the config; NULL means the
-- top-level `[guards]` and `[anomaly]`). SQLite cannot change a CHECK constraint in place,
-- so the table is rebuilt with its rows.
CREATE TABLE principals_v2 (
    name        TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('agent', 'operator', 'admin')),
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    event_seq   INTEGER NOT NULL REFERENCES events (seq),   -- the event that last wrote the row
    profile     TEXT
) STRICT;

INSERT INTO principals_v2 (name, kind, token_hash, created_at, revoked, event_seq)
    SELECT name, kind, token_hash, created_at, revoked, event_seq FROM principals;

DROP TABLE principals;

ALTER TABLE principals_v2 RENAME TO principals;
