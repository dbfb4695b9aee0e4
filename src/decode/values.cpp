/*
 * values.cpp — one column value, written as JSON or as a SQL literal, under
 * the column's policy.
 *
 *   replicate  the value (JSON by value class, see docs/output-format.md)
 *   hash       HMAC-SHA256 of the value's text output, in hex (policy.cpp)
 *   redact     JSON null; the sql writer leaves the column out altogether
 *
 * Integers and text are formatted without calling their output functions
 * (the common case, and the hot path of the plugin).
 */
#include "decode/decode.hpp"
#include "decode/options.hpp"

extern "C" {
#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "libpq/pqformat.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
}

namespace edgesync::decode {

namespace {

/* The value's text output: into *len bytes at the result (not always NUL-terminated). */
const char *
value_text(const ColumnInfo *col, Datum value, size_t *len)
{
	switch (col->kind) {
	case ValueKind::kInt: {
		char *buf = static_cast<char *>(palloc(MAXINT8LEN + 1));
		int64 v = col->typlen == 2	 ? DatumGetInt16(value)
				  : col->typlen == 4 ? DatumGetInt32(value)
									 : DatumGetInt64(value);
		*len = static_cast<size_t>(pg_lltoa(v, buf));
		return buf;
	}
	case ValueKind::kText: {
		struct varlena *v =
			pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(value)));
		*len = VARSIZE_ANY_EXHDR(v);
		return VARDATA_ANY(v);
	}
	default: {
		char *text = OutputFunctionCall(const_cast<FmgrInfo *>(&col->output), value);
		*len = strlen(text);
		return text;
	}
	}
}

bool
is_json_null_text(const char *s, size_t len)
{
	while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
		s++;
		len--;
	}
	while (len > 0 &&
		   (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	return len == 4 && memcmp(s, "null", 4) == 0;
}

bool
is_special_float(const char *s, size_t len)
{
	return (len == 3 && memcmp(s, "NaN", 3) == 0) || memchr(s, 'I', len) != nullptr;
}

/*
 * True when a value written as format fits in the output line: the line
 * stays under kMaxChangeOutput (1 GB less a margin for what follows the
 * value), below MaxAllocSize, the most a StringInfo holds.  The exact size is
 * counted only when the worst case does not fit, i.e. for huge values.
 * limit_change_size() has left out the values it could size; this catches
 * the rest (a type whose text output is much longer than its stored value).
 */
bool
has_room(StringInfo out, size_t worst, size_t (*exact)(std::string_view), std::string_view text)
{
	size_t used = static_cast<size_t>(out->len);
	if (used >= kMaxChangeOutput)
		return false;
	size_t room = kMaxChangeOutput - used;
	return worst < room || (exact != nullptr && exact(text) < room);
}

/*
 * The sql format has no way to leave a value out once its statement is
 * under way: it errors out, naming the column, rather than let the
 * StringInfo fail part way with "out of memory", which would misname the
 * problem (a limit, not a shortage) and the row.
 */
void
check_room(StringInfo out, const ColumnInfo *col, const char *format, size_t worst,
		   size_t (*exact)(std::string_view), std::string_view text)
{
	if (has_room(out, worst, exact, text))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("value of column \"%s\" of relation \"%s.%s\" is too large for the %s format",
					col->name, col->rel->schema, col->rel->table, format),
			 errdetail("Its text is %zu bytes; escaped, the change's output line would exceed the "
					   "limit of %zu bytes.",
					   text.size(), kMaxChangeOutput),
			 errhint("The slot cannot move past this change: skip it with "
					 "pg_replication_slot_advance() and copy the row by other means.")));
}

} // namespace

Policy
effective_policy(const DecodeState *state, const ColumnInfo *col)
{
	return state->raw_columns ? Policy::kReplicate : col->policy;
}

const char *
key_equality(const DecodeState *state, const ColumnInfo *col)
{
	/* A hashed value is hex text on the replica, whatever the column's type here. */
	if (effective_policy(state, col) == Policy::kHash || col->sql_eq == nullptr)
		return "OPERATOR(pg_catalog.=)";
	return col->sql_eq;
}

bool
value_is_unchanged_toast(const ColumnInfo *col, Datum value)
{
	return col->typlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value));
}

void
append_json_value(StringInfo out, const DecodeState *state, const ColumnInfo *col, Datum value,
				  bool *json_null, bool *too_large)
{
	Policy policy = effective_policy(state, col);
	if (policy == Policy::kRedact) {
		appendStringInfoString(out, "null");
		return;
	}
	size_t len;
	const char *text = value_text(col, value, &len);
	StringInfoSink sink{out};
	if (policy == Policy::kHash) {
		appendStringInfoChar(out, '"');
		append_hmac_hex(out, text, len);
		appendStringInfoChar(out, '"');
		return;
	}

	switch (col->kind) {
	case ValueKind::kInt:
	case ValueKind::kOid:
		appendBinaryStringInfo(out, text, static_cast<int>(len));
		return;
	case ValueKind::kFloat:
		/* NaN and infinities have no JSON number form: strings. */
		if (is_special_float(text, len))
			text::append_json_string(sink, std::string_view(text, len));
		else
			appendBinaryStringInfo(out, text, static_cast<int>(len));
		return;
	case ValueKind::kBool:
		appendStringInfoString(out, text[0] == 't' ? "true" : "false");
		return;
	case ValueKind::kJson: {
		if (!has_room(out, len, nullptr, {})) {
			appendStringInfoString(out, "null");
			*too_large = true;
			return;
		}
		if (is_json_null_text(text, len))
			*json_null = true;
		/*
		 * json keeps its input text.  json_in has checked it, so a raw
		 * newline can only be whitespace between tokens (a string holds
		 * "\n" escaped): a space instead keeps the line whole and the
		 * value equal.
		 */
		int start = out->len;
		appendBinaryStringInfo(out, text, static_cast<int>(len));
		for (int i = start; i < out->len; i++)
			if (out->data[i] == '\n' || out->data[i] == '\r')
				out->data[i] = ' ';
		return;
	}
	case ValueKind::kJsonb:
		if (!has_room(out, len, nullptr, {})) {
			appendStringInfoString(out, "null");
			*too_large = true;
			return;
		}
		if (is_json_null_text(text, len))
			*json_null = true;
		appendBinaryStringInfo(out, text, static_cast<int>(len));
		return;
	case ValueKind::kNumeric:
	case ValueKind::kText:
	case ValueKind::kOther:
		if (!has_room(out, 6 * len + 2, text::json_string_size, std::string_view(text, len))) {
			appendStringInfoString(out, "null");
			*too_large = true;
			return;
		}
		text::append_json_string(sink, std::string_view(text, len));
		return;
	}
}

namespace {

/*
 * The writers never ask for a redacted value (they leave the column out, or
 * the change, sql_writer.cpp); should one ever do, this stops decoding
 * rather than write it.
 */
void
refuse_redacted(const DecodeState *state, const ColumnInfo *col)
{
	if (effective_policy(state, col) == Policy::kRedact)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("value of redacted column \"%s\" of relation \"%s.%s\" reached the sql "
						"format",
						col->name, col->rel->schema, col->rel->table)));
}

} // namespace

void
append_sql_value(StringInfo out, const DecodeState *state, const ColumnInfo *col, Datum value)
{
	refuse_redacted(state, col);
	size_t len;
	const char *text = value_text(col, value, &len);
	StringInfoSink sink{out};

	if (effective_policy(state, col) == Policy::kHash) {
		appendStringInfoChar(out, '\'');
		append_hmac_hex(out, text, len);
		appendStringInfoString(out, "'::pg_catalog.text");
		return;
	}
	switch (col->kind) {
	case ValueKind::kInt:
		/*
		 * A bigint is cast so that its literal is not read as numeric.  A
		 * negative one is quoted: "::" binds tighter than unary minus, so
		 * -9223372036854775808::int8 would be out of range.
		 */
		if (col->typlen == 8 && text[0] == '-') {
			appendStringInfoChar(out, '\'');
			appendBinaryStringInfo(out, text, static_cast<int>(len));
			appendStringInfoString(out, "'::pg_catalog.int8");
			return;
		}
		appendBinaryStringInfo(out, text, static_cast<int>(len));
		if (col->typlen == 8)
			appendStringInfoString(out, "::pg_catalog.int8");
		return;
	case ValueKind::kBool:
		appendStringInfoString(out, text[0] == 't' ? "true" : "false");
		return;
	default:
		check_room(out, col, "sql", 2 * len + 3 + strlen(col->sql_type) + 2,
				   text::sql_literal_one_line_size, std::string_view(text, len));
		text::append_sql_literal_one_line(sink, std::string_view(text, len));
		appendStringInfoString(out, "::");
		appendStringInfoString(out, col->sql_type);
		return;
	}
}

/*
 * The value as an element of an array literal (the sql writer's multi-row
 * upserts send a column's values as one array): NULL, or the text in double
 * quotes with " and \ escaped.  The caller quotes the whole array as SQL.
 */
void
append_sql_array_element(StringInfo out, const DecodeState *state, const ColumnInfo *col,
						 bool isnull, Datum value)
{
	refuse_redacted(state, col);
	if (isnull) {
		appendStringInfoString(out, "NULL");
		return;
	}
	size_t len;
	const char *text = value_text(col, value, &len);
	appendStringInfoChar(out, '"');
	if (effective_policy(state, col) == Policy::kHash)
		append_hmac_hex(out, text, len);
	else if (col->kind == ValueKind::kInt)
		appendBinaryStringInfo(out, text, static_cast<int>(len));
	else {
		/* Worst case every byte escaped, and twice that once quoted as SQL. */
		if (static_cast<size_t>(out->len) + 4 * len + 16 >= MaxAllocSize)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("value of column \"%s\" of relation \"%s.%s\" is too large for the "
							"sql format",
							col->name, col->rel->schema, col->rel->table)));
		const char *run = text;
		const char *end = text + len;
		for (const char *p = text; p < end; p++) {
			if (*p != '"' && *p != '\\')
				continue;
			appendBinaryStringInfo(out, run, static_cast<int>(p - run));
			appendStringInfoChar(out, '\\');
			run = p;
		}
		appendBinaryStringInfo(out, run, static_cast<int>(end - run));
	}
	appendStringInfoChar(out, '"');
}

/*
 * The shipper's binary runs (sql_runs.cpp): types whose binary form the
 * replica reads back the same from PostgreSQL 13 on, whatever its version,
 * and whose binary array carries nothing of this cluster (a built-in type's
 * OID is the same everywhere; a domain's, an enum's or a composite's is not).
 */
bool
in_binary_array(const DecodeState *state, const ColumnInfo *col)
{
	if (effective_policy(state, col) == Policy::kHash)
		return true; /* its element is the hash, as text */
	switch (col->typid) {
	case BOOLOID:
	case INT2OID:
	case INT4OID:
	case INT8OID:
	case FLOAT4OID:
	case FLOAT8OID:
	case NUMERICOID:
	case TEXTOID:
	case VARCHAROID:
	case BPCHAROID:
	case BYTEAOID:
	case DATEOID:
	case TIMEOID:
	case TIMESTAMPOID:
	case TIMESTAMPTZOID:
	case INTERVALOID:
	case UUIDOID:
	case JSONOID:
	case JSONBOID:
		return true;
	default:
		return false;
	}
}

Oid
binary_array_element_type(const DecodeState *state, const ColumnInfo *col)
{
	return effective_policy(state, col) == Policy::kHash ? TEXTOID : col->typid;
}

void
append_binary_array_element(StringInfo out, const DecodeState *state, const ColumnInfo *col,
							bool isnull, Datum value, FmgrInfo *send)
{
	refuse_redacted(state, col);
	if (isnull) {
		pq_sendint32(out, static_cast<uint32>(-1));
		return;
	}
	if (effective_policy(state, col) == Policy::kHash) {
		size_t len;
		const char *text = value_text(col, value, &len);
		int at = out->len;
		pq_sendint32(out, 0);
		append_hmac_hex(out, text, len);
		uint32 n = pg_hton32(static_cast<uint32>(out->len - at - 4));
		memcpy(out->data + at, &n, 4);
		return;
	}
	switch (col->typid) {
	case INT4OID:
		pq_sendint32(out, 4);
		pq_sendint32(out, static_cast<uint32>(DatumGetInt32(value)));
		return;
	case INT8OID:
		pq_sendint32(out, 8);
		pq_sendint64(out, static_cast<uint64>(DatumGetInt64(value)));
		return;
	case TEXTOID:
	case VARCHAROID: {
		/* Its bytes in the database's encoding, which is the connection's client_encoding. */
		struct varlena *v =
			pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(value)));
		pq_sendint32(out, static_cast<uint32>(VARSIZE_ANY_EXHDR(v)));
		appendBinaryStringInfo(out, VARDATA_ANY(v), static_cast<int>(VARSIZE_ANY_EXHDR(v)));
		return;
	}
	default: {
		bytea *bytes = SendFunctionCall(send, value);
		pq_sendint32(out, static_cast<uint32>(VARSIZE(bytes) - VARHDRSZ));
		appendBinaryStringInfo(out, VARDATA(bytes), static_cast<int>(VARSIZE(bytes) - VARHDRSZ));
		return;
	}
	}
}

namespace {

/* output_size(): the value cannot be written at all. */
constexpr size_t kCannotWrite = SIZE_MAX;
/* Values stored in fewer bytes are bounded, not sized exactly (their text is at most ~6x). */
constexpr Size kSizeExactlyFrom = Size{1} << 20;
/* Values of other types are sized by their output function up to this stored size. */
constexpr Size kMaxSizedByOutput = Size{128} << 20;

/*
 * The bytes col's value takes in the output, exactly for a large value and
 * as a bound for a small one, or kCannotWrite: a bytea whose hex text would
 * not fit in memory (byteaout itself fails), a value of another type stored
 * in more than kMaxSizedByOutput.  A large text or json value is detoasted
 * here, once: *value then points to it, for the writer.
 */
size_t
output_size(const DecodeState *state, const ColumnInfo *col, Datum *value)
{
	bool sql = state->format == static_cast<int>(Format::kSql);
	Policy policy = effective_policy(state, col);
	constexpr size_t kHashed = 128; /* 64 hex digits, quotes, cast */
	size_t cast = strlen(col->sql_type) + 4;
	if (policy == Policy::kRedact)
		return 4;
	if (col->typlen != -1) /* fixed size: a short text */
		return 6 * static_cast<size_t>(Max(col->typlen, 64)) + cast;
	Size raw = toast_raw_datum_size(*value);
	if (raw < kSizeExactlyFrom)
		return policy == Policy::kHash ? kHashed : 6 * raw + cast;

	if (col->kind == ValueKind::kText || col->kind == ValueKind::kJson) {
		struct varlena *v =
			pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(*value)));
		*value = PointerGetDatum(v);
		std::string_view text(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
		if (policy == Policy::kHash)
			return kHashed;
		if (sql)
			return text::sql_literal_one_line_size(text) + cast;
		return col->kind == ValueKind::kJson ? text.size() : text::json_string_size(text);
	}
	if (getBaseType(col->typid) == BYTEAOID) {
		/* \x and two hex digits a byte: no escape but the backslash's. */
		size_t hex = 2 * (raw - VARHDRSZ) + 2;
		if (hex + 1 >= MaxAllocSize)
			return kCannotWrite;
		return policy == Policy::kHash ? kHashed : sql ? hex + 4 + cast : hex + 3;
	}
	if (raw > kMaxSizedByOutput)
		return kCannotWrite;
	size_t len;
	char *text = const_cast<char *>(value_text(col, *value, &len));
	size_t size = policy == Policy::kHash ? kHashed
				  : sql ? text::sql_literal_one_line_size(std::string_view(text, len)) + cast
				  : col->kind == ValueKind::kJsonb
					  ? len
					  : text::json_string_size(std::string_view(text, len));
	pfree(text);
	return size;
}

} // namespace

void
limit_change_size(const DecodeState *state, Change *c)
{
	if (c->new_values == nullptr)
		return;
	const RelInfo *rel = c->rel;
	bool sql = state->format == static_cast<int>(Format::kSql);

	/*
	 * The common case, checked from the stored sizes alone (a varlena
	 * header read per column): no value large enough to be measured, and
	 * all of them together far below the limit even escaped.
	 */
	Size stored = 0;
	bool measure = false;
	for (int i = 0; i < rel->natts && !measure; i++) {
		if (rel->columns[i].typlen != -1 || c->new_nulls[i] || c->unchanged[i])
			continue;
		const struct varlena *v =
			reinterpret_cast<const struct varlena *>(DatumGetPointer(c->new_values[i]));
		Size size = VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v)
						? toast_raw_datum_size(c->new_values[i])
						: VARSIZE_ANY(v);
		stored += size;
		measure = size >= kSizeExactlyFrom || stored >= kMaxChangeOutput / 16;
	}
	if (!measure)
		return;

	size_t *sizes = static_cast<size_t *>(palloc0(sizeof(size_t) * (rel->natts + 1)));
	size_t total = 64 * 1024; /* the key, the framing */
	bool cannot = false;

	for (int i = 0; i < rel->natts; i++) {
		const ColumnInfo *col = &rel->columns[i];
		if (col->dropped || c->new_nulls[i] || c->unchanged[i] || (sql && col->generated))
			continue;
		total += 512; /* its name, escaped */
		sizes[i] = output_size(state, col, &c->new_values[i]);
		if (sizes[i] == kCannotWrite)
			cannot = true;
		else
			total += Min(sizes[i], kMaxChangeOutput);
	}
	if (!cannot && total <= kMaxChangeOutput)
		return;

	/* Leave out what cannot be written, then the largest values until the rest fits. */
	c->too_large = static_cast<bool *>(palloc0(sizeof(bool) * (rel->natts + 1)));
	for (int i = 0; i < rel->natts; i++)
		c->too_large[i] = sizes[i] == kCannotWrite;
	while (total > kMaxChangeOutput) {
		int largest = -1;
		for (int i = 0; i < rel->natts; i++) {
			const ColumnInfo *col = &rel->columns[i];
			/* (Keys are small: btree entries are at most a few kB.) */
			if (!c->too_large[i] && !col->is_key && !col->is_identity && sizes[i] > 0 &&
				(largest < 0 || sizes[i] > sizes[largest]))
				largest = i;
		}
		if (largest < 0)
			break;
		c->too_large[largest] = true;
		total -= Min(sizes[largest], kMaxChangeOutput);
	}
}

} // namespace edgesync::decode
