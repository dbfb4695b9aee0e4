/*
 * sql_objects.hpp — does the loaded library match the extension's SQL
 * objects in this database?
 *
 * After the files of a new release are installed, the server may run the
 * new library against SQL objects of the old version until the DBA runs
 * ALTER EXTENSION edgesync UPDATE (docs/upgrading.md).  Code that relies on
 * an object a release added or reshaped calls require_current_sql_objects()
 * first, so the DBA gets an error that says what to run rather than a
 * puzzling failure further on.
 *
 * Plain PostgreSQL code: call it from frames without destructors, or through
 * pg_call().  It reads pg_extension, so it needs a transaction.
 */
#pragma once

#include "core/postgres.hpp"

namespace edgesync {

/* The installed version of edgesync's SQL objects here; NULL if not installed. */
char *installed_sql_version();

/* Raises 55000 unless the SQL objects are the library's version; what: who needs them. */
void require_current_sql_objects(const char *what);

} // namespace edgesync
