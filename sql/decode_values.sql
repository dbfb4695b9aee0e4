-- The json format's value classes: numbers, NaN/Infinity, numeric, boolean,
-- NULL, json/jsonb (JSON null vs SQL NULL, newlines), text with every kind
-- of character, 1 MB values; every line one complete JSON object.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'SQL, DMY';     -- the plugin writes ISO whatever the session says
SET extra_float_digits = 0;     -- ... and shortest-exact floats
CREATE EXTENSION edgesync;

CREATE TABLE vals (
  id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision, n numeric,
  b boolean, j json, jb jsonb, t text, vc varchar(10), c char(3), ts timestamptz, d date,
  arr int[], bin bytea, iv interval, u uuid, o oid, money_ money
);
SELECT edgesync.track('vals');
SELECT 'init' FROM pg_create_logical_replication_slot('v', 'edgesync');

INSERT INTO vals (id, i2, i8, f4, f8, n, b, j, jb, t, vc, c, ts, d, arr, bin, iv, u, o, money_) VALUES
  (1, -32768, 9223372036854775807, 1.5, 0.1, 12345678901234567890.000000000001, true,
   '{"a": [1, 2]}', '{"b": {"c": null}}', 'plain', 'short', 'ab', '2026-01-02 03:04:05.678+00',
   '2026-01-02', '{1,NULL,3}', '\x00ff', '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   4294967295, 12.34),
  (2, NULL, NULL, 'NaN', 'Infinity', 'NaN', false, 'null', 'null', NULL, NULL, NULL, 'infinity',
   '-infinity', '{}', '', '-1 mon', NULL, 0, NULL),
  (3, 0, -1, '-Infinity', '-0', '-Infinity', NULL, NULL, NULL, '', '', '', NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL);
SELECT regexp_replace(data, ',"created_at".*$', '') AS line
  FROM pg_logical_slot_peek_changes('v', NULL, NULL);

-- Every line is valid JSON; the values come back as they went in.
SELECT d->'row'->'id' AS id, d->'row'->'f4' AS f4, d->'row'->'f8' AS f8, d->'row'->'n' AS n,
       jsonb_typeof(d->'row'->'i8') AS i8_type, jsonb_typeof(d->'row'->'n') AS n_type,
       d->'row'->'j' AS j, d->'row'->'jb' AS jb, d->'json_nulls' AS json_nulls
  FROM pg_logical_slot_peek_changes('v', NULL, NULL) AS c, LATERAL (SELECT c.data::jsonb) AS x(d)
 ORDER BY 1;
-- numeric stays exact: its digits as a string.
SELECT (data::jsonb->'row'->>'n')::numeric = 12345678901234567890.000000000001 AS exact
  FROM pg_logical_slot_get_changes('v', NULL, NULL) WHERE data::jsonb->'pk'->>'id' = '1';

-- JSON null vs SQL NULL: both are null in "row"; "json_nulls" names the
-- columns whose value is the JSON literal null.
INSERT INTO vals (id, j, jb) VALUES (4, 'null', NULL), (5, NULL, ' null ');
SELECT d->'pk' AS pk, d->'row'->'j' AS j, d->'row'->'jb' AS jb, d->'json_nulls' AS json_nulls
  FROM pg_logical_slot_get_changes('v', NULL, NULL) AS c, LATERAL (SELECT c.data::jsonb) AS x(d);

-- Text: control characters, quotes, backslashes, 4-byte UTF-8, line and
-- paragraph separators; json values with raw newlines between tokens and
-- escaped ones inside strings.
CREATE TABLE strange (id int PRIMARY KEY, t text);
INSERT INTO strange VALUES
  (1, E'tab\there\nnew line\r\nCRLF'), (2, E'quote " backslash \\ slash / apostrophe '''),
  (3, E'\x01\x02\x1f\x7f bell'), (4, 'emoji 😀 and 𝄞 clef, ß, 中文'), (5, E'line\u2028para\u2029end'),
  (6, E'\\u0000 not a NUL');
TRUNCATE vals;
INSERT INTO vals (id, j, jb, t) SELECT id, format(E'{\n  "t": %s,\n  "n": [1,\n 2]\n}', to_json(t))::json,
  jsonb_build_object('t', t), t FROM strange;
SELECT count(*) AS lines, bool_and(position(E'\n' in data) = 0 AND position(E'\r' in data) = 0) AS no_raw_newlines
  FROM pg_logical_slot_peek_changes('v', NULL, NULL);
SELECT s.id, d->'row'->>'t' = s.t AS text_same, d->'row'->'j'->>'t' = s.t AS json_same,
       d->'row'->'jb'->>'t' = s.t AS jsonb_same, d->'row'->'j'->'n' AS json_n
  FROM pg_logical_slot_peek_changes('v', NULL, NULL) AS c, LATERAL (SELECT c.data::jsonb) AS x(d)
  JOIN strange s ON s.id = (d->'pk'->>'id')::int
 WHERE d->>'op' = 'insert' ORDER BY 1;
SELECT regexp_replace(data, ',"created_at".*$', '') AS line
  FROM pg_logical_slot_get_changes('v', NULL, NULL) WHERE data LIKE '%"op":"insert"%' AND data LIKE '%"id":3,%';

-- A 1 MB value.
INSERT INTO vals (id, t) SELECT 100, string_agg(md5(g::text), '') FROM generate_series(1, 32768) g;
SELECT length(d->'row'->>'t') AS len, md5(d->'row'->>'t') = (SELECT md5(t) FROM vals WHERE id = 100) AS same
  FROM pg_logical_slot_get_changes('v', NULL, NULL) AS c, LATERAL (SELECT c.data::jsonb) AS x(d);

-- Domains as their base type (a domain over int is a number, over jsonb
-- embedded JSON); composite, enum, array and range values as their text.
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN doc AS jsonb;
CREATE TYPE dose AS (mg numeric, unit text);
CREATE TYPE triage AS ENUM ('green', 'Red "1"');
CREATE TABLE kinds (id posint PRIMARY KEY, d doc, c dose, cs dose[], e triage, es triage[], r int4range);
SELECT edgesync.track('kinds');
INSERT INTO kinds VALUES (1, '{"a": null}', '(2.5,"m""g")', ARRAY['(1,x)'::dose, NULL], 'Red "1"',
  '{green,"Red \"1\""}', '[1,5)');
SELECT d->'pk' AS pk, d->'row'->'d' AS d, d->'row'->>'c' AS c, d->'row'->>'cs' AS cs,
       d->'row'->>'e' AS e, d->'row'->>'es' AS es, d->'row'->>'r' AS r,
       (d->'row'->>'c')::dose = (SELECT c FROM kinds) AS c_same,
       (d->'row'->>'es')::triage[] = (SELECT es FROM kinds) AS es_same
  FROM pg_logical_slot_get_changes('v', NULL, NULL) AS c, LATERAL (SELECT c.data::jsonb) AS x(d);
DROP TABLE kinds;
DROP TYPE dose, triage;
DROP DOMAIN posint, doc;

-- Two readers with different session settings get the same bytes: every
-- setting an output function reads is pinned for the decoding (timestamptz in
-- UTC, hex bytea, ISO dates, postgres intervals, shortest-exact floats, C
-- money, regclass schema-qualified and quoted only where needed).
CREATE TABLE settings_vals (id int PRIMARY KEY, ts timestamptz, d date, iv interval, bin bytea,
  f8 float8, m money, r regclass, rt regtype);
SELECT edgesync.track('settings_vals');
INSERT INTO settings_vals VALUES (1, '2026-01-02 03:04:05.5+00', '2026-01-02', '1 day 02:03:04',
  '\x00ff', 0.1, 12.34, 'settings_vals', 'int4');
CREATE TEMP TABLE reader_a AS SELECT data FROM pg_logical_slot_peek_changes('v', NULL, NULL);
SET TimeZone = 'America/New_York';
SET DateStyle = 'German, DMY';
SET IntervalStyle = 'iso_8601';
SET extra_float_digits = -10;
SET bytea_output = 'escape';
SET search_path = public, pg_catalog;
SET quote_all_identifiers = on;
CREATE TEMP TABLE reader_b AS SELECT data FROM pg_logical_slot_peek_changes('v', NULL, NULL);
SELECT (SELECT array_agg(data) FROM reader_a) = (SELECT array_agg(data) FROM reader_b) AS same_bytes;
SELECT regexp_replace(data, ',"version".*$', '') AS line, d->'row'->>'ts' AS ts, d->'row'->>'iv' AS iv,
       d->'row'->>'bin' AS bin, d->'row'->'f8' AS f8, d->'row'->>'m' AS m, d->'row'->>'r' AS r,
       d->'row'->>'rt' AS rt, d->>'commit_time' LIKE '%+00:00' AS commit_time_utc
  FROM pg_logical_slot_get_changes('v', NULL, NULL) AS c, LATERAL (SELECT c.data::jsonb) AS x(d);
SHOW TimeZone;
SHOW bytea_output;
SHOW search_path;
RESET TimeZone;
RESET IntervalStyle;
RESET bytea_output;
RESET search_path;
RESET quote_all_identifiers;
SET TimeZone = 'UTC';
SET DateStyle = 'SQL, DMY';
SET extra_float_digits = 0;

-- The output settings were the decoding's own: the session keeps its own.
SHOW DateStyle;
SHOW extra_float_digits;

SELECT pg_drop_replication_slot('v');

-- A value whose escaped text would take its line past 1 GB (MaxAllocSize,
-- less 1 MB): left out of the line and named in "too_large", not an error
-- that would stop the slot for good.  The sql format needs no escape for
-- this text: it writes the whole value.
CREATE TABLE huge (id int PRIMARY KEY, t text, note text);
SELECT edgesync.track('huge');
SELECT 'init' FROM pg_create_logical_replication_slot('h', 'edgesync');
INSERT INTO huge VALUES (1, repeat(chr(1), 180000000), 'small');  -- 6 bytes each in JSON: \u0001
SELECT data::jsonb->'row'->'t' AS t, data::jsonb->'row'->>'note' AS note,
       data::jsonb->'too_large' AS too_large, length(data) < 1000 AS short
  FROM pg_logical_slot_peek_changes('h', NULL, NULL);
SELECT length(data) > 180000000 AS whole_value
  FROM pg_logical_slot_peek_changes('h', NULL, NULL, 'format', 'sql') WHERE data LIKE 'INSERT%';
SELECT pg_drop_replication_slot('h');
DROP TABLE huge;
DROP TABLE vals, strange, settings_vals;
DROP EXTENSION edgesync;
