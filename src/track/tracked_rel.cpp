/*
 * tracked_rel.cpp — per-query description of a tracked table for the row
 * triggers, and the primary key as JSON (see tracked_rel.hpp).
 */
#include "track/tracked_rel.hpp"

#include "core/text_writer.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/relcache.h"
}

#include <cmath>
#include <cstring>

namespace edgesync::track {

namespace {

/* Adapter so the text_writer templates append to a StringInfo. */
struct StringInfoSink {
	StringInfo s;
	void append(const char *data, size_t len) { appendBinaryStringInfo(s, data, static_cast<int>(len)); }
	void push_back(char c) { appendStringInfoCharMacro(s, c); }
};

AttrNumber
find_column(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, i);
		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

AttrNumber
required_column(Relation rel, const char *name, Oid typid)
{
	TupleDesc desc = RelationGetDescr(rel);
	AttrNumber attnum = find_column(desc, name);
	if (attnum == InvalidAttrNumber || TupleDescAttr(desc, attnum - 1)->atttypid != typid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no column \"%s\" of type %s", RelationGetRelationName(rel),
						name, format_type_be(typid)),
				 errdetail("edgesync's triggers keep this column up to date."),
				 errhint("Call edgesync.track('%s') again to add it.",
						 RelationGetRelationName(rel))));
	return attnum;
}

}  // namespace

JsonKind
json_kind_of(Oid typid)
{
	switch (getBaseType(typid)) {
	case INT2OID:
	case INT4OID:
	case INT8OID:
	case OIDOID:
		return JsonKind::kNumber;
	case FLOAT4OID:
	case FLOAT8OID:
		return JsonKind::kFloat;
	case NUMERICOID:
		return JsonKind::kNumeric;
	case BOOLOID:
		return JsonKind::kBool;
	case JSONOID:
	case JSONBOID:
		return JsonKind::kJson;
	default:
		return JsonKind::kString;
	}
}

void
append_json_value(StringInfo out, JsonKind kind, FmgrInfo *output, Datum value)
{
	char *text = OutputFunctionCall(output, value);
	StringInfoSink sink{out};

	switch (kind) {
	case JsonKind::kNumber:
		appendStringInfoString(out, text);
		return;
	case JsonKind::kFloat:
	case JsonKind::kNumeric:
		/* NaN and infinities have no JSON number form: keep them as strings. */
		if (strcmp(text, "NaN") == 0 || strstr(text, "Infinity") != nullptr)
			text::append_json_string(sink, text);
		else
			appendStringInfoString(out, text);
		return;
	case JsonKind::kBool:
		appendStringInfoString(out, text[0] == 't' ? "true" : "false");
		return;
	case JsonKind::kJson:
	case JsonKind::kString:
		text::append_json_string(sink, text);
		return;
	}
}

TrackedRel *
tracked_rel_for(FunctionCallInfo fcinfo, Relation rel)
{
	TrackedRel *info = static_cast<TrackedRel *>(fcinfo->flinfo->fn_extra);
	if (info != nullptr && info->relid == RelationGetRelid(rel))
		return info;

	MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	info = static_cast<TrackedRel *>(palloc0(sizeof(TrackedRel)));
	info->relid = RelationGetRelid(rel);
	info->tracked_relid = info->relid;
	if (rel->rd_rel->relispartition) {
		List *ancestors = get_partition_ancestors(info->relid);
		info->tracked_relid = llast_oid(ancestors);
	}

	info->version_attnum = required_column(rel, "version", INT8OID);
	info->created_at_attnum = required_column(rel, "created_at", TIMESTAMPTZOID);
	info->updated_at_attnum = required_column(rel, "updated_at", TIMESTAMPTZOID);

	Oid pk_index = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pk_index))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
				 errdetail("edgesync identifies the rows of tracked tables by their primary key."),
				 errhint("Add a primary key, or untrack the table with edgesync.untrack().")));
	Relation index = index_open(pk_index, AccessShareLock);
	TupleDesc desc = RelationGetDescr(rel);
	info->nkeys = index->rd_index->indnkeyatts;
	for (int i = 0; i < info->nkeys; i++) {
		KeyColumn *key = &info->keys[i];
		Form_pg_attribute att;
		Oid output_func;
		bool varlena;

		key->attnum = index->rd_index->indkey.values[i];
		att = TupleDescAttr(desc, key->attnum - 1);
		key->name = pstrdup(NameStr(att->attname));
		key->kind = json_kind_of(att->atttypid);
		getTypeOutputInfo(att->atttypid, &output_func, &varlena);
		fmgr_info_cxt(output_func, &key->output, fcinfo->flinfo->fn_mcxt);
	}
	index_close(index, AccessShareLock);
	MemoryContextSwitchTo(old);

	fcinfo->flinfo->fn_extra = info;
	return info;
}

void
append_key_json(StringInfo out, const TrackedRel *info, HeapTuple tuple, TupleDesc desc)
{
	StringInfoSink sink{out};
	appendStringInfoChar(out, '{');
	for (int i = 0; i < info->nkeys; i++) {
		const KeyColumn *key = &info->keys[i];
		bool isnull;
		Datum value = heap_getattr(tuple, key->attnum, desc, &isnull);
		if (i > 0)
			appendStringInfoChar(out, ',');
		text::append_json_string(sink, key->name);
		appendStringInfoChar(out, ':');
		if (isnull)
			appendStringInfoString(out, "null");
		else
			append_json_value(out, key->kind, const_cast<FmgrInfo *>(&key->output), value);
	}
	appendStringInfoChar(out, '}');
}

bool
keys_equal(const TrackedRel *info, HeapTuple a, HeapTuple b, TupleDesc desc)
{
	for (int i = 0; i < info->nkeys; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, info->keys[i].attnum - 1);
		bool a_null, b_null;
		Datum av = heap_getattr(a, att->attnum, desc, &a_null);
		Datum bv = heap_getattr(b, att->attnum, desc, &b_null);
		if (a_null != b_null)
			return false;
		if (!a_null && !datum_image_eq(av, bv, att->attbyval, att->attlen))
			return false;
	}
	return true;
}

}  // namespace edgesync::track
