-- Targets: add_target(), alter_target(), drop_target(), their slots, bad
-- input, privileges, and secrets kept out of everything readable.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;

-- An HTTP target: the password leaves the URL, the token and headers are
-- kept apart, and the target owns a slot.
SELECT edgesync.add_target('cloud_api', 'https://ingest:Pa55word@api.example.org:8443/v1/changes',
                           bearer_token => 'tok-SECRET-123', headers => '{"X-Tenant": "h1"}',
                           ca_file => '/etc/ssl/certs/ca-certificates.crt', batch_changes => 500);
SELECT name, kind, url, slot_name, batch_changes, batch_bytes, columns, enabled, ca_file, timeout_ms
  FROM edgesync.targets;
SELECT slot_name, plugin, slot_type
  FROM pg_replication_slots WHERE database = current_database() ORDER BY slot_name;
SELECT bearer_token, password, headers FROM edgesync.target_secrets;

-- A replica target: its password (in the userinfo or as a parameter) too.
-- (Disabled: an enabled one is connected to first, and db.example.org is not there.)
SELECT edgesync.add_target('cloud_db', 'postgresql://replicator@db.example.org/cloud?sslmode=verify-full&password=db-SECRET',
                           enabled => false);
SELECT name, kind, url FROM edgesync.targets ORDER BY name;
SELECT name, password FROM edgesync.target_secrets ORDER BY name;

-- Every spelling of the password that libpq (postgresql) or libcurl (http)
-- accepts is taken out: each library parses its own URLs.
SELECT v.url AS given, u.url AS stored, u.password
  FROM (VALUES ('postgresql://u@db.example.org/cloud?pass%77ord=pw-SECRET-1'),
               ('postgresql://u@db.example.org/cloud?%70%61%73%73%77%6F%72%64=pw-SECRET-2&sslmode=require'),
               ('postgresql://u:pw-SECRET-3@db.example.org/cloud'),
               ('postgres://u:pw%2DSECRET%2D4@db.example.org:5433/cloud?application_name=edge'),
               ('postgresql:///cloud?host=/var/run/postgresql&user=u&password=pw-SECRET-5'),
               ('https://u:pw%2DSECRET%2D6@api.example.org/in?x=1')) v(url),
       edgesync._parse_target_url(v.url) u;
SELECT edgesync.add_target('spelled', 'postgresql://u@db.example.org/cloud?pass%77ord=pw-SECRET-7', enabled => false);
SELECT url FROM edgesync.target_status WHERE name = 'spelled';
SELECT password FROM edgesync.target_secrets WHERE name = 'spelled';
SELECT edgesync.drop_target('spelled');
-- libpq's messages quote the URL: what they quote is left out.
SELECT edgesync.add_target('typo', 'postgresql://u@db.example.org/cloud?pasword=pw-SECRET-8');
SELECT edgesync.add_target('typo', 'postgresql://u:pw-SECRET%zz@db.example.org/cloud');

-- Bad input: an error with its SQLSTATE, and nothing created.
SELECT edgesync.add_target('cloud_api', 'https://other.example.org/');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.add_target('ftp_box', 'ftp://files.example.org/in');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.add_target('no_scheme', 'api.example.org/in');
SELECT edgesync.add_target('bad_port', 'https://user:hunter2@api.example.org:99999/');
SELECT edgesync.add_target('no_host', 'https:///path');
SELECT edgesync.add_target('spaces', 'https://api example.org/');
SELECT edgesync.add_target('Bad-Name', 'https://api.example.org/');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.add_target('small', 'https://api.example.org/', batch_changes => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.add_target('small', 'https://api.example.org/', batch_bytes => 10);
SELECT edgesync.add_target('small', 'https://api.example.org/', timeout_ms => 5);
SELECT edgesync.add_target('small', 'https://api.example.org/', columns => 'all');
SELECT edgesync.add_target('small', 'https://api.example.org/', ca_file => 'relative.pem');
SELECT edgesync.add_target('small', 'https://api.example.org/', headers => '["X-A"]');
SELECT edgesync.add_target('small', 'https://api.example.org/', headers => '{"Bad Header": "x"}');
SELECT edgesync.add_target('small', 'https://api.example.org/', headers => '{"Authorization": "Basic x"}');
SELECT edgesync.add_target('small', 'https://api.example.org/', bearer_token => 'two words');
SELECT edgesync.add_target('small', 'postgresql://db.example.org/cloud', bearer_token => 'tok');
SELECT edgesync.add_target('small', NULL);
-- An enabled replica target is connected to first: one that cannot be
-- reached is refused (08001), with nothing created.
SELECT edgesync.add_target('unreachable', 'postgresql://u:pw-SECRET@127.0.0.1:9/cloud');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS targets FROM edgesync.targets;
SELECT count(*) AS slots FROM pg_replication_slots WHERE database = current_database();

-- A slot left by an add_target() whose transaction rolled back is reused.
BEGIN;
SELECT edgesync.add_target('rolled_back', 'http://127.0.0.1:9/');
ROLLBACK;
SELECT slot_name FROM pg_replication_slots WHERE slot_name = 'edgesync_rolled_back';
SELECT edgesync.add_target('rolled_back', 'http://127.0.0.1:9/');
SELECT edgesync.drop_target('rolled_back');

-- alter_target(): NULL keeps a setting, '' clears a token; the slot stays.
SELECT edgesync.alter_target('cloud_api', batch_changes => 50, enabled => false, bearer_token => '');
SELECT name, batch_changes, enabled, url FROM edgesync.targets WHERE name = 'cloud_api';
SELECT bearer_token IS NULL AS token_cleared, headers FROM edgesync.target_secrets WHERE name = 'cloud_api';
SELECT edgesync.alter_target('cloud_api', url => 'http://svc:n3w-SECRET@10.0.0.5/in', bearer_token => 'tok-SECRET-456');
SELECT url FROM edgesync.targets WHERE name = 'cloud_api';
SELECT edgesync.alter_target('cloud_api', batch_bytes => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.alter_target('cloud_api', url => 'gopher://x/');
SELECT edgesync.alter_target('nowhere', enabled => true);
\echo :LAST_ERROR_SQLSTATE
SELECT batch_bytes, url FROM edgesync.targets WHERE name = 'cloud_api';

-- target_status: one row per target, no secret anywhere in it.
SELECT name, kind, url, enabled, slot_name, slot_exists, confirmed_lsn IS NOT NULL AS has_lsn,
       batches_shipped, changes_shipped, consecutive_failures, last_error, wal_held_bytes >= 0 AS held
  FROM edgesync.target_status ORDER BY name;
SELECT count(*) AS leaks FROM edgesync.target_status s
 WHERE s::text ~ '(SECRET|Pa55word)';

-- ship() and resync() refuse unknown targets.
SELECT edgesync.ship('nowhere');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.ship('cloud_api', 0);
SELECT edgesync.resync('nowhere');

-- Privileges: secrets are the owner's only; edgesync_admin manages targets,
-- edgesync_reader watches them, anyone else does neither.
CREATE ROLE regress_ship_admin LOGIN IN ROLE edgesync_admin;
CREATE ROLE regress_ship_watch LOGIN IN ROLE edgesync_reader;
CREATE ROLE regress_ship_nobody LOGIN;
SET ROLE regress_ship_admin;
SELECT count(*) FROM edgesync.target_secrets;
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM edgesync.targets ORDER BY name;
SELECT edgesync.add_target('by_admin', 'http://127.0.0.1:9/', bearer_token => 'tok-SECRET-789');
SELECT edgesync.alter_target('by_admin', batch_changes => 10);
SELECT name, owner = 'regress_ship_admin'::regrole AS owned_by_admin FROM edgesync.targets ORDER BY name;
-- An admin's replica target needs a password (postgres_fdw's rules), and no
-- client key file of the server's.
SELECT edgesync.alter_target('by_admin', url => 'postgresql://applier@db.example.org/cloud');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.add_target('admin_db', 'postgresql:///cloud?host=/var/run/postgresql', enabled => false);
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.add_target('admin_db', 'postgresql://applier:pw-SECRET@db.example.org/cloud?sslkey=/var/lib/postgresql/.postgresql/postgresql.key', enabled => false);
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.add_target('admin_db', 'postgresql://applier:pw-SECRET@db.example.org/cloud', enabled => false);
SELECT name, owner = 'regress_ship_admin'::regrole AS owned_by_admin FROM edgesync.target_status ORDER BY name;
SELECT edgesync.drop_target('admin_db');
SELECT edgesync.drop_target('by_admin');
SELECT bearer_token FROM edgesync.target_secrets;
RESET ROLE;
SET ROLE regress_ship_watch;
SELECT name, url FROM edgesync.target_status ORDER BY name;
SELECT count(*) FROM edgesync.targets;
SELECT edgesync.ship('cloud_api');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_ship_nobody;
SELECT count(*) FROM edgesync.target_status;
SELECT edgesync.add_target('sneaky', 'http://127.0.0.1:9/');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.drop_target('cloud_api');
SELECT edgesync._parse_target_url('http://a:b@c/');
RESET ROLE;

-- columns => 'raw' needs a login role in edgesync_phi_reader: an admin
-- without it cannot ship unmasked PHI (nor switch a target to raw).
SELECT current_user AS regress_superuser \gset
\c - regress_ship_admin
SELECT edgesync.add_target('raw_one', 'http://127.0.0.1:9/', columns => 'raw');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.alter_target('cloud_api', columns => 'raw');
\c - :regress_superuser
GRANT edgesync_phi_reader TO regress_ship_admin;
\c - regress_ship_admin
SELECT edgesync.alter_target('cloud_api', columns => 'raw');
SELECT edgesync.alter_target('cloud_api', columns => 'policy');
\c - :regress_superuser
\set VERBOSITY default
\set SHOW_CONTEXT never

-- DROP EXTENSION would leave the targets' slots behind: refused, even with CASCADE.
DROP EXTENSION edgesync CASCADE;
\echo :LAST_ERROR_SQLSTATE

-- drop_target(): target, secrets, state and slot go.
SELECT edgesync.drop_target('cloud_api');
SELECT edgesync.drop_target('cloud_api');
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION edgesync;
SELECT count(*) AS targets FROM edgesync.targets;
SELECT edgesync.drop_target('cloud_db');
SELECT count(*) AS targets FROM edgesync.targets;
SELECT count(*) AS secrets FROM edgesync.target_secrets;
SELECT count(*) AS slots FROM pg_replication_slots WHERE database = current_database();

DROP EXTENSION edgesync;
DROP ROLE regress_ship_admin, regress_ship_watch, regress_ship_nobody;
