/*
 * wakeup.cpp — the table of workers to wake at commit (wakeup.hpp).
 *
 * One entry per background worker slot (max_worker_processes): a worker
 * takes a free one by compare-and-swap of its database from 0 and gives it
 * back at exit.  A committing backend reads the entries without a lock: an
 * entry's database is read atomically, and its latch is a PGPROC's, in
 * shared memory for the server's life, so setting the latch of a worker
 * that has just exited wakes nobody or a later process spuriously, which is
 * harmless (a worker that wakes with nothing to do naps again).
 *
 * Plain C-style code: nothing here raises an error once the memory exists.
 */
#include "ship/wakeup.hpp"

#include "core/shared_struct.hpp"

extern "C" {
#include "miscadmin.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
}

namespace edgesync::ship {

bool wakeup_enabled = true;

namespace {

struct Waiter {
	pg_atomic_uint32 database; /* 0: free */
	pg_atomic_uint32 pending;  /* a commit asked for this worker since it last looked */
	Latch *latch;
};

Waiter *waiters = nullptr; /* nwaiters of them, or none without preload */
int nwaiters = 0;
Waiter *mine = nullptr;
Size
memory_size()
{
	return mul_size(static_cast<Size>(max_worker_processes), sizeof(Waiter));
}

void
attach_memory(void *memory, bool found)
{
	waiters = static_cast<Waiter *>(memory);
	nwaiters = max_worker_processes;
	if (!found)
		for (int i = 0; i < nwaiters; i++) {
			pg_atomic_init_u32(&waiters[i].database, 0);
			pg_atomic_init_u32(&waiters[i].pending, 0);
			waiters[i].latch = nullptr;
		}
}

const SharedStruct wakeup_table = {"edgesync shipper wake-ups", memory_size, attach_memory};

void
unregister(int, Datum)
{
	if (mine == nullptr)
		return;
	mine->latch = nullptr;
	pg_write_barrier();
	pg_atomic_write_u32(&mine->database, 0);
	mine = nullptr;
}

} // namespace

void
request_wakeup_memory()
{
	request_shared_struct(&wakeup_table);
}

void
register_for_wakeups()
{
	if (waiters == nullptr || mine != nullptr)
		return;
	for (int i = 0; i < nwaiters; i++) {
		uint32 free = 0;
		/* Claimed with a database no commit can have yet, then published whole. */
		if (!pg_atomic_compare_exchange_u32(&waiters[i].database, &free, InvalidOid - 1))
			continue;
		waiters[i].latch = MyLatch;
		pg_atomic_write_u32(&waiters[i].pending, 1); /* look once at start */
		pg_write_barrier();
		pg_atomic_write_u32(&waiters[i].database, MyDatabaseId);
		mine = &waiters[i];
		on_shmem_exit(unregister, 0);
		return;
	}
	/* Cannot happen (one entry per worker slot): the worker polls. */
}

bool
take_wakeup()
{
	return mine != nullptr && pg_atomic_exchange_u32(&mine->pending, 0) != 0;
}

bool
wakeup_pending()
{
	return mine != nullptr && pg_atomic_read_u32(&mine->pending) != 0;
}

void
wake_shippers()
{
	if (!wakeup_enabled)
		return;
	for (int i = 0; i < nwaiters; i++) {
		Waiter *w = &waiters[i];
		if (pg_atomic_read_u32(&w->database) != MyDatabaseId)
			continue;
		/* Once until the worker takes it: later commits find it pending. */
		if (pg_atomic_read_u32(&w->pending) != 0 || pg_atomic_exchange_u32(&w->pending, 1) != 0)
			continue;
		pg_read_barrier();
		Latch *latch = w->latch;
		if (latch != nullptr)
			SetLatch(latch);
	}
}

} // namespace edgesync::ship
