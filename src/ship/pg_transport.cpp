/*
 * pg_transport.cpp — applying a batch on a cloud replica with libpq.
 *
 * The batch is the sql format of its transactions without their own BEGIN;
 * and COMMIT; (batch.hpp), applied on the replica as one transaction: the
 * batch, including the statement that records the source's applied commit
 * LSN, commits as a whole or not at all.  How it is sent and its answers
 * read is replica_io.hpp's (one query string, chunks of a spilled body, or a
 * pipeline for binary runs).  start() returns once the batch is sent, and
 * the replica executes it while the shipper decodes the next batch; finish()
 * reads the results.  The batch counts as acknowledged once every result is
 * good: the replica has committed it.
 *
 * This file keeps the connection: opened and used without blocking
 * (PQconnectStartParams, nonblocking flush), waiting on its socket and the
 * process latch with a deadline (core/remote_wait.hpp), so that interrupts
 * are seen at once; it is kept for the next batch and dropped after any
 * failure.  The password is passed apart from the URL.  A target of a
 * non-superuser is checked before and after connecting (owner.hpp); a
 * refusal is an edgesync::Error (an ERROR in ship(), a recorded failure in
 * the worker), not a failed delivery.  The replica's notices are logged as
 * LOG lines of this server: the primary message only, its first kNoticeBytes
 * bytes, control characters escaped, at most kNoticesPerMinute per process
 * (ReplicaNotices); never copied raw to the server's stderr, as libpq's
 * default notice processor does.
 *
 * SIGTERM in a wait ends the process with ereport(FATAL),
 * which unwinds no C++ frame: an exit callback closes the open connection
 * (Terminate), so the replica sees a clean disconnect, not a lost client.
 */
#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "core/remote_wait.hpp"
#include "decode/replica_sql.hpp"
#include "ship/activity.hpp"
#include "ship/owner.hpp"
#include "ship/replica_check.hpp"
#include "ship/replica_io.hpp"
#include "ship/replica_notices.hpp"
#include "ship/remote_error.hpp"
#include "ship/transport.hpp"
#include "ship/url.hpp"

extern "C" {
#include "datatype/timestamp.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace edgesync::ship {

namespace {

PGconn *open_conn = nullptr; /* the process's replica connection, if any */

void
close_on_exit(int, Datum)
{
	backend_disconnect(open_conn);
	open_conn = nullptr;
}

/* Batches larger than this are sent on a connection closed afterwards. */
constexpr size_t kKeepConnectionUpTo = 64 << 20;

class PgTransport : public Transport {
  public:
	explicit PgTransport(const TargetConfig &config) : config_(config) {}
	~PgTransport() override { disconnect(); }

	/*
	 * add_target()'s and alter_target()'s check (transport.hpp): connects
	 * once, as delivery does (the owner's rules included), and asks the
	 * replica which privileges applying needs that the role lacks.
	 */
	void check_connection()
	{
		io_.restart_deadline();
		std::string error;
		if (!connect(error, false)) {
			/* libpq's words, as postgres_fdw gives them: without our own prefix. */
			const std::string prefix = "could not connect to replica: ";
			if (error.rfind(prefix, 0) == 0)
				error.erase(0, prefix.size());
			throw Error(
				connect_sqlstate_.c_str(),
				format("could not connect to the replica of target \"%s\"", config_.name.c_str()))
				.detail(redact(error, config_.secrets()))
				.hint(connection_hint(connect_sqlstate_));
		}
		std::vector<std::string> row;
		std::string schema = config_.replica_schema.empty() ? decode::replica::kDefaultSchema
															: config_.replica_schema;
		if (!query_row(missing_privileges_sql(schema).c_str(), 1, row, error))
			throw Error("08006", format("could not check the privileges on the replica of target "
										"\"%s\"",
										config_.name.c_str()))
				.detail(redact(error, config_.secrets()));
		std::vector<std::string> tables_row;
		if (!config_.replica_tables.empty() &&
			!query_row(missing_table_privileges_sql(config_.replica_tables).c_str(), 1, tables_row,
					   error))
			throw Error("08006", format("could not check the privileges on the replica of target "
										"\"%s\"",
										config_.name.c_str()))
				.detail(redact(error, config_.secrets()));
		notices_.report(config_.name);
		disconnect();
		if (!tables_row.empty())
			row[0] = merge_missing(row[0], tables_row[0]);
		if (!row[0].empty())
			throw Error("42501", format("the role of target \"%s\" lacks privileges on the replica",
										config_.name.c_str()))
				.detail(format("Missing: %s.", row[0].c_str()))
				.hint("Grant them on the replica (docs/replica.md lists what the applying role "
					  "needs), or connect as another role.");
	}

	bool start(const Body &body, const std::string &, std::string &error) override
	{
		detail_.clear();
		io_.restart_deadline();
		if (!connect_error_.empty()) { /* replica_position() tried for this batch already */
			error = std::move(connect_error_);
			connect_error_.clear();
			notices_.report(config_.name);
			return false;
		}
		if (io_.conn == nullptr && !connect(error)) {
			notices_.report(config_.name);
			return false;
		}
		sent_bytes_ = body.size();
		sent_commit_ = body.last_commit;
		const std::string *text = body.in_memory();
		bool ok = body.units		? io_.send_pipelined(body, error)
				  : text != nullptr ? io_.send(*text, error)
									: io_.send_in_chunks(body, error);
		if (!ok) {
			notices_.report(config_.name);
			disconnect();
		}
		return ok;
	}

	bool finish(std::string &error) override
	{
		if (io_.conn == nullptr) {
			error = "no batch was sent to the replica";
			return false;
		}
		/* The timeout counts from here: the time spent decoding meanwhile is ours. */
		io_.restart_deadline();
		bool ok = io_.collect_results(error);
		ok = ok && io_.end_pipeline(error);
		notices_.report(config_.name);
		/*
		 * libpq keeps its output buffer as large as the largest query string
		 * sent: after a batch of a huge transaction, a new connection gives
		 * that memory back.
		 */
		if (ok && position_known_)
			position_ = std::max(position_, sent_commit_);
		if (!ok || sent_bytes_ > kKeepConnectionUpTo)
			disconnect();
		return ok;
	}

	void pump() noexcept override { io_.pump(); }

	uint64_t replica_position(const std::vector<Row> &rows, size_t n) override
	{
		/*
		 * Asked on a new connection only: one that start() opened may have a
		 * batch in flight, and then the position is left unknown (0).
		 */
		if (io_.conn != nullptr)
			return position_known_ ? position_ : 0;
		std::string query;
		for (size_t i = std::min(n, rows.size()); i-- > 0 && query.empty();)
			if (!rows[i].spilled())
				query = guard_position_query(rows[i].data);
		if (query.empty())
			return 0;
		detail_.clear();
		io_.restart_deadline();
		std::string error, value;
		if (io_.conn == nullptr && !connect(error)) {
			connect_error_ = error.empty() ? "could not connect to replica" : error;
			return 0;
		}
		if (!io_.send(query, error) ||
			!io_.read_results([&](const PGresult *res) { value = PQgetvalue(res, 0, 0); }, error)) {
			/* (start() connects again and reports what is wrong with the batch itself.) */
			notices_.report(config_.name);
			disconnect();
			return 0;
		}
		position_ = parse_lsn(value);
		position_known_ = true;
		return position_;
	}

  private:
	void disconnect()
	{
		position_known_ = false;
		io_.forget();
		backend_disconnect(io_.conn);
		notices_.forget();
		if (open_conn == io_.conn)
			open_conn = nullptr;
		io_.conn = nullptr;
	}

	/*
	 * Why the connection failed, as libpq says it, with the SQLSTATE of the
	 * server's refusal taken out of the text (the connection is made with
	 * verbose errors for it: "FATAL:  28P01: password authentication
	 * failed ..."), into connect_sqlstate_: 28P01, 3D000, 28000, ...; 08001
	 * when no server refused (unreachable, no answer, TLS).
	 */
	std::string connection_failure()
	{
		std::string raw = io_.conn != nullptr ? PQerrorMessage(io_.conn) : "out of memory";
		connect_sqlstate_ = "08001";
		if (io_.conn != nullptr && PQconnectionNeedsPassword(io_.conn))
			connect_sqlstate_ = "28P01"; /* asked for a password, and the URL has none */
		std::string text;
		size_t start = 0;
		while (start < raw.size()) {
			size_t end = raw.find('\n', start);
			if (end == std::string::npos)
				end = raw.size();
			std::string line = raw.substr(start, end - start);
			start = end + 1;
			if (line.rfind("LOCATION:  ", 0) == 0)
				continue;
			for (const char *severity : {"FATAL:  ", "ERROR:  "}) {
				size_t at = line.find(severity);
				if (at == std::string::npos)
					continue;
				size_t code = at + strlen(severity);
				bool sqlstate =
					line.size() >= code + 7 && line.compare(code + 5, 2, ": ") == 0 &&
					std::all_of(line.begin() + static_cast<std::ptrdiff_t>(code),
								line.begin() + static_cast<std::ptrdiff_t>(code + 5),
								[](unsigned char c) { return std::isdigit(c) || std::isupper(c); });
				if (sqlstate) {
					connect_sqlstate_ = line.substr(code, 5);
					line.erase(code, 7);
				}
				break;
			}
			while (!line.empty() && (line.back() == ' ' || line.back() == '\t'))
				line.pop_back();
			if (line.empty())
				continue;
			if (!text.empty())
				text += ' ';
			size_t lead = line.find_first_not_of(" \t");
			text += line.substr(lead == std::string::npos ? 0 : lead);
		}
		return text;
	}

	/* Closes the connection, then raises a refusal. */
	[[noreturn]] void refuse(const Error &refusal)
	{
		disconnect();
		throw refusal;
	}

	/* Connects; then, unless !setup (add_target's check), runs the session's setup. */
	bool connect(std::string &error, bool setup = true)
	{
		report_activity(Activity::kConnecting);
		TargetOwner owner{config_.owner, config_.owner_superuser};
		check_owner_params(config_.name, parse_target_url(config_.url), config_.password, owner);
		if (!open_connection(error))
			return false;
		if (!owner.superuser && !check_owner_connection(error)) {
			disconnect();
			return false;
		}
		if (!setup)
			return true;
		/*
		 * The session's setup (decode/replica_sql.hpp), which the stream
		 * leaves to the connection: the position table where it is missing,
		 * and whether this role may apply in replica mode.
		 */
		std::string statement = decode::replica::setup_statement(
			config_.replica_schema.empty() ? decode::replica::kDefaultSchema
										   : config_.replica_schema);
		if (!io_.send(statement, error) || !io_.collect_results(error)) {
			constexpr std::string_view batch = "replica rejected batch: ";
			if (error.compare(0, batch.size(), batch) == 0)
				error = "replica refused the apply's setup: " + error.substr(batch.size());
			disconnect();
			return false;
		}
		return true;
	}

	/*
	 * After connecting for a target of a non-superuser (owner.hpp): the
	 * server must have asked for the password, and a connection that leads
	 * back to this very server must be as the owner itself.  This server is
	 * recognised by its postmaster's start time (microseconds) together with
	 * a backend of that pid in its process array: what a query on the far
	 * side reports, which needs no privilege there.
	 */
	bool check_owner_connection(std::string &error)
	{
		if (!PQconnectionUsedPassword(io_.conn))
			refuse(Error("2F003", "password is required")
					   .detail("Non-superuser cannot connect if the server does not request a "
							   "password.")
					   .hint(format("Target \"%s\" belongs to role \"%s\", which is not a "
									"superuser: the replica must ask for the password (as "
									"scram-sha-256 in its pg_hba.conf does), or a superuser "
									"must set the URL with edgesync.alter_target().",
									config_.name.c_str(), config_.owner.c_str())));
		std::vector<std::string> row;
		if (!query_row("SELECT pg_catalog.pg_backend_pid(),"
					   " (EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time())"
					   "  OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
					   " SESSION_USER",
					   3, row, error))
			return false;
		int pid = std::atoi(row[0].c_str());
		long long started = std::atoll(row[1].c_str());
		long long here_started =
			PgStartTime + static_cast<long long>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) *
							  SECS_PER_DAY * USECS_PER_SEC;
		bool here =
			started == here_started && pg_call([&] { return BackendPidGetProc(pid) != nullptr; });
		if (here && row[2] != config_.owner)
			refuse(Error("28000", "a target of a non-superuser cannot connect back to this server "
								  "as another role")
					   .detail(format("Target \"%s\" belongs to role \"%s\"; its URL leads "
									  "back to this server as role \"%s\".",
									  config_.name.c_str(), config_.owner.c_str(), row[2].c_str()))
					   .hint("Connect as the target's owner, or have a superuser set the URL "
							 "with edgesync.alter_target()."));
		return true;
	}

	/* Runs sql and reads its one row of ncolumns values. */
	bool query_row(const char *sql, int ncolumns, std::vector<std::string> &row, std::string &error)
	{
		if (!io_.send(sql, error))
			return false;
		bool ok = io_.read_results(
			[&](const PGresult *res) {
				if (PQnfields(res) == ncolumns && row.empty())
					for (int i = 0; i < ncolumns; i++)
						row.emplace_back(PQgetvalue(res, 0, i));
			},
			error);
		if (ok && static_cast<int>(row.size()) != ncolumns) {
			error = "replica gave no answer to a query of the shipper";
			ok = false;
		}
		return ok;
	}

	bool open_connection(std::string &error)
	{
		std::string timeout = std::to_string(std::max(1, config_.timeout_ms / 1000));
		/*
		 * Later keys win over what the URL (dbname, expanded) says: the
		 * password, and the encoding the stream and the replica's messages
		 * are in, the database's.
		 */
		const char *keys[] = {"dbname",			 "password",		"fallback_application_name",
							  "connect_timeout", "client_encoding", nullptr};
		const char *values[] = {config_.url.c_str(),
								config_.password.empty() ? nullptr : config_.password.c_str(),
								"edgesync shipper",
								timeout.c_str(),
								GetDatabaseEncodingName(),
								nullptr};
		static bool exit_callback = false;
		if (!exit_callback)
			pg_call([] { on_proc_exit(close_on_exit, 0); });
		exit_callback = true;
		io_.conn = pg_call([&] { return backend_connect_start(keys, values, 1); });
		open_conn = io_.conn;
		connect_sqlstate_ = "08001";
		if (io_.conn != nullptr) {
			PQsetNoticeReceiver(io_.conn, ReplicaNotices::receive, &notices_);
			/* The server's refusal with its SQLSTATE (connection_failure()). */
			PQsetErrorVerbosity(io_.conn, PQERRORS_VERBOSE);
		}
		if (io_.conn == nullptr || PQstatus(io_.conn) == CONNECTION_BAD) {
			error = "could not connect to replica: " + connection_failure();
			disconnect();
			return false;
		}
		ConnectOutcome outcome =
			pg_call([&] { return finish_connecting(io_.conn, io_.pg_deadline()); });
		if (outcome != ConnectOutcome::kConnected) {
			if (outcome == ConnectOutcome::kFailed)
				error = "could not connect to replica: " + connection_failure();
			else
				error = format("no answer from replica within %d ms", config_.timeout_ms);
			disconnect();
			return false;
		}
		PQsetErrorVerbosity(io_.conn, PQERRORS_DEFAULT);
		if (PQsetnonblocking(io_.conn, 1) != 0) {
			error = "could not set replica connection nonblocking: " + io_.conn_error();
			disconnect();
			return false;
		}
		return true;
	}

	ReplicaNotices notices_;
	const TargetConfig config_;	   /* a copy: the worker keeps a transport across rounds */
	uint64_t position_ = 0;		   /* the replica's recorded position for the source ... */
	bool position_known_ = false;  /* ... as asked on this connection, moved by its batches */
	uint64_t sent_commit_ = 0;	   /* the commit LSN the batch in flight records */
	std::string connect_error_;	   /* replica_position() could not connect: start() says so */
	size_t sent_bytes_ = 0;		   /* of the batch in flight */
	std::string connect_sqlstate_; /* why the last connection failed (connection_failure()) */
	ReplicaIo io_{config_.name, config_.timeout_ms, notices_, detail_};
};

} // namespace

std::unique_ptr<Transport>
make_pg_transport(const TargetConfig &config)
{
	return std::make_unique<PgTransport>(config);
}

void
check_replica_connection(const TargetConfig &config)
{
	PgTransport transport(config);
	transport.check_connection();
}

} // namespace edgesync::ship
