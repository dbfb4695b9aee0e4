/*
 * pg_compat.hpp — the server APIs that differ between PostgreSQL 15, 16, 17
 * and 18, each behind one function with the meaning edgesync relies on.
 *
 * This header and pg_compat.cpp are the only places that test
 * PG_VERSION_NUM (scripts/check-compat.sh, run by CI, checks it).  A new
 * difference gets a function here, named for what it does, not a version
 * test at the call site.  The functions are plain PostgreSQL code: they may
 * raise errors, so call them as you would call the server's own.
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "access/htup.h"
#include "access/xlogdefs.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "replication/reorderbuffer.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/relcache.h"
}

#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 190000
#error "edgesync supports PostgreSQL 15 to 18 (docs/install.md)"
#endif

struct ExplainState;
struct pg_conn;
typedef struct pg_conn PGconn;

namespace edgesync {

/* Ownership and privileges (object_ownercheck/object_aclcheck from 16 on). */
bool owns_relation(Oid relid, Oid roleid);
bool owns_schema(Oid nspid, Oid roleid);
AclResult foreign_server_aclcheck(Oid serverid, Oid roleid, AclMode mode);

/* The new and old tuples of a decoded change, or nullptr (17 dropped ReorderBufferTupleBuf). */
HeapTuple change_new_tuple(const ReorderBufferChange *change);
HeapTuple change_old_tuple(const ReorderBufferChange *change);

/* This backend's local transaction id (PGPROC.lxid, vxid.lxid from 17 on). */
LocalTransactionId my_local_transaction_id();

/* Does this backend hold exactly this lock mode on tag (not a stronger one)? */
bool lock_held_by_me(const LOCKTAG *tag, LOCKMODE mode);

/* Inserts slot's index entries for all of result_rel's indexes, no conflict checks. */
void insert_index_tuples(ResultRelInfo *result_rel, TupleTableSlot *slot, EState *estate);

/*
 * Inserts the index entry of the heap tuple at tid (UNIQUE_CHECK_NO).  The
 * access method's cache (info->ii_AmCache) is kept for the next call where
 * that is safe: up to 16 it holds descriptors only, built in keep_context.
 * From 17 on it can hold buffer pins (BRIN's revmap): it is built in
 * scratch_context and released before this returns, as the executor does at
 * the end of each statement.
 */
void insert_index_entry(Relation index, Datum *values, bool *isnull, ItemPointer tid, Relation heap,
						IndexInfo *info, MemoryContext keep_context, MemoryContext scratch_context);

/* The OID of rel's primary key index if it is not deferrable, else InvalidOid. */
Oid primary_key_index(Relation rel);

/* Acquires the replication slot name for this backend; refuses an invalidated slot. */
void acquire_replication_slot(const char *name, bool nowait);
/*
 * Before the changes of the acquired slot up to lsn leave the server: waits
 * until the standbys named in synchronized_standby_slots (17) have received
 * that WAL, as a walsender does for a failover slot, so that nothing is
 * shipped that a promoted standby would not have.  Returns at once before
 * 17, for a slot without failover, or when the setting is empty.
 */
void wait_for_failover_standbys(XLogRecPtr lsn);
/* Drops this backend's temporary slots and releases any it holds (error cleanup). */
void cleanup_replication_slots();

/* The role a foreign scan reads as: the view owner's, or the current user. */
Oid foreign_scan_user(ForeignScanState *node);
/* An unsorted, unparameterized-or-parameterized foreign scan path with no private data. */
ForeignPath *foreign_scan_path(PlannerInfo *root, RelOptInfo *rel, double rows, Cost startup,
							   Cost total, Relids required_outer);
/* A path that computes the upper relation rel (an aggregate) remotely, with no private data. */
ForeignPath *foreign_upper_path(PlannerInfo *root, RelOptInfo *rel, PathTarget *target, double rows,
								Cost startup, Cost total);
/* EXPLAIN: its options and one text property (ExplainState moved header in 18). */
bool explain_verbose(const ExplainState *es);
bool explain_analyze(const ExplainState *es);
void explain_property_text(const char *label, const char *value, ExplainState *es);

/*
 * A backend's own libpq connections, as libpq-be-fe-helpers.h (16) makes
 * them: the socket counts against max_files_per_process (AcquireExternalFD),
 * so a backend short of descriptors gets an error here (08001) instead of
 * failing somewhere else.  backend_connect_start() is PQconnectStartParams()
 * with that accounting (it may raise the error); every connection it returns,
 * and only those, is closed with backend_disconnect() (nullptr is a no-op).
 */
PGconn *backend_connect_start(const char *const *keywords, const char *const *values,
							  int expand_dbname);
void backend_disconnect(PGconn *conn);

/* Base64 of len bytes at src into dst (dstlen >= pg_b64_enc_len(len)); returns the length. */
int base64_encode(const char *src, int len, char *dst, int dstlen);

} // namespace edgesync
