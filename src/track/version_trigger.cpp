/*
 * version_trigger.cpp — BEFORE ROW trigger: versions and timestamps.
 *
 *   INSERT  version = 1, created_at = updated_at = transaction start time,
 *           whatever the statement supplied.
 *   UPDATE  if the statement left version alone: version + 1, updated_at =
 *           transaction start time.  If it set version, that is the version
 *           the client believes current: it must equal the stored one, else
 *           the UPDATE fails with 40001 (optimistic locking).  created_at
 *           never changes.  An UPDATE that changes nothing is skipped
 *           (trigger argument 'true'): no new row version, no log row.
 *
 * Rows applied by replication (a replication origin is set, or the trigger
 * was made to fire in session_replication_role = replica) keep their
 * incoming values.
 *
 * The clock is the transaction start time (now()): every row a transaction
 * touches gets the same time, the same as column defaults and the sync_log's
 * changed_at, and no clock call is made per row.  Commit order is what
 * cursors are for; timestamps are for people.
 */
#include "core/guard.hpp"
#include "track/tracked_rel.hpp"

#include <algorithm>
#include <cstring>

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "replication/origin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(edgesync_version_trigger);
}

namespace edgesync::track {

namespace {

bool
applying_replicated_change()
{
	return replorigin_session_origin != InvalidRepOriginId ||
		   SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA;
}

/*
 * The three columns we maintain (version, created_at, updated_at) are all
 * int8-sized and passed by value, so the row need not be deformed and formed
 * again: one walk over its attributes, as heap_deform_tuple does, finds where
 * their bytes are, and they are read and written in place.  Calling
 * heap_getattr per column would walk the varlena columns before them again
 * each time.
 */
struct Located {
	uint32 offset[3]; /* of each column's bytes in the tuple's data */
};

/*
 * Finds attnums[] in tuple.  False if one of them is NULL or missing from the
 * tuple (added to the table after the row was written): its bytes are not
 * there, and callers take the slow path.
 */
bool
locate(HeapTuple tuple, TupleDesc desc, const int attnums[3], Located *where)
{
	HeapTupleHeader header = tuple->t_data;
	int last = Max(attnums[0], Max(attnums[1], attnums[2]));
	if (last > HeapTupleHeaderGetNatts(header))
		return false;
	bool hasnulls = HeapTupleHasNulls(tuple);
	char *data = reinterpret_cast<char *>(header) + header->t_hoff;
	uint32 off = 0;

	for (int attnum = 1; attnum <= last; attnum++) {
		Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
		bool target = attnum == attnums[0] || attnum == attnums[1] || attnum == attnums[2];
		if (hasnulls && att_isnull(attnum - 1, header->t_bits)) {
			if (target)
				return false;
			continue;
		}
		if (att->attlen == -1)
			off = att_align_pointer(off, att->attalign, -1, data + off);
		else
			off = att_align_nominal(off, att->attalign);
		for (int i = 0; i < 3; i++)
			if (attnum == attnums[i])
				where->offset[i] = off;
		off = att_addlength_pointer(off, att->attlen, data + off);
	}
	return true;
}

char *
tuple_data(HeapTuple tuple)
{
	return reinterpret_cast<char *>(tuple->t_data) + tuple->t_data->t_hoff;
}

int64
read_int8(HeapTuple tuple, const Located &where, int i)
{
	int64 v;
	memcpy(&v, tuple_data(tuple) + where.offset[i], sizeof(v));
	return v;
}

/* A copy of tuple with the located columns set to values[]. */
HeapTuple
copy_with(HeapTuple tuple, const Located &where, const int64 values[3])
{
	HeapTuple copy = heap_copytuple(tuple);
	for (int i = 0; i < 3; i++)
		memcpy(tuple_data(copy) + where.offset[i], &values[i], sizeof(values[i]));
	return copy;
}

/*
 * True if old and new hold the same bytes, the located columns aside: the
 * test of suppress_redundant_updates_trigger applied to new with the old
 * values of our columns put back.  Both tuples have the three columns at the
 * same offsets whenever everything before them is the same.
 */
bool
identical_but_ours(HeapTuple a, const Located &wa, HeapTuple b, const Located &wb)
{
	HeapTupleHeader ha = a->t_data;
	HeapTupleHeader hb = b->t_data;
	if (a->t_len != b->t_len || ha->t_hoff != hb->t_hoff ||
		HeapTupleHeaderGetNatts(ha) != HeapTupleHeaderGetNatts(hb) ||
		(ha->t_infomask & ~HEAP_XACT_MASK) != (hb->t_infomask & ~HEAP_XACT_MASK))
		return false;
	uint32 windows[3];
	for (int i = 0; i < 3; i++) {
		if (wa.offset[i] != wb.offset[i])
			return false;
		windows[i] = wa.offset[i] + ha->t_hoff; /* from the header's start */
	}
	std::sort(windows, windows + 3);
	const char *pa = reinterpret_cast<const char *>(ha);
	const char *pb = reinterpret_cast<const char *>(hb);
	uint32 from = SizeofHeapTupleHeader;
	for (uint32 w : windows) {
		if (memcmp(pa + from, pb + from, w - from) != 0)
			return false;
		from = w + sizeof(int64);
	}
	return memcmp(pa + from, pb + from, a->t_len - from) == 0;
}

/* The same test as suppress_redundant_updates_trigger: identical bytes. */
bool
tuples_identical(HeapTuple a, HeapTuple b)
{
	HeapTupleHeader ha = a->t_data;
	HeapTupleHeader hb = b->t_data;
	return a->t_len == b->t_len && ha->t_hoff == hb->t_hoff &&
		   HeapTupleHeaderGetNatts(ha) == HeapTupleHeaderGetNatts(hb) &&
		   (ha->t_infomask & ~HEAP_XACT_MASK) == (hb->t_infomask & ~HEAP_XACT_MASK) &&
		   memcmp(reinterpret_cast<char *>(ha) + SizeofHeapTupleHeader,
				  reinterpret_cast<char *>(hb) + SizeofHeapTupleHeader,
				  a->t_len - SizeofHeapTupleHeader) == 0;
}

/* A copy of tuple with attnums[] set to values[] (never NULL), by columns. */
HeapTuple
with_columns(HeapTuple tuple, TupleDesc desc, const int attnums[3], const Datum values[3])
{
	Located where;
	if (locate(tuple, desc, attnums, &where)) {
		int64 v[3] = {DatumGetInt64(values[0]), DatumGetInt64(values[1]), DatumGetInt64(values[2])};
		return copy_with(tuple, where, v);
	}
	bool nulls[3] = {false, false, false};
	return heap_modify_tuple_by_cols(tuple, desc, 3, const_cast<int *>(attnums),
									 const_cast<Datum *>(values), nulls);
}

int64
get_int8(HeapTuple tuple, AttrNumber attnum, TupleDesc desc, bool *isnull)
{
	Datum d = heap_getattr(tuple, attnum, desc, isnull);
	return *isnull ? 0 : DatumGetInt64(d);
}

/*
 * True if the current user may see the key columns of rel's rows, by core's
 * rule for key values in error messages (BuildIndexValueDescription): row
 * level security is not in force, and the user may SELECT the table or each
 * key column.  Checked on the tracked table (the partition root), which is
 * what the user queries and grants on, and on rel itself.
 */
bool
key_visible(Relation rel, const TrackedRel *info)
{
	Oid user = GetUserId();
	Oid relid = RelationGetRelid(rel);
	Oid root = info->tracked_relid;
	if (check_enable_rls(root, InvalidOid, true) == RLS_ENABLED ||
		(relid != root && check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED))
		return false;
	if (pg_class_aclcheck(root, user, ACL_SELECT) == ACLCHECK_OK)
		return true;
	for (int i = 0; i < info->nkeys; i++) {
		AttrNumber attnum = get_attnum(root, info->keys[i].name);
		if (attnum == InvalidAttrNumber ||
			pg_attribute_aclcheck(root, attnum, user, ACL_SELECT) != ACLCHECK_OK)
			return false;
	}
	return true;
}

/*
 * The statement set version to something other than the stored one.  The
 * row's key is named to a user who may see it, and never in the server log
 * (errdetail_log): a key can be patient data.
 */
[[noreturn]] void
version_conflict(Relation rel, TrackedRel *info, HeapTuple old_tuple, TupleDesc desc,
				 int64 new_version, bool old_null, int64 old_version)
{
	const char *current = old_null ? "null" : psprintf(INT64_FORMAT, old_version);
	const char *versions =
		psprintf("the update expected version " INT64_FORMAT ", but the current version is %s.",
				 new_version, current);
	StringInfoData key;
	initStringInfo(&key);
	if (key_visible(rel, info))
		append_key_json(&key, info, old_tuple, desc);
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("version conflict updating table \"%s\"", RelationGetRelationName(rel)),
			 key.len > 0 ? errdetail("Row %s: %s", key.data, versions)
						 : errdetail("A row's update expected version " INT64_FORMAT
									 ", but the current version is %s.",
									 new_version, current),
			 errdetail_log("A row's update expected version " INT64_FORMAT
						   ", but the current version is %s.",
						   new_version, current),
			 errhint("Read the row again and reapply the change on top of the current version.")));
}

Datum on_update_slow(TriggerData *td, TrackedRel *info, bool skip_unchanged, int cols[3]);

Datum
on_insert(TriggerData *td, TrackedRel *info)
{
	HeapTuple tuple = td->tg_trigtuple;
	if (applying_replicated_change())
		return PointerGetDatum(tuple);

	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int cols[3] = {info->version_attnum, info->created_at_attnum, info->updated_at_attnum};
	TupleDesc desc = RelationGetDescr(td->tg_relation);
	Located at;
	if (locate(tuple, desc, cols, &at)) {
		/*
		 * The column defaults (1, now(), now()) already gave the row what we
		 * would: return it as it is, which spares the executor storing a
		 * replacement row (deforming and forming it again).
		 */
		if (read_int8(tuple, at, 0) == 1 && read_int8(tuple, at, 1) == now &&
			read_int8(tuple, at, 2) == now)
			return PointerGetDatum(tuple);
		int64 values[3] = {1, now, now};
		return PointerGetDatum(copy_with(tuple, at, values));
	}
	Datum values[3] = {Int64GetDatum(1), TimestampTzGetDatum(now), TimestampTzGetDatum(now)};
	return PointerGetDatum(with_columns(tuple, desc, cols, values));
}

Datum
on_update(TriggerData *td, TrackedRel *info, bool skip_unchanged)
{
	Relation rel = td->tg_relation;
	TupleDesc desc = RelationGetDescr(rel);
	HeapTuple old_tuple = td->tg_trigtuple;
	HeapTuple new_tuple = td->tg_newtuple;
	if (applying_replicated_change())
		return PointerGetDatum(new_tuple);

	int cols[3] = {info->version_attnum, info->created_at_attnum, info->updated_at_attnum};
	Located old_at, new_at;
	if (locate(old_tuple, desc, cols, &old_at) && locate(new_tuple, desc, cols, &new_at)) {
		/* The usual case: all three columns there, none NULL. */
		int64 old_version = read_int8(old_tuple, old_at, 0);
		int64 new_version = read_int8(new_tuple, new_at, 0);
		if (new_version != old_version)
			version_conflict(rel, info, old_tuple, desc, new_version, false, old_version);
		if (skip_unchanged && identical_but_ours(old_tuple, old_at, new_tuple, new_at))
			return PointerGetDatum(nullptr); /* nothing changed: skip the row */
		int64 values[3] = {old_version + 1, read_int8(old_tuple, old_at, 1),
						   GetCurrentTransactionStartTimestamp()};
		return PointerGetDatum(copy_with(new_tuple, new_at, values));
	}
	return on_update_slow(td, info, skip_unchanged, cols);
}

/* on_update for rows where a column we maintain is NULL or missing. */
Datum
on_update_slow(TriggerData *td, TrackedRel *info, bool skip_unchanged, int cols[3])
{
	Relation rel = td->tg_relation;
	TupleDesc desc = RelationGetDescr(rel);
	HeapTuple old_tuple = td->tg_trigtuple;
	HeapTuple new_tuple = td->tg_newtuple;
	bool old_null, new_null;
	int64 old_version = get_int8(old_tuple, info->version_attnum, desc, &old_null);
	int64 new_version = get_int8(new_tuple, info->version_attnum, desc, &new_null);

	/* The statement set version: it is the version the client expects. */
	if (new_null)
		ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION),
						errmsg("column \"version\" of table \"%s\" cannot be set to null",
							   RelationGetRelationName(rel)),
						errhint("Set version to the version you read, or leave it out.")));
	if (old_null || new_version != old_version)
		version_conflict(rel, info, old_tuple, desc, new_version, old_null, old_version);

	Datum created_at = heap_getattr(old_tuple, info->created_at_attnum, desc, &old_null);
	bool created_null = old_null;
	Datum values[3];
	bool nulls[3] = {false, created_null, false};

	if (skip_unchanged) {
		/*
		 * Compare with the old row as it would be if only the columns we
		 * maintain were touched: put the old values back where the statement
		 * changed them, then compare bytes.
		 */
		HeapTuple candidate = new_tuple;
		bool updated_null, old_updated_null, cnull;
		Datum updated = heap_getattr(new_tuple, info->updated_at_attnum, desc, &updated_null);
		Datum old_updated =
			heap_getattr(old_tuple, info->updated_at_attnum, desc, &old_updated_null);
		Datum created_new = heap_getattr(new_tuple, info->created_at_attnum, desc, &cnull);
		if (updated_null != old_updated_null || (!updated_null && updated != old_updated) ||
			cnull != created_null || (!cnull && created_new != created_at)) {
			values[0] = Int64GetDatum(old_version);
			values[1] = created_at;
			values[2] = old_updated;
			bool restore_nulls[3] = {false, created_null, old_updated_null};
			candidate = heap_modify_tuple_by_cols(new_tuple, desc, 3, cols, values, restore_nulls);
		}
		if (tuples_identical(old_tuple, candidate))
			return PointerGetDatum(nullptr); /* nothing changed: skip the row */
	}

	values[0] = Int64GetDatum(old_version + 1);
	values[1] = created_at;
	values[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (created_null)
		return PointerGetDatum(heap_modify_tuple_by_cols(new_tuple, desc, 3, cols, values, nulls));
	return PointerGetDatum(with_columns(new_tuple, desc, cols, values));
}

Datum
version_trigger(FunctionCallInfo fcinfo)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("edgesync.version_trigger() must be called as a trigger")));
	TriggerData *td = reinterpret_cast<TriggerData *>(fcinfo->context);
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(
			ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("edgesync.version_trigger() must fire BEFORE INSERT OR UPDATE FOR EACH ROW")));

	TrackedRel *info = tracked_rel_for(fcinfo, td->tg_relation);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		return on_insert(td, info);
	bool skip_unchanged =
		td->tg_trigger->tgnargs < 1 || strcmp(td->tg_trigger->tgargs[0], "false") != 0;
	return on_update(td, info, skip_unchanged);
}

} // namespace

} // namespace edgesync::track

Datum
edgesync_version_trigger(PG_FUNCTION_ARGS)
{
	return edgesync::guarded([&] { return edgesync::track::version_trigger(fcinfo); });
}
