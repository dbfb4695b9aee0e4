/*
 * sync_log.hpp — writing edgesync.sync_log.
 *
 * The AFTER ROW trigger does not insert a row per change.  It appends a small
 * entry to a per-transaction buffer; the buffer is written to the log table
 * as one tuple per batch at the end of each statement (the AFTER STATEMENT
 * trigger), when it holds kFlushAt entries, and before commit or prepare (for
 * statements that fire no statement trigger, e.g. DML aimed at a partition
 * directly).  Entries of an aborted subtransaction are dropped with it.
 */
#pragma once

namespace edgesync::track {

/* Registers the transaction callbacks and the relcache callback; from _PG_init. */
void register_sync_log_callbacks();

} // namespace edgesync::track
