/*
 * remote.hpp — edgesync's own libpq connections to a hospital server.
 *
 * A federated scan reads the hospital through a connection that belongs to
 * edgesync, not to postgres_fdw: it runs each statement in autocommit, so no
 * state of it is tied to the local transaction.  When the hospital dies, the
 * connection is dropped and the local transaction goes on
 * (docs/federation.md, "Why not postgres_fdw alone").
 *
 * Connection parameters come from a postgres_fdw server and the user
 * mapping of the role the scan runs as (a view's owner), so a DBA sets the
 * hospital up once, the postgres_fdw way.  Every wait is bounded
 * (edgesync.federate_connect_timeout, edgesync.federate_query_timeout) and
 * interruptible.
 *
 * The functions below are C-style: they own no C++ objects, so PostgreSQL
 * errors (configuration mistakes, interrupts) may longjmp through them.  A
 * hospital that cannot be reached is not an error: they return nullptr and a
 * palloc'd reason in *why.
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "libpq-fe.h"
}

namespace edgesync::federate {

/* GUCs, defined by _PG_init. */
void define_settings();

/*
 * A connection to the postgres_fdw server server_name for role userid, reused
 * when one is open and idle; nullptr (and *why) when the hospital cannot be
 * reached.  Missing server or user mapping, and a non-superuser mapping
 * without a password, are errors.  fresh: never reuse a cached connection.
 */
PGconn *remote_connect(const char *server_name, Oid userid, bool fresh, char **why);

/*
 * Runs sql with text parameters; returns the PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK result (the caller PQclear()s it), or nullptr and *why,
 * after dropping the connection, if the hospital failed or timed out.
 */
PGresult *remote_exec(PGconn *conn, const char *sql, int nparams, const char *const *values,
					  char **why);

/*
 * Runs sql (no parameters) and hands its rows to on_row one at a time, as
 * they arrive (libpq's single-row mode), so that a large answer never sits
 * whole in libpq's memory; binary: in the types' binary formats.  True once
 * the whole answer arrived; false and *why, after dropping the connection,
 * if the hospital failed or timed out at any point: the caller then
 * discards the rows it was given.  on_row may raise an error.
 */
bool remote_stream(PGconn *conn, const char *sql, bool binary,
				   void (*on_row)(const PGresult *row, void *arg), void *arg, char **why);

/* Has server_name already failed during the current statement? */
bool remote_failed_this_statement(const char *server_name);

/*
 * The hospital answered, but its answer cannot be used (row level security
 * hid rows from the mapped role): the rest of the statement treats
 * server_name as failed, without closing the connection.
 */
void remote_skip_this_statement(const char *server_name, Oid userid);

/*
 * Should the failure of server_name be reported now?  True once per
 * statement, so that a nested loop over a dead hospital warns once.
 */
bool remote_should_warn(const char *server_name);

} // namespace edgesync::federate
