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

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "replication/origin.h"
#include "utils/builtins.h"
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

/*
 * A copy of tuple with the int8-sized, pass-by-value columns attnums[] set to
 * values[], written in place: the three columns we maintain are all 8-byte
 * values, so the row need not be deformed and formed again.  Walks the
 * attributes as heap_deform_tuple does, up to the last one to set.  Falls
 * back to heap_modify_tuple_by_cols when a target is NULL in the tuple or
 * missing from it (its bytes are not there to overwrite).
 */
HeapTuple
with_int8_columns(HeapTuple tuple, TupleDesc desc, const int attnums[3], const Datum values[3])
{
	HeapTupleHeader header = tuple->t_data;
	int natts = HeapTupleHeaderGetNatts(header);
	int last = Max(attnums[0], Max(attnums[1], attnums[2]));
	bool hasnulls = HeapTupleHasNulls(tuple);
	char *data = reinterpret_cast<char *>(header) + header->t_hoff;
	uint32 offsets[3] = {0, 0, 0};
	uint32 off = 0;

	if (last > natts)
		goto fallback;
	for (int attnum = 1; attnum <= last; attnum++) {
		Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
		bool target = attnum == attnums[0] || attnum == attnums[1] || attnum == attnums[2];
		if (hasnulls && att_isnull(attnum - 1, header->t_bits)) {
			if (target)
				goto fallback;
			continue;
		}
		if (att->attlen == -1)
			off = att_align_pointer(off, att->attalign, -1, data + off);
		else
			off = att_align_nominal(off, att->attalign);
		for (int i = 0; i < 3; i++)
			if (attnum == attnums[i])
				offsets[i] = off;
		off = att_addlength_pointer(off, att->attlen, data + off);
	}
	{
		HeapTuple copy = heap_copytuple(tuple);
		char *copy_data = reinterpret_cast<char *>(copy->t_data) + copy->t_data->t_hoff;
		for (int i = 0; i < 3; i++) {
			int64 v = DatumGetInt64(values[i]);
			memcpy(copy_data + offsets[i], &v, sizeof(v));
		}
		return copy;
	}

fallback:
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

Datum
on_insert(TriggerData *td, TrackedRel *info)
{
	HeapTuple tuple = td->tg_trigtuple;
	if (applying_replicated_change())
		return PointerGetDatum(tuple);

	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int cols[3] = {info->version_attnum, info->created_at_attnum, info->updated_at_attnum};
	Datum values[3] = {Int64GetDatum(1), TimestampTzGetDatum(now), TimestampTzGetDatum(now)};
	return PointerGetDatum(with_int8_columns(tuple, RelationGetDescr(td->tg_relation), cols, values));
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

	bool old_null, new_null;
	int64 old_version = get_int8(old_tuple, info->version_attnum, desc, &old_null);
	int64 new_version = get_int8(new_tuple, info->version_attnum, desc, &new_null);

	/* The statement set version: it is the version the client expects. */
	if (new_null)
		ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION),
						errmsg("column \"version\" of table \"%s\" cannot be set to null",
							   RelationGetRelationName(rel)),
						errhint("Set version to the version you read, or leave it out.")));
	if (old_null || new_version != old_version) {
		StringInfoData key;
		initStringInfo(&key);
		append_key_json(&key, info, old_tuple, desc);
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("version conflict updating table \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Row %s: the update expected version " INT64_FORMAT
						   ", but the current version is %s.",
						   key.data, new_version,
						   old_null ? "null" : psprintf(INT64_FORMAT, old_version)),
				 errhint("Read the row again and reapply the change on top of the current version.")));
	}

	Datum created_at = heap_getattr(old_tuple, info->created_at_attnum, desc, &old_null);
	bool created_null = old_null;
	int cols[3] = {info->version_attnum, info->created_at_attnum, info->updated_at_attnum};
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
		Datum old_updated = heap_getattr(old_tuple, info->updated_at_attnum, desc, &old_updated_null);
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
	return PointerGetDatum(with_int8_columns(new_tuple, desc, cols, values));
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
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("edgesync.version_trigger() must fire BEFORE INSERT OR UPDATE FOR EACH ROW")));

	TrackedRel *info = tracked_rel_for(fcinfo, td->tg_relation);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		return on_insert(td, info);
	bool skip_unchanged =
		td->tg_trigger->tgnargs < 1 || strcmp(td->tg_trigger->tgargs[0], "false") != 0;
	return on_update(td, info, skip_unchanged);
}

}  // namespace

}  // namespace edgesync::track

Datum
edgesync_version_trigger(PG_FUNCTION_ARGS)
{
	return edgesync::guarded([&] { return edgesync::track::version_trigger(fcinfo); });
}
