-- core.sql — schema edgesync and the library's own functions.
--
-- The install script, edgesync--<version>.sql, is built by the Makefile from
-- each piece's SQL file (SQL_PARTS), in order; this one comes first.
--
-- The control file names pg_catalog as the extension's schema and this file
-- creates schema edgesync itself, so the schema is a member of the extension
-- and DROP EXTENSION removes it.  Every object is therefore schema-qualified.

CREATE SCHEMA edgesync;
COMMENT ON SCHEMA edgesync IS 'edgesync: versioned, change-logged tables streamed to the cloud';
GRANT USAGE ON SCHEMA edgesync TO PUBLIC;

CREATE FUNCTION edgesync.version() RETURNS text
    AS 'MODULE_PATHNAME', 'edgesync_version'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION edgesync.version() IS 'version of the loaded edgesync library';
