/*
 * relinfo.cpp — what the plugin knows about each relation, cached.
 *
 * For every relation a change arrives for: its tracked root (a partition's
 * change is reported under the partitioned table the user tracked), whether
 * that root is in edgesync.tracked_tables, the names to report, and per
 * column the value kind, output function, SQL type, key membership and
 * column policy.  Built once, with the historic snapshot of the change that
 * first needs it (so the catalog is read as of that change), and kept in a
 * hash table in CacheMemoryContext.
 *
 * An entry is invalidated by any relcache invalidation of its relation or of
 * its root: DDL on the table, track()/untrack() and set_column_policy() all
 * send one, and logical decoding replays them at the point of the stream
 * where they were committed, so a change is described as of its own
 * snapshot.  Schema renames arrive as namespace syscache invalidations,
 * which invalidate every entry (rare); type renames (a column's cached SQL
 * type name) as type syscache invalidations, which invalidate the entries
 * with a column of that type.
 * Every entry is also invalidated when a decoding session starts (peek
 * decodes the same WAL again).
 */
#include "core/pg_compat.hpp"
#include "decode/decode.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relation.h"
#include "catalog/index.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "nodes/bitmapset.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
}

namespace edgesync::decode {

namespace {

/*
 * OPERATOR(schema.=) naming the equality of typid's default btree opclass, as
 * the key is compared with on the replica: "=" alone would be looked up in
 * the applying role's search_path.  (An operator's own name is made of
 * operator characters only, and never holds a comment start.)
 */
const char *
qualified_equality(Oid typid)
{
	TypeCacheEntry *type = lookup_type_cache(typid, TYPECACHE_EQ_OPR);
	HeapTuple tuple = OidIsValid(type->eq_opr)
						  ? SearchSysCache1(OPEROID, ObjectIdGetDatum(type->eq_opr))
						  : nullptr;
	if (!HeapTupleIsValid(tuple))
		return "OPERATOR(pg_catalog.=)";
	Form_pg_operator op = reinterpret_cast<Form_pg_operator>(GETSTRUCT(tuple));
	StringInfoData buf;
	initStringInfo(&buf);
	StringInfoSink sink{&buf};
	appendStringInfoString(&buf, "OPERATOR(");
	if (op->oprnamespace == PG_CATALOG_NAMESPACE)
		appendStringInfoString(&buf, "pg_catalog");
	else
		text::append_sql_identifier(sink, get_namespace_name(op->oprnamespace));
	appendStringInfo(&buf, ".%s)", NameStr(op->oprname));
	ReleaseSysCache(tuple);
	return buf.data;
}

/*
 * The column's type as the sql format casts to it, schema-qualified.  Types
 * of pg_catalog keep format_type()'s SQL spelling (timestamp with time zone,
 * character varying(10)); any other type's schema and name, which anyone who
 * may create a type chooses, go through text::append_sql_identifier like
 * every name in the output (format_type() would keep a line break in them).
 */
const char *
sql_type_name(Oid typid, int32 typmod)
{
	HeapTuple tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for type %u", typid);
	Form_pg_type type = reinterpret_cast<Form_pg_type>(GETSTRUCT(tuple));
	/* An array is written as its element type and [], as format_type() does. */
	bool is_array = IsTrueArrayType(type) && type->typstorage != TYPSTORAGE_PLAIN;
	Oid named = is_array ? type->typelem : typid;
	ReleaseSysCache(tuple);
	tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(named));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for type %u", named);
	type = reinterpret_cast<Form_pg_type>(GETSTRUCT(tuple));
	if (type->typnamespace == PG_CATALOG_NAMESPACE) {
		ReleaseSysCache(tuple);
		return format_type_extended(typid, typmod,
									FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
	}
	StringInfoData buf;
	initStringInfo(&buf);
	StringInfoSink sink{&buf};
	text::append_sql_identifier(sink, get_namespace_name(type->typnamespace));
	appendStringInfoChar(&buf, '.');
	text::append_sql_identifier(sink, NameStr(type->typname));
	if (typmod >= 0) {
		if (OidIsValid(type->typmodout))
			appendStringInfoString(
				&buf, DatumGetCString(OidFunctionCall1(type->typmodout, Int32GetDatum(typmod))));
		else
			appendStringInfo(&buf, "(%d)", typmod);
	}
	ReleaseSysCache(tuple);
	if (is_array)
		appendStringInfoString(&buf, "[]");
	return buf.data;
}

HTAB *cache = nullptr;
uint64 invalidations = 0;
bool have_invalid = false; /* some entry is invalid: relinfo_purge has work */

void
invalidate(Oid relid)
{
	invalidations++;
	have_invalid = true;
	if (cache == nullptr)
		return;
	HASH_SEQ_STATUS status;
	hash_seq_init(&status, cache);
	for (RelInfo *e; (e = static_cast<RelInfo *>(hash_seq_search(&status))) != nullptr;)
		if (relid == InvalidOid || e->relid == relid || e->root == relid)
			e->valid = false;
}

void
on_relcache(Datum, Oid relid)
{
	invalidate(relid);
}

void
on_syscache(Datum, int, uint32)
{
	invalidate(InvalidOid);
}

/*
 * A type changed (renamed, moved to another schema): only the entries with a
 * column of that type name it.  Every CREATE TABLE (a new row type) sends
 * one, so invalidating everything here would rebuild every entry whenever a
 * session creates a temporary table.
 */
void
on_type_syscache(Datum, int, uint32 hashvalue)
{
	if (hashvalue == 0 || cache == nullptr) {
		invalidate(InvalidOid);
		return;
	}
	invalidations++;
	HASH_SEQ_STATUS status;
	hash_seq_init(&status, cache);
	for (RelInfo *e; (e = static_cast<RelInfo *>(hash_seq_search(&status))) != nullptr;)
		for (int i = 0; i < e->natts && e->valid; i++)
			if (!e->columns[i].dropped && e->columns[i].type_hash == hashvalue) {
				e->valid = false;
				have_invalid = true;
			}
}

/*
 * True if a value of the type may print names that depend on search_path
 * (regclass, regtype, ... or, to be safe, a composite or range that could
 * hold one), so that the plugin pins search_path before writing it.
 */
bool
may_name_objects(Oid typid)
{
	Oid base = getBaseType(typid);
	Oid element = get_element_type(base);
	if (OidIsValid(element))
		base = getBaseType(element);
	switch (base) {
	case REGCLASSOID:
	case REGTYPEOID:
	case REGPROCOID:
	case REGPROCEDUREOID:
	case REGOPEROID:
	case REGOPERATOROID:
	case REGCONFIGOID:
	case REGDICTIONARYOID:
	case REGCOLLATIONOID:
		return true;
	default: {
		char typtype = get_typtype(base);
		return typtype == TYPTYPE_COMPOSITE || typtype == TYPTYPE_RANGE ||
			   typtype == TYPTYPE_MULTIRANGE;
	}
	}
}

/* An edgesync catalog table's OID, or InvalidOid (no extension). */
Oid
catalog_relid(const char *name)
{
	Oid nsp = get_namespace_oid("edgesync", true);
	return OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
}

/* True if edgesync.tracked_tables has a row for relid. */
bool
is_tracked(Oid relid)
{
	Oid catalog = catalog_relid("tracked_tables");
	if (!OidIsValid(catalog))
		return false;
	Relation r = table_open(catalog, AccessShareLock);
	ScanKeyData key;
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	SysScanDesc scan = systable_beginscan(r, InvalidOid, false, nullptr, 1, &key);
	bool found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(r, AccessShareLock);
	return found;
}

/*
 * Applies the policies stored for info->root to its columns (a partition's
 * matched by name).  A policy naming a column the table does not have can
 * only be stale (a RENAME COLUMN made while edgesync's event triggers were
 * off, a row written into the catalog by hand): its column may now stream
 * under another name, so decoding stops rather than guess.
 */
void
load_policies(RelInfo *info)
{
	StoredPolicy *rows;
	int n = read_column_policies(info->root, nullptr, &rows);
	for (int r = 0; r < n; r++) {
		bool found = false;
		for (int i = 0; i < info->natts; i++) {
			ColumnInfo *col = &info->columns[i];
			if (!col->dropped && strcmp(col->name, rows[r].column) == 0) {
				col->policy = rows[r].policy;
				info->has_policy |= rows[r].policy != Policy::kReplicate;
				found = true;
			}
		}
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column policy of relation \"%s.%s\" names column \"%s\", which it "
							"does not have",
							info->schema, info->table, rows[r].column),
					 errdetail("The column was renamed or dropped while edgesync's event triggers "
							   "did not run; rather than guess which column the policy protects, "
							   "nothing of the table is streamed."),
					 errhint("Set the column's policy again with edgesync.set_column_policy(), "
							 "and remove the stale one with edgesync.set_column_policy('%s.%s', "
							 "'%s', 'replicate').",
							 info->schema, info->table, rows[r].column)));
	}
}

bool
selected_by_option(const DecodeState *state, const char *schema, const char *table)
{
	if (state->ntables < 0)
		return true;
	for (int i = 0; i < state->ntables; i++)
		if (strcmp(state->table_schemas[i], schema) == 0 &&
			strcmp(state->table_names[i], table) == 0)
			return true;
	return false;
}

/* The key columns of an index, in the index's order (the primary key's as declared). */
int
index_attnums(Oid indexid, AttrNumber *out)
{
	if (!OidIsValid(indexid))
		return 0;
	Relation index = index_open(indexid, AccessShareLock);
	int n = index->rd_index->indnkeyatts;
	for (int i = 0; i < n; i++)
		out[i] = index->rd_index->indkey.values[i];
	index_close(index, AccessShareLock);
	return n;
}

/*
 * True if two values of this key column are equal exactly when their text
 * outputs are: the sql writer then tells "a key already in this run" by
 * comparing the written literals (numeric 1.0 = 1.00, float -0 = 0, citext
 * and nondeterministic collations are not).
 */
bool
key_text_is_exact(Form_pg_attribute att)
{
	switch (att->atttypid) {
	case INT2OID:
	case INT4OID:
	case INT8OID:
	case OIDOID:
	case BOOLOID:
	case UUIDOID:
	case DATEOID:
	case TIMESTAMPOID:
	case TIMESTAMPTZOID:
	case BYTEAOID:
		return true;
	case TEXTOID:
	case VARCHAROID: /* not bpchar: 'a' = 'a ' */
		return !OidIsValid(att->attcollation) || get_collation_isdeterministic(att->attcollation);
	default:
		return false;
	}
}

/*
 * A stored generated column's expression, as pg_get_expr() deparses it for
 * the relation (functions and operators outside pg_catalog qualified: the
 * decoding pins search_path), for a replica table that computes it too.
 */
const char *
generation_expression(Relation rel, AttrNumber attnum)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	const char *expr = nullptr;
	for (int i = 0; constr != nullptr && i < constr->num_defval && expr == nullptr; i++) {
		if (constr->defval[i].adnum != attnum)
			continue;
		/* Every name outside pg_catalog qualified, whatever the session's search_path. */
		int level = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		Datum deparsed =
			DirectFunctionCall2(pg_get_expr, CStringGetTextDatum(constr->defval[i].adbin),
								ObjectIdGetDatum(RelationGetRelid(rel)));
		expr = text_to_cstring(reinterpret_cast<::text *>(DatumGetPointer(deparsed)));
		AtEOXact_GUC(true, level);
	}
	return expr;
}

/*
 * A hash of what a replica table block says of the table: its name, its
 * columns (name, type, NOT NULL, policy) and its key.  The sql format writes
 * a table's block again when it changes within a session.
 */
uint64
shape_hash(const RelInfo *info)
{
	uint64 h = hash_bytes_extended(reinterpret_cast<const unsigned char *>(info->sql_name),
								   static_cast<int>(strlen(info->sql_name)), 0);
	/* Summed over the columns: a partition may have them in another order. */
	for (int i = 0; i < info->natts; i++) {
		const ColumnInfo *col = &info->columns[i];
		if (col->dropped)
			continue;
		char flags[4] = {static_cast<char>(col->not_null), static_cast<char>(col->policy),
						 static_cast<char>(col->generated), static_cast<char>(col->is_key)};
		uint64 c = hash_bytes_extended(reinterpret_cast<const unsigned char *>(col->name),
									   static_cast<int>(strlen(col->name)), 1);
		c = hash_bytes_extended(reinterpret_cast<const unsigned char *>(col->sql_type),
								static_cast<int>(strlen(col->sql_type)), c);
		h += hash_bytes_extended(reinterpret_cast<const unsigned char *>(flags), sizeof(flags), c);
	}
	return h;
}

void
build(RelInfo *info, const DecodeState *state, Relation rel, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	Oid relid = RelationGetRelid(rel);

	info->relid = relid;
	info->context = context;
	info->root = rel->rd_rel->relispartition ? llast_oid(get_partition_ancestors(relid)) : relid;
	/* Only a table can be tracked: a registered relation that became something else is not. */
	char root_kind = get_rel_relkind(info->root);
	info->tracked = (root_kind == RELKIND_RELATION || root_kind == RELKIND_PARTITIONED_TABLE) &&
					!get_rel_relispartition(info->root) && is_tracked(info->root);
	if (!info->tracked) {
		MemoryContextSwitchTo(old);
		return; /* (the caller deletes the context it did not need) */
	}
	info->schema = get_namespace_name(get_rel_namespace(info->root));
	info->table = get_rel_name(info->root);
	info->selected = selected_by_option(state, info->schema, info->table);

	StringInfoData buf;
	initStringInfo(&buf);
	StringInfoSink sink{&buf};
	appendStringInfoString(&buf, "\"schema\":");
	text::append_json_string(sink, info->schema);
	appendStringInfoString(&buf, ",\"table\":");
	text::append_json_string(sink, info->table);
	info->json_names = buf.data;
	/* On the replica: in the schema the option names, if any, else the same. */
	info->replica_schema =
		state->replica_schema != nullptr ? pstrdup(state->replica_schema) : info->schema;
	initStringInfo(&buf);
	text::append_sql_identifier(sink, info->replica_schema);
	appendStringInfoChar(&buf, '.');
	text::append_sql_identifier(sink, info->table);
	info->sql_name = buf.data;

	TupleDesc desc = RelationGetDescr(rel);
	info->natts = desc->natts;
	info->columns = static_cast<ColumnInfo *>(palloc0(sizeof(ColumnInfo) * (desc->natts + 1)));
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ColumnInfo *col = &info->columns[i];
		col->dropped = att->attisdropped;
		if (col->dropped)
			continue;
		col->generated = att->attgenerated == ATTRIBUTE_GENERATED_STORED;
		col->not_null = att->attnotnull;
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		col->typlen = att->attlen;
		col->type_hash = GetSysCacheHashValue1(TYPEOID, ObjectIdGetDatum(att->atttypid));
		col->kind = value_kind_of(att->atttypid);
		/* Not an array itself (unnest would flatten it), and has an array type. */
		col->in_array = !OidIsValid(get_element_type(getBaseType(att->atttypid))) &&
						getBaseType(att->atttypid) != BOXOID && /* its arrays use ';' */
						OidIsValid(get_array_type(att->atttypid));
		if (col->kind == ValueKind::kOther)
			info->names_objects |= may_name_objects(att->atttypid);
		col->policy = Policy::kReplicate;
		col->name = pstrdup(NameStr(att->attname));
		initStringInfo(&buf);
		text::append_json_string(sink, col->name);
		appendStringInfoChar(&buf, ':');
		col->json_key = buf.data;
		initStringInfo(&buf);
		text::append_sql_identifier(sink, col->name);
		col->sql_ident = buf.data;
		col->sql_type = sql_type_name(att->atttypid, att->atttypmod);
		Oid output;
		bool varlena;
		getTypeOutputInfo(att->atttypid, &output, &varlena);
		fmgr_info_cxt(output, &col->output, context);
		if (strcmp(col->name, "version") == 0 && att->atttypid == INT8OID)
			info->version_attnum = att->attnum;
		if (col->generated)
			col->generation = generation_expression(rel, att->attnum);
	}

	info->nkeys = index_attnums(edgesync::primary_key_index(rel), info->keys);
	info->nidentity = index_attnums(RelationGetReplicaIndex(rel), info->identity);
	info->keys_text_exact = info->nkeys > 0;
	for (int k = 0; k < info->nkeys; k++) {
		info->columns[info->keys[k] - 1].is_key = true;
		info->keys_text_exact &= key_text_is_exact(TupleDescAttr(desc, info->keys[k] - 1));
	}
	for (int k = 0; k < info->nidentity; k++)
		info->columns[info->identity[k] - 1].is_identity = true;
	for (int i = 0; i < info->natts; i++)
		if (info->columns[i].is_key || info->columns[i].is_identity)
			info->columns[i].sql_eq = qualified_equality(info->columns[i].typid);

	load_policies(info);
	info->shape_hash = shape_hash(info);
	MemoryContextSwitchTo(old);
}

} // namespace

void
relinfo_invalidate_all()
{
	invalidate(InvalidOid);
}

/*
 * Frees the invalid entries (relations dropped or changed since they were
 * cached), so the cache does not grow with every relation a long-running
 * walsender ever saw.  Called between transactions, when no callback holds
 * a RelInfo pointer: an invalidation may arrive while one is in use, so the
 * callback itself only marks entries.
 */
void
relinfo_purge()
{
	if (cache == nullptr || !have_invalid)
		return;
	HASH_SEQ_STATUS status;
	hash_seq_init(&status, cache);
	for (RelInfo *e; (e = static_cast<RelInfo *>(hash_seq_search(&status))) != nullptr;) {
		if (e->valid)
			continue;
		if (e->context != nullptr)
			MemoryContextDelete(e->context);
		hash_search(cache, &e->relid, HASH_REMOVE, nullptr);
	}
	have_invalid = false;
}

const RelInfo *
relinfo_get(DecodeState *state, Relation rel)
{
	Oid relid = RelationGetRelid(rel);

	if (cache == nullptr) {
		HASHCTL ctl;
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelInfo);
		ctl.hcxt = CacheMemoryContext;
		cache = hash_create("edgesync decoded relations", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(on_relcache, PointerGetDatum(nullptr));
		CacheRegisterSyscacheCallback(NAMESPACEOID, on_syscache, PointerGetDatum(nullptr));
		/* sql_type names a column's type: a renamed type sends no relcache inval. */
		CacheRegisterSyscacheCallback(TYPEOID, on_type_syscache, PointerGetDatum(nullptr));
	}

	bool found;
	RelInfo *e = static_cast<RelInfo *>(hash_search(cache, &relid, HASH_ENTER, &found));
	if (!found) {
		e->valid = false;
		e->context = nullptr;
		e->root = InvalidOid;
	}
	/* (A descriptor of another width would be a missed invalidation: rebuild.) */
	if (e->valid && (!e->tracked || e->natts == RelationGetDescr(rel)->natts))
		return e;

	uint64 before = invalidations;
	MemoryContext context = AllocSetContextCreate(CacheMemoryContext, "edgesync decoded relation",
												  ALLOCSET_SMALL_SIZES);
	RelInfo fresh;
	memset(&fresh, 0, sizeof(fresh));
	PG_TRY();
	{
		build(&fresh, state, rel, context);
	}
	PG_CATCH();
	{
		MemoryContextDelete(context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (e->context != nullptr)
		MemoryContextDelete(e->context);
	if (!fresh.tracked) {
		/* An untracked relation needs no names or columns: keep it small. */
		MemoryContextDelete(context);
		fresh.context = nullptr;
	}
	*e = fresh;
	for (int i = 0; i < e->natts; i++)
		e->columns[i].rel = e; /* (not &fresh, a local) */
	/* An invalidation that arrived while building makes it stale at once. */
	e->valid = invalidations == before;
	return e;
}

} // namespace edgesync::decode
