/*
 * shared_struct.hpp — a named struct of edgesync's in shared memory, asked
 * for at preload: one place that chains the server's shmem_request_hook and
 * shmem_startup_hook for all of them (the shipper's activity table and its
 * wake-up table).
 */
#pragma once

#include "core/postgres.hpp"

namespace edgesync {

struct SharedStruct {
	const char *name; /* its ShmemIndex name */
	Size (*size)();	  /* asked at request time, and again at startup */
	/*
	 * Called at startup, under AddinShmemInitLock, with the memory (found:
	 * it existed already, as in an EXEC_BACKEND child): takes its address,
	 * and initialises it when not found.  Must not raise an error.
	 */
	void (*attach)(void *memory, bool found);
};

/* At preload (process_shared_preload_libraries_in_progress); s must outlive the server. */
void request_shared_struct(const SharedStruct *s);

} // namespace edgesync
