/*
 * worker.hpp — the shipper's settings and background workers (worker.cpp).
 */
#pragma once

namespace edgesync::ship {

/* Defines the edgesync.ship_* settings; at preload, registers the launcher. */
void init();

/*
 * Why no background worker ships this database's enabled targets, as
 * target_status shows it in place of a worker's state: "no worker (not
 * preloaded)" when edgesync is not in shared_preload_libraries, "no worker
 * (database not in edgesync.ship_databases)"; nullptr when the database is
 * shipped (a target without a worker then is "no worker": starting, or no
 * worker slot free, which the server log says).
 */
const char *unserved_reason();

} // namespace edgesync::ship
