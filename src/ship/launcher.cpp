/*
 * launcher.cpp — the shipper's launcher (worker.cpp has the whole picture):
 * one per server, connected to no database, it reads the shared catalog
 * pg_database and starts a supervisor for each database named in
 * edgesync.ship_databases, and stops those of databases taken off the list
 * on SIGHUP.  A name that names no database (or one that takes no
 * connections) is reported once with a WARNING and looked up again at the
 * retry pace (edgesync.ship_retry_min doubling up to ship_retry_max); it
 * never holds up the others.  A database whose targets' slots exist but
 * that the list does not name is reported too, once.
 */
#include "core/guard.hpp"
#include "ship/batch.hpp"
#include "ship/shipper.hpp"
#include "ship/worker.hpp"

#include <algorithm>
#include <map>
#include <vector>

extern "C" {
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

PGDLLEXPORT void edgesync_ship_launcher_main(Datum arg);
}

namespace edgesync::ship {

namespace {

/*
 * Calls match with each row of pg_database until it returns true.  A heap
 * scan of the shared catalog, as the autovacuum launcher reads it: a process
 * connected to no database cannot build the relcache entries of its indexes.
 * Plain PostgreSQL code: match owns nothing an error could leak.
 */
template <typename Match>
void
scan_databases(Match match)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	Relation rel = table_open(DatabaseRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
	for (HeapTuple tuple; HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection));)
		if (match(reinterpret_cast<Form_pg_database>(GETSTRUCT(tuple))))
			break;
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

/*
 * The OID of the database named name, if it takes connections; InvalidOid
 * otherwise, with closed set when it exists but does not (datallowconn off,
 * or left invalid by an interrupted DROP DATABASE).
 */
Oid
lookup_database(const std::string &name, bool &closed)
{
	Oid oid = InvalidOid;
	closed = false;
	scan_databases([&](Form_pg_database db) {
		if (strcmp(NameStr(db->datname), name.c_str()) != 0)
			return false;
		/* -2: DATCONNLIMIT_INVALID_DB (a DROP DATABASE that did not finish) */
		if (db->datallowconn && db->datconnlimit != -2)
			oid = db->oid;
		else
			closed = true;
		return true;
	});
	return oid;
}

/* Said once for a name of edgesync.ship_databases that names no database we can use. */
void
warn_unusable_database(const std::string &name, bool closed)
{
	ereport(
		WARNING,
		(errcode(closed ? ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE : ERRCODE_UNDEFINED_DATABASE),
		 closed ? errmsg("database \"%s\" named in edgesync.ship_databases does not accept "
						 "connections",
						 name.c_str())
				: errmsg("database \"%s\" named in edgesync.ship_databases does not exist",
						 name.c_str()),
		 errdetail("No targets of it are shipped; the shipper looks for it again from time "
				   "to time, at most every %d ms.",
				   retry_max_ms),
		 errhint("Create the database (or let it take connections), or take it off "
				 "edgesync.ship_databases and reload.")));
}

/* A name of edgesync.ship_databases that names no database we can use (yet). */
struct Missing {
	int lookups = 0; /* that found none, in a row */
	TimestampTz next_lookup = 0;
};

/*
 * The databases that hold the slot of some target (a logical slot named
 * edgesync_* of the edgesync plugin), by OID: read from shared memory, as
 * pg_replication_slots does.
 */
std::map<Oid, std::vector<std::string>>
databases_with_target_slots()
{
	std::map<Oid, std::vector<std::string>> out;
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots; i++) {
		ReplicationSlot *slot = &ReplicationSlotCtl->replication_slots[i];
		if (!slot->in_use || !OidIsValid(slot->data.database) ||
			strcmp(NameStr(slot->data.plugin), "edgesync") != 0 ||
			strncmp(NameStr(slot->data.name), "edgesync_", 9) != 0)
			continue;
		out[slot->data.database].emplace_back(NameStr(slot->data.name));
	}
	LWLockRelease(ReplicationSlotControlLock);
	for (auto &[oid, slots] : out)
		std::sort(slots.begin(), slots.end());
	return out;
}

/* The name of the database of OID oid (scan_databases()). */
std::string
database_name(Oid oid)
{
	std::string name;
	scan_databases([&](Form_pg_database db) {
		if (db->oid != oid)
			return false;
		name = NameStr(db->datname);
		return true;
	});
	return name;
}

/*
 * Said once at start, and after a reload for a database taken off the list:
 * a database whose targets' slots exist but that edgesync.ship_databases
 * does not name.  No worker ships those targets while their slots hold WAL
 * back (target_status shows them as "no worker (database not in
 * edgesync.ship_databases)").  noted: the databases said already.
 */
void
note_unshipped_databases(const std::vector<std::string> &wanted, std::vector<Oid> &noted)
{
	std::vector<Oid> now;
	for (const auto &[oid, slots] : databases_with_target_slots()) {
		std::string name = database_name(oid);
		if (name.empty() || std::find(wanted.begin(), wanted.end(), name) != wanted.end())
			continue;
		now.push_back(oid);
		if (std::find(noted.begin(), noted.end(), oid) != noted.end())
			continue;
		std::string list;
		for (size_t i = 0; i < slots.size() && i < 5; i++)
			list += (i > 0 ? ", \"" : "\"") + slots[i] + "\"";
		if (slots.size() > 5)
			list += format(" and %zu more", slots.size() - 5);
		ereport(WARNING,
				(errmsg("database \"%s\" has edgesync targets but is not in "
						"edgesync.ship_databases",
						name.c_str()),
				 errdetail("No background worker ships its targets, whose replication slots (%s) "
						   "hold back WAL meanwhile.",
						   list.c_str()),
				 errhint("Add \"%s\" to edgesync.ship_databases and reload, or drop or disable "
						 "the targets there.",
						 name.c_str())));
	}
	noted = std::move(now);
}

/* The launcher's loop; plain C-style code (no C++ objects cross an ereport). */
void
launcher_loop()
{
	std::map<std::string, Missing> missing;
	std::vector<Oid> unshipped;
	bool check_unshipped = true; /* at start, and after each reload */

	for (;;) {
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			check_unshipped = true;
		}
		std::vector<std::string> wanted = configured_databases();
		if (check_unshipped)
			note_unshipped_databases(wanted, unshipped);
		check_unshipped = false;
		prune_children(wanted);
		for (auto it = missing.begin(); it != missing.end();)
			if (std::find(wanted.begin(), wanted.end(), it->first) == wanted.end())
				it = missing.erase(it);
			else
				++it;

		long timeout = 10000L;
		for (const std::string &db : wanted) {
			if (child_running(db))
				continue;
			TimestampTz now = GetCurrentTimestamp();
			auto m = missing.find(db);
			if (m != missing.end() && now < m->second.next_lookup) {
				timeout = std::min(timeout,
								   TimestampDifferenceMilliseconds(now, m->second.next_lookup) + 1);
				continue;
			}
			bool closed;
			Oid oid = lookup_database(db, closed);
			if (!OidIsValid(oid)) {
				Missing &gone = missing[db];
				if (gone.lookups == 0)
					warn_unusable_database(db, closed);
				gone.lookups++;
				int64_t delay = retry_delay_ms(gone.lookups, retry_min_ms, retry_max_ms, 1.0);
				gone.next_lookup = TimestampTzPlusMilliseconds(now, delay);
				timeout = std::min(timeout, static_cast<long>(delay) + 1);
				continue;
			}
			if (m != missing.end()) {
				ereport(LOG, (errmsg("database \"%s\" named in edgesync.ship_databases takes "
									 "connections now: its targets are shipped",
									 db.c_str())));
				missing.erase(m);
			}
			BackgroundWorker w = {};
			snprintf(w.bgw_function_name, BGW_MAXLEN, "edgesync_ship_database_main");
			snprintf(w.bgw_name, BGW_MAXLEN, "edgesync shipper supervisor for database %s",
					 db.c_str());
			snprintf(w.bgw_type, BGW_MAXLEN, "edgesync shipper supervisor");
			strlcpy(w.bgw_extra, db.c_str(), BGW_EXTRALEN);
			w.bgw_main_arg = ObjectIdGetDatum(oid);
			start_child(db, w, "database", timeout);
		}
		int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout,
						   PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

} // namespace

} // namespace edgesync::ship

void
edgesync_ship_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* No database: the shared catalogs (pg_database) only. */
	BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
	on_shmem_exit(edgesync::ship::stop_children, 0);
	/*
	 * An ERROR here has no handler to jump to and ends the process as FATAL
	 * (no longjmp through the loop's frames); the postmaster restarts it.
	 */
	edgesync::guarded([] { edgesync::ship::launcher_loop(); });
}
