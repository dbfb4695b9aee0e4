-- The C++/PostgreSQL boundary: exceptions become errors, errors unwind C++.
--
-- The selftest entry points are not part of the extension's SQL API; they are
-- declared here for the test only.
\set VERBOSITY default
CREATE SCHEMA selftest;
CREATE FUNCTION selftest.throw(kind text, sqlstate text) RETURNS int
  AS 'edgesync', 'edgesync_selftest_throw' LANGUAGE C STRICT;
CREATE FUNCTION selftest.pg_error_under_cpp(input text) RETURNS int
  AS 'edgesync', 'edgesync_selftest_pg_error_under_cpp' LANGUAGE C STRICT;
CREATE FUNCTION selftest.live_objects() RETURNS bigint
  AS 'edgesync', 'edgesync_selftest_live_objects' LANGUAGE C STRICT;
CREATE FUNCTION selftest.owned_contexts() RETURNS bigint
  AS 'edgesync', 'edgesync_selftest_owned_contexts' LANGUAGE C STRICT;

SELECT pg_backend_pid() AS pid_before \gset

-- 1. A C++ exception inside a transaction: the ERROR carries the SQLSTATE,
--    detail and hint; the transaction rolls back; the session goes on.
CREATE TABLE boundary_rows (id int);
BEGIN;
INSERT INTO boundary_rows VALUES (1);
SELECT selftest.throw('edgesync', '22023');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM boundary_rows;

SELECT selftest.throw('edgesync', '40001');
\echo :LAST_ERROR_SQLSTATE
-- Any std::exception is an internal error that keeps its text as detail.
SELECT selftest.throw('std', '');
\echo :LAST_ERROR_SQLSTATE
SELECT selftest.throw('bad_alloc', '');
\echo :LAST_ERROR_SQLSTATE
SELECT selftest.throw('other', '');
\echo :LAST_ERROR_SQLSTATE
-- A malformed SQLSTATE cannot reach ereport.
SELECT selftest.throw('edgesync', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT selftest.throw('none', '') AS no_exception;

-- The same session, the same backend: nothing crashed.
SELECT pg_backend_pid() = :pid_before AS same_backend;
SELECT selftest.live_objects() AS live_objects_after_exceptions;

-- 2. A PostgreSQL error under live C++ frames: destructors run, the owned
--    memory context is deleted, and the error arrives unchanged.
SELECT selftest.pg_error_under_cpp('42') AS parsed;
SELECT selftest.pg_error_under_cpp('forty-two');
\echo :LAST_ERROR_SQLSTATE
SELECT selftest.live_objects() AS live_objects_after_pg_error,
       selftest.owned_contexts() AS contexts_after_pg_error;

-- Many times over: still nothing leaks.
DO $$
BEGIN
  FOR i IN 1..1000 LOOP
    BEGIN
      PERFORM selftest.pg_error_under_cpp('x' || i);
    EXCEPTION WHEN invalid_text_representation THEN
      NULL;
    END;
  END LOOP;
END $$;
SELECT selftest.live_objects() AS live_objects_after_1000,
       selftest.owned_contexts() AS contexts_after_1000;

-- Errors caught by PL/pgSQL keep their SQLSTATE.
DO $$
BEGIN
  PERFORM selftest.throw('edgesync', '40001');
EXCEPTION WHEN serialization_failure THEN
  RAISE NOTICE 'caught % from C++', SQLSTATE;
END $$;

SELECT pg_backend_pid() = :pid_before AS still_same_backend;

DROP TABLE boundary_rows;
DROP SCHEMA selftest CASCADE;
