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
void write_delete(LogicalDecodingContext *ctx, DecodeState *state, const Change *c, const char *op,
				  bool guard_with_old);
/* An upsert's parts: INSERT INTO .. (cols), the values (returns their key's hash), ON CONFLICT ..;
 */
void append_upsert_head(StringInfo out, const DecodeState *state, const Change *c);
uint64 append_upsert_values(StringInfo out, const DecodeState *state, const Change *c);
void append_upsert_tail(StringInfo out, const DecodeState *state, const Change *c);
/* The single-row upsert. */
void build_upsert(StringInfo out, const DecodeState *state, const Change *c);
void write_upsert(LogicalDecodingContext *ctx, DecodeState *state, const Change *c);

/* sql_runs.cpp */

/* Forgets the buffered run (at BEGIN: one left over from a transaction that failed). */
void run_discard(DecodeState *state);
/* Writes the buffered run, if any; before any statement written alone, and at commit. */
void run_flush(LogicalDecodingContext *ctx, DecodeState *state);
/* A change's upsert or delete, added to the run or written alone. */
void add_upsert(LogicalDecodingContext *ctx, DecodeState *state, const Change *c);
void add_delete(LogicalDecodingContext *ctx, DecodeState *state, const Change *c, const char *op,
				bool guard_with_old);

} // namespace edgesync::decode::sql
