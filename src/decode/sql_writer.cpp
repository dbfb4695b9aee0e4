/*
 * sql_writer.cpp — the sql format: each transaction as SQL that applies it
 * to a replica idempotently, in plain SQL (nothing of edgesync need be
 * installed there: docs/replica.md, "What a replica needs").
 *
 *   BEGIN;
 *   DO $edgesync$ ... $edgesync$;                 (setup: once per session)
 *   WITH edgesync_guard AS (...) INSERT INTO "edgesync"."applied_lsn" ...;
 *   DO $edgesync$ ... $edgesync$;                 (table block: first write of a table)
 *   INSERT INTO "public"."patients" AS target ("id","name","version")
 *     OVERRIDING SYSTEM VALUE SELECT 1, 'Ann'::pg_catalog.text, 1::pg_catalog.int8
 *     WHERE '0/1A2B3C8'::pg_catalog.pg_lsn OPERATOR(pg_catalog.>) <skip_through>
 *     ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name", "version" = EXCLUDED."version"
 *     WHERE target."version" OPERATOR(pg_catalog.<) EXCLUDED."version";
 *   COMMIT;
 *
 * (each statement on one line).  The guard (replica_sql.hpp) records the
 * transaction's commit LSN for this source on the replica and puts the LSN
 * recorded before into the setting edgesync_apply.skip_through; every
 * statement applies only if its transaction's LSN is beyond it, so a
 * replayed transaction changes nothing.  Upserts and deletes are also
 * guarded by the row's version.
 *
 * Columns left out: generated (cannot be written), redacted (the replica
 * keeps its own), and TOASTed values the WAL did not carry (unchanged); an
 * update with such a column becomes a plain UPDATE of the columns it has.
 *
 * This file writes the statements of one change each; runs of changes
 * written as one multi-row statement are in sql_runs.cpp (what the two
 * share: sql_writer_internal.hpp), table blocks in sql_tables.cpp.
 */
#include "core/guard.hpp"
#include "decode/sql_writer_internal.hpp"

#include "decode/replica_sql.hpp"

extern "C" {
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/ruleutils.h"
}

namespace edgesync::decode::sql {

namespace {

void
append_value_or_null(StringInfo out, const DecodeState *state, const ColumnInfo *col, bool isnull,
					 Datum value)
{
	if (isnull) {
		appendStringInfoString(out, "NULL::");
		appendStringInfoString(out, col->sql_type);
	} else
		append_sql_value(out, state, col, value);
}

/*
 * The columns a statement finds the row by: the primary key, of the new
 * tuple or (use_old) of the old one; an old tuple without the whole primary
 * key (REPLICA IDENTITY USING INDEX on another index) has the identity
 * index's columns instead.
 */
void
key_columns(const Change *c, bool use_old, const AttrNumber **attnums, int *n)
{
	const RelInfo *rel = c->rel;
	*attnums = rel->keys;
	*n = rel->nkeys;
	if (use_old) {
		bool complete = rel->nkeys > 0;
		for (int k = 0; k < rel->nkeys; k++)
			complete &= !c->old_nulls[rel->keys[k] - 1];
		if (!complete) {
			*attnums = rel->identity;
			*n = rel->nidentity;
		}
	}
}

/* target."k1" = v1 AND target."k2" = v2 from the given tuple's values. */
void
append_key_condition(StringInfo out, const DecodeState *state, const Change *c, bool use_old)
{
	const RelInfo *rel = c->rel;
	const Datum *values = use_old ? c->old_values : c->new_values;
	const bool *nulls = use_old ? c->old_nulls : c->new_nulls;
	const AttrNumber *attnums;
	int n;

	key_columns(c, use_old, &attnums, &n);
	for (int k = 0; k < n; k++) {
		int i = attnums[k] - 1;
		const ColumnInfo *col = &rel->columns[i];
		if (k > 0)
			appendStringInfoString(out, " AND ");
		appendStringInfoString(out, "target.");
		appendStringInfoString(out, col->sql_ident);
		if (nulls[i])
			appendStringInfoString(out, " IS NULL");
		else {
			appendStringInfoChar(out, ' ');
			appendStringInfoString(out, key_equality(state, col));
			appendStringInfoChar(out, ' ');
			append_sql_value(out, state, col, values[i]);
		}
	}
	if (n == 0)
		appendStringInfoString(out, "false");
}

/* AND target."version" <op> N, if the version is known. */
void
append_version_guard(StringInfo out, const Change *c, const char *op, bool use_old)
{
	AttrNumber v = c->rel->version_attnum;
	const Datum *values = use_old ? c->old_values : c->new_values;
	const bool *nulls = use_old ? c->old_nulls : c->new_nulls;
	if (v == 0 || values == nullptr || nulls[v - 1])
		return;
	appendStringInfo(out, " AND target.\"version\" %s " INT64_FORMAT, op,
					 DatumGetInt64(values[v - 1]));
}

/* An update whose row is incomplete (unchanged TOAST): only the columns it has. */
void
write_update(DecodeState *state, const Change *c)
{
	const RelInfo *rel = c->rel;
	output_begin(state);
	StringInfo out = state->output->buf;
	bool first = true;

	appendStringInfo(out, "UPDATE %s AS target SET ", rel->sql_name);
	for (int i = 0; i < rel->natts; i++) {
		if (!in_column_list(state, c, i) || (rel->columns[i].is_key && !c->key_changed))
			continue;
		if (!first)
			appendStringInfoString(out, ", ");
		first = false;
		appendStringInfo(out, "%s = ", rel->columns[i].sql_ident);
		append_value_or_null(out, state, &rel->columns[i], c->new_nulls[i], c->new_values[i]);
	}
	appendStringInfoString(out, " WHERE ");
	append_key_condition(out, state, c, c->key_changed);
	append_version_guard(out, c, kVersionLess, false);
	append_condition(out, state->commit_lsn);
	appendStringInfoChar(out, ';');
	output_emit(state);
}

/* "an insert into", "an update of", "a delete from": for the comment lines below. */
const char *
change_kind(const Change *c)
{
	return c->action == REORDER_BUFFER_CHANGE_INSERT   ? "an insert into"
		   : c->action == REORDER_BUFFER_CHANGE_UPDATE ? "an update of"
													   : "a delete from";
}

/* The first of the columns the change's statements find rows by that is redacted, or nullptr. */
const ColumnInfo *
redacted_key(const DecodeState *state, const Change *c)
{
	const RelInfo *rel = c->rel;
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: the new row's key (insert, update); pass 1: the old one (delete, key change). */
		bool use_old = pass == 1;
		if (use_old ? c->action != REORDER_BUFFER_CHANGE_DELETE && !c->key_changed
					: c->new_values == nullptr)
			continue;
		const AttrNumber *attnums;
		int n;
		key_columns(c, use_old, &attnums, &n);
		for (int k = 0; k < n; k++) {
			const ColumnInfo *col = &rel->columns[attnums[k] - 1];
			if (effective_policy(state, col) == Policy::kRedact)
				return col;
		}
	}
	return nullptr;
}

/*
 * In place of a change that cannot be applied, a comment line saying so:
 *   -- edgesync: a delete from "s"."t" cannot be applied: <why>
 * (names through the one quoting function: the line cannot be ended early).
 */
void
write_not_applied(DecodeState *state, const Change *c, const char *why, const ColumnInfo *col)
{
	run_flush(state);
	output_begin(state);
	StringInfo out = state->output->buf;
	appendStringInfo(out, "-- edgesync: %s %s cannot be applied: ", change_kind(c),
					 c->rel->sql_name);
	if (col != nullptr)
		appendStringInfo(out, "column %s %s", col->sql_ident, why);
	else
		appendStringInfoString(out, why);
	output_emit(state);
}

/*
 * Before a change written without its too large values, a comment line
 * naming them: -- edgesync: an update of "s"."t" is applied without "c": ...
 */
void
write_left_out(DecodeState *state, const Change *c)
{
	run_flush(state);
	output_begin(state);
	StringInfo out = state->output->buf;
	appendStringInfo(out, "-- edgesync: %s %s is applied without ", change_kind(c),
					 c->rel->sql_name);
	bool first = true;
	for (int i = 0; i < c->rel->natts; i++) {
		if (!c->too_large[i] || !in_column_list(state, c, i, true))
			continue;
		appendStringInfoString(out, first ? "column " : ", ");
		appendStringInfoString(out, c->rel->columns[i].sql_ident);
		first = false;
	}
	appendStringInfoString(out, ": its value is too large for the sql format");
	output_emit(state);
}

} // namespace

void
append_condition(StringInfo out, const char *commit_lsn, const char *prefix)
{
	StringInfoSink sink{out};
	appendStringInfoString(out, prefix);
	replica::append_apply_condition(sink, commit_lsn);
}

bool
in_column_list(const DecodeState *state, const Change *c, int i, bool with_too_large)
{
	const ColumnInfo *col = &c->rel->columns[i];
	return !col->dropped && !col->generated && effective_policy(state, col) != Policy::kRedact &&
		   (c->unchanged == nullptr || !c->unchanged[i]) &&
		   (with_too_large || c->too_large == nullptr || !c->too_large[i]);
}

/* The single-row DELETE of a change (op and guard: see sql_write_change). */
void
build_delete(StringInfo out, DecodeState *state, const Change *c, const char *op,
			 bool guard_with_old)
{
	appendStringInfo(out, "DELETE FROM %s AS target WHERE ", c->rel->sql_name);
	append_key_condition(out, state, c, true);
	append_version_guard(out, c, op, guard_with_old);
	append_condition(out, state->commit_lsn);
	appendStringInfoChar(out, ';');
}

void
write_delete(DecodeState *state, const Change *c, const char *op, bool guard_with_old)
{
	output_begin(state);
	build_delete(state->output->buf, state, c, op, guard_with_old);
	output_emit(state);
}

/* INSERT INTO "s"."t" AS target ("c1","c2") */
void
append_upsert_head(StringInfo out, const DecodeState *state, const Change *c)
{
	const RelInfo *rel = c->rel;
	bool first = true;

	appendStringInfo(out, "INSERT INTO %s AS target (", rel->sql_name);
	for (int i = 0; i < rel->natts; i++) {
		if (!in_column_list(state, c, i))
			continue;
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		appendStringInfoString(out, rel->columns[i].sql_ident);
	}
	/* A replica key made GENERATED ALWAYS AS IDENTITY takes the hospital's values. */
	appendStringInfoString(out, ") OVERRIDING SYSTEM VALUE");
}

/*
 * v1, v2: the new row's values.  Returns a hash of the primary key's
 * literals (a run holds a key at most once, see add_upsert).
 */
uint64
append_upsert_values(StringInfo out, const DecodeState *state, const Change *c)
{
	const RelInfo *rel = c->rel;
	bool first = true;
	uint64 key_hash = 0;

	for (int i = 0; i < rel->natts; i++) {
		if (!in_column_list(state, c, i))
			continue;
		if (!first)
			appendStringInfoString(out, ", ");
		first = false;
		int start = out->len;
		append_value_or_null(out, state, &rel->columns[i], c->new_nulls[i], c->new_values[i]);
		if (rel->columns[i].is_key)
			key_hash =
				hash_bytes_extended(reinterpret_cast<const unsigned char *>(out->data) + start,
									out->len - start, key_hash + 1);
	}
	return key_hash;
}

/*
 * ON CONFLICT ("k") DO UPDATE SET ...
 *   WHERE target."version" OPERATOR(pg_catalog.<) EXCLUDED."version";
 */
void
append_upsert_tail(StringInfo out, const DecodeState *state, const Change *c)
{
	const RelInfo *rel = c->rel;
	bool first;

	if (rel->nkeys > 0) {
		appendStringInfoString(out, " ON CONFLICT (");
		for (int k = 0; k < rel->nkeys; k++) {
			if (k > 0)
				appendStringInfoChar(out, ',');
			appendStringInfoString(out, rel->columns[rel->keys[k] - 1].sql_ident);
		}
		appendStringInfoString(out, ") DO ");
		first = true;
		for (int i = 0; i < rel->natts; i++) {
			if (!in_column_list(state, c, i) || rel->columns[i].is_key)
				continue;
			appendStringInfoString(out, first ? "UPDATE SET " : ", ");
			first = false;
			appendStringInfo(out, "%s = EXCLUDED.%s", rel->columns[i].sql_ident,
							 rel->columns[i].sql_ident);
		}
		if (first)
			appendStringInfoString(out, "NOTHING");
		else if (rel->version_attnum > 0 && in_column_list(state, c, rel->version_attnum - 1))
			appendStringInfo(out, " WHERE target.\"version\" %s EXCLUDED.\"version\"",
							 kVersionLess);
	}
	appendStringInfoChar(out, ';');
}

/* One change's upsert as its own statement. */
void
build_upsert(StringInfo out, const DecodeState *state, const Change *c)
{
	append_upsert_head(out, state, c);
	appendStringInfoString(out, " SELECT ");
	(void) append_upsert_values(out, state, c);
	append_condition(out, state->commit_lsn, " WHERE ");
	append_upsert_tail(out, state, c);
}

void
write_upsert(DecodeState *state, const Change *c)
{
	output_begin(state);
	build_upsert(state->output->buf, state, c);
	output_emit(state);
}

} // namespace edgesync::decode::sql

namespace edgesync::decode {

void
sql_write_begin(DecodeState *state)
{
	/* Left over from a transaction that failed (held across commits: the one before). */
	if (!state->runs_span_commits)
		sql::run_discard(state);
	output_begin(state);
	appendStringInfoString(state->output->buf, "BEGIN;");
	output_emit(state);

	const char *schema =
		state->replica_schema != nullptr ? state->replica_schema : replica::kDefaultSchema;
	if (!state->setup_written) {
		/* The position table and the role's replica mode, before the session's first guard. */
		char *setup = guarded([&]() -> char * {
			std::string text = replica::setup_statement(schema);
			return pg_call([&] { return pstrdup(text.c_str()); });
		});
		output_begin(state);
		appendStringInfoString(state->output->buf, setup);
		output_emit(state);
		state->setup_written = true;
	}
	char *guard = guarded([&]() -> char * {
		std::string text = replica::guard_statement(schema, state->source, state->commit_lsn);
		return pg_call([&] { return pstrdup(text.c_str()); });
	});
	output_begin(state);
	appendStringInfoString(state->output->buf, guard);
	output_emit(state);
}

void
sql_write_commit(DecodeState *state)
{
	if (!state->runs_span_commits)
		sql::run_flush(state);
	output_begin(state);
	appendStringInfoString(state->output->buf, "COMMIT;");
	output_emit(state);
}

void
sql_write_change(DecodeState *state, const Change *c)
{
	/* The replica's table, as this change sees it, before its first statement. */
	sql::ensure_table(state, c->relation, c->rel);
	if (c->action == REORDER_BUFFER_CHANGE_DELETE && c->old_values == nullptr) {
		/* REPLICA IDENTITY NOTHING: no key to delete by; say so in the stream. */
		sql::write_not_applied(state, c, "the table has REPLICA IDENTITY NOTHING", nullptr);
		return;
	}
	/*
	 * A redacted column never leaves, not even in a WHERE clause: a change
	 * that can find its row only by one (a replica identity index set on it
	 * after its policy, a policy put in the catalog by other means) is not
	 * applied, and the stream says so.
	 */
	if (const ColumnInfo *col = sql::redacted_key(state, c)) {
		sql::write_not_applied(state, c, "identifies the row and is redacted", col);
		return;
	}
	/* Values over the output limit (limit_change_size) are left out, like unchanged TOAST. */
	if (c->too_large != nullptr)
		sql::write_left_out(state, c);
	switch (c->action) {
	case REORDER_BUFFER_CHANGE_INSERT:
		sql::add_upsert(state, c);
		return;
	case REORDER_BUFFER_CHANGE_UPDATE: {
		bool complete = true;
		for (int i = 0; i < c->natts; i++)
			complete &= !c->unchanged[i] && (c->too_large == nullptr || !c->too_large[i]);
		if (!complete) {
			sql::run_flush(state);
			sql::write_update(state, c);
			return;
		}
		/* A new key: the row under the old key goes, unless it is newer. */
		if (c->key_changed)
			sql::add_delete(state, c, kVersionLess, false);
		sql::add_upsert(state, c);
		return;
	}
	case REORDER_BUFFER_CHANGE_DELETE:
		sql::add_delete(state, c, kVersionAtMost, true);
		return;
	default:
		return;
	}
}

/*
 * A truncate, under the apply condition: a DO block that truncates the
 * tracked tables, and deletes the rows of a partition truncated alone from
 * its tracked table's (the replica's table holds every partition's rows):
 * the partition's constraint, as the hospital's catalog deparses it, says
 * which.
 */
void
sql_write_truncate(DecodeState *state, int n, const RelInfo **rels, Relation *relations,
				   const bool *alone, bool cascade, bool restart_identity)
{
	sql::run_flush(state);
	for (int i = 0; i < n; i++)
		sql::ensure_table(state, relations[i], rels[i]);

	StringInfoData body;
	initStringInfo(&body);
	StringInfoSink sink{&body};
	appendStringInfoString(&body, "BEGIN IF ");
	sql::append_condition(&body, state->commit_lsn, "");
	appendStringInfoString(&body, " THEN ");
	bool first = true;
	for (int i = 0; i < n; i++) {
		if (alone[i])
			continue;
		appendStringInfoString(&body, first ? "TRUNCATE " : ", ");
		first = false;
		appendStringInfoString(&body, rels[i]->sql_name);
	}
	if (!first)
		appendStringInfo(&body, "%s%s; ", restart_identity ? " RESTART IDENTITY" : "",
						 cascade ? " CASCADE" : "");
	for (int i = 0; i < n; i++) {
		if (!alone[i])
			continue;
		/* Deparsed with every name qualified outside pg_catalog, run as written. */
		int level = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		Oid relid = RelationGetRelid(relations[i]);
		Expr *qual = get_partition_qual_relid(relid);
		char *condition =
			qual == nullptr
				? nullptr
				: deparse_expression(reinterpret_cast<Node *>(qual),
									 deparse_context_for(get_rel_name(relid), relid), false, false);
		AtEOXact_GUC(true, level);
		StringInfoData statement;
		initStringInfo(&statement);
		appendStringInfo(&statement, "DELETE FROM %s", rels[i]->sql_name);
		/* (A default partition alone in its table has no constraint: every row.) */
		if (condition != nullptr)
			appendStringInfo(&statement, " WHERE %s", condition);
		appendStringInfoString(&body, "EXECUTE ");
		replica::append_clean_literal(sink, std::string_view(statement.data, statement.len));
		appendStringInfoString(&body, "; ");
	}
	appendStringInfoString(&body, "END IF; END");

	char *block = guarded([&]() -> char * {
		std::string text = replica::do_block(std::string_view(body.data, body.len));
		return pg_call([&] { return pstrdup(text.c_str()); });
	});
	output_begin(state);
	appendStringInfoString(state->output->buf, block);
	output_emit(state);
}

void
omit_session_setup(LogicalDecodingContext *ctx)
{
	static_cast<DecodeState *>(ctx->output_plugin_private)->setup_written = true;
}

} // namespace edgesync::decode
