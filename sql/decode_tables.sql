-- Tables in the json format: TOAST unchanged and changed, replica identity
-- DEFAULT/FULL/USING INDEX, ALTER TABLE between and inside transactions
-- (ADD/DROP COLUMN, a rewriting type change), partitioned tables reported
-- under the tracked root, generated columns, tracking and untracking
-- mid-stream.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;

-- Changes without xid/LSN/time and row timestamps; long values shortened.
CREATE FUNCTION decoded(slot name, VARIADIC opts text[] DEFAULT '{}') RETURNS SETOF text
LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(regexp_replace(data,
           ',"xid":\d+,"commit_lsn":"[0-9A-F]+/[0-9A-F]+","commit_time":"[^"]+"', '', 'g'),
           ',"created_at":"[^"]+","updated_at":"[^"]+"', '', 'g'),
           '"([0-9a-f]{8})[0-9a-f]{200}[0-9a-f]*"', '"\1…"', 'g')
    FROM pg_logical_slot_get_changes(slot, NULL, NULL, VARIADIC opts)
$$;

CREATE TABLE notes (id int PRIMARY KEY, ward text, body text);
ALTER TABLE notes ALTER COLUMN body SET STORAGE EXTERNAL;  -- toasted, not compressed
SELECT edgesync.track('notes');
SELECT 'init' FROM pg_create_logical_replication_slot('r', 'edgesync');

-- TOAST: an update that leaves the big value alone names it "unchanged";
-- one that changes it carries it.
INSERT INTO notes VALUES (1, 'A', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 100) g));
UPDATE notes SET ward = 'B' WHERE id = 1;
UPDATE notes SET body = body || 'ff' WHERE id = 1;
DELETE FROM notes WHERE id = 1;
SELECT * FROM decoded('r');

-- REPLICA IDENTITY FULL: the old row is logged whole, so no value is
-- "unchanged" and deletes carry the version deleted.
ALTER TABLE notes REPLICA IDENTITY FULL;
INSERT INTO notes VALUES (2, 'A', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 100) g));
UPDATE notes SET ward = 'B' WHERE id = 2;
DELETE FROM notes WHERE id = 2;
SELECT * FROM decoded('r');

-- REPLICA IDENTITY USING INDEX: deletes identify the row by that index's
-- columns (the primary key is not in the WAL).
CREATE TABLE devices (id int PRIMARY KEY, serial text NOT NULL UNIQUE, room text);
SELECT edgesync.track('devices');
ALTER TABLE devices REPLICA IDENTITY USING INDEX devices_serial_key;
INSERT INTO devices VALUES (1, 'SN-1', 'R1');
UPDATE devices SET room = 'R2';
UPDATE devices SET serial = 'SN-2';
DELETE FROM devices;
SELECT * FROM decoded('r');

-- REPLICA IDENTITY NOTHING: a delete carries no key at all.
ALTER TABLE devices REPLICA IDENTITY NOTHING;
INSERT INTO devices VALUES (2, 'SN-3', 'R3');
DELETE FROM devices;
SELECT * FROM decoded('r');
INSERT INTO devices VALUES (3, 'SN-4', 'R4');
DELETE FROM devices;
SELECT data FROM pg_logical_slot_get_changes('r', NULL, NULL, 'format', 'sql') WHERE data LIKE '--%';

-- ALTER TABLE between transactions and inside one; a rewriting type change
-- streams no rows of its own.
TRUNCATE notes;
ALTER TABLE notes REPLICA IDENTITY DEFAULT;
INSERT INTO notes (id, ward) VALUES (10, 'A');
ALTER TABLE notes ADD COLUMN room int;
INSERT INTO notes (id, ward, room) VALUES (11, 'A', 7);
ALTER TABLE notes DROP COLUMN body;
UPDATE notes SET ward = 'C' WHERE id = 10;
ALTER TABLE notes ALTER COLUMN room TYPE text USING room::text || 'a';
INSERT INTO notes (id, ward, room) VALUES (12, 'A', 'twelve');
BEGIN;
INSERT INTO notes (id, ward) VALUES (13, 'in txn');
ALTER TABLE notes ADD COLUMN bed int DEFAULT 5;
UPDATE notes SET bed = 6 WHERE id = 13;
ALTER TABLE notes ALTER COLUMN bed TYPE numeric;
INSERT INTO notes (id, ward, bed) VALUES (14, 'in txn', 1.5);
ALTER TABLE notes DROP COLUMN room;
DELETE FROM notes WHERE id = 13;
COMMIT;
SELECT * FROM decoded('r');

-- Partitioned tables: changes of every partition, under the tracked root;
-- a row moving partitions is a delete and an insert; TRUNCATE of one
-- partition names it, TRUNCATE of the root names the root.
CREATE TABLE stays (id int, region text, patient text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE stays_north PARTITION OF stays FOR VALUES IN ('north');
CREATE TABLE stays_south (patient text, region text NOT NULL, id int NOT NULL);  -- other column order
ALTER TABLE stays ATTACH PARTITION stays_south FOR VALUES IN ('south');
SELECT edgesync.track('stays');
INSERT INTO stays (id, region, patient) VALUES (1, 'north', 'Ann'), (2, 'south', 'Bob');
UPDATE stays SET patient = 'Bob B.' WHERE id = 2;
UPDATE stays SET region = 'north' WHERE id = 2;
TRUNCATE stays_south;
TRUNCATE stays;
SELECT * FROM decoded('r');

-- Generated columns are in "row".
CREATE TABLE doses (id int PRIMARY KEY, mg numeric, g numeric GENERATED ALWAYS AS (mg / 1000) STORED);
SELECT edgesync.track('doses');
INSERT INTO doses (id, mg) VALUES (1, 250);
SELECT * FROM decoded('r');

-- Tracking takes effect from its commit, untracking too; a table tracked in
-- the transaction that writes it is streamed from that point.
CREATE TABLE later (id int PRIMARY KEY);
INSERT INTO later VALUES (1);
SELECT edgesync.track('later');
INSERT INTO later VALUES (2);
SELECT edgesync.untrack('later');
INSERT INTO later VALUES (3);
BEGIN;
INSERT INTO later VALUES (4);
SELECT edgesync.track('later');
INSERT INTO later VALUES (5);
COMMIT;
BEGIN;
INSERT INTO later VALUES (6);
SELECT edgesync.untrack('later');
INSERT INTO later VALUES (7);
ROLLBACK;
INSERT INTO later VALUES (8);
SELECT * FROM decoded('r');

-- The plugin's cache follows DDL even when one session decodes twice
-- (peek decodes the same WAL again with the old definitions).
INSERT INTO doses (id, mg) VALUES (2, 1);
ALTER TABLE doses RENAME COLUMN mg TO milligrams;
INSERT INTO doses (id, milligrams) VALUES (3, 1);
SELECT data::jsonb->'pk' AS pk, ARRAY(SELECT jsonb_object_keys(data::jsonb->'row')) AS columns
  FROM pg_logical_slot_peek_changes('r', NULL, NULL);
SELECT data::jsonb->'pk' AS pk, ARRAY(SELECT jsonb_object_keys(data::jsonb->'row')) AS columns
  FROM pg_logical_slot_get_changes('r', NULL, NULL);

-- Names that need quoting: "schema", "table" and the column keys are the
-- names as stored, JSON-escaped; truncate's "tables" quotes each name as SQL
-- does, so a dot inside a name is not a separator.  Renames of the table
-- and of its schema show from their commit on.
CREATE SCHEMA "Ward ""7"".east";
CREATE TABLE "Ward ""7"".east"."Bett.Plätze" ("Id" int PRIMARY KEY, "Note ""x""" text, "select" int);
SELECT edgesync.track('"Ward ""7"".east"."Bett.Plätze"');
INSERT INTO "Ward ""7"".east"."Bett.Plätze" VALUES (1, 'n', 2);
TRUNCATE "Ward ""7"".east"."Bett.Plätze";
ALTER TABLE "Ward ""7"".east"."Bett.Plätze" RENAME TO beds;
INSERT INTO "Ward ""7"".east".beds VALUES (2, 'm', 3);
ALTER SCHEMA "Ward ""7"".east" RENAME TO ward7;
ALTER TABLE ward7.beds RENAME COLUMN "Note ""x""" TO note;
INSERT INTO ward7.beds VALUES (3, 'o', 4);
TRUNCATE ward7.beds;
CREATE TEMP TABLE named AS SELECT * FROM decoded('r');
SELECT * FROM named;
SELECT parse_ident(decoded::jsonb->'tables'->>0) AS truncated FROM named
 WHERE decoded::jsonb->>'op' = 'truncate';
DROP SCHEMA ward7 CASCADE;

-- The sql format casts values to their column's type by name: a renamed
-- type (which changes no table) is written under its new name.
CREATE TYPE mood AS ENUM ('calm', 'upset');
CREATE TABLE moods (id int PRIMARY KEY, m mood, ms mood[]);
SELECT edgesync.track('moods');
INSERT INTO moods VALUES (1, 'calm', '{calm}');
ALTER TYPE mood RENAME TO feeling;
INSERT INTO moods VALUES (2, 'upset', '{upset}');
SELECT substring(data from '\d+, ''[a-z]+''::[a-z."]+, ''[{}a-z]+''::[][a-z."]+') AS value
  FROM pg_logical_slot_get_changes('r', NULL, NULL, 'format', 'sql') WHERE data LIKE 'INSERT%';
DROP TABLE moods;
DROP TYPE feeling;

SELECT pg_drop_replication_slot('r');
DROP TABLE notes, devices, stays, doses, later;
DROP FUNCTION decoded(name, text[]);
DROP EXTENSION edgesync;
