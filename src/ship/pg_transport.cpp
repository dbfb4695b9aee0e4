/*
 * pg_transport.cpp — applying a batch on a cloud replica with libpq.
 *
 * The batch is the sql format of its transactions without their own BEGIN;
 * and COMMIT; (batch.hpp), sent as one simple query: PostgreSQL runs a
 * multi-statement query string as one transaction, so the batch, including
 * each transaction's statement that records the source's applied commit LSN,
 * commits on the replica as a whole or not at all.  A batch with a spilled
 * transaction in it goes as several query strings within BEGIN and COMMIT
 * (send_in_chunks), with the same effect.  start() returns once the
 * query string is sent, and the replica executes it while the shipper decodes
 * the next batch; finish() reads the results.  The batch counts as
 * acknowledged once every result is good and the query string is done: the
 * replica has committed it.
 *
 * The connection is opened and used without blocking (PQconnectStartParams,
 * PQsendQuery, nonblocking flush), waiting on its socket and the process
 * latch with a deadline (core/remote_wait.hpp), so that interrupts are seen
 * at once; it is kept for the next batch and dropped after any failure.  The password is passed
 * apart from the URL.  A target of a non-superuser is checked before and after connecting
 * (owner.hpp); a refusal is an edgesync::Error (an ERROR in ship(), a recorded failure in the
 * worker), not a failed delivery.
 *
 * What the replica sends back is bounded: results are read in single-row
 * mode, one row at a time, and a statement answered with more than
 * kMaxResultRows rows or kMaxResultBytes bytes (or with COPY) fails the batch
 * and closes the connection, so the replica rolls it back and stops sending.
 * libpq still holds one whole protocol message (a row, a notice, an error) in
 * its input buffer, up to 1 GB from a PostgreSQL server.  Its notices are
 * logged as LOG lines of this server: the primary message only, its first
 * kNoticeBytes bytes, control characters escaped, at most kNoticesPerMinute
 * per process (ReplicaNotices); never copied raw to the server's stderr, as
 * libpq's default notice processor does.
 *
 * SIGTERM in a wait ends the process with ereport(FATAL),
 * which unwinds no C++ frame: an exit callback closes the open connection
 * (Terminate), so the replica sees a clean disconnect, not a lost client.
 */
#include "core/guard.hpp"
#include "core/pg_compat.hpp"
#include "core/remote_wait.hpp"
#include "core/statement_unit.hpp"
#include "decode/replica_sql.hpp"
#include "ship/activity.hpp"
#include "ship/owner.hpp"
#include "ship/replica_check.hpp"
#include "ship/replica_notices.hpp"
#include "ship/remote_error.hpp"
#include "ship/transport.hpp"
#include "ship/url.hpp"

#include <chrono>
#include <functional>

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

using Clock = std::chrono::steady_clock;

PGconn *open_conn = nullptr; /* the process's replica connection, if any */

void
close_on_exit(int, Datum)
{
	backend_disconnect(open_conn);
	open_conn = nullptr;
}

/* The most a statement of a batch may answer with: rows, and bytes of their values. */
constexpr long kMaxResultRows = 1000;
constexpr size_t kMaxResultBytes = 1 << 20;

/* The most of a replica's error kept: for target_status, and for target_state. */
constexpr size_t kErrorBytes = 512;
constexpr size_t kErrorDetailBytes = 8192;

/* Batches larger than this are sent on a connection closed afterwards. */
constexpr size_t kKeepConnectionUpTo = 64 << 20;
/* The size of the query strings a body with spilled pieces is sent in. */
constexpr size_t kChunkBytes = 4 << 20;
/* ... filled from the spill file this much at a time. */
constexpr size_t kReadBytes = 1 << 20;

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
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
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
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
		if (!connect_error_.empty()) { /* replica_position() tried for this batch already */
			error = std::move(connect_error_);
			connect_error_.clear();
			notices_.report(config_.name);
			return false;
		}
		if (conn_ == nullptr && !connect(error)) {
			notices_.report(config_.name);
			return false;
		}
		sent_bytes_ = body.size();
		sent_commit_ = body.last_commit;
		const std::string *text = body.in_memory();
		bool ok = body.units		? send_pipelined(body, error)
				  : text != nullptr ? send(*text, error)
									: send_in_chunks(body, error);
		if (!ok) {
			notices_.report(config_.name);
			disconnect();
		}
		return ok;
	}

	bool finish(std::string &error) override
	{
		if (conn_ == nullptr) {
			error = "no batch was sent to the replica";
			return false;
		}
		/* The timeout counts from here: the time spent decoding meanwhile is ours. */
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
		bool ok = collect_results(error);
		if (ok && pipelined_ && !PQexitPipelineMode(conn_)) {
			error = "could not end the pipeline of a batch: " + conn_error();
			ok = false;
		}
		pipelined_ = ok ? false : pipelined_;
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

	uint64_t replica_position(const std::vector<Row> &rows, size_t n) override
	{
		/*
		 * Asked on a new connection only: one that start() opened may have a
		 * batch in flight, and then the position is left unknown (0).
		 */
		if (conn_ != nullptr)
			return position_known_ ? position_ : 0;
		std::string query;
		for (size_t i = std::min(n, rows.size()); i-- > 0 && query.empty();)
			if (!rows[i].spilled())
				query = guard_position_query(rows[i].data);
		if (query.empty())
			return 0;
		detail_.clear();
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
		std::string error, value;
		if (conn_ == nullptr && !connect(error)) {
			connect_error_ = error.empty() ? "could not connect to replica" : error;
			return 0;
		}
		if (!send(query, error) ||
			!read_results([&](const PGresult *res) { value = PQgetvalue(res, 0, 0); }, error)) {
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
		pipelined_ = false;
		backend_disconnect(conn_);
		notices_.forget();
		if (open_conn == conn_)
			open_conn = nullptr;
		conn_ = nullptr;
	}

	std::string conn_error()
	{
		std::string text = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
		while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
			text.pop_back();
		for (char &c : text)
			if (c == '\n')
				c = ' ';
		return text;
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
		std::string raw = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
		connect_sqlstate_ = "08001";
		if (conn_ != nullptr && PQconnectionNeedsPassword(conn_))
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

	/*
	 * Waits until the socket is ready for what is asked, the deadline, or an
	 * interrupt (raised from here, as an exception).
	 */
	bool wait_socket(bool for_read, std::string &error)
	{
		if (!pg_call([&] { return wait_for_socket(conn_, !for_read, pg_deadline()); })) {
			error = format("no answer from replica within %d ms", config_.timeout_ms);
			return false;
		}
		return true;
	}

	/* deadline_ as the server's clock reads it. */
	TimestampTz pg_deadline() const
	{
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
		return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), std::max<long>(0, left.count()));
	}

	/* Closes the connection, then raises a refusal. */
	[[noreturn]] void refuse(const Error &refusal)
	{
		disconnect();
		throw refusal;
	}

	/* Rows of the statement being read, and their bytes (read_results()). */
	struct Answer {
		long rows = 0;
		size_t bytes = 0;
	};

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
		if (!send(statement, error) || !collect_results(error)) {
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
		if (!PQconnectionUsedPassword(conn_))
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
		if (!send(sql, error))
			return false;
		bool ok = read_results(
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
		conn_ = pg_call([&] { return backend_connect_start(keys, values, 1); });
		open_conn = conn_;
		connect_sqlstate_ = "08001";
		if (conn_ != nullptr) {
			PQsetNoticeReceiver(conn_, ReplicaNotices::receive, &notices_);
			/* The server's refusal with its SQLSTATE (connection_failure()). */
			PQsetErrorVerbosity(conn_, PQERRORS_VERBOSE);
		}
		if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
			error = "could not connect to replica: " + connection_failure();
			disconnect();
			return false;
		}
		ConnectOutcome outcome = pg_call([&] { return finish_connecting(conn_, pg_deadline()); });
		if (outcome != ConnectOutcome::kConnected) {
			if (outcome == ConnectOutcome::kFailed)
				error = "could not connect to replica: " + connection_failure();
			else
				error = format("no answer from replica within %d ms", config_.timeout_ms);
			disconnect();
			return false;
		}
		PQsetErrorVerbosity(conn_, PQERRORS_DEFAULT);
		if (PQsetnonblocking(conn_, 1) != 0) {
			error = "could not set replica connection nonblocking: " + conn_error();
			disconnect();
			return false;
		}
		return true;
	}

	/* Sends the batch as one query string: the replica runs it while we go on. */
	bool send(const std::string &body, std::string &error)
	{
		report_activity(Activity::kSending);
		if (!PQsendQuery(conn_, body.c_str())) {
			error = "could not send batch to replica: " + conn_error();
			return false;
		}
		/* Rows one at a time (read_results()), never a whole answer at once. */
		if (!PQsetSingleRowMode(conn_)) {
			error = "could not read the replica's answers row by row";
			return false;
		}
		for (;;) {
			int rc = PQflush(conn_);
			if (rc == 0)
				break;
			if (rc < 0) {
				error = "could not send batch to replica: " + conn_error();
				return false;
			}
			if (!wait_socket(false, error))
				return false;
			if (!PQconsumeInput(conn_)) {
				error = "lost connection to replica: " + conn_error();
				return false;
			}
		}
		return true;
	}

	/*
	 * A body with spilled pieces is sent as several query strings in one
	 * explicit transaction, each about kChunkBytes: every one but the last is
	 * sent and its results read here; the last, which ends with COMMIT, is
	 * left for finish() as a whole batch is.  A chunk ends at a line end, and
	 * the sql format writes one statement per line, so no statement is cut.
	 */
	bool send_in_chunks(const Body &body, std::string &error)
	{
		std::string chunk = "BEGIN;\n";
		auto send_whole_lines = [&]() -> bool {
			size_t end = chunk.rfind('\n');
			if (chunk.size() < kChunkBytes || end == std::string::npos)
				return true;
			std::string rest = chunk.substr(end + 1);
			chunk.resize(end + 1);
			deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
			bool ok = send(chunk, error) && collect_results(error);
			chunk = std::move(rest);
			return ok;
		};
		for (const BodyPiece &piece : body.pieces) {
			if (piece.spill_bytes == 0) {
				chunk += piece.text;
				if (!send_whole_lines())
					return false;
				continue;
			}
			for (uint64_t done = 0; done < piece.spill_bytes;) {
				size_t n =
					static_cast<size_t>(std::min<uint64_t>(kReadBytes, piece.spill_bytes - done));
				size_t at = chunk.size();
				chunk.resize(at + n);
				body.spill->read(piece.spill_offset + done, chunk.data() + at, n);
				done += n;
				if (!send_whole_lines())
					return false;
			}
		}
		chunk += "COMMIT;\n";
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
		return send(chunk, error);
	}

	/*
	 * A body with units (core/statement_unit.hpp) is sent in the extended
	 * protocol, in one pipeline: BEGIN, each row as a statement of its own
	 * (the sql format writes one statement per line), a unit with its arrays
	 * as binary parameters, COMMIT, then a sync; finish() reads the results
	 * up to it.  As in send_in_chunks, a large body is synced and its results
	 * read every kChunkBytes, inside its transaction, so that neither side
	 * buffers a whole spilled transaction's statements or answers.
	 */
	bool send_pipelined(const Body &body, std::string &error)
	{
		if (!PQenterPipelineMode(conn_)) {
			error = "could not send batch to replica: " + conn_error();
			return false;
		}
		pipelined_ = true;
		size_t unsynced = 0;
		auto queue_row = [&](std::string_view row) -> bool {
			unit::Unit u;
			bool ok;
			if (!row.empty() && row[0] == unit::kMarker) {
				if (!unit::parse(row, u)) {
					error = "the shipper read back a malformed statement of its own";
					return false;
				}
				std::vector<const char *> values;
				std::vector<int> lengths, formats;
				for (std::string_view p : u.params) {
					values.push_back(p.data());
					lengths.push_back(static_cast<int>(p.size()));
					formats.push_back(1);
				}
				/* (u.statement ends with the unit's 0x00.) */
				ok = PQsendQueryParams(conn_, u.statement.data(), static_cast<int>(values.size()),
									   nullptr, values.data(), lengths.data(), formats.data(), 0);
			} else {
				std::string statement(row);
				ok = PQsendQueryParams(conn_, statement.c_str(), 0, nullptr, nullptr, nullptr,
									   nullptr, 0);
			}
			if (!ok) {
				error = "could not send batch to replica: " + conn_error();
				return false;
			}
			unsynced += row.size();
			if (!flush(error))
				return false;
			if (unsynced < kChunkBytes)
				return true;
			unsynced = 0;
			deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
			return sync(error) && collect_results(error);
		};
		/* Queues the whole rows at the start of bytes; returns how many bytes they took. */
		auto queue_rows = [&](std::string_view bytes, size_t &used) -> bool {
			used = 0;
			for (;;) {
				size_t len = unit::row_length(bytes.substr(used));
				if (len == unit::kIncomplete)
					return true;
				if (len > 0 && !queue_row(bytes.substr(used, len)))
					return false;
				used += len + 1;
			}
		};
		report_activity(Activity::kSending);
		size_t used;
		if (!queue_row("BEGIN"))
			return false;
		std::string pending; /* a spilled piece's bytes read but not yet queued */
		for (const BodyPiece &piece : body.pieces) {
			if (piece.spill_bytes == 0) {
				if (!queue_rows(piece.text, used))
					return false;
				if (used != piece.text.size()) {
					error = "the shipper read back a malformed batch of its own";
					return false;
				}
				continue;
			}
			for (uint64_t done = 0; done < piece.spill_bytes;) {
				size_t n =
					static_cast<size_t>(std::min<uint64_t>(kReadBytes, piece.spill_bytes - done));
				size_t at = pending.size();
				pending.resize(at + n);
				body.spill->read(piece.spill_offset + done, pending.data() + at, n);
				done += n;
				if (!queue_rows(pending, used))
					return false;
				pending.erase(0, used);
			}
			if (!pending.empty()) {
				error = "the shipper read back a malformed batch of its own";
				return false;
			}
		}
		deadline_ = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
		return queue_row("COMMIT") && sync(error);
	}

	/* Ends the pipeline's current stretch with a sync, and sends it. */
	bool sync(std::string &error)
	{
		if (!PQpipelineSync(conn_)) {
			error = "could not send batch to replica: " + conn_error();
			return false;
		}
		return flush(error);
	}

	/* Sends what libpq holds, reading what arrives meanwhile. */
	bool flush(std::string &error)
	{
		for (;;) {
			int rc = PQflush(conn_);
			if (rc == 0)
				return true;
			if (rc < 0) {
				error = "could not send batch to replica: " + conn_error();
				return false;
			}
			if (!wait_socket(false, error))
				return false;
			if (!PQconsumeInput(conn_)) {
				error = "lost connection to replica: " + conn_error();
				return false;
			}
		}
	}

	/* Reads every result of the query string: all good means the replica committed it. */
	bool collect_results(std::string &error) { return read_results(nullptr, error); }

	/*
	 * Reads the results of the query string sent, row by row (single-row
	 * mode), passing each row to on_row if given.  A statement answered with
	 * more than kMaxResultRows rows or kMaxResultBytes bytes, or with COPY,
	 * fails at once: the caller closes the connection, which rolls the
	 * replica's transaction back and stops it sending.  Otherwise false,
	 * with the first error, when any statement failed.
	 */
	bool read_results(const std::function<void(const PGresult *)> &on_row, std::string &error)
	{
		report_activity(Activity::kWaiting);
		std::string first_error;
		Answer answer;
		for (;;) {
			while (PQisBusy(conn_)) {
				notices_.flush(config_.name);
				if (!wait_socket(true, error))
					return false;
				if (!PQconsumeInput(conn_)) {
					error = "lost connection to replica: " + conn_error();
					return false;
				}
			}
			PGresult *res = PQgetResult(conn_);
			notices_.flush(config_.name);
			if (res == nullptr && !pipelined_)
				break;
			if (res == nullptr) {
				/* A statement of the pipeline is done: the next one's answer row by row. */
				(void) PQsetSingleRowMode(conn_);
				continue;
			}
			ExecStatusType status = PQresultStatus(res);
			if (status == PGRES_PIPELINE_SYNC || status == PGRES_PIPELINE_ABORTED) {
				/* The end of what was sent; a statement skipped after the first error. */
				PQclear(res);
				if (status == PGRES_PIPELINE_SYNC)
					break;
				continue;
			}
			bool too_much = false;
			if (status == PGRES_SINGLE_TUPLE || status == PGRES_TUPLES_OK) {
				/* One row, or (single-row mode refused) a whole answer. */
				for (int r = 0; r < PQntuples(res); r++) {
					answer.rows++;
					for (int c = 0; c < PQnfields(res); c++)
						answer.bytes += static_cast<size_t>(PQgetlength(res, r, c)) + 1;
				}
				too_much = answer.rows > kMaxResultRows || answer.bytes > kMaxResultBytes;
				if (!too_much && on_row != nullptr && PQntuples(res) > 0)
					on_row(res);
				if (status == PGRES_TUPLES_OK)
					answer = Answer(); /* the end of a statement's rows */
			} else if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT ||
					   status == PGRES_COPY_BOTH) {
				PQclear(res);
				error = "replica answered a statement of the batch with COPY";
				return false;
			} else if (status != PGRES_COMMAND_OK && first_error.empty()) {
				first_error = "replica rejected batch: " + reader_message(remote_error(res));
				std::string text = PQresultErrorMessage(res);
				while (!text.empty() && text.back() == '\n')
					text.pop_back();
				detail_ = printable(text.empty() ? "unknown error" : text, kErrorDetailBytes, true);
			}
			PQclear(res);
			if (too_much) {
				error = answer.rows > kMaxResultRows
							? format("replica answered one statement with more than %ld rows",
									 kMaxResultRows)
							: format("replica answered one statement with more than %zu bytes",
									 kMaxResultBytes);
				return false;
			}
		}
		if (!first_error.empty()) {
			error = printable(first_error, kErrorBytes, false);
			return false;
		}
		return true;
	}

	/* The fields of a replica's error that say what it is about, not what it quotes. */
	static RemoteError remote_error(const PGresult *res)
	{
		auto field = [&](int code) {
			const char *value = PQresultErrorField(res, code);
			return std::string(value != nullptr ? value : "");
		};
		RemoteError e;
		e.sqlstate = field(PG_DIAG_SQLSTATE);
		e.primary = field(PG_DIAG_MESSAGE_PRIMARY);
		if (e.primary.empty()) {
			/* libpq's own (a lost connection), or not an error at all: no values in it. */
			const char *msg = PQresultErrorMessage(res);
			e.primary = msg != nullptr && msg[0] != '\0'
							? std::string(msg, strcspn(msg, "\n"))
							: std::string("unexpected result ") + PQresStatus(PQresultStatus(res));
			e.sqlstate = e.sqlstate.empty() ? "08006" : e.sqlstate;
		}
		e.schema = field(PG_DIAG_SCHEMA_NAME);
		e.table = field(PG_DIAG_TABLE_NAME);
		e.column = field(PG_DIAG_COLUMN_NAME);
		e.datatype = field(PG_DIAG_DATATYPE_NAME);
		e.constraint = field(PG_DIAG_CONSTRAINT_NAME);
		e.source_function = field(PG_DIAG_SOURCE_FUNCTION);
		return e;
	}

	ReplicaNotices notices_;
	const TargetConfig config_; /* a copy: the worker keeps a transport across rounds */
	PGconn *conn_ = nullptr;
	Clock::time_point deadline_;
	uint64_t position_ = 0;		   /* the replica's recorded position for the source ... */
	bool position_known_ = false;  /* ... as asked on this connection, moved by its batches */
	uint64_t sent_commit_ = 0;	   /* the commit LSN the batch in flight records */
	std::string connect_error_;	   /* replica_position() could not connect: start() says so */
	size_t sent_bytes_ = 0;		   /* of the batch in flight */
	bool pipelined_ = false;	   /* the batch in flight went in a pipeline (send_pipelined) */
	std::string connect_sqlstate_; /* why the last connection failed (connection_failure()) */
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
