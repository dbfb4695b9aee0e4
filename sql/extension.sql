-- The extension installs, reports its version, and drops without a trace.
CREATE EXTENSION edgesync;

SELECT edgesync.version() = extversion AS library_matches_extension
  FROM pg_extension WHERE extname = 'edgesync';

-- Every object the extension owns.
SELECT pg_describe_object(classid, objid, objsubid) AS member
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'edgesync')
   AND deptype = 'e'
 ORDER BY 1;

-- The extension is not relocatable: it lives in schema edgesync.
ALTER EXTENSION edgesync SET SCHEMA public;

DROP EXTENSION edgesync;

-- Nothing is left behind.
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname = 'edgesync';
SELECT count(*) AS functions_left FROM pg_proc WHERE probin LIKE '%edgesync%';

-- And it comes back cleanly.
CREATE EXTENSION edgesync;
SELECT edgesync.version() IS NOT NULL AS reinstalled;
DROP EXTENSION edgesync;
