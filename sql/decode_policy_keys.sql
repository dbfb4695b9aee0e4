-- A redacted column never leaves, not even as the key a statement finds its
-- row by: with REPLICA IDENTITY USING INDEX on it, json writes null in "pk"
-- and the sql format writes, instead of the DELETE, a comment saying that
-- the change cannot be applied.  set_column_policy() refuses to redact a
-- column of a replica identity index.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;

-- The sql stream with timestamps masked, and its plain-SQL apply statements
-- shortened (the setup, the guard, each statement's apply condition
-- <applies>, the table blocks, which must hold no value).
CREATE FUNCTION sql_stream(slot name) RETURNS SETOF text
LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(data,
           '^DO \$edgesync\$DECLARE may .*$', 'DO -- setup'),
           '^DO \$edgesync\$DECLARE m pg_catalog\.text := ''(\w+)''; s pg_catalog\.text := ''([^'']*)''; n pg_catalog\.text := (E?''(?:[^'']|'''')*'');.*$',
           'DO -- table block (\1) \2.\3' || CASE WHEN data LIKE '%SECRET%' THEN ' holding a secret!' ELSE '' END),
           '^WITH edgesync_guard AS .* SELECT (E?''(?:[^'']|'''')*''), ''[^'']*'' FROM edgesync_guard .*$',
           'WITH edgesync_guard AS ... SELECT \1, ''…'' ...'),
           ' ''[0-9A-F]+/[0-9A-F]+''::pg_catalog\.pg_lsn OPERATOR\(pg_catalog\.>\) pg_catalog\.current_setting\(''edgesync_apply\.skip_through''\)::pg_catalog\.pg_lsn',
           ' <applies>', 'g'),
           '\d{4}-\d\d-\d\d \d\d:\d\d:[0-9.]+\+00', '…', 'g')
    FROM pg_logical_slot_get_changes(slot, NULL, NULL, 'format', 'sql', 'source', 'keys')
$$;

CREATE TABLE patients (id int PRIMARY KEY, mrn text NOT NULL, name text);
CREATE UNIQUE INDEX patients_mrn ON patients (mrn);
SELECT edgesync.track('patients');
SELECT 'init' FROM pg_create_logical_replication_slot('j', 'edgesync');
SELECT 'init' FROM pg_create_logical_replication_slot('s', 'edgesync');

-- The issue's reproduction: the policy first, the replica identity after.
SELECT edgesync.set_column_policy('patients', 'mrn', 'redact');
ALTER TABLE patients REPLICA IDENTITY USING INDEX patients_mrn;
INSERT INTO patients VALUES (1, 'MRN-SECRET-1', 'Ann'), (2, 'MRN-SECRET-2', 'Bob');
UPDATE patients SET name = 'Ann B' WHERE id = 1;
DELETE FROM patients WHERE id = 1;
-- An update of the identity column logs its old value: not needed to apply it.
UPDATE patients SET mrn = 'MRN-SECRET-3' WHERE id = 2;
SELECT data::jsonb->>'op' AS op, data::jsonb->'pk' AS pk, data::jsonb->'row'->'mrn' AS mrn
  FROM pg_logical_slot_get_changes('j', NULL, NULL);
SELECT * FROM sql_stream('s');

-- Now that it is the replica identity, the column cannot be redacted again.
SELECT edgesync.set_column_policy('patients', 'mrn', 'replicate');
SELECT edgesync.set_column_policy('patients', 'mrn', 'redact');
\echo :LAST_ERROR_SQLSTATE
-- hash is allowed: the replica holds the hash, deletes match it.
SELECT edgesync.set_column_policy('patients', 'mrn', 'hash');
SET edgesync.hash_key = 'regress-keys';
DELETE FROM patients WHERE id = 2;
SELECT d AS delete_by_hash FROM sql_stream('s') AS d WHERE d LIKE 'DELETE%';
SELECT count(*) AS clear_values FROM pg_logical_slot_get_changes('j', NULL, NULL) WHERE data LIKE '%MRN-SECRET%';

-- A partition's own replica identity counts too.
CREATE TABLE stays (id int, region text, badge text NOT NULL, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE stays_south PARTITION OF stays FOR VALUES IN ('south');
CREATE UNIQUE INDEX stays_south_badge ON stays_south (badge);
ALTER TABLE stays_south REPLICA IDENTITY USING INDEX stays_south_badge;
SELECT edgesync.track('stays');
SELECT edgesync.set_column_policy('stays', 'badge', 'redact');
\echo :LAST_ERROR_SQLSTATE

-- A primary key redacted by other means (a policy row written directly into
-- the catalog, a key added after the policy): its changes are not applied,
-- its values never written.
CREATE TABLE badges (badge text, note text);
SELECT edgesync.set_column_policy('badges', 'badge', 'redact');
ALTER TABLE badges ADD PRIMARY KEY (badge);
SELECT edgesync.track('badges');
INSERT INTO badges VALUES ('BADGE-SECRET', 'x');
UPDATE badges SET note = 'y';
UPDATE badges SET badge = 'BADGE-SECRET-2';
DELETE FROM badges;
SELECT * FROM sql_stream('s');
SELECT data::jsonb->>'op' AS op, data::jsonb->'pk' AS pk
  FROM pg_logical_slot_get_changes('j', NULL, NULL) WHERE data::jsonb->>'table' = 'badges';

SELECT pg_drop_replication_slot('j');
SELECT pg_drop_replication_slot('s');
DROP TABLE patients, stays, badges;
DROP FUNCTION sql_stream(name);
DROP EXTENSION edgesync;
