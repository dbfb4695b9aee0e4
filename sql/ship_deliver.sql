-- ship(): the delivery path in the caller's session.  A target that refuses
-- connections: the failure is recorded (secrets removed), backoff is set,
-- the slot stays where it was; nothing to ship: nothing sent.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;
CREATE TABLE hospital_patients (id int PRIMARY KEY, name text);
SELECT edgesync.track('hospital_patients');

-- Port 9 on loopback: nothing listens, the connection is refused at once.
SELECT edgesync.add_target('refused', 'http://ingest:pw-SECRET@127.0.0.1:9/in',
                           bearer_token => 'tok-SECRET', headers => '{"X-Key": "hdr-SECRET"}');
-- (Disabled: add_target() would refuse a replica it cannot reach; ship() ships it anyway.)
SELECT edgesync.add_target('refused_db', 'postgresql://applier:db-SECRET@127.0.0.1:9/cloud?connect_timeout=2',
                           enabled => false);

-- Nothing written since the slots were made: nothing to ship, no attempt.
SELECT edgesync.ship('refused');
SELECT name, consecutive_failures, last_attempt IS NULL AS never_tried FROM edgesync.target_state ORDER BY name;

INSERT INTO hospital_patients VALUES (1, 'Ann'), (2, 'Bob');
SELECT confirmed_flush_lsn AS before FROM pg_replication_slots WHERE slot_name = 'edgesync_refused' \gset
SET client_min_messages = error;  -- the WARNING's detail has timings in it
SELECT edgesync.ship('refused');
SELECT edgesync.ship('refused');
SELECT edgesync.ship('refused_db');
RESET client_min_messages;
SELECT name, consecutive_failures,
       -- libcurl's own words vary by version ("Couldn't"/"Could not",
       -- "127.0.0.1 port 9"/"127.0.0.1:9"): the text as libcurl 7.88 writes it.
       regexp_replace(regexp_replace(regexp_replace(last_error, 'after \d+ ms', 'after N ms'),
                                     'Could not connect', 'Couldn''t connect'),
                      '127\.0\.0\.1:9 ', '127.0.0.1 port 9 ') AS last_error,
       next_retry > last_error_at AS backing_off, batches_shipped, changes_shipped
  FROM edgesync.target_status ORDER BY name;
SELECT pending_end IS NOT NULL AS batch_remembered FROM edgesync.target_state WHERE name = 'refused';
SELECT confirmed_flush_lsn = :'before' AS slot_did_not_move
  FROM pg_replication_slots WHERE slot_name = 'edgesync_refused';
SELECT count(*) AS leaks FROM edgesync.target_status s WHERE s::text LIKE '%SECRET%';

-- A failed delivery is a WARNING (an ERROR would roll back its record).
\set VERBOSITY terse
SELECT edgesync.ship('refused') AS shipped;

-- A disabled target is still shipped by an explicit call; the worker skips it.
SELECT edgesync.alter_target('refused', enabled => false);
SELECT consecutive_failures AS before FROM edgesync.target_state WHERE name = 'refused' \gset
SET client_min_messages = error;
SELECT edgesync.ship('refused');
RESET client_min_messages;
SELECT consecutive_failures > :before AS tried FROM edgesync.target_state WHERE name = 'refused';

SELECT edgesync.drop_target('refused');
SELECT edgesync.drop_target('refused_db');
DROP TABLE hospital_patients;
DROP EXTENSION edgesync;
