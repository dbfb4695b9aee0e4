/*
 * json_writer.cpp — the json format: one JSON object per line.
 *
 *   {"op":"insert","schema":"public","table":"patients","pk":{"id":1},
 *    "version":1,"row":{"id":1,"name":"Ann",...},"seq":1,"xid":742,
 *    "commit_lsn":"0/1A2B3C8","commit_time":"2026-11-28T20:13:08.123456+00:00"}
 *
 * Keys and value classes are specified in docs/output-format.md.  Every
 * object is written with one OutputPluginPrepareWrite/OutputPluginWrite pair
 * and contains no raw newline.
 */
#include "core/pg_compat.hpp"
#include "decode/decode.hpp"

extern "C" {
#include "common/base64.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
}

namespace edgesync::decode {

namespace {

/* ,"seq":N,"xid":X,"commit_lsn":"..","commit_time":".."} */
void
append_txn_tail(StringInfo out, const DecodeState *state, bool with_seq)
{
	if (with_seq) {
		char buf[MAXINT8LEN + 1];
		appendBinaryStringInfo(out, ",\"seq\":", 7);
		appendBinaryStringInfo(out, buf, pg_ulltoa_n(state->seq, buf));
	}
	appendBinaryStringInfo(out, state->json_tail, state->json_tail_len);
}

const char *
op_name(ReorderBufferChangeType action)
{
	switch (action) {
	case REORDER_BUFFER_CHANGE_INSERT:
		return "insert";
	case REORDER_BUFFER_CHANGE_UPDATE:
		return "update";
	case REORDER_BUFFER_CHANGE_DELETE:
		return "delete";
	default:
		return "unknown";
	}
}

/*
 * The key of a change: for deletes and key-changing updates the old key;
 * when the old tuple lacks the primary key (REPLICA IDENTITY USING INDEX on
 * another index) the replica identity columns it carries.
 */
void
key_source(const Change *c, const Datum **values, const bool **nulls, const AttrNumber **attnums,
		   int *n)
{
	const RelInfo *rel = c->rel;
	if (c->old_values != nullptr) {
		bool complete = rel->nkeys > 0;
		for (int k = 0; k < rel->nkeys; k++)
			complete &= !c->old_nulls[rel->keys[k] - 1];
		if (complete || c->new_values == nullptr) {
			*values = c->old_values;
			*nulls = c->old_nulls;
			*attnums = complete ? rel->keys : rel->identity;
			*n = complete ? rel->nkeys : rel->nidentity;
			return;
		}
	}
	*values = c->new_values;
	*nulls = c->new_nulls;
	*attnums = rel->keys;
	*n = rel->nkeys;
}

void
append_key(StringInfo out, const DecodeState *state, const Change *c)
{
	const Datum *values;
	const bool *nulls;
	const AttrNumber *attnums;
	int n;
	bool json_null = false;
	bool too_large = false; /* (keys are small: btree entries) */

	if (c->new_values == nullptr && c->old_values == nullptr) {
		/* A delete under REPLICA IDENTITY NOTHING: the WAL has no key. */
		appendStringInfoString(out, ",\"pk\":null");
		return;
	}
	key_source(c, &values, &nulls, &attnums, &n);
	appendStringInfoString(out, ",\"pk\":{");
	for (int k = 0; k < n; k++) {
		int i = attnums[k] - 1;
		const ColumnInfo *col = &c->rel->columns[i];
		if (k > 0)
			appendStringInfoChar(out, ',');
		appendStringInfoString(out, col->json_key);
		if (nulls[i])
			appendStringInfoString(out, "null");
		else
			append_json_value(out, state, col, values[i], &json_null, &too_large);
	}
	appendStringInfoChar(out, '}');
}

/*
 * One part of a qualified name as regclass output and parse_ident() have it:
 * bare where SQL needs no quotes (quote_identifier() decides), otherwise
 * quoted by the one quoting function; the JSON string around it escapes
 * control characters.
 */
void
append_name_for_parser(StringInfo out, const char *name)
{
	if (quote_identifier(name) == name) {
		appendStringInfoString(out, name);
		return;
	}
	StringInfoSink sink{out};
	text::append_sql_identifier(sink, name, text::IdentifierUse::kInString);
}

/* A JSON array of column names: ,"key":["a","b"] */
void
append_name_list(StringInfo out, const char *key, const RelInfo *rel, const bool *which)
{
	StringInfoSink sink{out};
	bool first = true;
	for (int i = 0; i < rel->natts; i++) {
		if (!which[i])
			continue;
		appendStringInfoString(out, first ? key : ",");
		first = false;
		text::append_json_string(sink, rel->columns[i].name);
	}
	if (!first)
		appendStringInfoChar(out, ']');
}

} // namespace

void
json_write_begin(DecodeState *state)
{
	if (!state->include_transaction)
		return;
	output_begin(state);
	appendStringInfoString(state->output->buf, "{\"op\":\"begin\"");
	append_txn_tail(state->output->buf, state, false);
	output_emit(state);
}

void
json_write_commit(DecodeState *state)
{
	if (!state->include_transaction)
		return;
	output_begin(state);
	appendStringInfo(state->output->buf, "{\"op\":\"commit\",\"changes\":" UINT64_FORMAT,
					 state->seq);
	append_txn_tail(state->output->buf, state, false);
	output_emit(state);
}

void
json_write_change(DecodeState *state, const Change *c)
{
	const RelInfo *rel = c->rel;
	output_begin(state);
	StringInfo out = state->output->buf;

	appendStringInfoString(out, "{\"op\":\"");
	appendStringInfoString(out, op_name(c->action));
	appendBinaryStringInfo(out, "\",", 2);
	appendStringInfoString(out, rel->json_names);
	append_key(out, state, c);

	/* The row's version: new for insert/update, old (if logged) for delete. */
	const Datum *vvalues = c->new_values != nullptr ? c->new_values : c->old_values;
	const bool *vnulls = c->new_values != nullptr ? c->new_nulls : c->old_nulls;
	AttrNumber v = rel->version_attnum;
	if (v > 0 && vvalues != nullptr && !vnulls[v - 1]) {
		char buf[MAXINT8LEN + 1];
		appendBinaryStringInfo(out, ",\"version\":", 11);
		appendBinaryStringInfo(out, buf, pg_lltoa(DatumGetInt64(vvalues[v - 1]), buf));
	} else
		appendStringInfoString(out, ",\"version\":null");

	if (c->new_values != nullptr) {
		bool *json_nulls = static_cast<bool *>(palloc0(sizeof(bool) * (rel->natts + 1)));
		bool *too_large = static_cast<bool *>(palloc0(sizeof(bool) * (rel->natts + 1)));
		bool any_unchanged = false, any_json_null = false, any_too_large = false;
		bool first = true;
		appendStringInfoString(out, ",\"row\":{");
		for (int i = 0; i < rel->natts; i++) {
			const ColumnInfo *col = &rel->columns[i];
			if (col->dropped)
				continue;
			if (c->unchanged[i]) {
				any_unchanged = true;
				continue;
			}
			if (!first)
				appendStringInfoChar(out, ',');
			first = false;
			appendStringInfoString(out, col->json_key);
			if (c->new_nulls[i])
				appendStringInfoString(out, "null");
			else if (c->too_large != nullptr && c->too_large[i])
				appendStringInfoString(out, "null");
			else
				append_json_value(out, state, col, c->new_values[i], &json_nulls[i], &too_large[i]);
			too_large[i] |= c->too_large != nullptr && c->too_large[i] && !c->new_nulls[i];
			any_json_null |= json_nulls[i];
			any_too_large |= too_large[i];
		}
		appendStringInfoChar(out, '}');
		if (any_unchanged)
			append_name_list(out, ",\"unchanged\":[", rel, c->unchanged);
		if (any_json_null)
			append_name_list(out, ",\"json_nulls\":[", rel, json_nulls);
		if (any_too_large)
			append_name_list(out, ",\"too_large\":[", rel, too_large);
	}
	append_txn_tail(out, state, true);
	output_emit(state);
}

void
json_write_truncate(DecodeState *state, int n, const char **schemas, const char **tables,
					bool cascade, bool restart_identity)
{
	output_begin(state);
	StringInfo out = state->output->buf;
	StringInfoSink sink{out};
	StringInfoData name;
	initStringInfo(&name);

	appendStringInfoString(out, "{\"op\":\"truncate\",\"tables\":[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			appendStringInfoChar(out, ',');
		/*
		 * Quoted where SQL needs it (as regclass prints it): "a.b"."c" and
		 * "a"."b.c" must not both read a.b.c.
		 */
		resetStringInfo(&name);
		append_name_for_parser(&name, schemas[i]);
		appendStringInfoChar(&name, '.');
		append_name_for_parser(&name, tables[i]);
		text::append_json_string(sink, std::string_view(name.data, name.len));
	}
	appendStringInfo(out, "],\"cascade\":%s,\"restart_identity\":%s", cascade ? "true" : "false",
					 restart_identity ? "true" : "false");
	append_txn_tail(out, state, true);
	output_emit(state);
}

/*
 * A schema change of a tracked table (a row of edgesync.schema_changes), so
 * that a receiver can follow it: docs/output-format.md, "schema" lines.
 */
void
json_write_schema_change(DecodeState *state, const RelInfo *rel, const char *change,
						 const char *old_name, const char *new_name, const char *old_schema)
{
	output_begin(state);
	StringInfo out = state->output->buf;
	StringInfoSink sink{out};
	appendStringInfo(out, "{\"op\":\"schema\",%s,\"change\":", rel->json_names);
	text::append_json_string(sink, change);
	if (strcmp(change, "rename_table") == 0) {
		appendStringInfoString(out, ",\"old_schema\":");
		text::append_json_string(sink, old_schema != nullptr ? old_schema : rel->schema);
		appendStringInfoString(out, ",\"old_table\":");
		text::append_json_string(sink, old_name);
	} else {
		appendStringInfoString(out, ",\"column\":");
		text::append_json_string(sink, old_name);
	}
	if (new_name != nullptr && strcmp(change, "rename_column") == 0) {
		appendStringInfoString(out, ",\"new_name\":");
		text::append_json_string(sink, new_name);
	}
	if (strcmp(change, "alter_type") == 0)
		for (int i = 0; i < rel->natts; i++)
			if (!rel->columns[i].dropped && strcmp(rel->columns[i].name, old_name) == 0) {
				appendStringInfoString(out, ",\"type\":");
				text::append_json_string(sink, rel->columns[i].sql_type);
			}
	append_txn_tail(out, state, true);
	output_emit(state);
}

void
json_write_message(DecodeState *state, XLogRecPtr lsn, bool transactional, const char *prefix,
				   Size size, const char *message)
{
	output_begin(state);
	StringInfo out = state->output->buf;
	StringInfoSink sink{out};

	/*
	 * Anyone may emit a message (pg_logical_emit_message is PUBLIC): a prefix
	 * or content over its limit is left out, its size given, rather than make
	 * a line that cannot be allocated and would stop the slot for good.
	 */
	size_t prefix_size = strlen(prefix);
	bool prefix_too_large = prefix_size > kMaxMessagePrefix;
	bool content_too_large = size > kMaxMessageContent;
	appendStringInfo(out, "{\"op\":\"message\",\"transactional\":%s,\"prefix\":",
					 transactional ? "true" : "false");
	if (prefix_too_large)
		appendStringInfoString(out, "null");
	else
		text::append_json_string(sink, std::string_view(prefix, prefix_size));
	if (content_too_large)
		appendStringInfoString(out, ",\"content\":null");
	/* Text if it is valid in the database encoding, else base64. */
	else if (pg_verify_mbstr(GetDatabaseEncoding(), message, static_cast<int>(size), true)) {
		appendStringInfoString(out, ",\"content\":");
		text::append_json_string(sink, std::string_view(message, size));
	} else {
		int len = pg_b64_enc_len(static_cast<int>(size));
		char *b64 = static_cast<char *>(palloc(len + 1));
		int written = edgesync::base64_encode(message, static_cast<int>(size), b64, len);
		appendStringInfoString(out, ",\"content\":null,\"content_base64\":\"");
		appendBinaryStringInfo(out, b64, written);
		appendStringInfoChar(out, '"');
	}
	if (prefix_too_large)
		appendStringInfo(out, ",\"prefix_size\":%zu", prefix_size);
	if (content_too_large)
		appendStringInfo(out, ",\"content_size\":%zu", static_cast<size_t>(size));
	if (prefix_too_large || content_too_large)
		appendStringInfo(out, ",\"too_large\":[%s%s%s]", prefix_too_large ? "\"prefix\"" : "",
						 prefix_too_large && content_too_large ? "," : "",
						 content_too_large ? "\"content\"" : "");
	if (transactional)
		append_txn_tail(out, state, true);
	else
		appendStringInfo(out, ",\"lsn\":\"%X/%X\"}", static_cast<uint32>((lsn) >> 32),
						 static_cast<uint32>(lsn));
	output_emit(state);
}

} // namespace edgesync::decode
