/*
 * worker.cpp — the shipper's background workers and settings.
 *
 * With edgesync in shared_preload_libraries, a launcher starts one worker
 * per database named in edgesync.ship_databases (and stops the workers of
 * databases taken off the list on SIGHUP).  Each worker ships every enabled
 * target of its database, round by round: a target gets at most
 * edgesync.ship_round_batches batches per round, so a busy target does not
 * starve the others; a failing target is skipped until its next_retry
 * (exponential backoff with jitter, capped by edgesync.ship_retry_max), so
 * it costs the others at most one attempt (bounded by its timeout_ms) per
 * backoff period.  When nothing is left to ship, the worker sleeps
 * edgesync.ship_naptime or until its latch is set.
 *
 * SIGHUP reloads the settings; SIGTERM ends the workers at the next
 * interrupt check (die(), as for any backend), including in the middle of a
 * network wait.  The postmaster restarts the launcher (after a crash, too);
 * the launcher restarts a database's worker that ended, at most once every
 * kWorkerRestartSeconds.  The workers themselves are never restarted by the
 * postmaster: after a crash it would start them again beside the ones the
 * restarted launcher starts, two workers for one database.  A batch that was
 * in flight is delivered again (the slot had not moved).
 */
#include "core/guard.hpp"
#include "ship/shipper.hpp"

#include <algorithm>
#include <map>
#include <vector>

extern "C" {
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

PGDLLEXPORT void edgesync_ship_launcher_main(Datum arg);
PGDLLEXPORT void edgesync_ship_worker_main(Datum arg);
}

namespace edgesync::ship {

int retry_min_ms = 1000;
int retry_max_ms = 60000;
int transaction_memory_kb = 16 * 1024;

namespace {

char *ship_databases = nullptr;
int naptime_ms = 200;
int round_batches = 50;

/* The databases named in edgesync.ship_databases (a comma list). */
std::vector<std::string>
configured_databases()
{
	std::vector<std::string> out;
	if (ship_databases == nullptr || ship_databases[0] == '\0')
		return out;
	char *copy = pstrdup(ship_databases);
	List *names = NIL;
	if (!SplitIdentifierString(copy, ',', &names)) {
		ereport(LOG, (errmsg("edgesync.ship_databases is not a valid list of database names")));
		return out;
	}
	ListCell *lc;
	foreach (lc, names)
		out.emplace_back(static_cast<char *>(lfirst(lc)));
	list_free(names);
	pfree(copy);
	return out;
}

constexpr int kWorkerRestartSeconds = 5;

bool
start_worker(const std::string &db, BackgroundWorkerHandle **handle)
{
	BackgroundWorker w = {};
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART; /* the launcher does (see above) */
	snprintf(w.bgw_library_name, BGW_MAXLEN, "edgesync");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "edgesync_ship_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "edgesync shipper for database %s", db.c_str());
	snprintf(w.bgw_type, BGW_MAXLEN, "edgesync shipper");
	strlcpy(w.bgw_extra, db.c_str(), BGW_EXTRALEN);
	w.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&w, handle);
}

/* The launcher's loop; plain C-style code (no C++ objects cross an ereport). */
void
launcher_loop()
{
	std::map<std::string, BackgroundWorkerHandle *> workers;
	std::map<std::string, TimestampTz> started; /* when each database's worker last started */

	for (;;) {
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		std::vector<std::string> wanted = configured_databases();
		for (auto it = workers.begin(); it != workers.end();) {
			bool keep = std::find(wanted.begin(), wanted.end(), it->first) != wanted.end();
			pid_t pid;
			BgwHandleStatus status = GetBackgroundWorkerPid(it->second, &pid);
			if (!keep)
				TerminateBackgroundWorker(it->second);
			if (!keep || status == BGWH_STOPPED) {
				pfree(it->second);
				it = workers.erase(it);
			} else
				++it;
		}
		long timeout = 10000L;
		TimestampTz now = GetCurrentTimestamp();
		for (const std::string &db : wanted) {
			if (workers.count(db))
				continue;
			/* A worker that keeps failing (say, its database is gone) restarts slowly. */
			auto last = started.find(db);
			if (last != started.end()) {
				TimestampTz allowed =
					TimestampTzPlusMilliseconds(last->second, kWorkerRestartSeconds * 1000);
				if (now < allowed) {
					timeout = std::min(timeout, TimestampDifferenceMilliseconds(now, allowed) + 1);
					continue;
				}
			}
			BackgroundWorkerHandle *handle = nullptr;
			if (start_worker(db, &handle)) {
				workers[db] = handle;
				started[db] = now;
			} else
				ereport(WARNING,
						(errmsg("could not start edgesync shipper for database \"%s\"", db.c_str()),
						 errhint("Raise max_worker_processes.")));
		}
		int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout,
						   PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

struct Due {
	std::string name;
};

/* The enabled targets of this database that are due; empty without the extension. */
std::vector<std::string>
due_targets(TimestampTz &next_wake)
{
	std::vector<std::string> out;
	pg_call([] {
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
	});
	bool installed = pg_call([] { return OidIsValid(get_extension_oid("edgesync", true)); });
	if (installed) {
		pg_call([] {
			SPI_connect();
			int rc = SPI_execute(
				"SELECT t.name,"
				"       st.next_retry OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp()"
				"       OR st.next_retry IS NULL,"
				"       st.next_retry"
				"  FROM edgesync.targets t"
				"  JOIN edgesync.target_state st ON st.name OPERATOR(pg_catalog.=) t.name"
				" WHERE t.enabled ORDER BY t.name",
				true, 0);
			if (rc != SPI_OK_SELECT)
				elog(ERROR, "could not list edgesync targets");
		});
		for (uint64 i = 0; i < SPI_processed; i++) {
			bool isnull;
			HeapTuple row = SPI_tuptable->vals[i];
			char *name = pg_call([&] { return SPI_getvalue(row, SPI_tuptable->tupdesc, 1); });
			bool due = DatumGetBool(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
			if (due)
				out.emplace_back(name);
			else {
				TimestampTz at =
					DatumGetTimestampTz(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull));
				if (next_wake == 0 || at < next_wake)
					next_wake = at;
			}
		}
		pg_call([] { SPI_finish(); });
	}
	pg_call([] {
		PopActiveSnapshot();
		CommitTransactionCommand();
	});
	return out;
}

/*
 * Cleans up after a round that failed with an exception (a PostgreSQL error
 * that came through pg_call, or a C++ one), as PostgresMain's error recovery
 * does for a backend: the slot, the transaction, the targets' session locks.
 */
void
abort_round()
{
	pg_call([] {
		if (MyReplicationSlot != nullptr)
			ReplicationSlotRelease();
		ReplicationSlotCleanup();
		AbortCurrentTransaction();
		/* Session advisory locks of targets survive the abort. */
		StartTransactionCommand();
		DirectFunctionCall1(pg_advisory_unlock_all, (Datum) 0);
		CommitTransactionCommand();
	});
}

/*
 * After abort_round(): records the failure in target_state (secrets removed,
 * next retry after backoff) and logs the same redacted text.  target empty:
 * a failure outside any target's round.
 */
void
report_failure(const std::string &target, const std::string &message, const char *sqlstate)
{
	std::string text = message;
	if (!target.empty()) {
		try {
			text = record_error(target, message);
		} catch (PgException &again) {
			again.discard();
			abort_round();
			text = "(error text withheld: it could not be recorded with secrets removed)";
		} catch (const std::exception &) {
			abort_round();
			text = "(error text withheld: it could not be recorded with secrets removed)";
		}
	}
	int code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4]);
	pg_call([&] {
		if (target.empty())
			ereport(WARNING, (errcode(code), errmsg("edgesync shipper: %s", text.c_str())));
		else
			ereport(WARNING, (errcode(code), errmsg("edgesync shipper: target \"%s\": %s",
													target.c_str(), text.c_str())));
	});
}

/* Runs one step of the loop; an exception fails it (and target's round) only. */
template <typename Fn>
void
isolated(const std::string &target, Fn &&step)
{
	std::string message;
	char sqlstate[6] = "XX000";
	try {
		step();
		return;
	} catch (PgException &e) {
		message = e.what();
		strlcpy(sqlstate, unpack_sql_state(e.data()->sqlerrcode), sizeof sqlstate);
		e.discard();
	} catch (const Error &e) {
		/* Ours, such as a refused connection (owner.hpp): its reason too. */
		message = e.what();
		if (!e.detail_text().empty())
			message += ": " + e.detail_text();
		strlcpy(sqlstate, e.sqlstate(), sizeof sqlstate);
	} catch (const std::bad_alloc &) {
		message = "out of memory";
		strlcpy(sqlstate, "53200", sizeof sqlstate);
	} catch (const std::exception &e) {
		message = std::string("internal error in edgesync: ") + e.what();
	}
	abort_round();
	report_failure(target, message, sqlstate);
}

void
worker_loop()
{
	for (;;) {
		pg_call([] {
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending) {
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
		});
		TimestampTz next_wake = 0;
		bool more = false;
		std::vector<std::string> targets;
		isolated(std::string(), [&] { targets = due_targets(next_wake); });
		for (const std::string &target : targets) {
			pg_call([&] { pgstat_report_activity(STATE_RUNNING, "edgesync: shipping"); });
			isolated(target, [&] {
				ShipResult r = ship_target(target, round_batches, true);
				if (r.more && !r.failed)
					more = true;
			});
		}
		pg_call([] { pgstat_report_activity(STATE_IDLE, nullptr); });
		if (more)
			continue;
		long timeout = naptime_ms;
		if (next_wake != 0) {
			long until = static_cast<long>((next_wake - GetCurrentTimestamp()) / 1000);
			timeout = std::max(10L, std::min(timeout, until));
		}
		int rc = pg_call([&] {
			return WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout,
							 PG_WAIT_EXTENSION);
		});
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
	}
}

} // namespace

/* Settings (all processes) and, at preload, the launcher. */
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
	DefineCustomIntVariable(
		"edgesync.ship_round_batches",
		"Batches a target may ship before the shipper turns to the next target.", nullptr,
		&round_batches, 50, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable(
		"edgesync.ship_transaction_memory",
		"Output of one source transaction the shipper keeps in memory.",
		"A transaction is shipped as one batch; beyond this much of its output, the rest is "
		"written to a temporary file and read back while the batch is sent.",
		&transaction_memory_kb, 16 * 1024, 1024, INT_MAX / 2, PGC_SUSET, GUC_UNIT_KB, nullptr,
		nullptr, nullptr);
	DefineCustomIntVariable("edgesync.ship_retry_min", "First retry delay after a failed delivery.",
							nullptr, &retry_min_ms, 1000, 1, 86400000, PGC_SIGHUP, GUC_UNIT_MS,
							nullptr, nullptr, nullptr);
	DefineCustomIntVariable("edgesync.ship_retry_max",
							"Longest retry delay after failed deliveries.", nullptr, &retry_max_ms,
							60000, 1, 86400000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

	if (!process_shared_preload_libraries_in_progress)
		return;
	BackgroundWorker w = {};
	w.bgw_flags = BGWORKER_SHMEM_ACCESS;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "edgesync");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "edgesync_ship_launcher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "edgesync shipper launcher");
	snprintf(w.bgw_type, BGW_MAXLEN, "edgesync shipper launcher");
	RegisterBackgroundWorker(&w);
}

} // namespace edgesync::ship

void
edgesync_ship_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	edgesync::guarded([] { edgesync::ship::launcher_loop(); });
}

void
edgesync_ship_worker_main(Datum arg)
{
	char db[BGW_EXTRALEN];
	strlcpy(db, MyBgworkerEntry->bgw_extra, BGW_EXTRALEN);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(db, nullptr, 0);
	pgstat_report_appname("edgesync shipper");
	/*
	 * The worker runs as the bootstrap superuser: no object a user can create
	 * may be found by name in anything it runs (its own queries, decoding,
	 * the re-send).  Its queries also name their operators and functions
	 * with their schema; this covers what they call.  PGC_S_OVERRIDE: no
	 * reload, database or role setting replaces it.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* Every round that decodes a slot logs "starting logical decoding" lines at LOG. */
	SetConfigOption("log_min_messages", "warning", PGC_SUSET, PGC_S_OVERRIDE);
	edgesync::guarded([] { edgesync::ship::worker_loop(); });
}
