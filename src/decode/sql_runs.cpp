/*
 * sql_runs.cpp — runs of the sql format (options batch_rows, batch_bytes;
 * docs/output-format.md "Runs").  The statements of one change each are
 * written by sql_writer.cpp; this file buffers and writes runs.
 *
 * Consecutive changes of one kind (upsert or delete) with the same
 * statement shape (table, column list, conflict clause, guard) are buffered
 * as one run and written as one multi-row statement:
 *
 *   INSERT INTO t AS target (c1, c2) OVERRIDING SYSTEM VALUE SELECT
 *     pg_catalog.unnest('{1,2}'::integer[]), pg_catalog.unnest('{"a","b"}'::text[])
 *     WHERE <apply condition> ON CONFLICT (pk) DO UPDATE SET ... WHERE ...;
 *
 * (one array literal per column: the replica parses a handful of literals
 * per run instead of one per value.  The unnests are in the select list, so
 * they run in lockstep in one ProjectSet node; ROWS FROM (unnest(..), ..)
 * would gather each column into a tuplestore first, 5% more apply time
 * (bench/ship/apply.sh).  A table with an array-typed column, which unnest
 * would flatten, gets SELECT * FROM (VALUES (..), (..)) AS v);
 *   DELETE FROM t AS target USING (VALUES (k, version), ...) AS v(c1, c2)
 *     WHERE target."k" OPERATOR(pg_catalog.=) v.c1
 *       AND target."version" OPERATOR(pg_catalog.<=) v.c2 AND <apply condition>;
 *
 * The apply condition (replica_sql.hpp) is that of the run's last change's
 * transaction: for the shipper, whose runs go on across commits, the run
 * applies when any of its transactions is new (docs/shipping.md says why
 * re-applying the others then is harmless).
 *
 * A run of one change is written in the single-row form.  A run ends at a
 * change that does not fit it, at an upsert whose key is already in it (ON
 * CONFLICT cannot touch a row twice in one statement), at batch_rows changes
 * or batch_bytes of values, before a truncate or a statement written alone,
 * and at commit (for the shipper, at flush_open_run() instead: decode.hpp).
 * Only the current run is buffered, in run_context, which is reset when the
 * run is written.
 *
 * For the shipper (send_runs_binary), a columnar run whose columns are all
 * in_binary_array() keeps each column's elements in binary instead, and is
 * written as a unit (core/statement_unit.hpp): the same statement with
 * $1, $2, ... for the array literals, and the arrays as parameters
 * (docs/shipping.md, "Binary runs").
 */
#include "core/statement_unit.hpp"
#include "decode/sql_writer_internal.hpp"

extern "C" {
#include "common/hashfn.h"
#include "libpq/pqformat.h"
#include "port/pg_bswap.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
}

namespace edgesync::decode {

enum class RunKind : char { kNone, kUpsert, kDelete };

/* A one-dimensional binary array's header: ndim, flags, element type, length, lower bound. */
constexpr int kArrayHeaderBytes = 20;

struct SqlRun {
	RunKind kind;
	int nrows;
	StringInfoData head;  /* upsert: INSERT INTO .. (cols); delete: DELETE FROM .. AS target */
	StringInfoData tail;  /* the rest after the values; with head, the run's shape */
	StringInfoData rows;  /* "(v, v), (v, v)" */
	StringInfoData first; /* delete, columnar upsert: the first change as its own statement */
	bool columnar;		  /* upsert: values as one array per column (cols), not rows */
	int ncols;
	StringInfoData *cols; /* "{"e1","e2" per column of the list; binary: see below */
	char **casts;		  /* ::type[] per column of the list */
	/*
	 * Columnar, for the shipper (send_runs_binary): each column's elements
	 * in binary, after room for the array's header, written as a unit.
	 */
	bool binary;
	Oid *elem_types; /* per column of the list */
	FmgrInfo *sends; /* ... its element type's send function */
	bool *has_nulls;
	int64 bytes;		 /* columnar: the values' bytes */
	XLogRecPtr last_lsn; /* of the run's last change: the LSN its statement is written at */
	char commit_lsn[32]; /* of the run's last change's transaction: its apply condition's */
	uint64 *keys;		 /* upsert: open-addressed set of key hashes (0 = empty) */
	int keys_size;		 /* a power of two */
	int nkeys;
};

namespace sql {

namespace {

SqlRun *
get_run(DecodeState *state)
{
	if (state->run == nullptr)
		state->run = static_cast<SqlRun *>(
			MemoryContextAllocZero(MemoryContextGetParent(state->run_context), sizeof(SqlRun)));
	return state->run;
}

/* Runs need the plugin's run_context; a DecodeState without one (the shipper's resync) writes one
 * statement per change. */
bool
batching(const DecodeState *state)
{
	return state->batch_rows > 1 && state->run_context != nullptr;
}

void
run_start(DecodeState *state, RunKind kind, StringInfo head, StringInfo tail)
{
	SqlRun *run = get_run(state);
	run_discard(state);
	MemoryContext old = MemoryContextSwitchTo(state->run_context);
	run->kind = kind;
	initStringInfo(&run->head);
	appendBinaryStringInfo(&run->head, head->data, head->len);
	initStringInfo(&run->tail);
	appendBinaryStringInfo(&run->tail, tail->data, tail->len);
	initStringInfo(&run->rows);
	initStringInfo(&run->first);
	MemoryContextSwitchTo(old);
}

/* An upsert run sending each column as one array: the columns and their casts. */
void
run_start_columnar(DecodeState *state, const Change *c)
{
	SqlRun *run = state->run;
	const RelInfo *rel = c->rel;
	MemoryContext old = MemoryContextSwitchTo(state->run_context);
	run->columnar = true;
	run->cols = static_cast<StringInfoData *>(palloc0(sizeof(StringInfoData) * (rel->natts + 1)));
	run->casts = static_cast<char **>(palloc0(sizeof(char *) * (rel->natts + 1)));
	run->binary = state->binary_runs;
	for (int i = 0; i < rel->natts; i++)
		run->binary &= !in_column_list(state, c, i) || in_binary_array(state, &rel->columns[i]);
	if (run->binary) {
		run->elem_types = static_cast<Oid *>(palloc0(sizeof(Oid) * (rel->natts + 1)));
		run->sends = static_cast<FmgrInfo *>(palloc0(sizeof(FmgrInfo) * (rel->natts + 1)));
		run->has_nulls = static_cast<bool *>(palloc0(sizeof(bool) * (rel->natts + 1)));
	}
	for (int i = 0; i < rel->natts; i++) {
		if (!in_column_list(state, c, i))
			continue;
		const ColumnInfo *col = &rel->columns[i];
		initStringInfo(&run->cols[run->ncols]);
		if (run->binary) {
			Oid send;
			bool varlena;
			run->elem_types[run->ncols] = binary_array_element_type(state, col);
			getTypeBinaryOutputInfo(run->elem_types[run->ncols], &send, &varlena);
			fmgr_info_cxt(send, &run->sends[run->ncols], state->run_context);
			appendStringInfoSpaces(&run->cols[run->ncols], kArrayHeaderBytes);
		} else
			appendStringInfoChar(&run->cols[run->ncols], '{');
		run->casts[run->ncols] =
			psprintf("::%s[]", effective_policy(state, col) == Policy::kHash ? "pg_catalog.text"
																			 : col->sql_type);
		run->ncols++;
	}
	MemoryContextSwitchTo(old);
}

bool
run_has_shape(const SqlRun *run, RunKind kind, StringInfo head, StringInfo tail)
{
	return run->kind == kind && run->head.len == head->len && run->tail.len == tail->len &&
		   memcmp(run->head.data, head->data, head->len) == 0 &&
		   memcmp(run->tail.data, tail->data, tail->len) == 0;
}

/* Adds a key hash to the run's set; false if it was there. */
bool
run_add_key(DecodeState *state, uint64 hash)
{
	SqlRun *run = state->run;
	if (hash == 0)
		hash = 1;
	if (2 * (run->nkeys + 1) > run->keys_size) {
		int size = run->keys_size == 0 ? 256 : 2 * run->keys_size;
		uint64 *keys = static_cast<uint64 *>(
			MemoryContextAllocZero(state->run_context, sizeof(uint64) * size));
		for (int i = 0; i < run->keys_size; i++) {
			if (run->keys[i] == 0)
				continue;
			int j = static_cast<int>(run->keys[i] & (size - 1));
			while (keys[j] != 0)
				j = (j + 1) & (size - 1);
			keys[j] = run->keys[i];
		}
		if (run->keys != nullptr)
			pfree(run->keys);
		run->keys = keys;
		run->keys_size = size;
	}
	int j = static_cast<int>(hash & (run->keys_size - 1));
	while (run->keys[j] != 0) {
		if (run->keys[j] == hash)
			return false;
		j = (j + 1) & (run->keys_size - 1);
	}
	run->keys[j] = hash;
	run->nkeys++;
	return true;
}

/*
 * The row just appended to the run at rows[start..] belongs to the next run
 * (its key is in this one, or it takes the run past batch_bytes): writes the
 * run without it and starts the next one with it.
 */
void
run_split(DecodeState *state, int before, int start)
{
	SqlRun *run = state->run;
	RunKind kind = run->kind;
	int len = run->rows.len - start;
	char *row = static_cast<char *>(palloc(len + 1));
	memcpy(row, run->rows.data + start, len);
	StringInfoData head, tail;
	initStringInfo(&head);
	appendBinaryStringInfo(&head, run->head.data, run->head.len);
	initStringInfo(&tail);
	appendBinaryStringInfo(&tail, run->tail.data, run->tail.len);

	run->rows.len = before;
	run->rows.data[before] = '\0';
	run_flush(state);
	run_start(state, kind, &head, &tail);
	appendBinaryStringInfo(&state->run->rows, row, len);
	pfree(row);
}

/* Ends the run at the batch limits. */
void
run_added(DecodeState *state)
{
	SqlRun *run = state->run;
	run->nrows++;
	run->last_lsn = output_position(state);
	strlcpy(run->commit_lsn, state->commit_lsn, sizeof(run->commit_lsn));
	if (run->nrows >= state->batch_rows || run->rows.len >= state->batch_bytes ||
		run->bytes >= state->batch_bytes)
		run_flush(state);
}

/* A columnar run's array types are the change's (a type changed inside the transaction ends it). */
bool
run_has_casts(const SqlRun *run, const DecodeState *state, const Change *c)
{
	const RelInfo *rel = c->rel;
	int j = 0;
	for (int i = 0; i < rel->natts; i++) {
		if (!in_column_list(state, c, i))
			continue;
		const ColumnInfo *col = &rel->columns[i];
		const char *type =
			effective_policy(state, col) == Policy::kHash ? "pg_catalog.text" : col->sql_type;
		size_t len = strlen(type);
		const char *cast = run->casts[j++];
		if (strncmp(cast + 2, type, len) != 0 || strcmp(cast + 2 + len, "[]") != 0)
			return false;
	}
	return j == run->ncols;
}

/* Appends the change to a columnar upsert run (already of its shape). */
void
add_upsert_columnar(DecodeState *state, const Change *c, StringInfo head, StringInfo tail)
{
	const RelInfo *rel = c->rel;
	bool keyed = rel->nkeys > 0;
	SqlRun *run = state->run;
	int *lens = static_cast<int *>(palloc(sizeof(int) * (run->ncols + 1)));

	for (;;) {
		if (run->nrows == 0) {
			/* The single-row form, written if the run stays at one change. */
			build_upsert(&run->first, state, c);
			if (run->first.len >= state->batch_bytes) {
				run->nrows = 1;
				run->last_lsn = output_position(state);
				strlcpy(run->commit_lsn, state->commit_lsn, sizeof(run->commit_lsn));
				run_flush(state);
				return;
			}
		}
		uint64 key_hash = 0;
		int64 bytes = 0;
		int j = 0;
		for (int i = 0; i < rel->natts; i++) {
			if (!in_column_list(state, c, i))
				continue;
			StringInfo col = &run->cols[j];
			lens[j] = col->len;
			int start = col->len; /* of the element (binary: its length and bytes) */
			if (run->binary) {
				append_binary_array_element(col, state, &rel->columns[i], c->new_nulls[i],
											c->new_values[i], &run->sends[j]);
				run->has_nulls[j] |= c->new_nulls[i];
			} else {
				if (run->nrows > 0)
					appendStringInfoChar(col, ',');
				start = col->len;
				append_sql_array_element(col, state, &rel->columns[i], c->new_nulls[i],
										 c->new_values[i]);
			}
			if (rel->columns[i].is_key)
				key_hash =
					hash_bytes_extended(reinterpret_cast<const unsigned char *>(col->data) + start,
										col->len - start, key_hash + 1);
			bytes += col->len - lens[j];
			j++;
		}
		if (run->nrows == 0 || (run->bytes + bytes <= state->batch_bytes &&
								(!keyed || run_add_key(state, key_hash)))) {
			if (run->nrows == 0 && keyed)
				(void) run_add_key(state, key_hash);
			run->bytes += bytes;
			run_added(state);
			return;
		}
		/* Its key is in the run, or it takes the run past batch_bytes: the next run. */
		for (j = 0; j < run->ncols; j++) {
			run->cols[j].len = lens[j];
			run->cols[j].data[lens[j]] = '\0';
		}
		run_flush(state);
		run_start(state, RunKind::kUpsert, head, tail);
		run_start_columnar(state, c);
		run = state->run;
	}
}

/*
 * A binary columnar run as a unit (core/statement_unit.hpp): the run's
 * statement with a parameter per column, $j::type[], and each column's
 * elements as a binary array.  The statement is the text form's, literal
 * for literal, so a unit applies exactly as the text would.
 */
void
write_binary_run(StringInfo out, SqlRun *run)
{
	appendStringInfoChar(out, unit::kMarker);
	int length_at = out->len;
	appendStringInfoSpaces(out, 4);
	appendBinaryStringInfo(out, run->head.data, run->head.len);
	appendStringInfoString(out, " SELECT ");
	for (int j = 0; j < run->ncols; j++)
		appendStringInfo(out, "%spg_catalog.unnest($%d%s)", j > 0 ? ", " : "", j + 1,
						 run->casts[j]);
	append_condition(out, run->commit_lsn, " WHERE ");
	appendBinaryStringInfo(out, run->tail.data, run->tail.len);
	appendStringInfo(out, " /* %d changes */", run->nrows);
	appendStringInfoChar(out, '\0');
	uint16 nparams = pg_hton16(static_cast<uint16>(run->ncols));
	appendBinaryStringInfo(out, reinterpret_cast<const char *>(&nparams), 2);
	for (int j = 0; j < run->ncols; j++) {
		StringInfo col = &run->cols[j];
		/* ndim, flags (has nulls), element type, length, lower bound */
		const uint32 header[] = {1, run->has_nulls[j] ? 1u : 0u, run->elem_types[j],
								 static_cast<uint32>(run->nrows), 1};
		static_assert(sizeof(header) == kArrayHeaderBytes);
		for (int k = 0; k < 5; k++)
			unit::write_u32(col->data + 4 * k, header[k]);
		pq_sendint32(out, static_cast<uint32>(col->len));
		appendBinaryStringInfo(out, col->data, col->len);
	}
	unit::write_u32(out->data + length_at, static_cast<uint32>(out->len - length_at - 4));
}

} // namespace

void
run_discard(DecodeState *state)
{
	if (state->run_context == nullptr)
		return;
	SqlRun *run = get_run(state);
	MemoryContextReset(state->run_context);
	memset(run, 0, sizeof(SqlRun));
}

/* Writes the buffered run, if any, as one statement (one output message). */
void
run_flush(DecodeState *state)
{
	SqlRun *run = state->run;
	if (run == nullptr || run->nrows == 0)
		return;
	/*
	 * At its last change's LSN, not at that of the change or commit that
	 * ended it: pg_recvlogical --endpos stops after the first message at
	 * endpos, and that must stay the COMMIT; of the transaction's end.
	 */
	output_begin(state, run->last_lsn);
	StringInfo out = state->output->buf;
	if (run->kind == RunKind::kDelete && run->nrows == 1)
		appendBinaryStringInfo(out, run->first.data, run->first.len);
	else if (run->kind == RunKind::kDelete) {
		appendBinaryStringInfo(out, run->head.data, run->head.len);
		appendStringInfoString(out, " USING (VALUES ");
		appendBinaryStringInfo(out, run->rows.data, run->rows.len);
		appendStringInfoChar(out, ')');
		appendBinaryStringInfo(out, run->tail.data, run->tail.len);
		append_condition(out, run->commit_lsn);
		appendStringInfoChar(out, ';');
	} else if (run->columnar && run->nrows == 1)
		appendBinaryStringInfo(out, run->first.data, run->first.len);
	else if (run->columnar && run->binary) {
		write_binary_run(out, run);
		output_emit(state);
		run_discard(state);
		return;
	} else if (run->columnar) {
		StringInfoSink sink{out};
		appendBinaryStringInfo(out, run->head.data, run->head.len);
		/* Every array has nrows elements: the unnests end together. */
		appendStringInfoString(out, " SELECT ");
		for (int j = 0; j < run->ncols; j++) {
			StringInfo col = &run->cols[j];
			appendStringInfoString(out, j > 0 ? ", pg_catalog.unnest(" : "pg_catalog.unnest(");
			appendStringInfoChar(col, '}');
			text::append_sql_literal_one_line(sink, std::string_view(col->data, col->len));
			appendStringInfoString(out, run->casts[j]);
			appendStringInfoChar(out, ')');
		}
		append_condition(out, run->commit_lsn, " WHERE ");
		appendBinaryStringInfo(out, run->tail.data, run->tail.len);
	} else {
		appendBinaryStringInfo(out, run->head.data, run->head.len);
		if (run->nrows == 1) {
			/* "(v, v)" without its parentheses: the single-row form */
			appendStringInfoString(out, " SELECT ");
			appendBinaryStringInfo(out, run->rows.data + 1, run->rows.len - 2);
		} else {
			appendStringInfoString(out, " SELECT * FROM (VALUES ");
			appendBinaryStringInfo(out, run->rows.data, run->rows.len);
			appendStringInfoString(out, ") AS v");
		}
		append_condition(out, run->commit_lsn, " WHERE ");
		appendBinaryStringInfo(out, run->tail.data, run->tail.len);
	}
	/* How many changes the statement applies, for consumers that count them (the shipper). */
	if (run->nrows > 1)
		appendStringInfo(out, " /* %d changes */", run->nrows);
	output_emit(state);
	run_discard(state);
}

void
add_upsert(DecodeState *state, const Change *c)
{
	const RelInfo *rel = c->rel;
	bool keyed = rel->nkeys > 0;

	/* Keys whose equality is not that of their literals: one row per statement. */
	if (!batching(state) || (keyed && !rel->keys_text_exact)) {
		run_flush(state);
		write_upsert(state, c);
		return;
	}
	StringInfoData head, tail;
	initStringInfo(&head);
	append_upsert_head(&head, state, c);
	initStringInfo(&tail);
	append_upsert_tail(&tail, state, c);
	bool columnar = true;
	for (int i = 0; i < rel->natts; i++)
		columnar &= !in_column_list(state, c, i) || rel->columns[i].in_array;
	SqlRun *run = get_run(state);
	if (run->nrows == 0 || run->columnar != columnar ||
		!run_has_shape(run, RunKind::kUpsert, &head, &tail) ||
		(columnar && !run_has_casts(run, state, c))) {
		run_flush(state);
		run_start(state, RunKind::kUpsert, &head, &tail);
		if (columnar)
			run_start_columnar(state, c);
	}
	if (columnar) {
		add_upsert_columnar(state, c, &head, &tail);
		return;
	}

	int before = run->rows.len;
	if (run->nrows > 0)
		appendStringInfoString(&run->rows, ", ");
	int start = run->rows.len;
	appendStringInfoChar(&run->rows, '(');
	uint64 key = append_upsert_values(&run->rows, state, c);
	appendStringInfoChar(&run->rows, ')');
	if (run->nrows > 0 &&
		(run->rows.len > state->batch_bytes || (keyed && !run_add_key(state, key)))) {
		run_split(state, before, start);
		run = state->run;
	}
	if (run->nrows == 0 && keyed)
		(void) run_add_key(state, key);
	run_added(state);
}

void
add_delete(DecodeState *state, const Change *c, const char *op, bool guard_with_old)
{
	const RelInfo *rel = c->rel;
	bool batchable = batching(state) && rel->nkeys > 0 && c->old_values != nullptr;
	for (int k = 0; batchable && k < rel->nkeys; k++)
		batchable = !c->old_nulls[rel->keys[k] - 1];
	if (!batchable) {
		run_flush(state);
		write_delete(state, c, op, guard_with_old);
		return;
	}
	AttrNumber v = rel->version_attnum;
	const Datum *vvalues = guard_with_old ? c->old_values : c->new_values;
	const bool *vnulls = guard_with_old ? c->old_nulls : c->new_nulls;
	bool versioned = v != 0 && vvalues != nullptr && !vnulls[v - 1];

	StringInfoData head, tail;
	initStringInfo(&head);
	appendStringInfo(&head, "DELETE FROM %s AS target", rel->sql_name);
	initStringInfo(&tail);
	appendStringInfoString(&tail, " AS v(");
	for (int k = 0; k < rel->nkeys + (versioned ? 1 : 0); k++)
		appendStringInfo(&tail, "%sc%d", k > 0 ? ", " : "", k + 1);
	appendStringInfoString(&tail, ") WHERE ");
	for (int k = 0; k < rel->nkeys; k++)
		appendStringInfo(&tail, "%starget.%s %s v.c%d", k > 0 ? " AND " : "",
						 rel->columns[rel->keys[k] - 1].sql_ident,
						 key_equality(state, &rel->columns[rel->keys[k] - 1]), k + 1);
	if (versioned)
		appendStringInfo(&tail, " AND target.\"version\" %s v.c%d", op, rel->nkeys + 1);

	SqlRun *run = get_run(state);
	if (run->nrows == 0 || !run_has_shape(run, RunKind::kDelete, &head, &tail)) {
		run_flush(state);
		run_start(state, RunKind::kDelete, &head, &tail);
	}

	int before = run->rows.len;
	if (run->nrows > 0)
		appendStringInfoString(&run->rows, ", ");
	int start = run->rows.len;
	appendStringInfoChar(&run->rows, '(');
	for (int k = 0; k < rel->nkeys; k++) {
		int i = rel->keys[k] - 1;
		if (k > 0)
			appendStringInfoString(&run->rows, ", ");
		append_sql_value(&run->rows, state, &rel->columns[i], c->old_values[i]);
	}
	if (versioned)
		appendStringInfo(&run->rows, ", " INT64_FORMAT, DatumGetInt64(vvalues[v - 1]));
	appendStringInfoChar(&run->rows, ')');
	if (run->nrows > 0 && run->rows.len > state->batch_bytes) {
		run_split(state, before, start);
		run = state->run;
	}
	if (run->nrows == 0)
		build_delete(&run->first, state, c, op, guard_with_old);
	run_added(state);
}

} // namespace sql

void
hold_runs_across_commits(LogicalDecodingContext *ctx)
{
	static_cast<DecodeState *>(ctx->output_plugin_private)->runs_span_commits = true;
}

void
send_runs_binary(LogicalDecodingContext *ctx)
{
	static_cast<DecodeState *>(ctx->output_plugin_private)->binary_runs = true;
}

/* Called between decoded records, where the context takes no writes: it does for this one. */
void
flush_open_run(LogicalDecodingContext *ctx)
{
	DecodeState *state = static_cast<DecodeState *>(ctx->output_plugin_private);
	if (state->run == nullptr || state->run->nrows == 0)
		return;
	bool accept_writes = ctx->accept_writes;
	ctx->accept_writes = true;
	PG_TRY();
	{
		sql::run_flush(state);
	}
	PG_FINALLY();
	{
		ctx->accept_writes = accept_writes;
	}
	PG_END_TRY();
}

} // namespace edgesync::decode
