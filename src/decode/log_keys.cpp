/*
 * log_keys.cpp — the change log's keys as a reader may see them: the column
 * policy applied to edgesync.sync_log and edgesync.changes().
 *
 * The log keeps every key as written (pull() needs it to find the row).  A
 * reader is shown a key column in clear only if it may SELECT that column
 * and the column is replicated (or the reader is a member of
 * edgesync_phi_reader); otherwise a hashed column shows as the stream shows
 * it (the same HMAC of its text output, under the same output settings) and
 * any other column as null.  A key of a dropped table, or of a column that
 * is no longer in the primary key, is null.
 *
 *   edgesync._log_pks(tid) -> text[]
 *       The keys of the sync_log_data row at tid, masked for the calling
 *       role (what the sync_log view shows).  It reads the row itself: it is
 *       given a row's position, never a value, so it cannot be used to hash
 *       guesses (an HMAC oracle would let anyone confirm a hashed MRN).
 *   edgesync.changes(cursor, max)
 *       The log window (edgesync._window, run as the log's owner: readers do
 *       not read the keys in sync_log_data), with keys masked likewise.
 *
 * It lives in decode because the policy is decode's: the same HMAC
 * (policy.cpp) and output settings (plugin.cpp) as the stream.  Plain C-style
 * code: it calls PostgreSQL directly and owns no C++ objects.
 */
#include "core/catalog_owner.hpp"
#include "core/pg_compat.hpp"
#include "decode/decode.hpp"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(edgesync_log_pks);
PG_FUNCTION_INFO_V1(edgesync_changes);
}

namespace edgesync::decode {

namespace {

enum class Shown : char { kClear, kHash, kNull };

struct MaskColumn {
	const char *name;
	Shown shown;
	Oid input;
	Oid ioparam;
	int32 typmod;
	Oid output;
};

/* How one table's keys are shown to one role. */
struct KeyMask {
	Oid relid;
	bool clear; /* every key column in clear: the log's text as it is */
	bool hashes;
	int ncols;
	MaskColumn cols[INDEX_MAX_KEYS];
};

/*
 * The policy ('h', 'r', or 0 for replicate) of column attnum of relid.  A
 * stored policy naming a column the table does not have (stale: see
 * relinfo.cpp) could be this column's under an old name: 'r'.
 */
char
policy_of(Oid relid, AttrNumber attnum)
{
	StoredPolicy *rows;
	int n = read_column_policies(relid, GetLatestSnapshot(), &rows);
	const char *name = get_attname(relid, attnum, false);
	char policy = 0;
	for (int r = 0; r < n; r++) {
		if (strcmp(rows[r].column, name) == 0)
			policy = rows[r].policy == Policy::kHash	 ? 'h'
					 : rows[r].policy == Policy::kRedact ? 'r'
														 : 0;
		else if (get_attnum(relid, rows[r].column) == InvalidAttrNumber)
			return 'r';
	}
	return policy;
}

bool
hash_key_set()
{
	const char *key = GetConfigOption("edgesync.hash_key", true, false);
	return key != nullptr && key[0] != '\0';
}

void
build_mask(KeyMask *m, Oid relid, Oid user)
{
	memset(m, 0, sizeof(KeyMask));
	m->relid = relid;
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return; /* a dropped table: nothing can be checked, nothing is shown */
	Oid phi_role = get_role_oid("edgesync_phi_reader", true);
	bool phi = OidIsValid(phi_role) && has_privs_of_role(user, phi_role);
	bool table_select = pg_class_aclcheck(relid, user, ACL_SELECT) == ACLCHECK_OK;

	Relation rel = relation_open(relid, AccessShareLock);
	Oid pk = edgesync::primary_key_index(rel);
	if (OidIsValid(pk)) {
		Relation index = index_open(pk, AccessShareLock);
		m->ncols = index->rd_index->indnkeyatts;
		for (int i = 0; i < m->ncols; i++) {
			AttrNumber attnum = index->rd_index->indkey.values[i];
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
			MaskColumn *col = &m->cols[i];
			col->name = pstrdup(NameStr(att->attname));
			char policy = policy_of(relid, attnum);
			bool select = table_select ||
						  pg_attribute_aclcheck(relid, attnum, user, ACL_SELECT) == ACLCHECK_OK;
			if (select && (policy == 0 || phi))
				col->shown = Shown::kClear;
			else if (policy == 'h' && hash_key_set())
				col->shown = Shown::kHash;
			else
				col->shown = Shown::kNull;
			getTypeInputInfo(att->atttypid, &col->input, &col->ioparam);
			col->typmod = att->atttypmod;
			bool varlena;
			getTypeOutputInfo(att->atttypid, &col->output, &varlena);
		}
		index_close(index, AccessShareLock);
	}
	relation_close(rel, AccessShareLock);
	m->clear = m->ncols > 0;
	for (int i = 0; i < m->ncols; i++) {
		m->clear &= m->cols[i].shown == Shown::kClear;
		m->hashes |= m->cols[i].shown == Shown::kHash;
	}
}

/* A JSON scalar's text, as its column's input function reads it (nullptr: JSON null). */
char *
scalar_text(const JsonbValue *v)
{
	switch (v->type) {
	case jbvString:
		return pnstrdup(v->val.string.val, v->val.string.len);
	case jbvNumeric:
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	case jbvBool:
		return pstrdup(v->val.boolean ? "true" : "false");
	case jbvBinary:
		return JsonbToCString(nullptr, v->val.binary.data, v->val.binary.len);
	default:
		return nullptr;
	}
}

void
append_json_scalar(StringInfo out, const JsonbValue *v)
{
	char *text = scalar_text(v);
	if (text == nullptr)
		appendStringInfoString(out, "null");
	else if (v->type == jbvString)
		escape_json(out, text);
	else
		appendStringInfoString(out, text);
}

/*
 * The key pk (the log's JSON text) as m shows it, as JSON text.  Hashing
 * needs the output settings pinned (the caller does it, see pinned_for()).
 */
char *
masked_key(const KeyMask *m, const char *pk)
{
	Jsonb *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(pk)));
	StringInfoData out;
	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue v;
	JsonbIteratorToken token;
	const MaskColumn *col = nullptr;
	bool first = true;
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
		if (token == WJB_KEY) {
			char *name = pnstrdup(v.val.string.val, v.val.string.len);
			col = nullptr;
			for (int i = 0; i < m->ncols; i++)
				if (strcmp(m->cols[i].name, name) == 0)
					col = &m->cols[i];
			if (!first)
				appendStringInfoChar(&out, ',');
			first = false;
			escape_json(&out, name);
			appendStringInfoChar(&out, ':');
		} else if (token == WJB_VALUE) {
			char *text;
			if (col != nullptr && col->shown == Shown::kClear)
				append_json_scalar(&out, &v);
			else if (col == nullptr || col->shown == Shown::kNull ||
					 (text = scalar_text(&v)) == nullptr)
				appendStringInfoString(&out, "null");
			else {
				/* As the stream: the HMAC of the value's text output under the pinned settings. */
				Datum value = OidInputFunctionCall(col->input, text, col->ioparam, col->typmod);
				char *output = OidOutputFunctionCall(col->output, value);
				appendStringInfoChar(&out, '"');
				append_hmac_hex(&out, output, strlen(output));
				appendStringInfoChar(&out, '"');
			}
		}
	}
	appendStringInfoChar(&out, '}');
	return out.data;
}

/* The mask of relid among the n in masks (grown in context as needed). */
KeyMask *
mask_for(KeyMask **masks, int *n, Oid relid, Oid user, MemoryContext context)
{
	for (int i = 0; i < *n; i++)
		if ((*masks)[i].relid == relid)
			return &(*masks)[i];
	MemoryContext old = MemoryContextSwitchTo(context);
	*masks = *n == 0		 ? static_cast<KeyMask *>(palloc(sizeof(KeyMask) * 8))
			 : (*n % 8) == 0 ? static_cast<KeyMask *>(repalloc(*masks, sizeof(KeyMask) * (*n + 8)))
							 : *masks;
	KeyMask *m = &(*masks)[(*n)++];
	build_mask(m, relid, user);
	MemoryContextSwitchTo(old);
	return m;
}

/* Per query: the masks of the tables seen so far. */
struct LogPksCache {
	Oid user;
	int n;
	KeyMask *masks;
};

} // namespace

} // namespace edgesync::decode

using namespace edgesync::decode;

/*
 * edgesync._log_pks(tid) -> text[]: the keys of the log row at tid, masked
 * for the calling role; NULL if there is no such row in the query's
 * snapshot.
 */
Datum
edgesync_log_pks(PG_FUNCTION_ARGS)
{
	ItemPointer tid = reinterpret_cast<ItemPointer>(PG_GETARG_POINTER(0));
	Oid nsp = get_namespace_oid("edgesync", false);
	Relation rel = table_open(get_relname_relid("sync_log_data", nsp), AccessShareLock);
	if (!ItemPointerIsValid(tid) ||
		ItemPointerGetBlockNumber(tid) >= RelationGetNumberOfBlocks(rel)) {
		table_close(rel, AccessShareLock);
		PG_RETURN_NULL();
	}
	HeapTupleData tuple;
	tuple.t_self = *tid;
	Buffer buffer;
	if (!heap_fetch(rel, GetActiveSnapshot(), &tuple, &buffer, false)) {
		table_close(rel, AccessShareLock);
		PG_RETURN_NULL();
	}
	bool null_relid, null_pks;
	Oid relid = DatumGetObjectId(heap_getattr(&tuple, 4, RelationGetDescr(rel), &null_relid));
	Datum pks = heap_getattr(&tuple, 8, RelationGetDescr(rel), &null_pks);
	ArrayType *keys = null_pks ? nullptr : DatumGetArrayTypePCopy(pks);
	ReleaseBuffer(buffer);
	table_close(rel, AccessShareLock);
	if (keys == nullptr)
		PG_RETURN_NULL();

	LogPksCache *cache = static_cast<LogPksCache *>(fcinfo->flinfo->fn_extra);
	if (cache == nullptr) {
		cache = static_cast<LogPksCache *>(
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(LogPksCache)));
		cache->user = GetUserId();
		fcinfo->flinfo->fn_extra = cache;
	}
	const KeyMask *m =
		mask_for(&cache->masks, &cache->n, relid, cache->user, fcinfo->flinfo->fn_mcxt);
	if (m->clear)
		PG_RETURN_ARRAYTYPE_P(keys);

	Datum *elems;
	bool *nulls;
	int n;
	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	int nest = -1;
	if (m->hashes) {
		nest = NewGUCNestLevel();
		pin_output_settings_for_writers();
	}
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			elems[i] = CStringGetTextDatum(masked_key(m, TextDatumGetCString(elems[i])));
	if (nest >= 0)
		AtEOXact_GUC(false, nest);
	int dims[1] = {n};
	int lbs[1] = {ARR_LBOUND(keys)[0]};
	PG_RETURN_ARRAYTYPE_P(
		construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * edgesync.changes(cursor text, max integer)
 *   -> (id, relid, pk, op, version, xid, changed_at, role, application_name,
 *       next_cursor)
 */
Datum
edgesync_changes(PG_FUNCTION_ARGS)
{
	Oid user = GetUserId();
	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

	Oid types[2] = {TEXTOID, INT4OID};
	Datum args[2] = {PG_ARGISNULL(0) ? Datum(0) : PG_GETARG_DATUM(0),
					 PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1)};
	char arg_nulls[3] = {PG_ARGISNULL(0) ? 'n' : ' ', PG_ARGISNULL(1) ? 'n' : ' ', '\0'};
	edgesync::OwnerRows rows = edgesync::query_as_catalog_owner(
		"sync_log_data",
		"SELECT w.log_id, w.log_relid::pg_catalog.regclass, w.log_pk, w.log_op, w.log_version,"
		"       w.log_xid::pg_catalog.text::pg_catalog.xid8, w.log_changed_at,"
		"       w.log_role::pg_catalog.regrole, w.log_app, w.next_cursor"
		"  FROM edgesync._window('all', $1, NULL, $2) w",
		2, types, args, arg_nulls);

	int n = 0;
	KeyMask *masks = nullptr;
	int nest = -1;
	for (uint64 i = 0; i < rows.count; i++) {
		Datum values[10];
		bool nulls[10];
		heap_deform_tuple(rows.rows[i], rows.desc, values, nulls);
		if (!nulls[2]) {
			const KeyMask *m =
				mask_for(&masks, &n, DatumGetObjectId(values[1]), user, CurrentMemoryContext);
			char *pk = TextDatumGetCString(values[2]);
			if (!m->clear) {
				if (m->hashes && nest < 0) {
					nest = NewGUCNestLevel();
					pin_output_settings_for_writers();
				}
				pk = masked_key(m, pk);
			}
			values[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(pk));
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (nest >= 0)
		AtEOXact_GUC(false, nest);
	return Datum(0);
}
