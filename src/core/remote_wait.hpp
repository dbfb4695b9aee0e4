/*
 * remote_wait.hpp — waiting on a backend's own libpq connection, with a
 * deadline, the one way edgesync does it.
 *
 * The shipper (src/ship/pg_transport.cpp) and the federated scan
 * (src/federate/remote.cpp) both talk to another server from inside a
 * PostgreSQL process.  Every wait on that server's socket goes through here:
 * WaitLatchOrSocket with a deadline, so a server that accepts no packets
 * costs at most the timeout; the latch serves interrupts at once (a cancel
 * or a SIGTERM raises its error from here), and postmaster death ends the
 * process.
 *
 * Plain PostgreSQL code: it may raise the interrupt's error.  Call it from
 * frames without destructors, or through pg_call().
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "datatype/timestamp.h"
}

struct pg_conn;
typedef struct pg_conn PGconn;

namespace edgesync {

/* Waits until conn's socket is readable (or writable); false once deadline passed. */
bool wait_for_socket(PGconn *conn, bool for_write, TimestampTz deadline);

enum class ConnectOutcome { kConnected, kFailed, kTimedOut };

/*
 * Drives a connection begun with backend_connect_start() until it is made,
 * fails (PQerrorMessage says why), or the deadline passes.
 */
ConnectOutcome finish_connecting(PGconn *conn, TimestampTz deadline);

} // namespace edgesync
