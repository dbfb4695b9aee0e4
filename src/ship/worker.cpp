/*
 * worker.cpp — the shipper's background workers and settings.
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
#include "ship/batch.hpp"
#include "ship/shipper.hpp"
#include "ship/wakeup.hpp"
#include "track/sync_log.hpp"

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
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

PGDLLEXPORT void edgesync_ship_launcher_main(Datum arg);
PGDLLEXPORT void edgesync_ship_database_main(Datum arg);
PGDLLEXPORT void edgesync_ship_target_main(Datum arg);
}

namespace edgesync::ship {

int retry_min_ms = 1000;
int retry_max_ms = 60000;
int transaction_memory_kb = 16 * 1024;
bool binary_runs = true;

namespace {

char *ship_databases = nullptr;
bool preloaded = false; /* this library was loaded by shared_preload_libraries */
int naptime_ms = 200;
int round_batches = 50;

constexpr int kWorkerRestartSeconds = 5;

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

/*
 * The workers a launcher or a supervisor started, by what each serves
 * (a database's name, a target's name).  Global, for the exit callback.
 */
struct Child {
	BackgroundWorkerHandle *handle = nullptr;
	TimestampTz started = 0;   /* its last start */
	bool start_failed = false; /* reported, until a start succeeds */
};
std::map<std::string, Child> children;

/* At exit: the workers this one started go too (see the top of this file). */
void
stop_children(int, Datum)
{
	for (auto &[name, child] : children)
		if (child.handle != nullptr)
			TerminateBackgroundWorker(child.handle);
}

/* Forgets the children that ended, and stops those no longer wanted. */
void
prune_children(const std::vector<std::string> &wanted)
{
	for (auto it = children.begin(); it != children.end();) {
		Child &child = it->second;
		bool keep = std::find(wanted.begin(), wanted.end(), it->first) != wanted.end();
		if (child.handle != nullptr) {
			pid_t pid;
			BgwHandleStatus status = GetBackgroundWorkerPid(child.handle, &pid);
			if (!keep)
				TerminateBackgroundWorker(child.handle);
			if (!keep || status == BGWH_STOPPED) {
				pfree(child.handle);
				child.handle = nullptr;
			}
		}
		if (!keep)
			it = children.erase(it);
		else
			++it;
	}
}

/*
 * Starts the worker for name unless it runs, or ended less than
 * kWorkerRestartSeconds after its last start (then lowers timeout to when it
 * may start again).  what names it in a warning when no worker can be
 * started (max_worker_processes), given once until a start succeeds.
 */
void
start_child(const std::string &name, BackgroundWorker &w, const char *what, long &timeout)
{
	Child &child = children[name];
	if (child.handle != nullptr)
		return;
	TimestampTz now = GetCurrentTimestamp();
	if (child.started != 0) {
		TimestampTz allowed =
			TimestampTzPlusMilliseconds(child.started, kWorkerRestartSeconds * 1000);
		if (now < allowed) {
			timeout = std::min(timeout, TimestampDifferenceMilliseconds(now, allowed) + 1);
			return;
		}
	}
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART; /* the parent does (see above) */
	snprintf(w.bgw_library_name, BGW_MAXLEN, "edgesync");
	w.bgw_notify_pid = MyProcPid;
	child.started = now;
	if (RegisterDynamicBackgroundWorker(&w, &child.handle)) {
		child.start_failed = false;
		return;
	}
	child.handle = nullptr;
	if (!child.start_failed)
		ereport(WARNING,
				(errmsg("could not start the edgesync shipper for %s \"%s\"", what, name.c_str()),
				 errdetail("All background worker slots are in use; it is tried again every %d "
						   "seconds.",
						   kWorkerRestartSeconds),
				 errhint("Raise max_worker_processes (one worker per shipped database and one "
						 "per enabled target, docs/shipping.md).")));
	child.start_failed = true;
	timeout = std::min(timeout, static_cast<long>(kWorkerRestartSeconds) * 1000);
}

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
			if (children.count(db) && children[db].handle != nullptr)
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
