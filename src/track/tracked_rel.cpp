/*
 * tracked_rel.cpp — per-query description of a tracked table for the row
 * triggers, and the primary key as JSON (see tracked_rel.hpp).
 */
#include "track/tracked_rel.hpp"

#include "core/string_info_sink.hpp"
#include "core/text_writer.hpp"
#include "core/pg_compat.hpp"
#include "core/value_kind.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "miscadmin.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "nodes/bitmapset.h"
#include "optimizer/optimizer.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/bytea.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/pg_locale.h"
#include "utils/snapmgr.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/relcache.h"
}

#include <cmath>
#include <cstring>

namespace edgesync::track {

namespace {

AttrNumber
required_column(Relation rel, const char *name, Oid typid)
{
	TupleDesc desc = RelationGetDescr(rel);
	AttrNumber attnum = get_attnum(RelationGetRelid(rel), name);
	if (attnum == InvalidAttrNumber || TupleDescAttr(desc, attnum - 1)->atttypid != typid)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("table \"%s\" has no column \"%s\" of type %s",
							   RelationGetRelationName(rel), name, format_type_be(typid)),
						errdetail("edgesync's triggers keep this column up to date."),
						errhint("Call edgesync.track('%s') again to add it.",
								RelationGetRelationName(rel))));
	return attnum;
}

/* The tracked table rel belongs to: itself, or its partition root. */
Oid
tracked_root(Relation rel)
{
	Oid relid = RelationGetRelid(rel);
	return rel->rd_rel->relispartition ? llast_oid(get_partition_ancestors(relid)) : relid;
}

} // namespace

bool
is_tracked(Oid relid)
{
	Oid nsp = get_namespace_oid("edgesync", true);
	Oid catalog = OidIsValid(nsp) ? get_relname_relid("tracked_tables", nsp) : InvalidOid;
	if (!OidIsValid(catalog))
		return false;
	Relation r = table_open(catalog, AccessShareLock);
	ScanKeyData key;
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	SysScanDesc scan = systable_beginscan(r, InvalidOid, false, GetLatestSnapshot(), 1, &key);
	bool found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(r, AccessShareLock);
	return found;
}

void
require_tracked(Relation rel)
{
	Oid root = tracked_root(rel);
	if (is_tracked(root))
		return;
	char *name = get_rel_name(root);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table \"%s\" is not tracked by edgesync", name),
			 errdetail("edgesync's trigger functions version and log only tables registered by "
					   "edgesync.track()."),
			 errhint("Call edgesync.track('%s'), or drop the trigger that calls edgesync's "
					 "function.",
					 name)));
}

JsonKind
json_kind_of(Oid typid)
{
	switch (value_kind_of(typid)) {
	case ValueKind::kInt:
	case ValueKind::kOid:
		return JsonKind::kNumber;
	case ValueKind::kFloat:
		return JsonKind::kFloat;
	case ValueKind::kNumeric:
		return JsonKind::kNumeric;
	case ValueKind::kBool:
		return JsonKind::kBool;
	case ValueKind::kJson:
	case ValueKind::kJsonb:
		return JsonKind::kJson;
	case ValueKind::kText:
	case ValueKind::kOther:
		break;
	}
	return JsonKind::kString;
}

namespace {

/*
 * True if the text output of a value of typid may depend on a session's
 * output settings.  Types not listed (dates and times, intervals, floats,
 * bytea, money, and anything this list does not know) are written under
 * pinned settings.
 */
bool
output_depends_on_settings(Oid typid)
{
	switch (getBaseType(typid)) {
	case INT2OID:
	case INT4OID:
	case INT8OID:
	case OIDOID:
	case NUMERICOID:
	case BOOLOID:
	case CHAROID:
	case NAMEOID:
	case TEXTOID:
	case VARCHAROID:
	case BPCHAROID:
	case UUIDOID:
	case JSONOID:
	case JSONBOID:
		return false;
	default:
		return true;
	}
}

/* A zone that prints every instant as UTC does (Etc/UTC, GMT, ...). */
bool
is_utc(const pg_tz *tz)
{
	long offset;
	return pg_get_timezone_offset(tz, &offset) && offset == 0;
}

/* The C locale's monetary conventions, under any of its names. */
bool
is_c_locale(const char *name)
{
	return strcmp(name, "C") == 0 || strcmp(name, "POSIX") == 0 || strncmp(name, "C.", 2) == 0;
}

void
set_output_setting(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
							 false);
}

} // namespace

/*
 * Sets, until unpin_output_settings(), each output setting the session has
 * otherwise: the settings the stream writes every value under
 * (src/decode/plugin.cpp), so that a key's text is the same whoever wrote it
 * (a date written under DateStyle 'SQL, DMY' would read back as another date
 * under MDY) and its HMAC, recomputed from the log (src/decode/log_keys.cpp),
 * is the stream's.  Returns the GUC nest level to unwind, or -1 when the
 * session's settings are those already: the usual case costs nothing.
 */
int
pin_output_settings()
{
	bool datestyle = DateStyle != USE_ISO_DATES;
	bool intervalstyle = IntervalStyle != INTSTYLE_POSTGRES;
	bool float_digits = extra_float_digits < 1;
	bool bytea = bytea_output != BYTEA_OUTPUT_HEX;
	bool timezone = !is_utc(session_timezone);
	bool monetary = !is_c_locale(locale_monetary);
	if (!datestyle && !intervalstyle && !float_digits && !bytea && !timezone && !monetary)
		return -1;
	int nest_level = NewGUCNestLevel();
	if (datestyle)
		set_output_setting("datestyle", "ISO");
	if (intervalstyle)
		set_output_setting("intervalstyle", "postgres");
	if (float_digits)
		set_output_setting("extra_float_digits", "1");
	if (bytea)
		set_output_setting("bytea_output", "hex");
	if (timezone)
		set_output_setting("timezone", "UTC");
	if (monetary)
		set_output_setting("lc_monetary", "C");
	return nest_level;
}

void
unpin_output_settings(int nest_level)
{
	if (nest_level >= 0)
		AtEOXact_GUC(true, nest_level);
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

namespace {

/*
 * The backend's cache of TrackedRel, by relation OID.  An entry is marked
 * invalid by any relcache invalidation of its relation (ALTER TABLE, a new
 * primary key, ATTACH/DETACH PARTITION, DROP) and rebuilt in place at its next
 * use, so a pointer to an entry stays valid for the backend's life.
 */
struct CacheEntry {
	Oid relid; /* hash key */
	bool valid;
	MemoryContext context; /* key names and output functions */
	TrackedRel info;
};

HTAB *cache = nullptr;
uint64 invalidations = 0;

void
on_relcache_invalidation(Datum, Oid relid)
{
	invalidations++;
	if (relid == InvalidOid) {
		HASH_SEQ_STATUS status;
		hash_seq_init(&status, cache);
		for (CacheEntry *e; (e = static_cast<CacheEntry *>(hash_seq_search(&status))) != nullptr;)
			e->valid = false;
		return;
	}
	/* The table itself, or a partition of it (track(), policies and RLS are set on the root). */
	HASH_SEQ_STATUS status;
	hash_seq_init(&status, cache);
	for (CacheEntry *e; (e = static_cast<CacheEntry *>(hash_seq_search(&status))) != nullptr;)
		if (e->relid == relid || (e->context != nullptr && e->info.tracked_relid == relid))
			e->valid = false;
}

void
set_column(KeyColumn *col, Form_pg_attribute att, MemoryContext context)
{
	Oid output_func;
	bool varlena;
	col->attnum = att->attnum;
	col->name = pstrdup(NameStr(att->attname));
	col->kind = json_kind_of(att->atttypid);
	getTypeOutputInfo(att->atttypid, &output_func, &varlena);
	fmgr_info_cxt(output_func, &col->output, context);
}

/*
 * If the tracked table has row level security: the columns of rel that its
 * SELECT (and ALL) policies read, all of them if one reads the whole row.
 * Only these are kept of a deleted row: what pull() needs to evaluate a
 * caller's policies, and no more patient data than that.
 */
void
find_image_columns(TrackedRel *info, Relation rel, MemoryContext context)
{
	Relation root = info->tracked_relid == info->relid
						? rel
						: relation_open(info->tracked_relid, AccessShareLock);
	info->row_security = root->rd_rel->relrowsecurity;
	Bitmapset *attrs = nullptr;
	if (info->row_security && root->rd_rsdesc != nullptr) {
		ListCell *lc;
		foreach (lc, root->rd_rsdesc->policies) {
			RowSecurityPolicy *policy = static_cast<RowSecurityPolicy *>(lfirst(lc));
			if (policy->polcmd == '*' || policy->polcmd == ACL_SELECT_CHR)
				pull_varattnos(reinterpret_cast<Node *>(policy->qual), 1, &attrs);
		}
	}
	TupleDesc root_desc = RelationGetDescr(root);
	TupleDesc desc = RelationGetDescr(rel);
	bool whole_row = bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs);
	info->image = static_cast<KeyColumn *>(palloc0(sizeof(KeyColumn) * (desc->natts + 1)));
	info->nimage = 0;
	info->image_needs_pinning = false;
	for (int i = 0; info->row_security && i < root_desc->natts; i++) {
		Form_pg_attribute root_att = TupleDescAttr(root_desc, i);
		if (root_att->attisdropped ||
			(!whole_row &&
			 !bms_is_member(root_att->attnum - FirstLowInvalidHeapAttributeNumber, attrs)))
			continue;
		AttrNumber attnum = get_attnum(RelationGetRelid(rel), NameStr(root_att->attname));
		if (attnum == InvalidAttrNumber)
			continue;
		Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
		set_column(&info->image[info->nimage++], att, context);
		info->image_needs_pinning |= output_depends_on_settings(att->atttypid);
	}
	if (root != rel)
		relation_close(root, NoLock);
}

void
build(TrackedRel *info, Relation rel, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	memset(info, 0, sizeof(TrackedRel));
	info->relid = RelationGetRelid(rel);
	info->tracked_relid = tracked_root(rel);
	require_tracked(rel);

	info->version_attnum = required_column(rel, "version", INT8OID);
	info->created_at_attnum = required_column(rel, "created_at", TIMESTAMPTZOID);
	info->updated_at_attnum = required_column(rel, "updated_at", TIMESTAMPTZOID);

	Oid pk_index = edgesync::primary_key_index(rel);
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
		Oid output_func;
		bool varlena;

		key->attnum = index->rd_index->indkey.values[i];
		Form_pg_attribute att = TupleDescAttr(desc, key->attnum - 1);
		key->name = pstrdup(NameStr(att->attname));
		key->kind = json_kind_of(att->atttypid);
		getTypeOutputInfo(att->atttypid, &output_func, &varlena);
		fmgr_info_cxt(output_func, &key->output, context);
		info->keys_need_pinning |= output_depends_on_settings(att->atttypid);
	}
	index_close(index, AccessShareLock);
	find_image_columns(info, rel, context);
	MemoryContextSwitchTo(old);
}

/* build(), deleting context if it fails (it lives under CacheMemoryContext). */
void
build_or_delete(TrackedRel *info, Relation rel, MemoryContext context)
{
	PG_TRY();
	{
		build(info, rel, context);
	}
	PG_CATCH();
	{
		MemoryContextDelete(context);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

} // namespace

TrackedRel *
tracked_rel_for(FunctionCallInfo fcinfo, Relation rel)
{
	Oid relid = RelationGetRelid(rel);

	/* Fast path: this call site's entry, still valid. */
	CacheEntry *e = static_cast<CacheEntry *>(fcinfo->flinfo->fn_extra);
	if (e != nullptr && e->valid && e->relid == relid)
		return &e->info;

	if (cache == nullptr) {
		HASHCTL ctl;
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CacheEntry);
		ctl.hcxt = CacheMemoryContext;
		cache = hash_create("edgesync tracked relations", 32, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(on_relcache_invalidation, PointerGetDatum(nullptr));
	}
	bool found;
	e = static_cast<CacheEntry *>(hash_search(cache, &relid, HASH_ENTER, &found));
	if (!found) {
		e->valid = false;
		e->context = nullptr;
	}
	if (!e->valid) {
		uint64 before = invalidations;
		MemoryContext context = AllocSetContextCreate(
			CacheMemoryContext, "edgesync tracked relation", ALLOCSET_SMALL_SIZES);
		TrackedRel fresh;
		build_or_delete(&fresh, rel, context);
		if (e->context != nullptr)
			MemoryContextDelete(e->context);
		e->context = context;
		e->info = fresh;
		/* An invalidation that arrived while building makes it stale at once. */
		e->valid = invalidations == before;
	}
	fcinfo->flinfo->fn_extra = e;
	return &e->info;
}

namespace {

/* The columns as a JSON object; value(attnum, &isnull) gives each one's value. */
template <typename Value>
void
append_columns_json(StringInfo out, const KeyColumn *columns, int n, bool pin, Value value)
{
	int nest_level = pin ? pin_output_settings() : -1;
	StringInfoSink sink{out};
	appendStringInfoChar(out, '{');
	for (int i = 0; i < n; i++) {
		const KeyColumn *key = &columns[i];
		bool isnull;
		Datum datum = value(key->attnum, &isnull);
		if (i > 0)
			appendStringInfoChar(out, ',');
		text::append_json_string(sink, key->name);
		appendStringInfoChar(out, ':');
		if (isnull)
			appendStringInfoString(out, "null");
		else
			append_json_value(out, key->kind, const_cast<FmgrInfo *>(&key->output), datum);
	}
	appendStringInfoChar(out, '}');
	unpin_output_settings(nest_level);
}

} // namespace

void
append_key_json(StringInfo out, const TrackedRel *info, HeapTuple tuple, TupleDesc desc)
{
	append_columns_json(
		out, info->keys, info->nkeys, info->keys_need_pinning,
		[&](AttrNumber attnum, bool *isnull) { return heap_getattr(tuple, attnum, desc, isnull); });
}

void
append_key_json(StringInfo out, const TrackedRel *info, const Datum *values, const bool *nulls)
{
	append_columns_json(out, info->keys, info->nkeys, info->keys_need_pinning,
						[&](AttrNumber attnum, bool *isnull) {
							*isnull = nulls[attnum - 1];
							return values[attnum - 1];
						});
}

void
append_image_json(StringInfo out, const TrackedRel *info, HeapTuple tuple, TupleDesc desc)
{
	append_columns_json(
		out, info->image, info->nimage, info->image_needs_pinning,
		[&](AttrNumber attnum, bool *isnull) { return heap_getattr(tuple, attnum, desc, isnull); });
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

} // namespace edgesync::track
