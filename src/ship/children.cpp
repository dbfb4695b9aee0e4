/*
 * children.cpp — the workers a launcher or a supervisor started (worker.hpp):
 * started again when they end, at most once every kWorkerRestartSeconds,
 * and stopped with the process that started them, so that the one that
 * replaces it after a crash does not start them twice.
 */
#include "ship/worker.hpp"

#include <algorithm>
#include <map>

extern "C" {
#include "utils/timestamp.h"
}

namespace edgesync::ship {

namespace {

constexpr int kWorkerRestartSeconds = 5;

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

} // namespace

void
stop_children(int, Datum)
{
	for (auto &[name, child] : children)
		if (child.handle != nullptr)
			TerminateBackgroundWorker(child.handle);
}

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

bool
child_running(const std::string &name)
{
	auto it = children.find(name);
	return it != children.end() && it->second.handle != nullptr;
}

} // namespace edgesync::ship
