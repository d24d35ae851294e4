-- 003_origin.sql — runs learn where they came from: `origin` is 'harness' for runs this binary
-- made and 'study' for results imported from the Telepathy study's preserved files (telepathy
-- import-preserved), and `source` names the file and entry an imported run was read from.
-- The runner applies it in one transaction and then sets PRAGMA user_version = 3.

ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT 'harness';
ALTER TABLE runs ADD COLUMN source TEXT;
CREATE INDEX runs_origin ON runs(origin);
