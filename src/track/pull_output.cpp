/*
 * pull_output.cpp — what a page of pull() becomes, and the two SQL entry
 * points: edgesync.pull() returns its rows as a set (the key as jsonb, the
 * row as json, a cursor on each row), edgesync.rxdb_pull() one JSON document
 * in RxDB's pull format, {"documents": [...], "checkpoint": {...}}, built as
 * text from the rows' JSON without parsing it again.
 *
 * Plain C-style code: it calls PostgreSQL directly and owns no C++ objects.
 */
#include "core/string_info_sink.hpp"
#include "core/text_writer.hpp"
#include "track/key_json.hpp"
#include "track/pull.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(edgesync_pull);
PG_FUNCTION_INFO_V1(edgesync_rxdb_pull);
}

namespace {

using edgesync::StringInfoSink;
using edgesync::track::KeyMember;
using edgesync::track::pull::PageSink;
using edgesync::track::pull::Pull;
using edgesync::track::pull::run_pull;
using edgesync::track::pull::start_pull;

/*
 * n, if v is an integer of at most 18 digits (an integer key's usual form):
 * the numeric of int64_to_numeric(n) is the one numeric_in() reads from v,
 * without parsing it as a decimal.
 */
bool
small_integer(std::string_view v, int64 *n)
{
	size_t i = !v.empty() && v[0] == '-' ? 1 : 0;
	if (v.size() == i || v.size() - i > 18)
		return false;
	int64 value = 0;
	for (; i < v.size(); i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		value = value * 10 + (v[i] - '0');
	}
	*n = v[0] == '-' ? -value : value;
	return true;
}

/* Orders members as a jsonb object orders its keys: shorter first, then bytewise. */
bool
jsonb_key_before(const JsonbPair &a, const JsonbPair &b)
{
	if (a.key.val.string.len != b.key.val.string.len)
		return a.key.val.string.len < b.key.val.string.len;
	return memcmp(a.key.val.string.val, b.key.val.string.val, a.key.val.string.len) < 0;
}

/*
 * The jsonb of an object of n members: sorted into jsonb's key order and
 * converted once (what jsonb_in() builds, without its parser); 0 if two
 * names are equal (a key's names are its columns', so they never are).
 */
Datum
object_jsonb(JsonbPair *pairs, int n)
{
	for (int i = 1; i < n; i++) { /* insertion sort: a key has a few columns */
		JsonbPair pair = pairs[i];
		int j = i;
		for (; j > 0 && jsonb_key_before(pair, pairs[j - 1]); j--)
			pairs[j] = pairs[j - 1];
		pairs[j] = pair;
	}
	for (int i = 1; i < n; i++)
		if (!jsonb_key_before(pairs[i - 1], pairs[i]))
			return Datum(0);
	JsonbValue object;
	object.type = jbvObject;
	object.val.object.nPairs = n;
	object.val.object.pairs = pairs;
	return JsonbPGetDatum(JsonbValueToJsonb(&object));
}

/*
 * A key's JSON text as jsonb: what jsonb_in() makes of it, built from the
 * members read by parse_key_json() rather than by the JSON parser.
 */
Datum
key_jsonb(const char *json)
{
	KeyMember members[INDEX_MAX_KEYS];
	int n = edgesync::track::pull::key_members(json, members);
	if (n < 0)
		return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
	JsonbPair pairs[INDEX_MAX_KEYS];
	for (int i = 0; i < n; i++) {
		JsonbPair *pair = &pairs[i];
		pair->key.type = jbvString;
		pair->key.val.string.val = const_cast<char *>(members[i].name.data());
		pair->key.val.string.len = static_cast<int>(members[i].name.size());
		pair->order = i;
		JsonbValue *value = &pair->value;
		std::string_view v = members[i].value;
		if (members[i].is_null)
			value->type = jbvNull;
		else if (members[i].is_string) {
			value->type = jbvString;
			value->val.string.val = const_cast<char *>(v.data());
			value->val.string.len = static_cast<int>(v.size());
		} else if (v == "true" || v == "false") {
			value->type = jbvBool;
			value->val.boolean = v == "true";
		} else {
			value->type = jbvNumeric;
			int64 number;
			value->val.numeric =
				small_integer(v, &number)
					? int64_to_numeric(number)
					: DatumGetNumeric(DirectFunctionCall3(
						  numeric_in, CStringGetDatum(pnstrdup(v.data(), v.size())),
						  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		}
	}
	Datum jsonb = object_jsonb(pairs, n);
	return jsonb != Datum(0) ? jsonb : DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/* pull()'s sink: its result rows. */
struct RowsSink {
	PageSink base;
	ReturnSetInfo *rsinfo;
};

void
rows_row(PageSink *sink, const char *pk, Datum pk_jsonb, text *row, int64 version, bool deleted,
		 text *cursor)
{
	ReturnSetInfo *rsinfo = reinterpret_cast<RowsSink *>(sink)->rsinfo;
	Datum values[5] = {pk_jsonb != Datum(0) ? pk_jsonb : key_jsonb(pk), PointerGetDatum(row),
					   Int64GetDatum(version), BoolGetDatum(deleted), PointerGetDatum(cursor)};
	bool nulls[5] = {false, row == nullptr, false, false, false};
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

void
rows_moved(PageSink *sink, text *cursor)
{
	ReturnSetInfo *rsinfo = reinterpret_cast<RowsSink *>(sink)->rsinfo;
	Datum values[5] = {0, 0, 0, 0, PointerGetDatum(cursor)};
	bool nulls[5] = {true, true, true, true, false};
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* rxdb_pull()'s sink: the documents of RxDB's pull response, and its checkpoint. */
struct DocumentsSink {
	PageSink base;
	StringInfoData documents;
	int count;
	StringInfoData cursor; /* the last row's (the rows' memory is gone by the end) */
};

void
documents_row(PageSink *sink, const char *pk, Datum, text *row, int64, bool deleted, text *cursor)
{
	DocumentsSink *d = reinterpret_cast<DocumentsSink *>(sink);
	if (d->count++ > 0)
		appendStringInfoChar(&d->documents, ',');
	/* The row (or the key) as an object, with RxDB's "_deleted" added before its "}". */
	const char *object = deleted ? pk : VARDATA_ANY(row);
	int len = deleted ? static_cast<int>(strlen(pk)) : static_cast<int>(VARSIZE_ANY_EXHDR(row));
	while (len > 0 && object[len - 1] != '}')
		len--;
	appendBinaryStringInfo(&d->documents, object, len - 1);
	appendStringInfoString(&d->documents, deleted ? ",\"_deleted\":true}" : ",\"_deleted\":false}");
	if (cursor != nullptr) {
		resetStringInfo(&d->cursor);
		appendBinaryStringInfo(&d->cursor, VARDATA_ANY(cursor),
							   static_cast<int>(VARSIZE_ANY_EXHDR(cursor)));
	}
}

void
documents_moved(PageSink *sink, text *cursor)
{
	DocumentsSink *d = reinterpret_cast<DocumentsSink *>(sink);
	d->count++;
	resetStringInfo(&d->cursor);
	appendBinaryStringInfo(&d->cursor, VARDATA_ANY(cursor),
						   static_cast<int>(VARSIZE_ANY_EXHDR(cursor)));
}

} // namespace

namespace edgesync::track::pull {

Datum
key_jsonb_of_row(const PullRel *pr, const Datum *values, const bool *nulls)
{
	JsonbPair pairs[INDEX_MAX_KEYS];
	for (int i = 0; i < pr->nkeys; i++) {
		const PullKey *key = &pr->keys[i];
		Datum value = values[key->attnum - 1];
		if (nulls[key->attnum - 1])
			return Datum(0);
		JsonbPair *pair = &pairs[i];
		pair->key.type = jbvString;
		pair->key.val.string.val = key->name;
		pair->key.val.string.len = static_cast<int>(strlen(key->name));
		pair->order = i;
		switch (key->type) {
		case INT2OID:
			pair->value.type = jbvNumeric;
			pair->value.val.numeric = int64_to_numeric(DatumGetInt16(value));
			break;
		case INT4OID:
			pair->value.type = jbvNumeric;
			pair->value.val.numeric = int64_to_numeric(DatumGetInt32(value));
			break;
		case INT8OID:
			pair->value.type = jbvNumeric;
			pair->value.val.numeric = int64_to_numeric(DatumGetInt64(value));
			break;
		case TEXTOID:
		case VARCHAROID: {
			auto *t = reinterpret_cast<::text *>(PG_DETOAST_DATUM_PACKED(value));
			pair->value.type = jbvString;
			pair->value.val.string.val = VARDATA_ANY(t);
			pair->value.val.string.len = static_cast<int>(VARSIZE_ANY_EXHDR(t));
			break;
		}
		default:
			return Datum(0);
		}
	}
	return object_jsonb(pairs, pr->nkeys);
}

} // namespace edgesync::track::pull

/*
 * edgesync.pull(tbl regclass, cursor text, max integer)
 *   -> (pk jsonb, row json, version bigint, deleted boolean, next_cursor text)
 */
Datum
edgesync_pull(PG_FUNCTION_ARGS)
{
	Pull p = {};
	start_pull(&p, fcinfo, "max");
	p.incoming = PG_ARGISNULL(1) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(1));
	InitMaterializedSRF(fcinfo, 0);
	RowsSink sink = {{rows_row, rows_moved, true, true},
					 reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo)};
	p.sink = &sink.base;
	run_pull(&p);
	return Datum(0);
}

/*
 * edgesync.rxdb_pull(tbl regclass, checkpoint jsonb, batch_size integer) -> json
 * RxDB's pull response: {"documents": [...], "checkpoint": {"cursor": ...}},
 * the documents pull()'s rows with "_deleted": false, its tombstones the key
 * with "_deleted": true.  With nothing at all to show, the checkpoint passed.
 */
Datum
edgesync_rxdb_pull(PG_FUNCTION_ARGS)
{
	Pull p = {};
	start_pull(&p, fcinfo, "batch_size");
	Datum checkpoint = PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1);
	if (!PG_ARGISNULL(1)) {
		LOCAL_FCINFO(field, 2);
		InitFunctionCallInfoData(*field, nullptr, 2, InvalidOid, nullptr, nullptr);
		field->args[0].value = checkpoint;
		field->args[0].isnull = false;
		field->args[1].value = CStringGetTextDatum("cursor");
		field->args[1].isnull = false;
		Datum cursor = jsonb_object_field_text(field);
		p.incoming = field->isnull ? nullptr : TextDatumGetCString(cursor);
	}
	DocumentsSink sink = {{documents_row, documents_moved, false, false}, {}, 0, {}};
	initStringInfo(&sink.documents);
	initStringInfo(&sink.cursor);
	p.sink = &sink.base;
	run_pull(&p);

	StringInfoData out;
	initStringInfo(&out);
	appendStringInfoString(&out, "{\"documents\":[");
	appendBinaryStringInfo(&out, sink.documents.data, sink.documents.len);
	appendStringInfoString(&out, "],\"checkpoint\":");
	if (sink.count > 0) {
		StringInfoSink json{&out};
		appendStringInfoString(&out, "{\"cursor\":");
		edgesync::text::append_json_string(json,
										   std::string_view(sink.cursor.data, sink.cursor.len));
		appendStringInfoChar(&out, '}');
	} else if (!PG_ARGISNULL(1))
		appendStringInfoString(&out, JsonbToCString(nullptr, &PG_GETARG_JSONB_P(1)->root, 0));
	else
		appendStringInfoString(&out, "null");
	appendStringInfoChar(&out, '}');
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
