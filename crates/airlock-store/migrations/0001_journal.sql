-- The journal: an append-only, hash-chained list of events, plus the current state of
-- principals and changes, each written in the same transaction as the event that explains it.

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,      -- 1, 2, 3, … with no gaps
    ts         INTEGER NOT NULL,         -- milliseconds since the Unix epoch
    kind       TEXT    NOT NULL,
    agent      TEXT,
    action_id  TEXT,
    change_id  TEXT,
    payload    TEXT    NOT NULL,         -- JSON, exactly the text that was hashed
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

CREATE INDEX events_by_kind   ON events (kind, seq);
CREATE INDEX events_by_agent  ON events (agent, seq) WHERE agent IS NOT NULL;
CREATE INDEX events_by_action ON events (action_id, seq) WHERE action_id IS NOT NULL;
CREATE INDEX events_by_change ON events (change_id, seq) WHERE change_id IS NOT NULL;

-- Append-only: rows are never rewritten or removed through the store. These triggers stop
-- accidents; a deliberate tamperer can drop them, which is what `verify` is for.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'journal events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'journal events are append-only');
END;

CREATE TABLE principals (
    name        TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('agent', 'operator')),
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    event_seq   INTEGER NOT NULL REFERENCES events (seq)   -- the event that last wrote the row
) STRICT;

CREATE TABLE changes (
    id          TEXT    PRIMARY KEY,
    action_id   TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    record      TEXT    NOT NULL,        -- JSON
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    event_seq   INTEGER NOT NULL REFERENCES events (seq)   -- the event that last wrote the row
) STRICT;

CREATE INDEX changes_by_status ON changes (status, created_at, id);
