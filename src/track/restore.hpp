/*
 * restore.hpp — rows a restore loads keep what they were.
 *
 * pg_dump writes a tracked table's rows with COPY ... FROM stdin, naming
 * every column, version, created_at and updated_at included.  A full restore
 * loads them before the dump's CREATE TRIGGER runs, so they keep their
 * values; a data-only restore into a schema restored before loads them
 * through edgesync's triggers, which would give every row version 1 and the
 * restore's time, log it as an insert, and fail outright on a table the
 * restore has not yet registered (tracked_tables is loaded with the data, in
 * whatever order pg_restore picks).  So the triggers let such a COPY through
 * untouched: the rows keep their versions and timestamps and are not
 * logged, whatever order the restore loads tables in.
 *
 * Plain C-style code: it may ereport(ERROR) and owns no C++ objects.
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "utils/rel.h"
}

namespace edgesync::track {

/*
 * True if the statement running is a COPY FROM into rel (or a partitioned
 * table rel belongs to) whose column list names version, created_at and
 * updated_at, run by a role that owns the table it copies into: a load of
 * rows as they were, what a restore does.  Such a role could as well disable
 * the triggers (ALTER TABLE ... DISABLE TRIGGER), so the rule gives nobody
 * anything new.  A COPY inside a function, or one without those columns in
 * its list, is an ordinary insert.
 */
bool loading_rows_as_they_were(Relation rel);

} // namespace edgesync::track
