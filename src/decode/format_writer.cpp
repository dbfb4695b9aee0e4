/*
 * format_writer.cpp — the writers of each output format, as one table per
 * format, chosen once per session (format_writer()).
 *
 * The plugin's callbacks (plugin.cpp) and the shipper's resync
 * (src/ship/resync.cpp) write through the same table, so a change is written
 * the same way whether it was decoded or read from the table.
 */
#include "decode/decode.hpp"
#include "decode/options.hpp"

namespace edgesync::decode {

namespace {

void
json_truncate(DecodeState *state, const TruncatedTables *t)
{
	json_write_truncate(state, t->n, t->schemas, t->tables, t->cascade, t->restart_identity);
}

void
json_schema_change(DecodeState *state, const SchemaChange *c)
{
	json_write_schema_change(state, c->rel, c->change, c->old_name, c->new_name, c->old_schema);
}

void
sql_truncate(DecodeState *state, const TruncatedTables *t)
{
	sql_write_truncate(state, t->n, t->rels, t->relations, t->alone, t->cascade,
					   t->restart_identity);
}

void
sql_schema_change(DecodeState *state, const SchemaChange *c)
{
	sql_write_schema_change(state, c->relation, c->rel, c->change, c->old_name, c->new_name,
							c->old_schema);
}

const FormatWriter json_writer = {json_write_begin, json_write_commit,	json_write_change,
								  json_truncate,	json_schema_change, json_write_message};

/* The sql format applies rows; logical messages have nothing to apply. */
const FormatWriter sql_writer = {sql_write_begin, sql_write_commit,	 sql_write_change,
								 sql_truncate,	  sql_schema_change, nullptr};

} // namespace

const FormatWriter *
format_writer(int format)
{
	return format == static_cast<int>(Format::kSql) ? &sql_writer : &json_writer;
}

} // namespace edgesync::decode
