-- setup.sql — the tables bench/track/run.sh measures, one per variant, all in
-- schema bench, all the same patients-like shape (version, created_at and
-- updated_at last, where track() appends them to an existing table):
--
--   bare      no trigger
--   full      edgesync.track(): C++ version trigger + sync_log
--   nolog     edgesync.track(log_changes => false): version trigger only
--   plpgsql   the hand-written equivalent: a PL/pgSQL BEFORE trigger with the
--             same rules + an AFTER ROW trigger inserting into a log table
--             (identity primary key, jsonb key), as apps usually write it
--   floor     a C BEFORE ROW trigger that returns the row unchanged: what any
--             BEFORE ROW trigger costs.  UPDATE: the builtin
--             suppress_redundant_updates_trigger; INSERT (PostgreSQL has no
--             builtin C trigger that accepts INSERT and does nothing):
--             edgesync.version_trigger fired in replica-apply mode
--             (ENABLE ALWAYS, run.sh sets session_replication_role =
--             replica around the INSERT), where it returns its input.
--   floor2    floor + a C AFTER ROW trigger that does next to nothing: what
--             queuing and firing an AFTER ROW trigger costs (contrib lo's
--             lo_manage on the key column, which never changes: it reads
--             the column's text of the old and new row and compares them).
--             What full adds to floor2 is edgesync's own work: the version
--             logic, the key as JSON and the log tuple written at commit.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS edgesync;
CREATE EXTENSION IF NOT EXISTS lo;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;

CREATE FUNCTION bench.make_patients(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($t$
        CREATE TABLE bench.%I (
            id          bigint PRIMARY KEY,
            hospital_id int    NOT NULL,
            mrn         text   NOT NULL,
            first_name  text   NOT NULL,
            last_name   text   NOT NULL,
            birth_date  date   NOT NULL,
            ward        text,
            visits      int    NOT NULL DEFAULT 0,
            notes       text,
            version     bigint      NOT NULL DEFAULT 1,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        ) WITH (autovacuum_enabled = false)$t$, name);
    EXECUTE format('CREATE INDEX ON bench.%I (hospital_id)', name);
END
$$;

SELECT bench.make_patients('patients_' || v) FROM unnest(ARRAY['bare', 'full', 'nolog', 'plpgsql', 'floor', 'floor2']) v;

SELECT edgesync.track('bench.patients_full');
SELECT edgesync.track('bench.patients_nolog', log_changes => false);

-- The hand-written PL/pgSQL path.
CREATE TABLE bench.plpgsql_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relid            oid         NOT NULL,
    pk               jsonb       NOT NULL,
    op               "char"      NOT NULL,
    version          bigint,
    xid              xid8        NOT NULL DEFAULT pg_current_xact_id(),
    changed_at       timestamptz NOT NULL DEFAULT now(),
    role             oid         NOT NULL DEFAULT to_regrole(current_user)::oid,
    application_name text        DEFAULT current_setting('application_name')
) WITH (autovacuum_enabled = false);

-- Same rules as edgesync.version_trigger (replication apply aside: the
-- trigger is ENABLE ORIGIN, so it does not fire in replica mode).
CREATE FUNCTION bench.plpgsql_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.version := 1;
        NEW.created_at := now();
        NEW.updated_at := now();
        RETURN NEW;
    END IF;
    IF NEW.version IS DISTINCT FROM OLD.version THEN
        RAISE EXCEPTION 'version conflict updating table "%"', TG_TABLE_NAME
            USING ERRCODE = 'serialization_failure',
                  DETAIL = format('Row {"id":%s}: the update expected version %s, but the current version is %s.',
                                  OLD.id, NEW.version, OLD.version);
    END IF;
    NEW.created_at := OLD.created_at;
    NEW.updated_at := OLD.updated_at;
    IF NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NULL;  -- changes nothing: no new row version, no log row
    END IF;
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE FUNCTION bench.plpgsql_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
        INSERT INTO bench.plpgsql_log (relid, pk, op, version)
        VALUES (TG_RELID, jsonb_build_object('id', OLD.id), 'D', OLD.version);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO bench.plpgsql_log (relid, pk, op, version)
        VALUES (TG_RELID, jsonb_build_object('id', NEW.id), CASE TG_OP WHEN 'INSERT' THEN 'I' ELSE 'U' END,
                NEW.version);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER plpgsql_version BEFORE INSERT OR UPDATE ON bench.patients_plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench.plpgsql_version();
CREATE TRIGGER plpgsql_log AFTER INSERT OR UPDATE OR DELETE ON bench.patients_plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench.plpgsql_log();

-- The floor.
CREATE TRIGGER floor_insert BEFORE INSERT ON bench.patients_floor
    FOR EACH ROW EXECUTE FUNCTION edgesync.version_trigger();
ALTER TABLE bench.patients_floor ENABLE ALWAYS TRIGGER floor_insert;
CREATE TRIGGER floor_update BEFORE UPDATE ON bench.patients_floor
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();

CREATE TRIGGER floor_insert BEFORE INSERT ON bench.patients_floor2
    FOR EACH ROW EXECUTE FUNCTION edgesync.version_trigger();
ALTER TABLE bench.patients_floor2 ENABLE ALWAYS TRIGGER floor_insert;
CREATE TRIGGER floor_update BEFORE UPDATE ON bench.patients_floor2
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE TRIGGER floor_after AFTER INSERT OR UPDATE ON bench.patients_floor2
    FOR EACH ROW EXECUTE FUNCTION lo_manage('id');
ALTER TABLE bench.patients_floor2 ENABLE ALWAYS TRIGGER floor_after;
