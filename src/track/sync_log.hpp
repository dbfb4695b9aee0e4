/*
 * sync_log.hpp — writing edgesync.sync_log.
 *
 * The AFTER ROW trigger does not insert a row per change.  It appends a small
 * entry to a per-transaction buffer; the buffer is written to the log table
 * as one tuple per batch before commit or prepare, and whenever it holds
 * kFlushAt entries.  A one-statement transaction therefore costs one log
 * tuple and no statement trigger; a transaction's changes are in the log
 * once it commits (readers see only committed changes anyway).  Entries of
 * an aborted subtransaction are dropped with it.
 */
#pragma once

namespace edgesync::track {

/* Registers the transaction callbacks and the relcache callback; from _PG_init. */
void register_sync_log_callbacks();

/*
 * Called after the commit of a transaction that changed a tracked table
 * (one of edgesync's row or truncate triggers fired in it), in the committing
 * backend; must not raise an error.  Set by the shipper at preload, to wake
 * its workers (src/ship/wakeup.hpp); nullptr: nothing is called.
 */
using TrackedCommitHook = void (*)();
extern TrackedCommitHook tracked_commit_hook;

/* The triggers: this transaction changed a tracked table (a flag, for the hook). */
void mark_tracked_change();

} // namespace edgesync::track
