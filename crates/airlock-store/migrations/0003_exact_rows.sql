-- Format 2 of the chain: each event's hash covers the exact stored bytes of every column
-- (see `airlock_core::event::row_hash`), and an event written together with a `principals`
-- or `changes` row records that row's digest, so `verify` can check every row against the
-- chain. Rows written before this migration keep `format = 1` and are verified by the old
-- rule (which hashed the payload's canonical JSON); a format-1 row after a format-2 row is
-- refused by `verify`.
ALTER TABLE events ADD COLUMN format INTEGER NOT NULL DEFAULT 1;

-- `principal:HEX` or `change:HEX` (the digest of the row written in the same transaction),
-- NULL for an event that wrote no row.
ALTER TABLE events ADD COLUMN row_digest TEXT;
