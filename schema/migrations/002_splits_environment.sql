-- 002_splits_environment.sql — results and predictions learn which split they belong to (a run
-- may score validation and test), and each run records the environment it ran in (compiler,
-- CUDA stack, GPU, Lua, the sha256 of every plugin .so) so numbers can be traced to a build.
-- The runner applies it in one transaction and then sets PRAGMA user_version = 2.

ALTER TABLE results ADD COLUMN split TEXT NOT NULL DEFAULT 'test';
DROP INDEX results_key;
CREATE UNIQUE INDEX results_key ON results(run_id, split, metric, scheme);

ALTER TABLE predictions ADD COLUMN split TEXT NOT NULL DEFAULT 'test';
DROP INDEX predictions_key;
CREATE UNIQUE INDEX predictions_key ON predictions(run_id, split, example_id);

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
