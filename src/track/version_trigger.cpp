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
 * incoming values, and so do rows a restore loads (restore.hpp).
 *
 * An UPDATE that moves a row to another partition is an update: PostgreSQL
 * runs it as a delete from one partition and an insert into the other, and
 * the insert keeps the version and created_at the update gave the row (see
 * Move below).
 *
 * The clock is the transaction start time (now()): every row a transaction
 * touches gets the same time, the same as column defaults and the sync_log's
 * changed_at, and no clock call is made per row.  Commit order is what
 * cursors are for; timestamps are for people.
 */
#include "core/guard.hpp"
#include "track/restore.hpp"
#include "track/sync_log.hpp"
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
#include "utils/datum.h"
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

/* True if two varlena datums (inline, compressed or TOAST pointers) hold the same bytes. */
bool
same_varlena_bytes(Datum a, Datum b)
{
	const void *pa = DatumGetPointer(a);
	const void *pb = DatumGetPointer(b);
	return VARSIZE_ANY(pa) == VARSIZE_ANY(pb) && memcmp(pa, pb, VARSIZE_ANY(pa)) == 0;
}

/*
 * True if old and new hold equal values in every column but the three at
 * ours[], compared value by value.  For rows whose bytes cannot be compared:
 * a row written before track() (or before any ADD COLUMN) lacks the columns
 * added since, which the new row holds, and a row written before a DROP
 * COLUMN still holds the dropped value, which the new row does not.
 */
bool
same_values_but_ours(HeapTuple a, HeapTuple b, TupleDesc desc, const int ours[3])
{
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, i);
		if (att->attisdropped || att->attnum == ours[0] || att->attnum == ours[1] ||
			att->attnum == ours[2])
			continue;
		bool a_null, b_null;
		Datum av = heap_getattr(a, att->attnum, desc, &a_null);
		Datum bv = heap_getattr(b, att->attnum, desc, &b_null);
		if (a_null != b_null)
			return false;
		if (a_null || (att->attlen == -1 && same_varlena_bytes(av, bv)))
			continue; /* an unchanged TOASTed value: the same pointer, nothing fetched */
		if (!datum_image_eq(av, bv, att->attbyval, att->attlen))
			return false;
	}
	return true;
}

/*
 * True if the bytes of a and b cannot tell whether their values differ: one
 * has fewer attributes than the other, or the table has dropped columns
 * (see same_values_but_ours).
 */
bool
bytes_may_mislead(HeapTuple a, HeapTuple b, TupleDesc desc)
{
	if (HeapTupleHeaderGetNatts(a->t_data) != HeapTupleHeaderGetNatts(b->t_data))
		return true;
	for (int i = 0; i < desc->natts; i++)
		if (TupleDescAttr(desc, i)->attisdropped)
			return true;
	return false;
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

/*
 * A row an UPDATE moves to another partition.  PostgreSQL runs the move as a
 * delete from the row's partition and an insert into the other one, so the
 * destination's BEFORE INSERT trigger sees what looks like a new row.  The
 * BEFORE UPDATE trigger of a partition remembers what it gave the row; an
 * insert into a partition of the same tracked table, in the same
 * subtransaction and transaction, that carries exactly that version,
 * created_at and updated_at is the moved row arriving, and keeps them: for
 * versioning the move is an update (version + 1, created_at kept).  Any other
 * insert is versioned as usual; one that happened to carry those three
 * values would only keep what that row had.
 */
struct Move {
	bool valid;
	Oid tracked_relid;
	SubTransactionId subxid;
	int64 version;
	TimestampTz created_at;
	TimestampTz updated_at; /* the transaction's start: tells transactions apart */
};
Move last_update = {};

void
remember_update(Relation rel, const TrackedRel *info, int64 version, TimestampTz created_at,
				TimestampTz updated_at)
{
	if (!rel->rd_rel->relispartition)
		return;
	last_update = {true,	info->tracked_relid, GetCurrentSubTransactionId(),
				   version, created_at,			 updated_at};
}

/* True if the row being inserted is the row the last update moved here. */
bool
arriving_move(Relation rel, const TrackedRel *info, int64 version, TimestampTz created_at,
			  TimestampTz updated_at)
{
	if (!last_update.valid || !rel->rd_rel->relispartition)
		return false;
	bool same = last_update.tracked_relid == info->tracked_relid &&
				last_update.subxid == GetCurrentSubTransactionId() &&
				last_update.version == version && last_update.created_at == created_at &&
				last_update.updated_at == updated_at &&
				updated_at == GetCurrentTransactionStartTimestamp();
	if (same)
		last_update.valid = false;
	return same;
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
		int64 version = read_int8(tuple, at, 0);
		int64 created_at = read_int8(tuple, at, 1);
		int64 updated_at = read_int8(tuple, at, 2);
		/*
		 * The column defaults (1, now(), now()) already gave the row what we
		 * would, or this is a row moved here by an update: return it as it
		 * is, which spares the executor storing a replacement row.
		 */
		if ((version == 1 && created_at == now && updated_at == now) ||
			arriving_move(td->tg_relation, info, version, created_at, updated_at))
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
		if (skip_unchanged && (identical_but_ours(old_tuple, old_at, new_tuple, new_at) ||
							   (bytes_may_mislead(old_tuple, new_tuple, desc) &&
								same_values_but_ours(old_tuple, new_tuple, desc, cols))))
			return PointerGetDatum(nullptr); /* nothing changed: skip the row */
		int64 values[3] = {old_version + 1, read_int8(old_tuple, old_at, 1),
						   GetCurrentTransactionStartTimestamp()};
		remember_update(rel, info, values[0], values[1], values[2]);
		return PointerGetDatum(copy_with(new_tuple, new_at, values));
	}
	return on_update_slow(td, info, skip_unchanged, cols);
}

/*
 * on_update for rows where a column we maintain is NULL or missing (a row
 * written before track() added it: the bytes of the old and the new row then
 * differ whatever the statement did, so unchanged rows are found by value).
 */
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

	if (skip_unchanged && same_values_but_ours(old_tuple, new_tuple, desc, cols))
		return PointerGetDatum(nullptr); /* nothing changed: skip the row */

	bool created_null;
	Datum values[3];
	values[0] = Int64GetDatum(old_version + 1);
	values[1] = heap_getattr(old_tuple, info->created_at_attnum, desc, &created_null);
	values[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (created_null) {
		bool nulls[3] = {false, true, false};
		return PointerGetDatum(heap_modify_tuple_by_cols(new_tuple, desc, 3, cols, values, nulls));
	}
	remember_update(rel, info, old_version + 1, DatumGetTimestampTz(values[1]),
					DatumGetTimestampTz(values[2]));
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

	/* A restore loading the rows as they were (before they are registered, maybe). */
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event) && loading_rows_as_they_were(td->tg_relation))
		return PointerGetDatum(td->tg_trigtuple);

	TrackedRel *info = tracked_rel_for(fcinfo, td->tg_relation);
	mark_tracked_change(); /* (also for tables whose changes are not logged) */
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
