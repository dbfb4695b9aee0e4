/*
 * catalog_owner.hpp — read or write edgesync's catalog tables with their
 * owner's rights, on behalf of a caller whose own rights were checked first.
 *
 * track()/untrack(), track_schema() and set_column_policy() are SECURITY
 * INVOKER (the caller must own the table) but write catalogs that PUBLIC may
 * not write; changes() and pull() read the change log, whose keys and row
 * images no caller reads directly.  The statement runs as the catalog's
 * owner under SECURITY_RESTRICTED_OPERATION and with search_path pinned to
 * pg_catalog, so nothing the caller put on their search_path (an operator, a
 * function) can run with the owner's rights.  Callers still name every
 * operator with its schema.
 *
 * Plain PostgreSQL code: call it from frames without destructors, or through
 * pg_call().
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/spi.h"
}

namespace edgesync {

/* Runs sql (SPI, with nargs parameters) as the owner of edgesync.<catalog>. */
void run_as_catalog_owner(const char *catalog, const char *sql, int nargs, Oid *types,
						  Datum *values);

/* The rows of a query, copied into the caller's memory context. */
struct OwnerRows {
	TupleDesc desc;
	uint64 count;
	HeapTuple *rows;
};

/*
 * Runs the query sql as the owner of edgesync.<catalog> (nulls as for
 * SPI_execute_with_args, may be nullptr) and returns its rows, allocated in
 * the memory context current at the call.
 */
OwnerRows query_as_catalog_owner(const char *catalog, const char *sql, int nargs, Oid *types,
								 Datum *values, const char *nulls);

/*
 * The same for a query run again and again: *plan holds it prepared (kept
 * for the backend's life), prepared at its first use.
 */
OwnerRows query_as_catalog_owner(const char *catalog, SPIPlanPtr *plan, const char *sql, int nargs,
								 Oid *types, Datum *values, const char *nulls);

} // namespace edgesync
