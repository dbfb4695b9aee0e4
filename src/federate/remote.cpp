/*
 * remote.cpp — edgesync's own libpq connections to a hospital server.
 *
 * See remote.hpp for what they are for.  Three rules shape this file:
 *
 *   - Nothing here is tied to the local transaction.  The only transaction
 *     callback drops connections left busy by an aborted query; it cannot
 *     fail.  (postgres_fdw's callbacks talk to the remote server at local
 *     commit, which is how a dead hospital fails a local COMMIT.)
 *   - Every network wait goes through wait_for_socket() (core/remote_wait.hpp)
 *     with a deadline, so a hospital that accepts no packets costs at most
 *     the timeout, and a cancel request is served at once.
 *   - Once a server failed, it is not tried again during the same statement:
 *     a nested loop that rescans a federated table would otherwise pay the
 *     connect timeout on every rescan.
 */
#include "federate/remote.hpp"
#include "federate/scan.hpp"

#include "core/pg_compat.hpp"
#include "core/remote_wait.hpp"

#include <climits>
#include <cstdlib>
#include <cstring>

extern "C" {
#include "access/xact.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace edgesync::federate {

namespace {

int connect_timeout_ms = 2000;
int query_timeout_ms = 30000;

/* One open connection per (server, role); a handful at most in practice. */
struct CachedConn {
	Oid serverid;
	Oid userid;
	PGconn *conn;
	/* When this server last failed: (transaction, statement start). */
	LocalTransactionId failed_lxid;
	TimestampTz failed_stmt;
	bool warned; /* the failure was reported to the user */
	bool stale;	 /* a server or user mapping changed since it connected */
};
constexpr int max_cached = 16;
CachedConn cache[max_cached];

CachedConn *
cache_entry(Oid serverid, Oid userid, bool create)
{
	CachedConn *free_slot = nullptr;
	for (auto &c : cache) {
		if (c.serverid == serverid && c.userid == userid)
			return &c;
		if (c.serverid == InvalidOid && free_slot == nullptr)
			free_slot = &c;
	}
	if (!create)
		return nullptr;
	if (free_slot == nullptr) {
		/* Full: recycle the first slot that holds no live connection. */
		for (auto &c : cache)
			if (c.conn == nullptr) {
				free_slot = &c;
				break;
			}
		if (free_slot == nullptr) {
			backend_disconnect(cache[0].conn);
			free_slot = &cache[0];
		}
	}
	*free_slot = CachedConn{serverid, userid, nullptr, InvalidLocalTransactionId, 0, false, false};
	return free_slot;
}

void
mark_skipped(CachedConn *c)
{
	c->failed_lxid = my_local_transaction_id();
	c->failed_stmt = GetCurrentStatementStartTimestamp();
	c->warned = false;
}

void
mark_failed(CachedConn *c)
{
	if (c->conn != nullptr)
		backend_disconnect(c->conn);
	c->conn = nullptr;
	c->failed_lxid = my_local_transaction_id();
	c->failed_stmt = GetCurrentStatementStartTimestamp();
	c->warned = false;
}

/* The reason libpq gives, without its trailing newline, in palloc'd memory. */
char *
reason(const char *text)
{
	char *s = pstrdup(text != nullptr && *text ? text : "unknown error");
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	return s;
}

/* Runs a SET on a new connection, whatever its outcome; false only when the
 * hospital does not answer before deadline. */
bool
run_setting(PGconn *conn, const char *sql, TimestampTz deadline)
{
	if (!PQsendQuery(conn, sql))
		return false;
	while (PQisBusy(conn))
		if (!wait_for_socket(conn, false, deadline) || !PQconsumeInput(conn))
			return false;
	for (PGresult *res; (res = PQgetResult(conn)) != nullptr;)
		PQclear(res);
	return true;
}

/*
 * Settings of a new connection that the connection options cannot give.
 *
 * DateStyle: the options ask for ISO, but a PGDATESTYLE in the cloud
 * server's environment reaches the hospital as a startup parameter and wins;
 * dates would come back in a style read wrongly here.  The hospital reports
 * the style it uses: set when it is not ISO.
 *
 * client_connection_check_interval (PostgreSQL 14 and later): the hospital
 * checks every second that this connection is still there while it runs a
 * query.  A local cancel or error drops a busy connection instead of sending
 * a cancel request (which in libpq 15 blocks, on a hospital that may be
 * dead); with the check, the hospital ends the abandoned query within about
 * a second instead of at its statement_timeout.  A hospital whose platform
 * cannot check refuses the setting, which is then ignored.
 *
 * False only when the hospital does not answer before deadline.
 */
bool
configure_session(PGconn *conn, TimestampTz deadline)
{
	const char *datestyle = PQparameterStatus(conn, "DateStyle");
	if ((datestyle == nullptr || strncmp(datestyle, "ISO", 3) != 0) &&
		!run_setting(conn, "SET datestyle = ISO", deadline))
		return false;
	if (PQserverVersion(conn) < 140000)
		return true;
	return run_setting(conn, "SET client_connection_check_interval = 1000", deadline);
}

/* Is keyword a libpq connection option a user may set (as postgres_fdw decides)? */
bool
is_libpq_option(const char *keyword)
{
	static PQconninfoOption *defaults = nullptr;
	if (defaults == nullptr) {
		defaults = PQconndefaults();
		if (defaults == nullptr)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	for (PQconninfoOption *o = defaults; o->keyword != nullptr; o++)
		if (strcmp(o->keyword, keyword) == 0)
			return strchr(o->dispchar, 'D') == nullptr &&
				   strcmp(keyword, "fallback_application_name") != 0 &&
				   strcmp(keyword, "client_encoding") != 0;
	return false;
}

/* Drops connections that an aborted query left in the middle of something. */
void
xact_callback(XactEvent event, void *)
{
	if (event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	for (auto &c : cache)
		if (c.conn != nullptr &&
			(PQstatus(c.conn) != CONNECTION_OK || PQtransactionStatus(c.conn) != PQTRANS_IDLE)) {
			backend_disconnect(c.conn);
			c.conn = nullptr;
		}
}

/*
 * A server's options or a user mapping changed (a password, a user, a host,
 * or a mapping dropped): connections made with the old ones must not be
 * reused.  Any change marks every connection, as postgres_fdw's callback
 * does for the ones it cannot match; they are closed at their next use.
 */
void
options_changed(Datum, int, uint32)
{
	for (auto &c : cache)
		c.stale = true;
}

} // namespace

void
define_settings()
{
	DefineCustomIntVariable(
		"edgesync.federate_connect_timeout",
		"How long a federated query waits to connect to the hospital before answering from the "
		"replica.",
		nullptr, &connect_timeout_ms, 2000, 1, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
		nullptr);
	DefineCustomIntVariable(
		"edgesync.federate_query_timeout",
		"How long a federated query waits for the hospital's answer before answering from the "
		"replica.",
		nullptr, &query_timeout_ms, 30000, 1, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
		nullptr);
	DefineCustomBoolVariable(
		"edgesync.federate_streaming",
		"Merges a federated scan without filter in key order, in memory that does not grow with "
		"the table.",
		"Off: every scan holds both sides in memory and merges them by hash.", &streaming, true,
		PGC_USERSET, 0, nullptr, nullptr, nullptr);
	RegisterXactCallback(xact_callback, nullptr);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, options_changed, 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, options_changed, 0);
}

bool
remote_failed_this_statement(const char *server_name)
{
	ForeignServer *server = GetForeignServerByName(server_name, true);
	if (server == nullptr)
		return false;
	for (auto &c : cache)
		if (c.serverid == server->serverid && c.failed_lxid == my_local_transaction_id() &&
			c.failed_stmt == GetCurrentStatementStartTimestamp())
			return true;
	return false;
}

void
remote_skip_this_statement(const char *server_name, Oid userid)
{
	ForeignServer *server = GetForeignServerByName(server_name, false);
	CachedConn *entry = cache_entry(server->serverid, userid, false);
	if (entry != nullptr)
		mark_skipped(entry);
}

bool
remote_should_warn(const char *server_name)
{
	ForeignServer *server = GetForeignServerByName(server_name, true);
	bool warn = true;
	for (auto &c : cache)
		if (server != nullptr && c.serverid == server->serverid &&
			c.failed_lxid == my_local_transaction_id() &&
			c.failed_stmt == GetCurrentStatementStartTimestamp()) {
			warn = warn && !c.warned;
			c.warned = true;
		}
	return warn;
}

PGconn *
remote_connect(const char *server_name, Oid userid, bool fresh, char **why)
{
	ForeignServer *server = GetForeignServerByName(server_name, false);
	/*
	 * The server is named by a table option, not used by CREATE FOREIGN
	 * TABLE, so its USAGE right is checked here, for the role whose mapping
	 * is used: a role without it must not borrow the server's mappings.
	 */
	AclResult acl = foreign_server_aclcheck(server->serverid, userid, ACL_USAGE);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_FOREIGN_SERVER, server->servername);
	UserMapping *mapping = GetUserMapping(userid, server->serverid);
	CachedConn *entry = cache_entry(server->serverid, userid, true);

	if (entry->conn != nullptr) {
		/*
		 * A hospital that restarted has closed this connection: read what is
		 * waiting on the socket (no round trip) to notice it before use.
		 */
		bool alive = !fresh && !entry->stale && PQstatus(entry->conn) == CONNECTION_OK &&
					 PQtransactionStatus(entry->conn) == PQTRANS_IDLE;
		for (int i = 0; alive && i < 2; i++)
			alive = PQconsumeInput(entry->conn) && PQstatus(entry->conn) == CONNECTION_OK;
		if (alive)
			return entry->conn;
		backend_disconnect(entry->conn);
		entry->conn = nullptr;
	}

	/* Server options, then the user mapping's, then ours. */
	List *options = list_concat(list_copy(server->options), mapping->options);
	int n = list_length(options) + 4;
	const char **keywords = static_cast<const char **>(palloc0(sizeof(char *) * n));
	const char **values = static_cast<const char **>(palloc0(sizeof(char *) * n));
	int i = 0;
	bool has_password = false;
	bool password_required = true;
	const char *user_options = nullptr;
	int timeout_ms = connect_timeout_ms; /* or the server's connect_timeout, if shorter */
	ListCell *lc;
	foreach (lc, options) {
		DefElem *d = lfirst_node(DefElem, lc);
		if (strcmp(d->defname, "password_required") == 0)
			password_required = defGetBoolean(d);
		if (!is_libpq_option(d->defname))
			continue;
		if (strcmp(d->defname, "password") == 0 && defGetString(d)[0] != '\0')
			has_password = true; /* an empty one is none, as for postgres_fdw */
		if (strcmp(d->defname, "connect_timeout") == 0) {
			/* libpq applies it only to blocking connects: we do, in ms. */
			int seconds = atoi(defGetString(d));
			if (seconds > 0 && seconds < INT_MAX / 1000)
				timeout_ms = Min(timeout_ms, seconds * 1000);
		}
		if (strcmp(d->defname, "options") == 0) {
			user_options = defGetString(d);
			continue;
		}
		keywords[i] = d->defname;
		values[i++] = defGetString(d);
	}
	/* Stable text formats for the values we parse, and a bounded statement. */
	keywords[i] = "options";
	values[i++] = psprintf("%s -c search_path=pg_catalog -c datestyle=ISO -c intervalstyle=postgres"
						   " -c extra_float_digits=3 -c statement_timeout=%d",
						   user_options ? user_options : "", query_timeout_ms);
	keywords[i] = "fallback_application_name";
	values[i++] = "edgesync_federate";
	keywords[i] = "client_encoding";
	values[i++] = GetDatabaseEncodingName();

	/* The same rule as postgres_fdw: a non-superuser's connection must use a password. */
	bool must_use_password = !superuser_arg(userid) && password_required;
	if (must_use_password && !has_password)
		ereport(ERROR, (errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
						errmsg("password is required"),
						errdetail("Non-superusers must give a password in the user mapping of "
								  "server \"%s\".",
								  server_name)));

	PGconn *conn = backend_connect_start(keywords, values, false);
	entry->stale = false;
	entry->conn = conn; /* owned by the cache from here, whatever happens */
	if (conn == nullptr || PQstatus(conn) == CONNECTION_BAD) {
		*why = reason(conn ? PQerrorMessage(conn) : "out of memory");
		mark_failed(entry);
		return nullptr;
	}
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	ConnectOutcome outcome = finish_connecting(conn, deadline);
	if (outcome != ConnectOutcome::kConnected) {
		if (outcome == ConnectOutcome::kFailed)
			*why = reason(PQerrorMessage(conn));
		else
			*why = psprintf("no connection within %d ms (edgesync.federate_connect_timeout, or "
							"the server's connect_timeout if shorter)",
							timeout_ms);
		mark_failed(entry);
		return nullptr;
	}
	entry->failed_lxid = InvalidLocalTransactionId; /* it answers again */
	if (must_use_password && !PQconnectionUsedPassword(conn)) {
		backend_disconnect(conn);
		entry->conn = nullptr;
		ereport(ERROR, (errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
						errmsg("password is required"),
						errdetail("Server \"%s\" did not ask for the password of the user "
								  "mapping.",
								  server_name),
						errhint("Non-superusers must connect with a password.")));
	}
	/* Only once the connection is known to be allowed: no query before that. */
	if (!configure_session(conn, deadline)) {
		*why = psprintf("no answer within %d ms after connecting", timeout_ms);
		mark_failed(entry);
		return nullptr;
	}
	return conn;
}

namespace {

CachedConn *
entry_of(PGconn *conn)
{
	CachedConn *entry = nullptr;
	for (auto &c : cache)
		if (c.conn == conn)
			entry = &c;
	Assert(entry != nullptr);
	return entry;
}

/*
 * Waits until libpq can hand over the next result without blocking; false
 * (and *why, after dropping the connection) if the hospital failed or did not
 * answer before deadline.
 */
bool
wait_result(PGconn *conn, TimestampTz deadline, char **why)
{
	while (PQisBusy(conn)) {
		if (!wait_for_socket(conn, false, deadline)) {
			*why = psprintf("no answer within %d ms (edgesync.federate_query_timeout)",
							query_timeout_ms);
			mark_failed(entry_of(conn));
			return false;
		}
		if (!PQconsumeInput(conn)) {
			*why = reason(PQerrorMessage(conn));
			mark_failed(entry_of(conn));
			return false;
		}
	}
	return true;
}

/*
 * The final result of a statement (consumed: the caller PQclear()s nothing
 * more).  True if it succeeded.  The hospital answered, and refused the
 * statement for a reason that is not about reaching it (class 42: a column
 * renamed or a privilege revoked there): that is a mistake to fix, not an
 * outage to ride out, and raises an error.  Any other failure drops the
 * connection and returns false with *why.
 */
bool
check_result(PGconn *conn, PGresult *result, char **why)
{
	const char *state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
	if (PQresultStatus(result) == PGRES_FATAL_ERROR && state != nullptr &&
		strncmp(state, "42", 2) == 0) {
		char *message = reason(PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY));
		int code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
		PQclear(result);
		ereport(ERROR, (errcode(code), errmsg("the hospital refused a federated query"),
						errdetail("The hospital answered: %s.", message),
						errhint("The hospital's table or its privileges changed: compare them "
								"with the replica, then call edgesync.federate() again.")));
	}
	if (result == nullptr ||
		(PQresultStatus(result) != PGRES_TUPLES_OK && PQresultStatus(result) != PGRES_COMMAND_OK)) {
		*why = reason(result ? PQresultErrorMessage(result) : PQerrorMessage(conn));
		mark_failed(entry_of(conn));
		return false;
	}
	return true;
}

} // namespace

PGresult *
remote_exec(PGconn *conn, const char *sql, int nparams, const char *const *values, char **why)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), query_timeout_ms);
	if (!PQsendQueryParams(conn, sql, nparams, nullptr, values, nullptr, nullptr, 0)) {
		*why = reason(PQerrorMessage(conn));
		mark_failed(entry_of(conn));
		return nullptr;
	}
	PGresult *result = nullptr;
	for (;;) {
		if (!wait_result(conn, deadline, why)) {
			PQclear(result);
			return nullptr;
		}
		PGresult *next = PQgetResult(conn);
		if (next == nullptr)
			break;
		if (result == nullptr)
			result = next;
		else
			PQclear(next);
	}
	if (!check_result(conn, result, why)) {
		PQclear(result);
		return nullptr;
	}
	return result;
}

bool
remote_stream(PGconn *conn, const char *sql, bool binary, void (*on_row)(const PGresult *, void *),
			  void *arg, char **why)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), query_timeout_ms);
	if (!PQsendQueryParams(conn, sql, 0, nullptr, nullptr, nullptr, nullptr, binary ? 1 : 0) ||
		!PQsetSingleRowMode(conn)) {
		*why = reason(PQerrorMessage(conn));
		mark_failed(entry_of(conn));
		return false;
	}
	/*
	 * libpq's results are malloc'd, unknown to any memory context: freed on
	 * the way out of an error (a cancel, a value on_row rejects).  The
	 * connection is then left in the middle of the answer; the transaction
	 * callback drops it.
	 */
	PGresult *volatile row = nullptr;
	PGresult *volatile last = nullptr;
	volatile bool ok = true;
	PG_TRY();
	{
		for (;;) {
			if (!wait_result(conn, deadline, why)) {
				ok = false;
				break;
			}
			row = PQgetResult(conn);
			if (row == nullptr)
				break;
			if (PQresultStatus(row) == PGRES_SINGLE_TUPLE) {
				on_row(row, arg);
				PQclear(row);
			} else {
				PQclear(last);
				last = row;
			}
			row = nullptr;
		}
	}
	PG_CATCH();
	{
		PQclear(row);
		PQclear(last);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (ok)
		ok = check_result(conn, last, why);
	PQclear(last);
	return ok;
}

} // namespace edgesync::federate
