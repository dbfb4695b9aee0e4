-- ship.sql — targets: where the shipper delivers changes, their secrets, their state.
--
-- A target is an HTTP(S) endpoint (NDJSON of the json format) or a cloud
-- PostgreSQL replica (the sql format), and owns a logical slot
-- edgesync_<name> with the edgesync plugin.  add_target() creates the slot,
-- drop_target() drops it.  The shipper (src/ship/*.cpp) reads the slot,
-- delivers, and advances the slot only after the receiver acknowledged.
--
-- Secrets (bearer token, the password of a URL, extra headers) live in
-- target_secrets, which nobody but the extension's owner can read; targets
-- holds the URL without them.  The functions that take secrets run with
-- log_min_error_statement = panic, so a failing call is not logged with its
-- text (docs/shipping.md: do not log statements with log_statement = all).

CREATE TABLE edgesync.targets (
    name          text        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('http', 'postgresql')),
    url           text        NOT NULL,  -- without password
    slot_name     text        NOT NULL UNIQUE,
    batch_changes integer     NOT NULL,
    batch_bytes   bigint      NOT NULL,
    columns       text        NOT NULL CHECK (columns IN ('policy', 'raw')),
    enabled       boolean     NOT NULL,
    ca_file       text,
    timeout_ms    integer     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    owner         regrole     NOT NULL,  -- who added it or last set its URL: owner.hpp
    replica_schema text,                 -- postgresql: the replica schema (docs/replica.md), or NULL
    schema_changes text       NOT NULL DEFAULT 'apply'
                              CHECK (schema_changes IN ('apply', 'check'))
);
COMMENT ON TABLE edgesync.targets IS 'edgesync: where changes are shipped (secrets are kept apart)';
-- Targets are in a dump; their secrets, state and slots are not: a
-- restored target ships again after resync(), which gives it a slot and
-- state, and after alter_target() gave it its secrets again (docs/install.md).
SELECT pg_catalog.pg_extension_config_dump('edgesync.targets', '');
REVOKE ALL ON edgesync.targets FROM PUBLIC;
GRANT SELECT ON edgesync.targets TO edgesync_admin;

CREATE TABLE edgesync.target_secrets (
    name         text  PRIMARY KEY REFERENCES edgesync.targets ON DELETE CASCADE,
    bearer_token text,
    password     text,
    headers      jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE edgesync.target_secrets IS 'edgesync: secrets of targets, readable by the extension owner only';
REVOKE ALL ON edgesync.target_secrets FROM PUBLIC;

-- Written by the shipper after every attempt.  Readable by edgesync_admin;
-- edgesync_reader sees target_status, without last_error_detail.
CREATE TABLE edgesync.target_state (
    name                 text        PRIMARY KEY REFERENCES edgesync.targets ON DELETE CASCADE,
    last_success         timestamptz,
    last_attempt         timestamptz,
    batches_shipped      bigint      NOT NULL DEFAULT 0,
    changes_shipped      bigint      NOT NULL DEFAULT 0,
    bytes_shipped        bigint      NOT NULL DEFAULT 0,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    last_error           text,       -- secrets removed
    last_error_at        timestamptz,
    next_retry           timestamptz,
    pending_end          pg_lsn,     -- end of an unacknowledged batch: retried as it was
    acked_lsn            pg_lsn,     -- end of the last acknowledged batch (crash-safe, unlike
                                     -- the slot's position, which is saved at checkpoints)
    resync_pending       boolean     NOT NULL DEFAULT false,
    last_error_detail    text,       -- the receiver's whole answer, which may quote row
                                     -- values: not in target_status (remote_error.hpp)
    last_error_cleared_at timestamptz -- the first success after last_error: healthy again
);
REVOKE ALL ON edgesync.target_state FROM PUBLIC;
GRANT SELECT ON edgesync.target_state TO edgesync_admin;

-- C helpers (src/ship/catalog.cpp): the URL split from its password.
CREATE FUNCTION edgesync._parse_target_url(url text, OUT kind text, OUT url text, OUT password text)
    AS 'MODULE_PATHNAME', 'edgesync_parse_target_url' LANGUAGE C STRICT IMMUTABLE;
REVOKE ALL ON FUNCTION edgesync._parse_target_url(text) FROM PUBLIC;

-- A target belongs to the role its add_target() or its last URL-setting
-- alter_target() was called as: current_user outside these SECURITY DEFINER
-- functions (the login role, or the role it SET ROLE to), which only C can
-- see.  A non-superuser's postgresql target must give a password the replica
-- asks for, and may not lead back to this server as another role
-- (src/ship/owner.hpp).
CREATE FUNCTION edgesync._calling_role() RETURNS regrole
    AS 'MODULE_PATHNAME', 'edgesync_calling_role' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION edgesync._calling_role() FROM PUBLIC;
CREATE FUNCTION edgesync._check_target_owner(target text, url text, owner regrole) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_check_target_owner' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION edgesync._check_target_owner(text, text, regrole) FROM PUBLIC;

-- add_target()'s and alter_target()'s check of a postgresql target: one
-- connection as the shipper makes it for owner, within timeout_ms; refused
-- with the replica's SQLSTATE (28P01, 3D000, 28000; 08001 when no server
-- answered) or 42501 naming the privileges applying lacks there
-- (src/ship/transport.hpp).  url is as stored, without its password.
CREATE FUNCTION edgesync._check_target_connection(target text, url text, password text,
                                                  owner regrole, timeout_ms integer,
                                                  replica_schema text) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_check_target_connection' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION edgesync._check_target_connection(text, text, text, regrole, integer, text) FROM PUBLIC;

-- Raises an error for settings out of range; returns nothing.
CREATE FUNCTION edgesync._check_target_settings(kind text, bearer_token text, headers jsonb,
                                                ca_file text, batch_changes integer,
                                                batch_bytes bigint, columns text, timeout_ms integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h record;
BEGIN
    IF batch_changes IS NULL OR batch_changes NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'batch_changes must be between 1 and 1000000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch_bytes IS NULL OR batch_bytes NOT BETWEEN 1024 AND 1073741824 THEN
        RAISE EXCEPTION 'batch_bytes must be between 1024 and 1073741824'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF timeout_ms IS NULL OR timeout_ms NOT BETWEEN 100 AND 3600000 THEN
        RAISE EXCEPTION 'timeout_ms must be between 100 and 3600000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF columns IS NULL OR columns NOT IN ('policy', 'raw') THEN
        RAISE EXCEPTION 'invalid value for columns'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Valid values are "policy" and "raw".';
    END IF;
    IF ca_file IS NOT NULL AND ca_file !~ '^/' THEN
        RAISE EXCEPTION 'ca_file must be an absolute path'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF kind = 'postgresql' AND (bearer_token IS NOT NULL OR headers <> '{}' OR ca_file IS NOT NULL) THEN
        RAISE EXCEPTION 'bearer_token, headers and ca_file apply to http targets only'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For a postgresql target, put sslrootcert, sslmode and the like in the URL.';
    END IF;
    IF bearer_token IS NOT NULL AND bearer_token ~ '[\x01-\x20\x7f]' THEN
        RAISE EXCEPTION 'bearer_token must not contain spaces or control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF headers IS NULL OR jsonb_typeof(headers) <> 'object' THEN
        RAISE EXCEPTION 'headers must be a JSON object of header names and string values'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR h IN SELECT key, value FROM jsonb_each(headers) LOOP
        IF h.key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]+$' OR jsonb_typeof(h.value) <> 'string'
           OR h.value #>> '{}' ~ '[\x01-\x1f\x7f]' THEN
            RAISE EXCEPTION 'invalid header %', quote_ident(h.key)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Header names are HTTP tokens; values are strings without control characters.';
        END IF;
        IF lower(h.key) IN ('content-type', 'content-length', 'idempotency-key', 'authorization',
                            'host', 'transfer-encoding') THEN
            RAISE EXCEPTION 'header % is set by edgesync', quote_ident(h.key)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass a token with bearer_token.';
        END IF;
    END LOOP;
END
$$;

-- A replica's settings (docs/replica.md): the schema everything applied
-- goes to, and whether the stream changes the replica's tables or only
-- checks them.
CREATE FUNCTION edgesync._check_replica_settings(kind text, replica_schema text, schema_changes text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF schema_changes IS NULL OR schema_changes NOT IN ('apply', 'check') THEN
        RAISE EXCEPTION 'invalid value for schema_changes'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Valid values are "apply" and "check".';
    END IF;
    IF replica_schema IS NOT NULL AND octet_length(replica_schema) NOT BETWEEN 1 AND 63 THEN
        RAISE EXCEPTION 'replica_schema must have 1 to 63 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF kind = 'http' AND (replica_schema IS NOT NULL OR schema_changes <> 'apply') THEN
        RAISE EXCEPTION 'replica_schema and schema_changes apply to postgresql targets only'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- columns => 'raw' ships columns unmasked by their PHI policy: only for a
-- session whose login role is in edgesync_phi_reader (or a superuser).  The
-- functions that call this are SECURITY DEFINER and cannot see the role that
-- called them, hence session_user: a role that logged in without the grant
-- cannot ship raw columns, whatever it SETs ROLE to.
CREATE FUNCTION edgesync._check_raw_columns(columns text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF columns = 'raw' AND NOT pg_has_role(session_user, 'edgesync_phi_reader', 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for columns => %', quote_literal(columns)
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only members of role edgesync_phi_reader may ship columns unmasked by their column policy.',
                  HINT = 'Use columns => ''policy'', or have an administrator grant edgesync_phi_reader.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION edgesync._check_raw_columns(text) FROM PUBLIC;

-- A slot holds WAL for as long as its target is down or disabled; only
-- max_slot_wal_keep_size bounds it, and its default (-1) is no bound: said
-- loudly when a target is added or enabled.
CREATE FUNCTION edgesync._warn_unbounded_wal(target text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.current_setting('max_slot_wal_keep_size') OPERATOR(pg_catalog.=) '-1' THEN
        RAISE WARNING 'the slot of target "%" may hold back WAL without limit', target
            USING DETAIL = pg_catalog.format('max_slot_wal_keep_size is -1: while the target is '
                                             'down or disabled, its slot "%s" keeps every WAL '
                                             'segment written since its last acknowledged '
                                             'batch, until the disk is full.',
                                             'edgesync_' OPERATOR(pg_catalog.||) target),
                  HINT = 'Set max_slot_wal_keep_size in postgresql.conf (for example 20GB) and '
                         'reload; a target whose slot is then invalidated comes back with '
                         'edgesync.resync().';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION edgesync._warn_unbounded_wal(text) FROM PUBLIC;

-- Raises an error unless target names one; returns its row.
CREATE FUNCTION edgesync._require_target(target text) RETURNS edgesync.targets
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t edgesync.targets;
BEGIN
    SELECT * INTO t FROM edgesync.targets WHERE name = target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'target "%" does not exist', target
            USING ERRCODE = 'undefined_object',
                  HINT = 'The targets are listed in edgesync.target_status.';
    END IF;
    RETURN t;
END
$$;
REVOKE ALL ON FUNCTION edgesync._require_target(text) FROM PUBLIC;

-- Creates the logical slot of a target.  A slot of that name that belongs
-- to no target (left by an add_target() whose transaction rolled back) is
-- dropped first.  Must run before the transaction writes anything.
CREATE FUNCTION edgesync._create_target_slot(slot text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    other name;
BEGIN
    -- Slot names are the server's: one of another database (whose targets a
    -- database restored next to it has) is refused, never touched.
    SELECT s.database INTO other FROM pg_replication_slots s
     WHERE s.slot_name = slot AND s.database IS DISTINCT FROM current_database();
    IF FOUND THEN
        RAISE EXCEPTION 'replication slot "%" belongs to database "%"', slot, other
            USING ERRCODE = 'duplicate_object',
                  DETAIL = 'Slot names are shared by all databases of the server.',
                  HINT = 'If this database is a copy restored next to that one, it cannot ship to the same target: drop the target here with edgesync.drop_target(), and add it under another name if the copy is to ship.';
    END IF;
    IF EXISTS (SELECT FROM pg_replication_slots s WHERE s.slot_name = slot)
       AND NOT EXISTS (SELECT FROM edgesync.targets t WHERE t.slot_name = slot) THEN
        PERFORM pg_drop_replication_slot(slot);
    END IF;
    -- A failover slot where the server has them (PostgreSQL 17): standbys
    -- that synchronize slots keep a copy, so a promoted standby goes on
    -- shipping where the old primary stopped (docs/shipping.md).
    IF EXISTS (SELECT FROM pg_catalog.pg_proc p
                WHERE p.oid = 'pg_catalog.pg_create_logical_replication_slot'::pg_catalog.regproc
                  AND 'failover' OPERATOR(pg_catalog.=) ANY (p.proargnames)) THEN
        EXECUTE 'SELECT pg_catalog.pg_create_logical_replication_slot($1, ''edgesync'', failover => true)'
          USING slot;
    ELSE
        PERFORM pg_create_logical_replication_slot(slot, 'edgesync');
    END IF;
END
$$;
REVOKE ALL ON FUNCTION edgesync._create_target_slot(text) FROM PUBLIC;

-- Drops a target's slot; a slot of that name in another database is not this
-- target's.  A process that holds it has a second to let go (a round
-- ending); then, if it is the target's own background worker (waiting, maybe,
-- on a receiver that hangs, for up to its timeout_ms), that worker is ended:
-- its target is going, or starting over (resync).  A session in ship() is
-- waited for, 10 s at most.
CREATE FUNCTION edgesync._drop_target_slot(slot text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tries integer := 0;
BEGIN
    LOOP
        BEGIN
            IF EXISTS (SELECT FROM pg_replication_slots s
                        WHERE s.slot_name = slot AND s.database = current_database()) THEN
                PERFORM pg_drop_replication_slot(slot);
            END IF;
            RETURN;
        EXCEPTION WHEN object_in_use THEN
            tries := tries + 1;
            IF tries >= 100 THEN
                RAISE;
            END IF;
            IF tries = 10 THEN
                BEGIN
                    PERFORM pg_terminate_backend(a.pid)
                       FROM pg_replication_slots s
                       JOIN pg_stat_activity a ON a.pid = s.active_pid
                      WHERE s.slot_name = slot AND s.database = current_database()
                        AND a.backend_type = 'edgesync shipper';
                EXCEPTION WHEN insufficient_privilege THEN
                    NULL;  -- an owner who is not superuser waits, as before
                END;
            END IF;
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION edgesync._drop_target_slot(text) FROM PUBLIC;

-- add_target(): a new target and its slot.  Changes committed from now on
-- are shipped to it.  It belongs to the role add_target() is called as.
CREATE FUNCTION edgesync.add_target(name text, url text, bearer_token text DEFAULT NULL,
                                    headers jsonb DEFAULT '{}', ca_file text DEFAULT NULL,
                                    batch_changes integer DEFAULT 1000,
                                    batch_bytes bigint DEFAULT 4194304,
                                    columns text DEFAULT 'policy', enabled boolean DEFAULT true,
                                    timeout_ms integer DEFAULT 30000,
                                    replica_schema text DEFAULT NULL,
                                    schema_changes text DEFAULT 'apply')
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
DECLARE
    target text := add_target.name;
    owner  regrole := edgesync._calling_role();
    slot   text;
    u      record;
BEGIN
    IF target IS NULL OR target !~ '^[a-z0-9_]{1,54}$' THEN
        RAISE EXCEPTION 'invalid target name "%"', target
            USING ERRCODE = 'invalid_name',
                  DETAIL = 'A target name is 1 to 54 lower-case letters, digits or underscores.';
    END IF;
    IF EXISTS (SELECT FROM edgesync.targets t WHERE t.name = target) THEN
        RAISE EXCEPTION 'target "%" already exists', target USING ERRCODE = 'duplicate_object';
    END IF;
    IF url IS NULL THEN
        RAISE EXCEPTION 'invalid target URL: NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    u := edgesync._parse_target_url(url);
    PERFORM edgesync._check_target_settings(u.kind, bearer_token, headers, ca_file,
                                            batch_changes, batch_bytes, columns, timeout_ms);
    PERFORM edgesync._check_replica_settings(u.kind, replica_schema, schema_changes);
    PERFORM edgesync._check_raw_columns(columns);
    PERFORM edgesync._check_target_owner(target, url, owner);
    -- A replica is connected to once, before anything is created (docs/shipping.md).
    IF enabled AND u.kind = 'postgresql' THEN
        PERFORM edgesync._check_target_connection(target, u.url, u.password, owner, timeout_ms,
                                                  coalesce(replica_schema, ''));
    END IF;
    slot := 'edgesync_' || target;
    PERFORM edgesync._create_target_slot(slot);
    BEGIN
        INSERT INTO edgesync.targets (name, kind, url, slot_name, batch_changes, batch_bytes,
                                      columns, enabled, ca_file, timeout_ms, owner,
                                      replica_schema, schema_changes)
        VALUES (target, u.kind, u.url, slot, batch_changes, batch_bytes, columns, enabled,
                ca_file, timeout_ms, owner, replica_schema, schema_changes);
        INSERT INTO edgesync.target_secrets (name, bearer_token, password, headers)
        VALUES (target, bearer_token, nullif(u.password, ''), headers);
        INSERT INTO edgesync.target_state (name) VALUES (target);
    EXCEPTION WHEN OTHERS THEN
        PERFORM edgesync._drop_target_slot(slot);
        RAISE;
    END;
    PERFORM edgesync._warn_unbounded_wal(target);
END
$$;

-- alter_target(): change some settings; NULL leaves one unchanged, '' clears
-- bearer_token or ca_file.  The slot, and so the position in the stream, stay.
-- A new URL makes the role alter_target() is called as the target's owner.
CREATE FUNCTION edgesync.alter_target(name text, url text DEFAULT NULL, bearer_token text DEFAULT NULL,
                                      headers jsonb DEFAULT NULL, ca_file text DEFAULT NULL,
                                      batch_changes integer DEFAULT NULL,
                                      batch_bytes bigint DEFAULT NULL, columns text DEFAULT NULL,
                                      enabled boolean DEFAULT NULL, timeout_ms integer DEFAULT NULL,
                                      replica_schema text DEFAULT NULL,
                                      schema_changes text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
DECLARE
    t  edgesync.targets := edgesync._require_target(alter_target.name);
    s  edgesync.target_secrets;
    u  record;
    was_enabled boolean := t.enabled;
BEGIN
    SELECT * INTO s FROM edgesync.target_secrets WHERE target_secrets.name = t.name FOR UPDATE;
    IF NOT FOUND THEN  -- a restored target: secrets are not in a dump
        INSERT INTO edgesync.target_secrets (name) VALUES (t.name) RETURNING * INTO s;
    END IF;
    IF url IS NOT NULL THEN
        u := edgesync._parse_target_url(url);
        t.kind := u.kind;
        t.url := u.url;
        t.owner := edgesync._calling_role();
        s.password := nullif(u.password, '');
        PERFORM edgesync._check_target_owner(t.name, url, t.owner);
    END IF;
    IF bearer_token IS NOT NULL THEN s.bearer_token := nullif(bearer_token, ''); END IF;
    IF headers IS NOT NULL THEN s.headers := headers; END IF;
    IF ca_file IS NOT NULL THEN t.ca_file := nullif(ca_file, ''); END IF;
    t.batch_changes := coalesce(batch_changes, t.batch_changes);
    t.batch_bytes := coalesce(batch_bytes, t.batch_bytes);
    t.columns := coalesce(columns, t.columns);
    t.enabled := coalesce(enabled, t.enabled);
    t.timeout_ms := coalesce(timeout_ms, t.timeout_ms);
    -- '' goes back to the default replica schema.
    IF replica_schema IS NOT NULL THEN t.replica_schema := nullif(replica_schema, ''); END IF;
    t.schema_changes := coalesce(schema_changes, t.schema_changes);
    PERFORM edgesync._check_target_settings(t.kind, s.bearer_token, s.headers, t.ca_file,
                                            t.batch_changes, t.batch_bytes, t.columns, t.timeout_ms);
    PERFORM edgesync._check_replica_settings(t.kind, t.replica_schema, t.schema_changes);
    PERFORM edgesync._check_raw_columns(t.columns);
    -- A new URL or replica schema, or a target enabled again: the replica is
    -- connected to once first.
    IF t.enabled AND t.kind = 'postgresql'
       AND (url IS NOT NULL OR replica_schema IS NOT NULL OR NOT was_enabled) THEN
        PERFORM edgesync._check_target_connection(t.name, t.url, coalesce(s.password, ''),
                                                  t.owner, t.timeout_ms,
                                                  coalesce(t.replica_schema, ''));
    END IF;
    UPDATE edgesync.targets SET kind = t.kind, url = t.url, batch_changes = t.batch_changes,
           batch_bytes = t.batch_bytes, columns = t.columns, enabled = t.enabled,
           ca_file = t.ca_file, timeout_ms = t.timeout_ms, owner = t.owner,
           replica_schema = t.replica_schema, schema_changes = t.schema_changes
     WHERE targets.name = t.name;
    UPDATE edgesync.target_secrets SET bearer_token = s.bearer_token, password = s.password,
           headers = s.headers
     WHERE target_secrets.name = t.name;
    -- New settings deserve a prompt try.
    UPDATE edgesync.target_state SET next_retry = NULL WHERE target_state.name = t.name;
    IF enabled THEN
        PERFORM edgesync._warn_unbounded_wal(t.name);
    END IF;
END
$$;

-- drop_target(): the target, its secrets, its state and its slot.
CREATE FUNCTION edgesync.drop_target(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t edgesync.targets := edgesync._require_target(drop_target.name);
BEGIN
    DELETE FROM edgesync.targets WHERE targets.name = t.name;
    PERFORM edgesync._drop_target_slot(t.slot_name);
END
$$;

-- DROP EXTENSION would leave the targets' slots behind, holding back WAL
-- with nothing left to name them: refuse while targets exist.
CREATE FUNCTION edgesync._refuse_drop_with_targets() RETURNS event_trigger
LANGUAGE C AS 'MODULE_PATHNAME', 'edgesync_refuse_drop_with_targets';
REVOKE ALL ON FUNCTION edgesync._refuse_drop_with_targets() FROM PUBLIC;
CREATE EVENT TRIGGER edgesync_keep_target_slots ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION edgesync._refuse_drop_with_targets();

-- What the processes shipping this database's targets are doing now: the
-- target's background worker, or a session in ship() (src/ship/activity.hpp).
-- No rows without edgesync in shared_preload_libraries.
CREATE FUNCTION edgesync._target_activity(OUT name text, OUT state text,
                                          OUT state_since timestamptz, OUT pid integer)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'edgesync_target_activity' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION edgesync._target_activity() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._target_activity() TO edgesync_reader, edgesync_admin;

-- Why no background worker ships this database's targets: 'no worker (not
-- preloaded)', 'no worker (database not in edgesync.ship_databases)', or NULL
-- when the database is shipped (src/ship/worker.hpp).
CREATE FUNCTION edgesync._unserved_reason() RETURNS text
    AS 'MODULE_PATHNAME', 'edgesync_unserved_reason' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION edgesync._unserved_reason() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._unserved_reason() TO edgesync_reader, edgesync_admin;

-- One row per target: where it stands, what it is doing, and what it holds back.
CREATE VIEW edgesync.target_status AS
SELECT t.name,
       t.kind,
       t.url,
       t.enabled,
       t.slot_name,
       s.slot_name IS NOT NULL                                            AS slot_exists,
       s.confirmed_flush_lsn                                              AS confirmed_lsn,
       st.last_success,
       st.batches_shipped,
       st.changes_shipped,
       st.bytes_shipped,
       CASE WHEN s.restart_lsn IS NOT NULL AND NOT pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint END AS wal_held_bytes,
       s.wal_status,
       st.consecutive_failures,
       st.last_error,
       st.last_error_at,
       st.next_retry,
       st.resync_pending,
       t.owner,
       CASE WHEN pg_catalog.current_setting('max_slot_wal_keep_size') OPERATOR(pg_catalog.<>) '-1'
            THEN pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_slot_wal_keep_size'))
       END                                                                AS wal_limit_bytes,
       s.safe_wal_size,
       st.last_attempt,
       st.last_error_cleared_at,
       CASE WHEN a.state IS NOT NULL THEN a.state
            WHEN NOT t.enabled THEN 'disabled'
            ELSE coalesce(edgesync._unserved_reason(), 'no worker') END   AS state,
       a.state_since,
       a.pid
  FROM edgesync.targets t
  LEFT JOIN edgesync.target_state st ON st.name = t.name
  LEFT JOIN pg_catalog.pg_replication_slots s
         ON s.slot_name = t.slot_name AND s.database = current_database()
  LEFT JOIN edgesync._target_activity() a ON a.name = t.name;
COMMENT ON VIEW edgesync.target_status IS 'edgesync: one row per target: position, progress, failures';
REVOKE ALL ON edgesync.target_status FROM PUBLIC;
GRANT SELECT ON edgesync.target_status TO edgesync_reader, edgesync_admin;

-- ship(): deliver up to max_batches batches to a target now, in this session
-- (the same path as the background worker).  Returns the changes delivered.
-- Whatever calls it, the shipper's queries and the decoding run with the
-- search_path the background worker has.
CREATE FUNCTION edgesync._ship(target text, max_batches integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'edgesync_ship' LANGUAGE C STRICT
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION edgesync._ship(text, integer) FROM PUBLIC;
CREATE FUNCTION edgesync.ship(target text, max_batches integer DEFAULT 100) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET log_min_messages = warning  -- decoding the slot logs "starting logical decoding" at LOG
AS $$
BEGIN
    PERFORM edgesync._require_target(target);
    IF max_batches IS NULL OR max_batches < 1 THEN
        RAISE EXCEPTION 'max_batches must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN edgesync._ship(target, max_batches);
END
$$;

-- resync(): a target whose slot was lost (or whose receiver lost its copy)
-- gets a new slot, then a full re-send of the current rows of every tracked
-- table before the stream goes on; the version guard makes the overlap
-- harmless.
CREATE FUNCTION edgesync.resync(target text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t edgesync.targets := edgesync._require_target(target);
BEGIN
    PERFORM edgesync._drop_target_slot(t.slot_name);
    PERFORM edgesync._create_target_slot(t.slot_name);
    -- A restored target has neither secrets nor state (not in a dump).
    INSERT INTO edgesync.target_secrets (name) VALUES (t.name) ON CONFLICT (name) DO NOTHING;
    INSERT INTO edgesync.target_state (name) VALUES (t.name) ON CONFLICT (name) DO NOTHING;
    UPDATE edgesync.target_state SET resync_pending = true, next_retry = NULL, pending_end = NULL,
           acked_lsn = NULL
     WHERE target_state.name = t.name;
END
$$;

REVOKE ALL ON FUNCTION edgesync.add_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer, text, text),
                       edgesync.alter_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer, text, text),
                       edgesync.drop_target(text), edgesync.ship(text, integer), edgesync.resync(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync.add_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer, text, text),
                          edgesync.alter_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer, text, text),
                          edgesync.drop_target(text), edgesync.ship(text, integer), edgesync.resync(text)
    TO edgesync_admin;
