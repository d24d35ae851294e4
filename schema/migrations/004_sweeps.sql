-- 004_sweeps.sql — sweeps as data (docs/sweeps.md): `telepathy plan` records every configuration
-- a script would run as a `pending` item of a named sweep; workers (`telepathy work`, one per GPU,
-- or one Slurm array task each) claim items atomically, heartbeat while they run them, and mark
-- them done or failed. `uid` tells a shard of this sweep from a shard of another sweep that
-- happens to share the name. The runner applies it in one transaction and then sets
-- PRAGMA user_version = 4.

CREATE TABLE sweeps (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    uid           TEXT NOT NULL,
    script_path   TEXT,
    script_sha256 TEXT,
    stopped       TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE sweep_items (
    id            INTEGER PRIMARY KEY,
    sweep_id      INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    config_hash   TEXT NOT NULL,
    config_json   TEXT NOT NULL,
    spec_json     TEXT NOT NULL,
    models_json   TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    host          TEXT,
    pid           INTEGER,
    pid_start     INTEGER,
    worker        TEXT,
    claimed_at    TEXT,
    heartbeat_at  TEXT,
    finished_at   TEXT,
    seconds       REAL,
    error         TEXT,
    error_class   TEXT,
    run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    UNIQUE (sweep_id, config_hash)
);
CREATE INDEX sweep_items_status ON sweep_items(sweep_id, status, seq);
