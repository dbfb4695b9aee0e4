-- track.sql — tracked tables: the catalog, roles, and (below) track() & co.

-- Roles.  Cluster-wide, so created only when missing and left in place by
-- DROP EXTENSION (other databases may use them).  NOLOGIN: grant them to
-- the roles that log in.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'edgesync_reader') THEN
        CREATE ROLE edgesync_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'edgesync_admin') THEN
        CREATE ROLE edgesync_admin NOLOGIN;
    END IF;
END
$roles$;
COMMENT ON ROLE edgesync_reader IS 'edgesync: may read sync_log and call edgesync.changes()';
COMMENT ON ROLE edgesync_admin IS 'edgesync: may read and change edgesync''s catalog';

-- The catalog of tracked tables.  A user catalog table, so that the output
-- plugin reads it with the historic snapshot of each change: tracking a
-- table takes effect in the stream from the commit that tracked it on.
--
-- A partitioned table is tracked through its root; its partitions, present
-- and future, are covered by that one row.
CREATE TABLE edgesync.tracked_tables (
    relid          regclass    PRIMARY KEY,
    log_changes    boolean     NOT NULL DEFAULT true,  -- write sync_log rows
    skip_unchanged boolean     NOT NULL DEFAULT true,  -- an UPDATE that changes nothing is skipped
    tracked_at     timestamptz NOT NULL DEFAULT now()
) WITH (user_catalog_table = true);
COMMENT ON TABLE edgesync.tracked_tables IS 'edgesync: tables whose changes are versioned, logged and streamed';
SELECT pg_catalog.pg_extension_config_dump('edgesync.tracked_tables', '');
REVOKE ALL ON edgesync.tracked_tables FROM PUBLIC;
GRANT SELECT ON edgesync.tracked_tables TO edgesync_reader, edgesync_admin;
