/*
 * pg_compat.cpp — one definition per server API that differs between
 * PostgreSQL 15, 16, 17 and 18 (see pg_compat.hpp).  Each version test names
 * the release that changed the API; the branch for the older releases goes
 * when edgesync stops supporting them.
 */
#include "core/pg_compat.hpp"

extern "C" {
#include "catalog/pg_class.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_namespace.h"
#include "access/genam.h"
#include "commands/explain.h"
#include "common/base64.h"
#include "executor/executor.h"
#include "optimizer/pathnode.h"
#include "replication/slot.h"
#include "storage/fd.h"
#include "storage/proc.h"
#include "utils/rel.h"
#include "libpq-fe.h"
#if PG_VERSION_NUM >= 160000
#include "libpq/libpq-be-fe-helpers.h"
#endif
#if PG_VERSION_NUM >= 180000
#include "commands/explain_format.h"
#include "commands/explain_state.h"
#endif
}

namespace edgesync {

bool
owns_relation(Oid relid, Oid roleid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(RelationRelationId, relid, roleid);
#else
	return pg_class_ownercheck(relid, roleid);
#endif
}

bool
owns_schema(Oid nspid, Oid roleid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(NamespaceRelationId, nspid, roleid);
#else
	return pg_namespace_ownercheck(nspid, roleid);
#endif
}

AclResult
foreign_server_aclcheck(Oid serverid, Oid roleid, AclMode mode)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(ForeignServerRelationId, serverid, roleid, mode);
#else
	return pg_foreign_server_aclcheck(serverid, roleid, mode);
#endif
}

HeapTuple
change_new_tuple(const ReorderBufferChange *change)
{
#if PG_VERSION_NUM >= 170000
	return change->data.tp.newtuple;
#else
	return change->data.tp.newtuple != nullptr ? &change->data.tp.newtuple->tuple : nullptr;
#endif
}

HeapTuple
change_old_tuple(const ReorderBufferChange *change)
{
#if PG_VERSION_NUM >= 170000
	return change->data.tp.oldtuple;
#else
	return change->data.tp.oldtuple != nullptr ? &change->data.tp.oldtuple->tuple : nullptr;
#endif
}

LocalTransactionId
my_local_transaction_id()
{
#if PG_VERSION_NUM >= 170000
	return MyProc->vxid.lxid;
#else
	return MyProc->lxid;
#endif
}

bool
lock_held_by_me(const LOCKTAG *tag, LOCKMODE mode)
{
#if PG_VERSION_NUM >= 170000
	return LockHeldByMe(tag, mode, false);
#else
	return LockHeldByMe(tag, mode);
#endif
}

void
insert_index_tuples(ResultRelInfo *result_rel, TupleTableSlot *slot, EState *estate)
{
#if PG_VERSION_NUM >= 160000
	/* Not an update: every index gets an entry (onlySummarizing = false). */
	ExecInsertIndexTuples(result_rel, slot, estate, false, false, nullptr, NIL, false);
#else
	ExecInsertIndexTuples(result_rel, slot, estate, false, false, nullptr, NIL);
#endif
}

void
insert_index_entry(Relation index, Datum *values, bool *isnull, ItemPointer tid, Relation heap,
				   IndexInfo *info, MemoryContext keep_context, MemoryContext scratch_context)
{
#if PG_VERSION_NUM >= 170000
	/* index_insert_cleanup (17) ends the cache; nothing of it survives a call. */
	info->ii_Context = scratch_context;
	info->ii_AmCache = nullptr;
	index_insert(index, values, isnull, tid, heap, UNIQUE_CHECK_NO, false, info);
	index_insert_cleanup(index, info);
#else
	info->ii_Context = keep_context;
	index_insert(index, values, isnull, tid, heap, UNIQUE_CHECK_NO, false, info);
#endif
}

Oid
primary_key_index(Relation rel)
{
	/* Before 18 the relcache never offered a deferrable primary key. */
#if PG_VERSION_NUM >= 180000
	return RelationGetPrimaryKeyIndex(rel, false);
#else
	return RelationGetPrimaryKeyIndex(rel);
#endif
}

void
acquire_replication_slot(const char *name, bool nowait)
{
#if PG_VERSION_NUM >= 180000
	ReplicationSlotAcquire(name, nowait, true);
#else
	/* Decoding from an invalidated slot fails later, in CreateDecodingContext. */
	ReplicationSlotAcquire(name, nowait);
#endif
}

void
wait_for_failover_standbys(XLogRecPtr lsn)
{
#if PG_VERSION_NUM >= 170000
	WaitForStandbyConfirmation(lsn); /* returns at once unless both apply */
#endif
}

void
cleanup_replication_slots()
{
#if PG_VERSION_NUM >= 170000
	ReplicationSlotCleanup(false); /* all of them, not only synced ones */
#else
	ReplicationSlotCleanup();
#endif
}

Oid
foreign_scan_user(ForeignScanState *node)
{
	ForeignScan *plan = reinterpret_cast<ForeignScan *>(node->ss.ps.plan);
#if PG_VERSION_NUM >= 160000
	Oid user = plan->checkAsUser;
#else
	/* A join or aggregate pushed down scans no relation: its first base one. */
	Index rti =
		plan->scan.scanrelid > 0 ? plan->scan.scanrelid : bms_next_member(plan->fs_relids, -1);
	Oid user = exec_rt_fetch(rti, node->ss.ps.state)->checkAsUser;
#endif
	return OidIsValid(user) ? user : GetUserId();
}

ForeignPath *
foreign_scan_path(PlannerInfo *root, RelOptInfo *rel, double rows, Cost startup, Cost total,
				  Relids required_outer)
{
#if PG_VERSION_NUM >= 180000
	return create_foreignscan_path(root, rel, nullptr, rows, 0, startup, total, NIL, required_outer,
								   nullptr, NIL, NIL);
#elif PG_VERSION_NUM >= 170000
	return create_foreignscan_path(root, rel, nullptr, rows, startup, total, NIL, required_outer,
								   nullptr, NIL, NIL);
#else
	return create_foreignscan_path(root, rel, nullptr, rows, startup, total, NIL, required_outer,
								   nullptr, NIL);
#endif
}

ForeignPath *
foreign_upper_path(PlannerInfo *root, RelOptInfo *rel, PathTarget *target, double rows,
				   Cost startup, Cost total)
{
#if PG_VERSION_NUM >= 180000
	return create_foreign_upper_path(root, rel, target, rows, 0, startup, total, NIL, nullptr, NIL,
									 NIL);
#elif PG_VERSION_NUM >= 170000
	return create_foreign_upper_path(root, rel, target, rows, startup, total, NIL, nullptr, NIL,
									 NIL);
#else
	return create_foreign_upper_path(root, rel, target, rows, startup, total, NIL, nullptr, NIL);
#endif
}

bool
explain_verbose(const ExplainState *es)
{
	return es->verbose;
}

bool
explain_analyze(const ExplainState *es)
{
	return es->analyze;
}

void
explain_property_text(const char *label, const char *value, ExplainState *es)
{
	ExplainPropertyText(label, value, es);
}

PGconn *
backend_connect_start(const char *const *keywords, const char *const *values, int expand_dbname)
{
#if PG_VERSION_NUM >= 160000
	libpqsrv_connect_prepare();
#else
	/* What libpqsrv_connect_prepare() does from 16 on. */
	if (!AcquireExternalFD())
		ereport(ERROR, (errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
						errmsg("could not establish connection"),
						errdetail("There are too many open files on the local server."),
						errhint("Raise the server's \"max_files_per_process\" and/or \"ulimit -n\" "
								"limits.")));
#endif
	PGconn *conn = PQconnectStartParams(keywords, values, expand_dbname);
	if (conn == nullptr)
		ReleaseExternalFD();
	return conn;
}

void
backend_disconnect(PGconn *conn)
{
#if PG_VERSION_NUM >= 160000
	libpqsrv_disconnect(conn);
#else
	if (conn == nullptr)
		return;
	ReleaseExternalFD();
	PQfinish(conn);
#endif
}

int
base64_encode(const char *src, int len, char *dst, int dstlen)
{
#if PG_VERSION_NUM >= 180000
	return pg_b64_encode(reinterpret_cast<const uint8 *>(src), len, dst, dstlen);
#else
	return pg_b64_encode(src, len, dst, dstlen);
#endif
}

} // namespace edgesync
