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

} // namespace edgesync::track
