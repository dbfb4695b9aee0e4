-- A column policy follows its column, by name: through DROP COLUMN of
-- another column (which a dump and restore turn into new column numbers),
-- ALTER TYPE and RENAME (also in a session in replica mode); it goes with its
-- column.  A policy that names a column the table does not have (renamed
-- while the event triggers were off) stops decoding, naming the table and
-- the column, rather than let the column out under its new name; the owner
-- removes it with set_column_policy(..., 'replicate').
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;
CREATE EXTENSION pgcrypto;  -- to check the HMACs independently
SET edgesync.hash_key = 'regress-names';

CREATE TABLE p2 (id int PRIMARY KEY, legacy text, mrn text, phone text, ward text);
ALTER TABLE p2 DROP COLUMN legacy;
SELECT edgesync.track('p2');
SELECT edgesync.set_column_policy('p2', 'mrn', 'hash');
SELECT edgesync.set_column_policy('p2', 'phone', 'redact');
SELECT attname, policy FROM edgesync.column_policies WHERE relid = 'p2'::regclass ORDER BY 1;
SELECT 'init' FROM pg_create_logical_replication_slot('n', 'edgesync');

-- The rows a restore writes back, as a dump has them: names, not numbers.
COPY (SELECT relid, attname, policy FROM edgesync.column_policies WHERE relid = 'p2'::regclass ORDER BY 2) TO STDOUT;

-- ALTER TYPE and RENAME keep the policy; in replica mode too.
ALTER TABLE p2 ALTER COLUMN mrn TYPE varchar(20);
ALTER TABLE p2 RENAME COLUMN mrn TO medical_record;
SET session_replication_role = replica;
ALTER TABLE p2 RENAME COLUMN phone TO telephone;
RESET session_replication_role;
SELECT attname, policy FROM edgesync.column_policies WHERE relid = 'p2'::regclass ORDER BY 1;
INSERT INTO p2 (id, medical_record, telephone, ward) VALUES (1, 'MRN-1', '555-0101', 'A');
SELECT data::jsonb->'row'->>'medical_record' = encode(hmac('MRN-1', 'regress-names', 'sha256'), 'hex') AS hashed,
       data::jsonb->'row'->'telephone' AS telephone, data::jsonb->'row'->>'ward' AS ward
  FROM pg_logical_slot_get_changes('n', NULL, NULL);

-- DROP COLUMN takes the policy with it: a new column of the same name starts
-- at replicate.
ALTER TABLE p2 DROP COLUMN telephone;
SELECT attname, policy FROM edgesync.column_policies WHERE relid = 'p2'::regclass ORDER BY 1;
ALTER TABLE p2 ADD COLUMN telephone text;
INSERT INTO p2 (id, medical_record, ward, telephone) VALUES (2, 'MRN-2', 'A', '555-0102');
SELECT data::jsonb->'row'->>'telephone' AS telephone FROM pg_logical_slot_get_changes('n', NULL, NULL);

-- A rename the event trigger did not see (switched off by a superuser): the
-- policy names a column p2 no longer has.  Decoding stops; nothing leaves.
ALTER EVENT TRIGGER edgesync_rename_policies DISABLE;
ALTER TABLE p2 RENAME COLUMN medical_record TO mr;
ALTER EVENT TRIGGER edgesync_rename_policies ENABLE ALWAYS;
INSERT INTO p2 (id, mr, ward) VALUES (3, 'MRN-3', 'A');
SELECT data FROM pg_logical_slot_peek_changes('n', NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
-- The owner sets the policy on the column's name and removes the stale one;
-- the change made meanwhile is skipped (it cannot be streamed safely).
SELECT edgesync.set_column_policy('p2', 'mr', 'hash');
SELECT edgesync.set_column_policy('p2', 'medical_record', 'replicate');
SELECT edgesync.set_column_policy('p2', 'medical_record', 'replicate');
\echo :LAST_ERROR_SQLSTATE
SELECT 'skipped' FROM pg_replication_slot_advance('n', pg_current_wal_lsn());
INSERT INTO p2 (id, mr, ward) VALUES (4, 'MRN-4', 'A');
SELECT data::jsonb->'row'->>'mr' = encode(hmac('MRN-4', 'regress-names', 'sha256'), 'hex') AS hashed
  FROM pg_logical_slot_get_changes('n', NULL, NULL);

SELECT pg_drop_replication_slot('n');
DROP TABLE p2;
SELECT count(*) AS policies_left FROM edgesync.column_policies;
DROP EXTENSION pgcrypto;
DROP EXTENSION edgesync;
