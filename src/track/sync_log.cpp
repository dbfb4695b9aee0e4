/*
 * sync_log.cpp — the AFTER triggers that feed edgesync.sync_log, and the
 * buffered insert behind them (see sync_log.hpp).
 *
 * The physical table, edgesync.sync_log_data, holds one row per batch: a run
 * of changes of one table by one role within one flush, with the changes'
 * ops, versions and keys as arrays.  Writing a thousand changes is then one
 * (TOASTed, compressed) tuple instead of a thousand tuples with their headers,
 * line pointers and WAL records; the view edgesync.sync_log unnests them.  Log
 * ids are reserved a batch at a time from a sequence that increments by
 * kFlushAt.  The only index is a BRIN on (xid, changed_at), which is what the
 * cursor and prune queries need.
 *
 * A deleted row of a table with row level security also leaves an image:
 * the columns its policies read, as JSON, in the batch's images array
 * (NULL for a batch without one).  pull() evaluates a caller's policies
 * against it before handing out the tombstone.  Nobody but the extension's
 * owner reads images.  Before ALTER EXTENSION UPDATE (a log without the
 * column) no image is kept.
 */
#include "track/sync_log.hpp"

#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "track/restore.hpp"
#include "track/tracked_rel.hpp"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/relcache.h"

PG_FUNCTION_INFO_V1(edgesync_log_trigger);
}

namespace edgesync::track {

TrackedCommitHook tracked_commit_hook = nullptr;

namespace {

constexpr int kFlushAt = 1000;

/* This transaction changed a tracked table (tracked_commit_hook). */
bool changed_tracked_table = false;

/* Column positions in edgesync.sync_log_data (checked when it is looked up). */
enum LogColumn {
	kFirstId,
	kXid,
	kChangedAt,
	kRelid,
	kRole,
	kOps,
	kVersions,
	kPks,
	kApplicationName,
	kImages,
	kNumLogColumns
};
const char *const kLogColumnNames[kNumLogColumns] = {
	"first_id", "xid", "changed_at",	   "relid", "role", "ops",
	"versions", "pks", "application_name", "images"};

struct LogEntry {
	Oid relid;
	Oid role;
	SubTransactionId subxid;
	char op;
	bool has_version;
	int64 version;
	text *pk;	 /* JSON text, or nullptr (truncate) */
	text *image; /* a deleted row's policy columns (JSON text), or nullptr */
};

/*
 * The buffer: kFlushAt entries allocated once per backend, their keys in a
 * context reset after each flush and at the end of each transaction (so a
 * transaction pays for no context of its own).
 */
MemoryContext buffer_context = nullptr;
LogEntry *entries = nullptr;
int nentries = 0;
StringInfoData key_scratch;	  /* the key of the row being logged */
StringInfoData image_scratch; /* its image (row level security) */

/* The log table and its id sequence, looked up once per backend. */
Oid log_relid = InvalidOid;
Oid log_seqid = InvalidOid;

/*
 * Log ids.  One nextval reserves kFlushAt ids (the sequence steps by that
 * much); this backend hands them out to its batches until they run out, so a
 * one-row transaction does not cost a sequence call.  Ids therefore increase
 * within a backend, which keeps them in order within a transaction.
 */
int64 next_id = 0;
int64 ids_left = 0;

void lookup_log_relation();

int64
reserve_ids(int n)
{
	if (ids_left < n) {
		/* Opening the log for this flush may have taken in its invalidation. */
		if (!OidIsValid(log_seqid))
			lookup_log_relation();
		next_id = nextval_internal(log_seqid, false);
		ids_left = kFlushAt;
	}
	int64 first = next_id;
	next_id += n;
	ids_left -= n;
	return first;
}

/*
 * What a flush writes with, kept for the backend's life so that a flush of a
 * statement's changes costs a few microseconds: the log's layout checked,
 * and for each of its indexes the IndexInfo to insert with.  Rebuilt when
 * the log table changes (relcache invalidation: also sent when an index is
 * added to or dropped from it).  Index relations themselves are opened per
 * flush, as the executor would.
 */
constexpr int kMaxLogIndexes = 8;
struct LogWriter {
	MemoryContext context;
	MemoryContext scratch; /* reset after each flush */
	int nindexes;
	Oid index_oids[kMaxLogIndexes];
	IndexInfo *index_infos[kMaxLogIndexes];
	/* Only plain column indexes (the BRIN): otherwise the executor inserts. */
	bool plain_indexes;
	bool has_images; /* the images column exists (0.2.0 on) */
	bool valid;
};
LogWriter writer = {};

void check_log_layout(Relation rel);

LogWriter &
log_writer(Relation rel)
{
	if (writer.valid)
		return writer;
	check_log_layout(rel);
	writer.has_images = RelationGetDescr(rel)->natts == kNumLogColumns;
	if (writer.context != nullptr)
		MemoryContextDelete(writer.context);
	writer.context =
		AllocSetContextCreate(TopMemoryContext, "edgesync sync_log writer", ALLOCSET_SMALL_SIZES);
	writer.scratch = AllocSetContextCreate(writer.context, "edgesync sync_log flush", 64 * 1024,
										   64 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
	MemoryContext old = MemoryContextSwitchTo(writer.context);
	List *indexes = RelationGetIndexList(rel);
	writer.nindexes = 0;
	writer.plain_indexes = list_length(indexes) <= kMaxLogIndexes;
	if (writer.plain_indexes) {
		ListCell *lc;
		foreach (lc, indexes) {
			Relation index = index_open(lfirst_oid(lc), RowExclusiveLock);
			IndexInfo *info = BuildIndexInfo(index);
			if (info->ii_Expressions != NIL || info->ii_Predicate != NIL || info->ii_Unique ||
				info->ii_ExclusionOps != nullptr)
				writer.plain_indexes = false;
			writer.index_oids[writer.nindexes] = RelationGetRelid(index);
			writer.index_infos[writer.nindexes++] = info;
			index_close(index, NoLock);
		}
	}
	MemoryContextSwitchTo(old);
	writer.valid = true;
	return writer;
}

void
forget_buffer()
{
	nentries = 0;
	if (buffer_context != nullptr)
		MemoryContextReset(buffer_context);
}

/* Finds the log table and its sequence; false if the extension is not there. */
bool
find_log_relation()
{
	Oid nsp = get_namespace_oid("edgesync", true);
	Oid rel = OidIsValid(nsp) ? get_relname_relid("sync_log_data", nsp) : InvalidOid;
	Oid seq = OidIsValid(nsp) ? get_relname_relid("sync_log_id_seq", nsp) : InvalidOid;
	if (!OidIsValid(rel) || !OidIsValid(seq))
		return false;
	log_relid = rel;
	log_seqid = seq;
	return true;
}

void
lookup_log_relation()
{
	if (!find_log_relation())
		ereport(
			ERROR,
			(errcode(ERRCODE_UNDEFINED_TABLE),
			 errmsg("edgesync.sync_log_data does not exist in this database"),
			 errhint(
				 "A table tracked by edgesync needs the extension: CREATE EXTENSION edgesync.")));
}

void
check_log_layout(Relation rel)
{
	TupleDesc desc = RelationGetDescr(rel);
	/* (0.1.0's log, until ALTER EXTENSION UPDATE, lacks the last column.) */
	bool ok = desc->natts == kNumLogColumns || desc->natts == kImages;
	for (int i = 0; ok && i < desc->natts; i++)
		ok = strcmp(NameStr(TupleDescAttr(desc, i)->attname), kLogColumnNames[i]) == 0;
	if (!ok)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("edgesync.sync_log_data does not have the expected columns"),
						errhint("Was it altered by hand? Reinstall the extension.")));
}

/* Inserts tuple's index entries (plain column indexes only). */
void
insert_index_entries(const LogWriter &w, Relation rel, HeapTuple tuple, const Datum *values,
					 const bool *nulls)
{
	for (int i = 0; i < w.nindexes; i++) {
		IndexInfo *info = w.index_infos[i];
		Datum index_values[INDEX_MAX_KEYS];
		bool index_nulls[INDEX_MAX_KEYS];
		for (int k = 0; k < info->ii_NumIndexAttrs; k++) {
			int attno = info->ii_IndexAttrNumbers[k];
			index_values[k] = values[attno - 1];
			index_nulls[k] = nulls[attno - 1];
		}
		/*
		 * The access method's cache (BRIN's BrinDesc) is kept with the
		 * IndexInfo up to PostgreSQL 16 (from 17 on it is released after
		 * each insert: edgesync::insert_index_entry).  It points into the index's relcache entry,
		 * so the relcache callback marks the writer invalid when that entry is invalidated (the
		 * writer is rebuilt at the next flush), and an invalidation taken in while opening the
		 * index (or the log's TOAST table) drops the cache here, before the access method uses it.
		 */
		Relation index = index_open(w.index_oids[i], RowExclusiveLock);
		if (!w.valid)
			info->ii_AmCache = nullptr;
		edgesync::insert_index_entry(index, index_values, index_nulls, &tuple->t_self, rel, info,
									 w.context, w.scratch);
		index_close(index, NoLock);
	}
}

/*
 * Writes every buffered entry: a heap tuple per batch (usually one), and its
 * index entries.  Everything it allocates is in the writer's scratch context.
 */
void
flush()
{
	if (nentries == 0)
		return;
	if (!OidIsValid(log_relid))
		lookup_log_relation();

	Relation rel = table_open(log_relid, RowExclusiveLock);
	LogWriter &w = log_writer(rel);
	MemoryContext old = MemoryContextSwitchTo(w.scratch);
	TupleDesc desc = RelationGetDescr(rel);

	/* Indexes other than plain ones (added by hand) are left to the executor. */
	EState *estate = nullptr;
	ResultRelInfo *result_rel = nullptr;
	TupleTableSlot *slot = nullptr;
	if (!w.plain_indexes) {
		estate = CreateExecutorState();
		result_rel = makeNode(ResultRelInfo);
		InitResultRelInfo(result_rel, rel, 1, nullptr, 0);
		ExecOpenIndices(result_rel, false);
		slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	}

	Datum values[kNumLogColumns];
	bool nulls[kNumLogColumns] = {};
	values[kXid] =
		Int64GetDatum(static_cast<int64>(U64FromFullTransactionId(GetTopFullTransactionId())));
	values[kChangedAt] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[kApplicationName] =
		CStringGetTextDatum(application_name != nullptr ? application_name : "");
	Datum *ops = static_cast<Datum *>(palloc(sizeof(Datum) * nentries));
	Datum *versions = static_cast<Datum *>(palloc(sizeof(Datum) * nentries));
	bool *version_nulls = static_cast<bool *>(palloc(sizeof(bool) * nentries));
	Datum *pks = static_cast<Datum *>(palloc(sizeof(Datum) * nentries));
	bool *pk_nulls = static_cast<bool *>(palloc(sizeof(bool) * nentries));
	Datum *images = static_cast<Datum *>(palloc(sizeof(Datum) * nentries));
	bool *image_nulls = static_cast<bool *>(palloc(sizeof(bool) * nentries));
	CommandId cid = GetCurrentCommandId(true);

	/* One batch per run of entries with the same table and role. */
	for (int start = 0; start < nentries;) {
		const LogEntry *first = &entries[start];
		int end = start;
		bool any_image = false;
		for (; end < nentries && entries[end].relid == first->relid &&
			   entries[end].role == first->role;
			 end++) {
			const LogEntry *e = &entries[end];
			ops[end] = CharGetDatum(e->op);
			versions[end] = Int64GetDatum(e->version);
			version_nulls[end] = !e->has_version;
			pk_nulls[end] = e->pk == nullptr;
			pks[end] = PointerGetDatum(e->pk);
			image_nulls[end] = e->image == nullptr;
			images[end] = PointerGetDatum(e->image);
			any_image |= e->image != nullptr;
		}
		int n = end - start;
		int dims[1] = {n};
		int lbs[1] = {1};

		values[kFirstId] = Int64GetDatum(reserve_ids(n));
		values[kRelid] = ObjectIdGetDatum(first->relid);
		values[kRole] = ObjectIdGetDatum(first->role);
		values[kOps] =
			PointerGetDatum(construct_array(&ops[start], n, CHAROID, 1, true, TYPALIGN_CHAR));
		values[kVersions] =
			PointerGetDatum(construct_md_array(&versions[start], &version_nulls[start], 1, dims,
											   lbs, INT8OID, 8, true, TYPALIGN_DOUBLE));
		values[kPks] = PointerGetDatum(construct_md_array(&pks[start], &pk_nulls[start], 1, dims,
														  lbs, TEXTOID, -1, false, TYPALIGN_INT));
		nulls[kImages] = !any_image;
		if (any_image)
			values[kImages] =
				PointerGetDatum(construct_md_array(&images[start], &image_nulls[start], 1, dims,
												   lbs, TEXTOID, -1, false, TYPALIGN_INT));

		/*
		 * heap_insert, not table_multi_insert: a flush is usually one batch,
		 * and a multi-insert's set-up costs more than it saves there.  The
		 * log is a heap table we created.
		 */
		HeapTuple tuple = heap_form_tuple(desc, values, nulls);
		heap_insert(rel, tuple, cid, 0, nullptr);
		if (w.plain_indexes)
			insert_index_entries(w, rel, tuple, values, nulls);
		else {
			ExecStoreHeapTuple(tuple, slot, false);
			edgesync::insert_index_tuples(result_rel, slot, estate);
			ExecClearTuple(slot);
		}
		start = end;
	}

	if (!w.plain_indexes) {
		ExecDropSingleTupleTableSlot(slot);
		ExecCloseIndices(result_rel);
		FreeExecutorState(estate);
	}
	table_close(rel, NoLock);
	MemoryContextSwitchTo(old);
	MemoryContextReset(w.scratch);
	forget_buffer();
}

text *
copy_text(const text *t)
{
	if (t == nullptr)
		return nullptr;
	text *copy = static_cast<text *>(MemoryContextAlloc(buffer_context, VARSIZE(t)));
	memcpy(copy, t, VARSIZE(t));
	return copy;
}

void
append(Oid relid, char op, bool has_version, int64 version, const text *pk,
	   const text *image = nullptr)
{
	if (buffer_context == nullptr) {
		buffer_context = AllocSetContextCreate(TopMemoryContext, "edgesync sync_log buffer",
											   ALLOCSET_DEFAULT_SIZES);
		entries = static_cast<LogEntry *>(
			MemoryContextAlloc(TopMemoryContext, sizeof(LogEntry) * kFlushAt));
		nentries = 0;
	}
	if (nentries == kFlushAt)
		flush();

	LogEntry *e = &entries[nentries];
	e->relid = relid;
	e->role = GetOuterUserId();
	e->subxid = GetCurrentSubTransactionId();
	e->op = op;
	e->has_version = has_version;
	e->version = version;
	e->pk = copy_text(pk);
	e->image = copy_text(image); /* (left out at the flush by a log without images) */
	nentries++;
}

void
append_row(TrackedRel *info, char op, HeapTuple tuple, TupleDesc desc)
{
	/* The key as a text datum built in place: a varlena header, then JSON. */
	if (key_scratch.data == nullptr) {
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		initStringInfo(&key_scratch);
		initStringInfo(&image_scratch);
		MemoryContextSwitchTo(old);
	}
	resetStringInfo(&key_scratch);
	appendStringInfoSpaces(&key_scratch, VARHDRSZ);
	append_key_json(&key_scratch, info, tuple, desc);
	SET_VARSIZE(key_scratch.data, key_scratch.len);

	/* A deleted key of a table with row level security: what its policies read. */
	text *image = nullptr;
	if (op == 'D' && info->row_security) {
		resetStringInfo(&image_scratch);
		appendStringInfoSpaces(&image_scratch, VARHDRSZ);
		append_image_json(&image_scratch, info, tuple, desc);
		SET_VARSIZE(image_scratch.data, image_scratch.len);
		image = reinterpret_cast<text *>(image_scratch.data);
	}

	bool isnull;
	Datum version = heap_getattr(tuple, info->version_attnum, desc, &isnull);
	append(info->tracked_relid, op, !isnull, isnull ? 0 : DatumGetInt64(version),
		   reinterpret_cast<text *>(key_scratch.data), image);
}

/*
 * A row an UPDATE moved to another partition (see version_trigger.cpp): its
 * delete from the old partition is marked as a move in the deleted tuple
 * itself, and the insert into the new one is queued right after it, so the
 * log trigger fires for the two in that order.  The pair is logged as an
 * update that changed the key (a partition key is part of the primary key):
 * D of the old key, U of the new one.
 */
struct MovedRow {
	bool valid;
	Oid tracked_relid;
	SubTransactionId subxid;
};
MovedRow moved = {};

/* True if an insert into info's table is the second half of a move (and forgets it). */
bool
insert_of_moved_row(const TrackedRel *info)
{
	bool is_move = moved.valid && moved.tracked_relid == info->tracked_relid &&
				   moved.subxid == GetCurrentSubTransactionId();
	moved.valid = false;
	return is_move;
}

Datum
log_trigger(FunctionCallInfo fcinfo)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("edgesync.log_trigger() must be called as a trigger")));
	TriggerData *td = reinterpret_cast<TriggerData *>(fcinfo->context);
	if (!TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("edgesync.log_trigger() must fire AFTER")));

	Relation rel = td->tg_relation;
	changed_tracked_table = true;
	if (TRIGGER_FIRED_FOR_STATEMENT(td->tg_event)) {
		/* AFTER TRUNCATE: a truncated partition is logged under its own name. */
		if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
			require_tracked(rel);
			append(RelationGetRelid(rel), 'T', false, 0, nullptr);
		}
		return PointerGetDatum(nullptr);
	}

	/* Rows a restore loads as they were are not changes (restore.hpp). */
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event) && loading_rows_as_they_were(rel))
		return PointerGetDatum(nullptr);

	TrackedRel *info = tracked_rel_for(fcinfo, rel);
	TupleDesc desc = RelationGetDescr(rel);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		append_row(info, insert_of_moved_row(info) ? 'U' : 'I', td->tg_trigtuple, desc);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event)) {
		if (HeapTupleHeaderIndicatesMovedPartitions(td->tg_trigtuple->t_data))
			moved = {true, info->tracked_relid, GetCurrentSubTransactionId()};
		append_row(info, 'D', td->tg_trigtuple, desc);
	} else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
		/* A changed key is a delete of the old key and a change of the new. */
		if (!keys_equal(info, td->tg_trigtuple, td->tg_newtuple, desc))
			append_row(info, 'D', td->tg_trigtuple, desc);
		append_row(info, 'U', td->tg_newtuple, desc);
	}
	return PointerGetDatum(nullptr);
}

void
on_xact_event(XactEvent event, void *)
{
	switch (event) {
	case XACT_EVENT_PRE_COMMIT:
	case XACT_EVENT_PARALLEL_PRE_COMMIT:
	case XACT_EVENT_PRE_PREPARE:
		if (nentries == 0)
			break;
		/*
		 * DROP EXTENSION after tracked changes in the same transaction took
		 * the log (and the tables' triggers) with it: nothing to write to.
		 */
		guarded([] {
			if (!OidIsValid(log_relid) && !find_log_relation())
				forget_buffer();
			else
				flush();
		});
		break;
	case XACT_EVENT_COMMIT:
	case XACT_EVENT_PARALLEL_COMMIT:
		if (changed_tracked_table && tracked_commit_hook != nullptr)
			tracked_commit_hook();
		changed_tracked_table = false;
		forget_buffer();
		break;
	case XACT_EVENT_ABORT:
	case XACT_EVENT_PARALLEL_ABORT:
	case XACT_EVENT_PREPARE:
		changed_tracked_table = false;
		forget_buffer();
		break;
	}
}

/*
 * Subtransaction ids grow over time, and an entry made after a subtransaction
 * began belongs to it or to one of its children: on its abort, cut the
 * buffer at the first such entry.
 */
void
on_subxact_event(SubXactEvent event, SubTransactionId subxid, SubTransactionId, void *)
{
	if (event != SUBXACT_EVENT_ABORT_SUB || nentries == 0)
		return;
	for (int i = 0; i < nentries; i++)
		if (entries[i].subxid >= subxid) {
			nentries = i;
			break;
		}
}

void
on_relcache_invalidation(Datum, Oid relid)
{
	bool log_index = false;
	for (int i = 0; writer.valid && i < writer.nindexes; i++)
		log_index |= relid == writer.index_oids[i];
	if (relid == InvalidOid || relid == log_relid || relid == log_seqid || log_index) {
		log_relid = InvalidOid;
		log_seqid = InvalidOid;
		ids_left = 0;
		writer.valid = false; /* rebuilt at the next flush */
	}
}

} // namespace

void
mark_tracked_change()
{
	changed_tracked_table = true;
}

void
register_sync_log_callbacks()
{
	RegisterXactCallback(on_xact_event, nullptr);
	RegisterSubXactCallback(on_subxact_event, nullptr);
	CacheRegisterRelcacheCallback(on_relcache_invalidation, PointerGetDatum(nullptr));
}

} // namespace edgesync::track

Datum
edgesync_log_trigger(PG_FUNCTION_ARGS)
{
	return edgesync::guarded([&] { return edgesync::track::log_trigger(fcinfo); });
}
