-- 005_prediction_output.sql — predictions keep the intermediate text behind an answer, so a
-- researcher can read what a model wrote, not only what was extracted from it: for a text_relay
-- run, `output` is the summary the sender generated and the receiver read (NULL for runs with no
-- such text). The runner applies it in one transaction and then sets PRAGMA user_version = 5.

ALTER TABLE predictions ADD COLUMN output TEXT;
