/*
 * sql_tables.cpp — the sql format's table blocks: a replica's table kept in
 * step with the hospital's, from the stream itself (replica_sql.hpp builds
 * the DO block; docs/replica.md says what it does).
 *
 * A block describes the table as the change it comes with sees it: its
 * columns under their policy (a hashed column is text, a redacted one takes
 * NULL), the values the hospital's existing rows took for a column added
 * with a default (its missing value, under the column's policy too), and its
 * key.  One is written before a table's first statement in a decoding
 * session, again when the table's shape changes within it, and for every
 * schema change captured on the hospital (sql_schema.cpp).
 *
 * Plain C-style code that may ereport(ERROR); the block itself is built by
 * pure C++ under guarded().
 */
#include "core/guard.hpp"
#include "decode/replica_sql.hpp"
#include "decode/sql_writer_internal.hpp"

extern "C" {
#include "access/tupdesc_details.h"
}

namespace edgesync::decode::sql {

namespace {

/* What the column is on the replica: its value's type there (text when hashed). */
const char *
replica_type(const DecodeState *state, const ColumnInfo *col, int32 *typmod)
{
	if (effective_policy(state, col) == Policy::kHash) {
		*typmod = -1;
		return "pg_catalog.text";
	}
	*typmod = col->typmod;
	return col->sql_type;
}

bool
listed(const char *name, int n, const char **names)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

std::vector<std::string>
strings(int n, const char **values)
{
	std::vector<std::string> out;
	for (int i = 0; i < n; i++)
		out.emplace_back(values[i]);
	return out;
}

} // namespace

void
write_table_block(DecodeState *state, Relation relation, const RelInfo *rel, const TableEdit *edit)
{
	static const TableEdit none = {};
	if (edit == nullptr)
		edit = &none;
	run_flush(state);

	/* What needs PostgreSQL first: the values existing rows took, written under their policy. */
	TupleDesc desc = RelationGetDescr(relation);
	const char **fills = static_cast<const char **>(palloc0(sizeof(char *) * (rel->natts + 1)));
	const char **types = static_cast<const char **>(palloc0(sizeof(char *) * (rel->natts + 1)));
	int32 *typmods = static_cast<int32 *>(palloc0(sizeof(int32) * (rel->natts + 1)));
	for (int i = 0; i < rel->natts; i++) {
		const ColumnInfo *col = &rel->columns[i];
		if (col->dropped)
			continue;
		types[i] = replica_type(state, col, &typmods[i]);
		AttrMissing *missing = desc->constr != nullptr ? desc->constr->missing : nullptr;
		if (missing == nullptr || !missing[i].am_present || col->generated ||
			effective_policy(state, col) == Policy::kRedact)
			continue;
		StringInfoData fill;
		initStringInfo(&fill);
		append_sql_value(&fill, state, col, missing[i].am_value);
		fills[i] = fill.data;
	}

	char *block = guarded([&]() -> char * {
		replica::TableShape shape;
		shape.schema = rel->replica_schema;
		shape.table = rel->table;
		for (int i = 0; i < rel->natts; i++) {
			const ColumnInfo *col = &rel->columns[i];
			if (col->dropped)
				continue;
			Policy policy = effective_policy(state, col);
			replica::TableShape::Column c;
			c.name = col->name;
			c.type = types[i];
			c.typmod = typmods[i];
			c.not_null = (col->not_null || col->is_key) && policy != Policy::kRedact;
			if (col->generated && col->generation != nullptr && policy == Policy::kReplicate)
				c.generated = col->generation;
			if (fills[i] != nullptr)
				c.fill = fills[i];
			/* Added by this change, or merely missing where a missing value says what rows have. */
			c.added_here = listed(col->name, edit->nadded, edit->added) || fills[i] != nullptr;
			shape.columns.push_back(std::move(c));
		}
		for (int k = 0; k < rel->nkeys; k++)
			shape.key.emplace_back(rel->columns[rel->keys[k] - 1].name);

		replica::TableChange change;
		if (edit->old_table != nullptr)
			change.renamed_from =
				std::make_pair(std::string(edit->old_schema), std::string(edit->old_table));
		for (int i = 0; i < edit->nrenamed; i++)
			change.renamed_columns.emplace_back(edit->renamed_from[i], edit->renamed_to[i]);
		change.dropped_columns = strings(edit->ndropped, edit->dropped);
		change.retyped_columns = strings(edit->nretyped, edit->retyped);
		/* A hashed column is text on the replica, also when its policy came later. */
		for (int i = 0; i < rel->natts; i++)
			if (!rel->columns[i].dropped &&
				effective_policy(state, &rel->columns[i]) == Policy::kHash &&
				!listed(rel->columns[i].name, edit->nretyped, edit->retyped))
				change.retyped_columns.emplace_back(rel->columns[i].name);

		std::string text = replica::table_block(shape, change,
												state->schema_check ? replica::SchemaMode::kCheck
																	: replica::SchemaMode::kApply,
												state->commit_lsn);
		return pg_call([&] { return pstrdup(text.c_str()); });
	});

	output_begin(state);
	appendStringInfoString(state->output->buf, block);
	output_emit(state);

	if (state->ensured != nullptr) {
		bool found;
		EnsuredTable *e = static_cast<EnsuredTable *>(
			hash_search(state->ensured, &rel->root, HASH_ENTER, &found));
		e->shape = rel->shape_hash;
	}
}

void
ensure_table(DecodeState *state, Relation relation, const RelInfo *rel)
{
	if (state->ensured == nullptr)
		return; /* (a writer's state without a session: the shipper's re-send, which writes its own)
				 */
	EnsuredTable *e =
		static_cast<EnsuredTable *>(hash_search(state->ensured, &rel->root, HASH_FIND, nullptr));
	if (e != nullptr && e->shape == rel->shape_hash)
		return;
	write_table_block(state, relation, rel, nullptr);
}

} // namespace edgesync::decode::sql

namespace edgesync::decode {

void
sql_write_table(DecodeState *state, Relation relation, const RelInfo *rel)
{
	sql::write_table_block(state, relation, rel, nullptr);
}

void
sql_write_schema_change(DecodeState *state, Relation relation, const RelInfo *rel,
						const char *change, const char *old_name, const char *new_name,
						const char *old_schema)
{
	sql::TableEdit edit = {};
	if (strcmp(change, "rename_column") == 0 && new_name != nullptr) {
		edit.nrenamed = 1;
		edit.renamed_from = &old_name;
		edit.renamed_to = &new_name;
	} else if (strcmp(change, "drop_column") == 0) {
		edit.ndropped = 1;
		edit.dropped = &old_name;
	} else if (strcmp(change, "alter_type") == 0) {
		edit.nretyped = 1;
		edit.retyped = &old_name;
	} else if (strcmp(change, "rename_table") == 0 && old_schema != nullptr) {
		/* On the replica the old table is in the replica schema, if the option names one. */
		edit.old_schema = state->replica_schema != nullptr ? state->replica_schema : old_schema;
		edit.old_table = old_name;
	} else
		return;
	sql::write_table_block(state, relation, rel, &edit);
}

} // namespace edgesync::decode
