-- edgesync 0.1.0: base install script.
--
-- The control file names pg_catalog as the extension's schema and this script
-- creates schema edgesync itself, so the schema is a member of the extension
-- and DROP EXTENSION removes it.  Every object is therefore schema-qualified.
\echo Use "CREATE EXTENSION edgesync" to load this file. \quit

CREATE SCHEMA edgesync;
COMMENT ON SCHEMA edgesync IS 'edgesync: versioned, change-logged tables streamed to the cloud';
GRANT USAGE ON SCHEMA edgesync TO PUBLIC;

CREATE FUNCTION edgesync.version() RETURNS text
    AS 'MODULE_PATHNAME', 'edgesync_version'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION edgesync.version() IS 'version of the loaded edgesync library';
