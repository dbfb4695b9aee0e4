-- The extension installs, reports its version, and drops without a trace.
CREATE EXTENSION edgesync;

SELECT edgesync.version() = extversion AS library_matches_extension
  FROM pg_extension WHERE extname = 'edgesync';

-- Everything in schema edgesync belongs to the extension (so DROP removes it).
WITH members AS (
  SELECT classid, objid FROM pg_depend
   WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'edgesync')
)
SELECT count(*) AS relations_outside_extension FROM pg_class c
 WHERE c.relnamespace = 'edgesync'::regnamespace AND c.relkind IN ('r', 'v', 'S', 'p', 'm')
   AND NOT EXISTS (SELECT FROM members m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
UNION ALL
SELECT count(*) FROM pg_proc p
 WHERE p.pronamespace = 'edgesync'::regnamespace
   AND NOT EXISTS (SELECT FROM members m WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid);
SELECT count(*) > 0 AS schema_is_member FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND classid = 'pg_namespace'::regclass AND objid = 'edgesync'::regnamespace;

-- The extension is not relocatable: it lives in schema edgesync.
ALTER EXTENSION edgesync SET SCHEMA public;

DROP EXTENSION edgesync;

-- Nothing is left behind.
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname = 'edgesync';
SELECT count(*) AS functions_left FROM pg_proc WHERE probin LIKE '%edgesync%';
SELECT count(*) AS event_triggers_left FROM pg_event_trigger WHERE evtname LIKE 'edgesync%';

-- And it comes back cleanly.
CREATE EXTENSION edgesync;
SELECT edgesync.version() IS NOT NULL AS reinstalled;
DROP EXTENSION edgesync;
