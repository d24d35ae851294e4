-- results.sql — the current results.db schema (what a fresh database is created from).
-- It must equal the result of applying migrations/001..NNN in order: the store tests build both
-- and compare them column by column, and `telepathy db check` compares a db against this file.
-- Changing the schema = add migrations/NNN+1_what.sql AND edit this file AND bump user_version
-- below AND document the change in docs/results-schema.md.
-- Every table and column is documented in docs/results-schema.md.

PRAGMA user_version = 5;

CREATE TABLE experiments (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    script_path   TEXT,
    script_sha256 TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (name, script_sha256)
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    experiment_id   INTEGER REFERENCES experiments(id) ON DELETE SET NULL,
    config_json     TEXT NOT NULL,
    config_hash     TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    attempt         INTEGER NOT NULL DEFAULT 1,
    seed            INTEGER,
    task            TEXT,
    task_version    TEXT,
    bridge          TEXT,
    bridge_version  TEXT,
    sender          TEXT,
    receiver        TEXT,
    plugins_json    TEXT,
    git_commit      TEXT,
    git_dirty       INTEGER CHECK (git_dirty IN (0, 1)),
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    pid_start       INTEGER,
    device          TEXT,
    started_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ended_at        TEXT,
    error           TEXT,
    traceback       TEXT,
    origin          TEXT NOT NULL DEFAULT 'harness',
    source          TEXT
);
CREATE INDEX runs_status ON runs(status, host);
CREATE INDEX runs_experiment ON runs(experiment_id);
CREATE INDEX runs_origin ON runs(origin);

CREATE TABLE metrics (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step       INTEGER NOT NULL,
    name       TEXT NOT NULL,
    value      REAL,
    logged_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (run_id, name, step)
);

CREATE TABLE results (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    metric     TEXT NOT NULL,
    value      REAL,
    ci_low     REAL,
    ci_high    REAL,
    ci_method  TEXT,
    n          INTEGER,
    scheme     TEXT NOT NULL DEFAULT '',
    split      TEXT NOT NULL DEFAULT 'test'
);
CREATE UNIQUE INDEX results_key ON results(run_id, split, metric, scheme);

CREATE TABLE predictions (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    example_id    TEXT NOT NULL,
    example_hash  TEXT,
    prompt_hash   TEXT,
    target_hash   TEXT,
    gold          TEXT,
    prediction    TEXT,
    correct       INTEGER CHECK (correct IN (0, 1)),
    score         REAL,
    split         TEXT NOT NULL DEFAULT 'test',
    output        TEXT
);
CREATE UNIQUE INDEX predictions_key ON predictions(run_id, split, example_id);
CREATE INDEX predictions_example ON predictions(example_hash);

CREATE TABLE latency (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage       TEXT NOT NULL,
    batch       INTEGER,
    seq_len     INTEGER,
    reps        INTEGER,
    ms          REAL NOT NULL,
    ms_std      REAL,
    peak_bytes  INTEGER,
    device      TEXT
);
CREATE INDEX latency_run ON latency(run_id, stage);

CREATE TABLE artifacts (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT,
    bytes       INTEGER,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (run_id, path)
);

CREATE TABLE environment (
    run_id            INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    telepathy_version TEXT,
    compiler          TEXT,
    build_type        TEXT,
    os                TEXT,
    cpu               TEXT,
    cuda_version      TEXT,
    cublas_version    TEXT,
    cudnn_version     TEXT,
    driver_version    TEXT,
    gpu               TEXT,
    lua_version       TEXT,
    sqlite_version    TEXT,
    plugins_json      TEXT,
    recorded_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

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
