/*
 * settings.cpp — the shipper's settings (edgesync.ship_*), defined in every
 * process that loads the library; at preload, the launcher and the shared
 * memory the workers report in; and why a database's targets have no worker
 * (unserved_reason), for target_status.
 */
#include "core/guard.hpp"
#include "ship/activity.hpp"
#include "ship/shipper.hpp"
#include "ship/wakeup.hpp"
#include "ship/worker.hpp"
#include "track/sync_log.hpp"

#include <algorithm>
#include <climits>

extern "C" {
#include "commands/dbcommands.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/varlena.h"
}

namespace edgesync::ship {

int retry_min_ms = 1000;
int retry_max_ms = 60000;
int transaction_memory_kb = 16 * 1024;
bool binary_runs = true;
char *ship_databases = nullptr;
bool preloaded = false;
int naptime_ms = 200;
int round_batches = 50;

/* The databases named in edgesync.ship_databases (a comma list). */
std::vector<std::string>
configured_databases()
{
	std::vector<std::string> out;
	if (ship_databases == nullptr || ship_databases[0] == '\0')
		return out;
	/* Split by PostgreSQL's rules for identifier lists, then copied: no C++ object is live. */
	List *names = pg_call([]() -> List * {
		List *list = NIL;
		if (!SplitIdentifierString(pstrdup(ship_databases), ',', &list)) {
			ereport(LOG, (errmsg("edgesync.ship_databases is not a valid list of database names")));
			return NIL;
		}
		return list;
	});
	ListCell *lc;
	foreach (lc, names)
		out.emplace_back(static_cast<char *>(lfirst(lc)));
	pg_call([&] { list_free(names); });
	return out;
}

namespace {

/*
 * edgesync.ship_databases names databases to ship, but the library was not
 * preloaded, so no shipper runs: said once per server start, by the first
 * process that loads the library (nothing of edgesync runs at the start
 * itself).  "Once" is a tiny named struct in shared memory, taken from the
 * space PostgreSQL keeps for libraries loaded late; where it cannot be had,
 * nothing is said (target_status says it anyway).
 */
void
note_not_preloaded()
{
	if (ship_databases == nullptr || ship_databases[0] == '\0' || !IsUnderPostmaster)
		return;
	volatile bool found = true;
	MemoryContext context = CurrentMemoryContext;
	PG_TRY();
	{
		/* Under ShmemIndexLock: one process creates it, the others find it. */
		bool existed;
		(void) ShmemInitStruct("edgesync shipper not preloaded", sizeof(int), &existed);
		found = existed;
	}
	PG_CATCH();
	{
		/* No room: stay silent rather than say it in every session. */
		MemoryContextSwitchTo(context);
		FlushErrorState();
		found = true;
	}
	PG_END_TRY();
	if (found)
		return;
	/* Server log only: the session that happens to load the library first did nothing wrong. */
	ereport(LOG_SERVER_ONLY,
			(errmsg("edgesync.ship_databases is set, but edgesync is not in "
					"shared_preload_libraries"),
			 errdetail("No background worker ships the targets of \"%s\"; their replication "
					   "slots hold back WAL meanwhile.",
					   ship_databases),
			 errhint("Add edgesync to shared_preload_libraries and restart the server, or ship "
					 "with edgesync.ship() (from cron, for example).")));
}

} // namespace

const char *
unserved_reason()
{
	if (!preloaded)
		return "no worker (not preloaded)";
	const char *name = pg_call([] { return get_database_name(MyDatabaseId); });
	std::vector<std::string> wanted = configured_databases();
	if (name == nullptr || std::find(wanted.begin(), wanted.end(), name) == wanted.end())
		return "no worker (database not in edgesync.ship_databases)";
	return nullptr;
}

/* Settings (all processes) and, at preload, the launcher and the shared memory it reports in. */
void
init()
{
	DefineCustomStringVariable("edgesync.ship_databases",
							   "Databases whose edgesync targets the background shipper serves.",
							   "A comma-separated list; empty means no shipper.  Needs edgesync in "
							   "shared_preload_libraries.",
							   &ship_databases, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable(
		"edgesync.ship_naptime", "How long the shipper sleeps when nothing is to be shipped.",
		nullptr, &naptime_ms, 200, 10, 3600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
	DefineCustomBoolVariable(
		"edgesync.ship_wakeup",
		"Wakes a target's worker at the commit of a transaction that changed tracked tables.",
		"Off: workers find changes by polling, every edgesync.ship_naptime.", &wakeup_enabled, true,
		PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable(
		"edgesync.ship_round_batches",
		"Batches a target's worker ships in one round, before it releases the target's slot "
		"and reloads its settings.",
		nullptr, &round_batches, 50, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable(
		"edgesync.ship_transaction_memory",
		"Output of one source transaction the shipper keeps in memory.",
		"A transaction is shipped as one batch; beyond this much of its output, the rest is "
		"written to a temporary file and read back while the batch is sent.",
		&transaction_memory_kb, 16 * 1024, 1024, INT_MAX / 2, PGC_SUSET, GUC_UNIT_KB, nullptr,
		nullptr, nullptr);
	DefineCustomBoolVariable(
		"edgesync.ship_binary_runs",
		"Sends a replica the runs of upserts of built-in types with their values as binary arrays.",
		"Off: as array literals, in one multi-statement query per batch, as the sql format writes "
		"them for any consumer.",
		&binary_runs, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("edgesync.ship_retry_min", "First retry delay after a failed delivery.",
							nullptr, &retry_min_ms, 1000, 1, 86400000, PGC_SIGHUP, GUC_UNIT_MS,
							nullptr, nullptr, nullptr);
	DefineCustomIntVariable("edgesync.ship_retry_max",
							"Longest retry delay after failed deliveries.", nullptr, &retry_max_ms,
							60000, 1, 86400000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

	if (!process_shared_preload_libraries_in_progress) {
		note_not_preloaded();
		return;
	}
	preloaded = true;
	request_activity_memory();
	/* Commits that changed tracked tables wake the workers of their database. */
	request_wakeup_memory();
	track::tracked_commit_hook = wake_shippers;
	BackgroundWorker w = {};
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "edgesync");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "edgesync_ship_launcher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "edgesync shipper launcher");
	snprintf(w.bgw_type, BGW_MAXLEN, "edgesync shipper launcher");
	RegisterBackgroundWorker(&w);
}

} // namespace edgesync::ship
