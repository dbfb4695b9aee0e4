/*
 * sql_writer_internal.hpp — what the two halves of the sql format share:
 * sql_writer.cpp (statements of one change each, and the format's entry
 * points in decode.hpp) and sql_runs.cpp (runs: changes of one shape
 * buffered and written as one multi-row statement).
 *
 * Internal to those two files; nothing else includes it.  Like decode.hpp,
 * plain C-style code that may ereport(ERROR) and owns no C++ objects.
 */
#pragma once

#include "decode/decode.hpp"

namespace edgesync::decode::sql {

/* sql_writer.cpp */

/*
 * Whether column i is written: not dropped, generated, redacted or unchanged
 * TOAST, nor too large for the output (unless with_too_large).
 */
bool in_column_list(const DecodeState *state, const Change *c, int i, bool with_too_large = false);
/* The single-row DELETE; op and guard_with_old: see sql_write_change. */
void build_delete(StringInfo out, DecodeState *state, const Change *c, const char *op,
				  bool guard_with_old);
void write_delete(DecodeState *state, const Change *c, const char *op, bool guard_with_old);
/* An upsert's parts: INSERT INTO .. (cols), the values (returns their key's hash), ON CONFLICT ..;
 */
void append_upsert_head(StringInfo out, const DecodeState *state, const Change *c);
uint64 append_upsert_values(StringInfo out, const DecodeState *state, const Change *c);
void append_upsert_tail(StringInfo out, const DecodeState *state, const Change *c);
/* The single-row upsert. */
void build_upsert(StringInfo out, const DecodeState *state, const Change *c);
void write_upsert(DecodeState *state, const Change *c);

/* ` AND <apply condition>` of the transaction committed at commit_lsn (replica_sql.hpp). */
void append_condition(StringInfo out, const char *commit_lsn, const char *prefix = " AND ");

/* sql_tables.cpp */

/* What the hospital did to a table, for its table block (all empty: nothing, just the shape). */
struct TableEdit {
	const char *old_schema; /* renamed or moved: where it was, or nullptr */
	const char *old_table;
	int nrenamed;
	const char **renamed_from;
	const char **renamed_to;
	int ndropped;
	const char **dropped;
	int nretyped;
	const char **retyped;
	int nadded; /* added by the change: they take the hospital's missing value and NOT NULL */
	const char **added;
};

/*
 * Writes the table block (replica_sql.hpp) that brings the replica's table
 * of rel (as relation describes it here) to its shape, after edit, under
 * the apply condition of the transaction being decoded.
 */
void write_table_block(DecodeState *state, Relation relation, const RelInfo *rel,
					   const TableEdit *edit);
/*
 * Before a table's first statement of the session, and after its shape
 * changed: its table block, so that a replica lacking the table or a column
 * gets it from the stream itself.
 */
void ensure_table(DecodeState *state, Relation relation, const RelInfo *rel);

/* sql_runs.cpp */

/* Forgets the buffered run (at BEGIN: one left over from a transaction that failed). */
void run_discard(DecodeState *state);
/* Writes the buffered run, if any; before any statement written alone, and at commit. */
void run_flush(DecodeState *state);
/* A change's upsert or delete, added to the run or written alone. */
void add_upsert(DecodeState *state, const Change *c);
void add_delete(DecodeState *state, const Change *c, const char *op, bool guard_with_old);

} // namespace edgesync::decode::sql
