/*
 * wakeup.hpp — waking a target's worker at the commit of a transaction that
 * changed tracked tables, instead of letting it find the change by polling.
 *
 * Each target's background worker registers its latch and its database in a
 * small table in shared memory (one entry per background worker slot).  A
 * backend whose transaction changed a tracked table (the track piece calls
 * back after the commit, track/sync_log.hpp) sets the latch of every worker
 * of its database, once per worker until that worker takes the wake-up: a
 * commit costs a look at the table and, for the first commit a worker has
 * not seen yet, one SetLatch.  The worker takes the wake-up before it
 * decodes, so a commit during a round is seen by the next one even when a
 * network wait of the round consumed the latch.  Without preload there is
 * no table and no worker: nothing happens.
 */
#pragma once

#include "core/postgres.hpp"

namespace edgesync::ship {

/* edgesync.ship_wakeup (worker.cpp defines it): off, workers find changes by polling only. */
extern bool wakeup_enabled;

/* At preload: asks for the shared memory and sets it up at startup. */
void request_wakeup_memory();

/* A target's worker: registers for the wake-ups of its database until the process exits. */
void register_for_wakeups();

/* A registered worker: whether a commit asked for it since the last call (and forgets it). */
bool take_wakeup();

/* A registered worker: whether a commit asked for it since take_wakeup() (and remembers it). */
bool wakeup_pending();

/* After the commit of a transaction that changed tracked tables: wakes its database's workers. */
void wake_shippers();

} // namespace edgesync::ship
