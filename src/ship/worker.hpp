/*
 * worker.hpp — the shipper's settings and background workers.
 *
 *   settings.cpp   the edgesync.ship_* settings, init(), unserved_reason()
 *   launcher.cpp   the launcher: a supervisor per database to ship
 *   worker.cpp     the supervisor of a database, and a target's worker
 *   children.cpp   the workers a launcher or a supervisor started
 *
 * worker.cpp's header comment tells how they fit together.
 */
#pragma once

#include "core/postgres.hpp"

#include <string>
#include <vector>

extern "C" {
#include "postmaster/bgworker.h"
}

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

/* settings.cpp: settings the workers read (with shipper.hpp's). */
extern char *ship_databases;
extern bool preloaded; /* this library was loaded by shared_preload_libraries */
extern int naptime_ms;
extern int round_batches;

/* The databases named in edgesync.ship_databases (a comma list). */
std::vector<std::string> configured_databases();

/*
 * children.cpp: the workers a launcher or a supervisor started, by what
 * each serves (a database's name, a target's name).
 */

/* At exit (on_shmem_exit): the workers this one started go too. */
void stop_children(int, Datum);
/* Forgets the children that ended, and stops those no longer wanted. */
void prune_children(const std::vector<std::string> &wanted);
/*
 * Starts the worker for name unless it runs, or ended less than a few
 * seconds after its last start (then lowers timeout to when it may start
 * again).  what names it in a warning when no worker can be started
 * (max_worker_processes), given once until a start succeeds.
 */
void start_child(const std::string &name, BackgroundWorker &w, const char *what, long &timeout);
/* Whether the worker for name runs (as far as this process knows). */
bool child_running(const std::string &name);

} // namespace edgesync::ship
