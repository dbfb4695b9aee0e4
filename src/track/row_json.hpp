/*
 * row_json.hpp — rows of a table as JSON, byte for byte what row_to_json()
 * writes, with the per-column work done once per statement.
 *
 * row_to_json() looks up every column's type category and output function
 * again for every value of every row (syscache lookups, fmgr_info); pull()
 * writes thousands of rows of one table per call, so it classifies the
 * columns once (RowJson) and then only formats values.  Values are written
 * in the session's settings (DateStyle aside: dates and times are ISO, as
 * row_to_json writes them).  test: sql/sync.sql compares the two on every
 * kind of column.
 *
 * Plain C-style code: it may ereport(ERROR) and owns no C++ objects.
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
}

namespace edgesync::track {

struct RowJsonColumn;

struct RowJson {
	int natts;
	RowJsonColumn *columns;
};

/* Prepares writing rows of desc, in the current memory context. */
void row_json_init(RowJson *writer, TupleDesc desc);

/*
 * Appends a row of the writer's descriptor, given as its columns (one per
 * attribute of desc, dropped ones included), as row_to_json() would.
 */
void row_json_append(const RowJson *writer, StringInfo out, const Datum *values, const bool *nulls);

} // namespace edgesync::track
