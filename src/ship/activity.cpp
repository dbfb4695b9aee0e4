/*
 * activity.cpp — the shared-memory table behind target_status's state
 * (activity.hpp).
 *
 * One entry per process that may ship (MaxBackends: sessions calling ship()
 * and background workers alike), each with its own spinlock: the owner
 * writes a state and its start time, readers copy the entries of their
 * database.  Taking a free entry locks one entry at a time; no process
 * holds two.  An entry is freed when its claim ends and, whatever happened
 * before, when the process exits (on_shmem_exit).
 *
 * Plain C-style code: nothing here raises a PostgreSQL error once the memory
 * exists.
 */
#include "ship/activity.hpp"

#include "core/shared_struct.hpp"

#include <algorithm>
#include <map>

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
}

namespace edgesync::ship {

namespace {

struct Entry {
	slock_t mutex;
	int pid; /* 0: free */
	Oid database;
	char target[NAMEDATALEN];
	Activity activity;
	TimestampTz since;
};

Entry *entries = nullptr; /* MaxBackends of them, or none without preload */
int nentries = 0;
Entry *mine = nullptr;		  /* this process's entry, if it holds one */
bool release_at_exit = false; /* on_shmem_exit registered */
Size
memory_size()
{
	return mul_size(static_cast<Size>(MaxBackends), sizeof(Entry));
}

void
attach_memory(void *memory, bool found)
{
	entries = static_cast<Entry *>(memory);
	nentries = MaxBackends;
	if (!found)
		for (int i = 0; i < nentries; i++) {
			SpinLockInit(&entries[i].mutex);
			entries[i].pid = 0;
		}
}

const SharedStruct activity_table = {"edgesync shipper activity", memory_size, attach_memory};

void
release_mine()
{
	if (mine == nullptr)
		return;
	SpinLockAcquire(&mine->mutex);
	mine->pid = 0;
	SpinLockRelease(&mine->mutex);
	mine = nullptr;
}

void
release_on_exit(int, Datum)
{
	release_mine();
}

bool
is_idle(Activity a)
{
	return a == Activity::kIdle || a == Activity::kBackingOff;
}

} // namespace

const char *
activity_name(Activity activity)
{
	switch (activity) {
	case Activity::kIdle:
		return "idle";
	case Activity::kDecoding:
		return "decoding";
	case Activity::kResyncing:
		return "reading rows for resync";
	case Activity::kConnecting:
		return "connecting";
	case Activity::kSending:
		return "sending";
	case Activity::kWaiting:
		return "waiting for answer";
	case Activity::kRecording:
		return "recording";
	case Activity::kBackingOff:
		return "backing off";
	}
	return "unknown";
}

void
request_activity_memory()
{
	request_shared_struct(&activity_table);
}

ActivityClaim::ActivityClaim(const std::string &target)
{
	if (entries == nullptr)
		return;
	if (mine != nullptr && mine->database == MyDatabaseId &&
		strncmp(mine->target, target.c_str(), NAMEDATALEN) == 0)
		return; /* the worker's own target */
	/* A claim left behind (an error that skipped its end) is reused. */
	Entry *e = mine;
	for (int i = 0; e == nullptr && i < nentries; i++) {
		SpinLockAcquire(&entries[i].mutex);
		if (entries[i].pid == 0) {
			entries[i].pid = MyProcPid;
			e = &entries[i];
		}
		SpinLockRelease(&entries[i].mutex);
	}
	if (e == nullptr)
		return; /* cannot happen: one entry per process */
	TimestampTz now = GetCurrentTimestamp();
	SpinLockAcquire(&e->mutex);
	e->pid = MyProcPid;
	e->database = MyDatabaseId;
	strlcpy(e->target, target.c_str(), NAMEDATALEN);
	e->activity = Activity::kIdle;
	e->since = now;
	SpinLockRelease(&e->mutex);
	mine = e;
	owner_ = true;
	if (!release_at_exit)
		on_shmem_exit(release_on_exit, 0);
	release_at_exit = true;
}

ActivityClaim::~ActivityClaim()
{
	if (owner_)
		release_mine();
}

void
report_activity(Activity activity)
{
	if (mine == nullptr)
		return;
	TimestampTz now = GetCurrentTimestamp();
	SpinLockAcquire(&mine->mutex);
	if (mine->activity != activity) {
		mine->activity = activity;
		mine->since = now;
	}
	SpinLockRelease(&mine->mutex);
}

std::vector<ActivityRow>
activities_of_database(Oid database)
{
	std::map<std::string, ActivityRow> by_target;
	for (int i = 0; i < nentries; i++) {
		Entry copy;
		SpinLockAcquire(&entries[i].mutex);
		copy.pid = entries[i].pid;
		copy.database = entries[i].database;
		memcpy(copy.target, entries[i].target, NAMEDATALEN);
		copy.activity = entries[i].activity;
		copy.since = entries[i].since;
		SpinLockRelease(&entries[i].mutex);
		if (copy.pid == 0 || copy.database != database)
			continue;
		copy.target[NAMEDATALEN - 1] = '\0';
		ActivityRow row{copy.target, copy.activity, copy.since, copy.pid};
		auto [it, added] = by_target.emplace(row.target, row);
		if (added)
			continue;
		bool busier = is_idle(it->second.activity) && !is_idle(row.activity);
		bool same = is_idle(it->second.activity) == is_idle(row.activity);
		if (busier || (same && row.since > it->second.since))
			it->second = row;
	}
	std::vector<ActivityRow> out;
	for (auto &[name, row] : by_target)
		out.push_back(row);
	return out;
}

} // namespace edgesync::ship
