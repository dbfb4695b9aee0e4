/*
 * row_json.cpp — rows as row_to_json() writes them (see row_json.hpp).
 *
 * The classification follows PostgreSQL's json_categorize_type(): a domain
 * counts as its base type; booleans, numbers, dates and times, json and
 * jsonb, arrays and composites have their own forms; a type of an extension
 * or a user with a cast to json is written by that cast; anything else is
 * its output function's text as a JSON string.  Arrays and composites are
 * handed to array_to_json() and row_to_json() themselves.
 */
#include "track/row_json.hpp"

#include "core/string_info_sink.hpp"
#include "core/text_writer.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
}

namespace edgesync::track {

/* PostgreSQL's text type here, not edgesync::text (the text writers): the macros name it. */
using text = ::text;
namespace writer = edgesync::text;

enum class JsonCategory : char {
	kSkip, /* a dropped column */
	kBool,
	kInteger, /* int2, int4, int8: always a JSON number */
	kNumeric, /* float4, float8, numeric: a number unless NaN or infinite */
	kDateTime,
	kJson,	/* json: its text */
	kJsonb, /* jsonb: its output */
	kText,	/* text, varchar: the string, escaped */
	kArray,
	kComposite,
	kCast,	/* a cast to json */
	kOther, /* the output function's text, escaped */
};

struct RowJsonColumn {
	JsonCategory category;
	Oid type;	 /* the base type */
	char *label; /* ',"name":' (the first column's without the comma) */
	int label_len;
	FmgrInfo function; /* output function, or the cast's */
};

namespace {

/*
 * Appends len bytes, calling out to grow the buffer only when it is full
 * (appendBinaryStringInfo() calls enlargeStringInfo() for every piece, and a
 * row is a few dozen pieces).
 */
inline void
append_bytes(StringInfo out, const char *data, int len)
{
	if (out->len + len >= out->maxlen)
		enlargeStringInfo(out, len);
	memcpy(out->data + out->len, data, len);
	out->len += len;
	out->data[out->len] = '\0';
}

/* The text_writer.hpp sink of append_bytes(). */
struct RowSink {
	StringInfo s;
	void append(const char *data, size_t len) { append_bytes(s, data, static_cast<int>(len)); }
	void push_back(char c) { appendStringInfoCharMacro(s, c); }
};

void
append_text(StringInfo out, text *t)
{
	append_bytes(out, VARDATA_ANY(t), static_cast<int>(VARSIZE_ANY_EXHDR(t)));
}

void
classify(RowJsonColumn *column, Oid type)
{
	Oid base = getBaseType(type);
	Oid function = InvalidOid;
	bool varlena;
	column->type = base;
	switch (base) {
	case BOOLOID:
		column->category = JsonCategory::kBool;
		break;
	case INT2OID:
	case INT4OID:
	case INT8OID:
		column->category = JsonCategory::kInteger;
		break;
	case FLOAT4OID:
	case FLOAT8OID:
	case NUMERICOID:
		column->category = JsonCategory::kNumeric;
		getTypeOutputInfo(base, &function, &varlena);
		break;
	case DATEOID:
	case TIMESTAMPOID:
	case TIMESTAMPTZOID:
		column->category = JsonCategory::kDateTime;
		break;
	case JSONOID:
		column->category = JsonCategory::kJson;
		break;
	case JSONBOID:
		column->category = JsonCategory::kJsonb;
		getTypeOutputInfo(base, &function, &varlena);
		break;
	case TEXTOID:
	case VARCHAROID:
		column->category = JsonCategory::kText;
		break;
	default:
		if (OidIsValid(get_element_type(base)) || base == ANYARRAYOID ||
			base == ANYCOMPATIBLEARRAYOID || base == RECORDARRAYOID)
			column->category = JsonCategory::kArray;
		else if (type_is_rowtype(base))
			column->category = JsonCategory::kComposite;
		else {
			column->category = JsonCategory::kOther;
			if (base >= FirstNormalObjectId &&
				find_coercion_pathway(JSONOID, base, COERCION_EXPLICIT, &function) ==
					COERCION_PATH_FUNC &&
				OidIsValid(function))
				column->category = JsonCategory::kCast;
			else
				getTypeOutputInfo(base, &function, &varlena);
		}
		break;
	}
	if (OidIsValid(function))
		fmgr_info(function, &column->function);
}

void
append_value(RowJsonColumn *column, StringInfo out, Datum value)
{
	RowSink sink{out};
	switch (column->category) {
	case JsonCategory::kSkip:
		return;
	case JsonCategory::kBool:
		if (DatumGetBool(value))
			append_bytes(out, "true", 4);
		else
			append_bytes(out, "false", 5);
		return;
	case JsonCategory::kInteger: {
		int64 n = column->type == INT2OID	? DatumGetInt16(value)
				  : column->type == INT4OID ? DatumGetInt32(value)
											: DatumGetInt64(value);
		if (out->len + MAXINT8LEN + 1 >= out->maxlen)
			enlargeStringInfo(out, MAXINT8LEN + 1);
		out->len += pg_lltoa(n, out->data + out->len);
		return;
	}
	case JsonCategory::kNumeric: {
		char *s = OutputFunctionCall(&column->function, value);
		size_t len = strlen(s);
		if (IsValidJsonNumber(s, static_cast<int>(len)))
			append_bytes(out, s, static_cast<int>(len));
		else
			writer::append_json_string(sink, std::string_view(s, len));
		return;
	}
	case JsonCategory::kDateTime: {
		char buf[MAXDATELEN + 3];
		buf[0] = '"';
		JsonEncodeDateTime(buf + 1, value, column->type, nullptr);
		int len = static_cast<int>(strlen(buf));
		buf[len++] = '"';
		append_bytes(out, buf, len);
		return;
	}
	case JsonCategory::kJson:
		append_text(out, DatumGetTextPP(value));
		return;
	case JsonCategory::kJsonb:
		appendStringInfoString(out, OutputFunctionCall(&column->function, value));
		return;
	case JsonCategory::kText: {
		text *t = DatumGetTextPP(value);
		writer::append_json_string(sink, std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
		return;
	}
	case JsonCategory::kArray:
		append_text(out, DatumGetTextPP(DirectFunctionCall1(array_to_json, value)));
		return;
	case JsonCategory::kComposite:
		append_text(out, DatumGetTextPP(DirectFunctionCall1(row_to_json, value)));
		return;
	case JsonCategory::kCast:
		append_text(out, DatumGetTextPP(FunctionCall1(&column->function, value)));
		return;
	case JsonCategory::kOther: {
		char *s = OutputFunctionCall(&column->function, value);
		writer::append_json_string(sink, s);
		return;
	}
	}
}

} // namespace

void
row_json_init(RowJson *writer, TupleDesc desc)
{
	writer->natts = desc->natts;
	writer->columns = static_cast<RowJsonColumn *>(palloc0(sizeof(RowJsonColumn) * desc->natts));
	bool first = true;
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, i);
		RowJsonColumn *column = &writer->columns[i];
		if (att->attisdropped) {
			column->category = JsonCategory::kSkip;
			continue;
		}
		StringInfoData label;
		initStringInfo(&label);
		StringInfoSink sink{&label};
		if (!first)
			appendStringInfoChar(&label, ',');
		first = false;
		writer::append_json_string(sink, NameStr(att->attname));
		appendStringInfoChar(&label, ':');
		column->label = label.data;
		column->label_len = label.len;
		classify(column, att->atttypid);
	}
}

void
row_json_append(const RowJson *writer, StringInfo out, const Datum *values, const bool *nulls)
{
	appendStringInfoCharMacro(out, '{');
	for (int i = 0; i < writer->natts; i++) {
		RowJsonColumn *column = &writer->columns[i];
		if (column->category == JsonCategory::kSkip)
			continue;
		append_bytes(out, column->label, column->label_len);
		if (nulls[i])
			append_bytes(out, "null", 4);
		else
			append_value(column, out, values[i]);
	}
	appendStringInfoCharMacro(out, '}');
}

} // namespace edgesync::track
