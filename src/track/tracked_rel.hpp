/*
 * tracked_rel.hpp — what the row triggers need to know about a tracked table.
 *
 * Looked up once per query and trigger (kept in the trigger's fn_extra, so
 * it cannot outlive a change of the table's definition: a query holds its
 * lock), never per row: the positions of version/created_at/updated_at, the
 * primary key columns with their output functions, and the tracked table a
 * partition belongs to.
 *
 * Functions here are plain C-style code: they may ereport(ERROR) and own no
 * C++ objects.
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "utils/rel.h"
}

namespace edgesync::track {

/* How a value is written into JSON. */
enum class JsonKind : char { kNumber, kFloat, kNumeric, kBool, kJson, kString };

struct KeyColumn {
	AttrNumber attnum;
	JsonKind kind;
	const char *name;
	FmgrInfo output;
};

struct TrackedRel {
	Oid relid;		   /* the relation the trigger fires on */
	Oid tracked_relid; /* the tracked table: relid, or the partition root */
	AttrNumber version_attnum;
	AttrNumber created_at_attnum;
	AttrNumber updated_at_attnum;
	int nkeys;
	KeyColumn keys[INDEX_MAX_KEYS];
	bool keys_need_pinning; /* a key column's text depends on output settings */
	/*
	 * The tracked table has row level security: a deleted row leaves, in
	 * the log, the columns its policies read (image), so that pull() can
	 * tell whether a caller could see it.
	 */
	bool row_security;
	int nimage;
	KeyColumn *image;
	bool image_needs_pinning;
};

/*
 * The TrackedRel of rel, from the cache (built on first use or after a
 * change).  Raises an error if rel (or its partition root) is not in
 * edgesync.tracked_tables: the triggers act only on tables track() set up.
 */
TrackedRel *tracked_rel_for(FunctionCallInfo fcinfo, Relation rel);

/*
 * True if edgesync.tracked_tables has a row for relid, in a fresh snapshot
 * (a row track() wrote earlier in this transaction counts).  Read without a
 * privilege check: the role writing a tracked table may not read the catalog.
 */
bool is_tracked(Oid relid);

/* Raises the error for a table (rel, or its partition root) that is not tracked. */
void require_tracked(Relation rel);

/*
 * Appends the primary key of tuple as a JSON object: {"id": 42}.  Values are
 * written under the output settings the stream writes them under (DateStyle
 * ISO, TimeZone UTC, ...: see output_settings in tracked_rel.cpp), whatever
 * the writing session's, so that a key reads back the same in every session.
 */
void append_key_json(StringInfo out, const TrackedRel *info, HeapTuple tuple, TupleDesc desc);

/* The same for a row given as its columns (one per attribute, dropped ones included). */
void append_key_json(StringInfo out, const TrackedRel *info, const Datum *values,
					 const bool *nulls);

/* Appends the columns of info->image of tuple as a JSON object. */
void append_image_json(StringInfo out, const TrackedRel *info, HeapTuple tuple, TupleDesc desc);

/* True if the primary key columns of a and b hold the same bytes. */
bool keys_equal(const TrackedRel *info, HeapTuple a, HeapTuple b, TupleDesc desc);

/*
 * Sets, until unpin_output_settings(nest_level), the output settings keys
 * are written under (DateStyle ISO, TimeZone UTC, ...) where the session
 * has others; returns the GUC nest level to unwind, -1 if nothing was set.
 * Keys read back under them read as they were written.
 */
int pin_output_settings();
void unpin_output_settings(int nest_level);

/* Appends one value as JSON (a number, true/false, embedded JSON, or a string). */
void append_json_value(StringInfo out, JsonKind kind, FmgrInfo *output, Datum value);

/* The JsonKind of a type, by the one classifier (core/value_kind.hpp). */
JsonKind json_kind_of(Oid typid);

} // namespace edgesync::track
