-- The journal on PostgreSQL: the same tables as the SQLite schema at its current version
-- (format 2 of the chain from the start), shared by every replica.

CREATE TABLE events (
    seq        BIGINT  PRIMARY KEY,      -- 1, 2, 3, … with no gaps
    ts         BIGINT  NOT NULL,         -- milliseconds since the Unix epoch
    kind       TEXT    NOT NULL,
    agent      TEXT,
    action_id  TEXT,
    change_id  TEXT,
    payload    TEXT    NOT NULL,         -- JSON, exactly the text that was hashed
    prev_hash  TEXT    NOT NULL UNIQUE,  -- one successor per event: the chain cannot fork
    hash       TEXT    NOT NULL,
    format     BIGINT  NOT NULL DEFAULT 2,
    row_digest TEXT                      -- `principal:HEX` or `change:HEX`, else NULL
);

CREATE INDEX events_by_kind   ON events (kind, seq);
CREATE INDEX events_by_agent  ON events (agent, seq) WHERE agent IS NOT NULL;
CREATE INDEX events_by_action ON events (action_id, seq) WHERE action_id IS NOT NULL;
CREATE INDEX events_by_change ON events (change_id, seq) WHERE change_id IS NOT NULL;

-- Append-only: rows are never rewritten or removed through the store. These triggers stop
-- accidents; a deliberate tamperer can drop them, which is what `verify` is for.
CREATE FUNCTION airlock_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal events are append-only';
END;
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION airlock_events_append_only();

CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION airlock_events_append_only();

CREATE TABLE principals (
    name        TEXT    COLLATE "C" PRIMARY KEY,   -- ordered byte by byte, as in SQLite
    kind        TEXT    NOT NULL CHECK (kind IN ('agent', 'operator', 'admin')),
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked     BIGINT  NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    event_seq   BIGINT  NOT NULL REFERENCES events (seq),   -- the event that last wrote the row
    profile     TEXT
);

CREATE TABLE changes (
    id          TEXT    COLLATE "C" PRIMARY KEY,
    action_id   TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    record      TEXT    NOT NULL,        -- JSON
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    event_seq   BIGINT  NOT NULL REFERENCES events (seq)    -- the event that last wrote the row
);

CREATE INDEX changes_by_status ON changes (status, created_at, id);
