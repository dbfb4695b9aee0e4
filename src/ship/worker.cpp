/*
 * worker.cpp — the shipper's background workers: a database's supervisor and
 * a target's worker here, the launcher in launcher.cpp, the settings in
 * settings.cpp, the bookkeeping of started workers in children.cpp.
 *
 * With edgesync in shared_preload_libraries, three kinds of background
 * workers ship the targets:
 *
 *   launcher    one per server, connected to no database (it reads the
 *               shared catalog pg_database): starts a supervisor for each
 *               database named in edgesync.ship_databases, and stops those of
 *               databases taken off the list on SIGHUP.  A name that names no
 *               database (or one that takes no connections) is reported once
 *               with a WARNING and looked up again at the retry pace
 *               (edgesync.ship_retry_min doubling up to ship_retry_max); it
 *               never holds up the others.
 *   supervisor  one per database: starts a worker for each enabled target,
 *               and stops the workers of targets dropped or disabled.
 *   worker      one per enabled target: ships it round after round, at most
 *               edgesync.ship_round_batches batches a round; after a failure
 *               it waits until the target's next_retry (exponential backoff
 *               with jitter, capped by edgesync.ship_retry_max); with nothing
 *               to ship it sleeps edgesync.ship_naptime or until its latch
 *               is set.
 *
 * A target's waits (its receiver, its connection, its decoding) happen in its
 * own process, so a target that hangs, is slow or fails costs the others
 * nothing.  Why not one process looping over all targets: decoding and SPI
 * must stay on a process's main thread, and a process holds one replication
 * slot at a time; a process per target keeps each target's decoding context
 * across its batches (docs/shipping.md, "A worker per target", with the
 * costs).
 *
 * SIGHUP reloads the settings; SIGTERM ends a worker at the next interrupt
 * check (die(), as for any backend), including in the middle of a network
 * wait.  The postmaster restarts the launcher (after a crash, too); the
 * launcher restarts a supervisor that ended, and a supervisor a target's
 * worker, at most once every kWorkerRestartSeconds.  Those two kinds are
 * never restarted by the postmaster: after a crash it would start them again
 * beside the ones the restarted launcher starts.  A launcher or supervisor
 * that exits stops the workers it started (on_shmem_exit), so that the one
 * that replaces it does not start them twice.  A batch that was in flight is
 * delivered again (the slot had not moved).
 */
#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "ship/activity.hpp"
#include "ship/shipper.hpp"
#include "ship/wakeup.hpp"
#include "ship/worker.hpp"

#include <algorithm>
#include <vector>

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void edgesync_ship_database_main(Datum arg);
PGDLLEXPORT void edgesync_ship_target_main(Datum arg);
}

namespace edgesync::ship {

namespace {

/* Runs body in a transaction of its own, connected to SPI, if the extension is installed. */
template <typename Fn>
void
with_extension(Fn &&body)
{
	pg_call([] {
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
	});
	if (pg_call([] { return OidIsValid(get_extension_oid("edgesync", true)); })) {
		pg_call([] {
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
		});
		body();
		pg_call([] { SPI_finish(); });
	}
	pg_call([] {
		PopActiveSnapshot();
		CommitTransactionCommand();
	});
}

/*
 * The enabled targets of this database that have a state row (a target
 * restored from a dump has none until resync() gives it one); none without
 * the extension.
 */
std::vector<std::string>
enabled_targets()
{
	std::vector<std::string> out;
	with_extension([&] {
		pg_call([] {
			if (SPI_execute(
					"SELECT t.name FROM edgesync.targets t"
					"  JOIN edgesync.target_state st ON st.name OPERATOR(pg_catalog.=) t.name"
					" WHERE t.enabled ORDER BY 1",
					true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not list edgesync targets");
		});
		for (uint64 i = 0; i < SPI_processed; i++)
			out.emplace_back(pg_call(
				[&] { return SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1); }));
	});
	return out;
}

/*
 * Whether target still exists and is enabled; then due tells whether its
 * next_retry has come, and next_retry is when (0: none).
 */
bool
target_enabled(const std::string &target, bool &due, TimestampTz &next_retry)
{
	bool found = false;
	with_extension([&] {
		pg_call([&] {
			Oid types[1] = {TEXTOID};
			Datum values[1] = {CStringGetTextDatum(target.c_str())};
			if (SPI_execute_with_args(
					"SELECT st.next_retry IS NULL"
					"       OR st.next_retry OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp(),"
					"       st.next_retry"
					"  FROM edgesync.targets t"
					"  JOIN edgesync.target_state st ON st.name OPERATOR(pg_catalog.=) t.name"
					" WHERE t.name OPERATOR(pg_catalog.=) $1 AND t.enabled",
					1, types, values, nullptr, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read edgesync target \"%s\"", target.c_str());
		});
		found = SPI_processed == 1;
		if (found) {
			bool isnull;
			HeapTuple row = SPI_tuptable->vals[0];
			due = DatumGetBool(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
			Datum at = SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull);
			next_retry = isnull ? 0 : DatumGetTimestampTz(at);
		}
	});
	return found;
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
		cleanup_replication_slots();
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

/*
 * Runs one step of a loop; an exception fails it (and target's round) only.
 * Returns whether the step went through.
 */
template <typename Fn>
bool
isolated(const std::string &target, Fn &&step)
{
	std::string message;
	char sqlstate[6] = "XX000";
	try {
		step();
		return true;
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
	return false;
}

/* Waits on the latch up to timeout ms (at least 10). */
void
nap(long timeout)
{
	int rc = pg_call([&] {
		return WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 std::max(10L, timeout), PG_WAIT_EXTENSION);
	});
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
}

/*
 * A target's worker's nap when it is not backing off: until a commit wakes
 * it (wakeup.hpp), a reload or an interrupt, or timeout ms.  A latch set for
 * another reason (a catch-up signal of the invalidation queue, for one)
 * does not start a round before its time: the worker ships when a tracked
 * table changed, or polls.
 */
void
nap_until_woken(long timeout)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout);
	for (;;) {
		nap(timeout);
		pg_call([] { CHECK_FOR_INTERRUPTS(); });
		if (ConfigReloadPending || wakeup_pending())
			return;
		timeout = static_cast<long>((until - GetCurrentTimestamp()) / 1000);
		if (timeout <= 0)
			return;
	}
}

void
reload_if_asked()
{
	pg_call([] {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	});
}

/* A supervisor's loop: a worker for each enabled target of its database. */
void
database_loop()
{
	for (;;) {
		reload_if_asked();
		std::vector<std::string> targets;
		/* (A failed listing stops nothing: the targets' workers go on.) */
		if (isolated(std::string(), [&] { targets = enabled_targets(); })) {
			pg_call([&] { prune_children(targets); });
		}
		long timeout = naptime_ms;
		for (const std::string &target : targets)
			pg_call([&] {
				BackgroundWorker w = {};
				snprintf(w.bgw_function_name, BGW_MAXLEN, "edgesync_ship_target_main");
				snprintf(w.bgw_name, BGW_MAXLEN, "edgesync shipper for target %s", target.c_str());
				snprintf(w.bgw_type, BGW_MAXLEN, "edgesync shipper");
				strlcpy(w.bgw_extra, target.c_str(), BGW_EXTRALEN);
				w.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
				start_child(target, w, "target", timeout);
			});
		nap(timeout);
	}
}

/*
 * A target's worker's loop: ships the target while it exists and is enabled,
 * skipping it until its next_retry after a failure.
 */
void
target_loop(const std::string &target)
{
	ActivityClaim claim(target);
	ShipSession session; /* the replica connection, kept from round to round */
	register_for_wakeups();
	for (;;) {
		reload_if_asked();
		bool due = false, enabled = true;
		TimestampTz next_retry = 0;
		if (isolated(std::string(), [&] { enabled = target_enabled(target, due, next_retry); }) &&
			!enabled)
			return; /* dropped or disabled */
		bool more = false, failed = !due;
		if (due) {
			/*
			 * The commits so far are decoded by this round; one that comes
			 * during it asks again (a wait of the round may reset the latch).
			 * A target backing off leaves the wake-up pending, so commits do
			 * not wake it until its next_retry.
			 */
			(void) take_wakeup();
			pg_call([] { pgstat_report_activity(STATE_RUNNING, "edgesync: shipping"); });
			bool went = isolated(target, [&] {
				ShipResult r = ship_target(target, round_batches, true, &session);
				more = r.more && !r.failed;
				failed = r.failed;
			});
			if (!went)
				session = ShipSession(); /* in whatever state the error left it */
			failed |= !went;
			pg_call([] { pgstat_report_activity(STATE_IDLE, nullptr); });
			more |= !failed && take_wakeup();
		}
		if (more)
			continue;
		report_activity(failed ? Activity::kBackingOff : Activity::kIdle);
		long timeout = naptime_ms;
		if (!due && next_retry != 0)
			timeout = std::min<long>(
				timeout, static_cast<long>((next_retry - GetCurrentTimestamp()) / 1000));
		/* (Backing off, a pending wake-up waits for next_retry: no early return.) */
		if (failed)
			nap(timeout);
		else
			nap_until_woken(timeout);
	}
}

/*
 * What every worker connected to a database sets where it starts.  It runs
 * as the bootstrap superuser: no object a user can create may be found by
 * name in anything it runs (its own queries, decoding, the re-send).  Its
 * queries also name their operators and functions with their schema; this
 * covers what they call.  PGC_S_OVERRIDE: no reload, database or role
 * setting replaces it.
 */
void
settle_in_database(const char *appname)
{
	pgstat_report_appname(appname);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* Every round that decodes a slot logs "starting logical decoding" lines at LOG. */
	SetConfigOption("log_min_messages", "warning", PGC_SUSET, PGC_S_OVERRIDE);
}

} // namespace

} // namespace edgesync::ship

void
edgesync_ship_database_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	on_shmem_exit(edgesync::ship::stop_children, 0);
	edgesync::ship::settle_in_database("edgesync shipper supervisor");
	edgesync::guarded([] { edgesync::ship::database_loop(); });
}

void
edgesync_ship_target_main(Datum arg)
{
	char target[BGW_EXTRALEN];
	strlcpy(target, MyBgworkerEntry->bgw_extra, BGW_EXTRALEN);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	edgesync::ship::settle_in_database("edgesync shipper");
	edgesync::guarded([&] { edgesync::ship::target_loop(target); });
}
