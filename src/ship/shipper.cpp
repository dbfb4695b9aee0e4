/*
 * shipper.cpp — one target's delivery loop: decode, deliver, then confirm.
 *
 * The target's slot is decoded in this process (slot_reader.hpp), and for
 * each batch:
 *   1. take the leading whole transactions that fit the target's limits
 *      (batch.hpp) from what was decoded;
 *   2. send them (transport.hpp), and decode the next batch while the
 *      receiver takes them;
 *   3. wait for the receiver's acknowledgement, and only then count the
 *      batch in edgesync.target_state (acked_lsn) and move the slot's
 *      confirmed position to the end of its last transaction's commit record.
 * A crash or a failure anywhere before 3 leaves the slot where it was, so the
 * batch is delivered again: at least once.  After a failed delivery the end
 * of the batch is remembered (target_state.pending_end) and the retry decodes
 * up to exactly that point, so it sends the same transactions under the same
 * Idempotency-Key.
 *
 * When decoding reaches the end of WAL with nothing to ship, every
 * transaction committed before that point produced no output (untracked
 * tables), and the slot is confirmed there so that it holds back no WAL.
 *
 * One process ships a target at a time (an advisory lock on the target's
 * name).  Failures are recorded with secrets removed (url.hpp redact()), and
 * the next retry is set after an exponential, jittered, capped delay.
 */
#include "core/guard.hpp"
#include "core/sql_objects.hpp"
#include "ship/activity.hpp"
#include "ship/batch.hpp"
#include "ship/resync.hpp"
#include "ship/shipper.hpp"
#include "ship/slot_reader.hpp"
#include "ship/transport.hpp"
#include "ship/url.hpp"

#include <random>

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
}

namespace edgesync::ship {

namespace {

constexpr int kLockClass = 1700000005; /* advisory lock space of targets */

/* Runs body in a transaction of its own (worker) or in the caller's. */
template <typename Fn>
void
with_transaction(bool own_transaction, Fn &&body)
{
	if (own_transaction)
		pg_call([] {
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
		});
	body();
	if (own_transaction)
		pg_call([] {
			PopActiveSnapshot();
			CommitTransactionCommand();
		});
}

/* with_transaction(), connected to SPI. */
template <typename Fn>
void
with_spi(bool own_transaction, Fn &&body)
{
	with_transaction(own_transaction, [&] {
		pg_call([] {
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
		});
		struct Finish {
			bool done = false;
			~Finish()
			{
				if (!done)
					SPI_finish();
			}
		} finish;
		body();
		finish.done = true;
		pg_call([] { SPI_finish(); });
	});
}

/* A parameter of an SPI query. */
struct Param {
	Oid type;
	Datum value;
	char null;
};

Param
text_param(const std::string &s)
{
	return {TEXTOID, pg_call([&] { return CStringGetTextDatum(s.c_str()); }), ' '};
}

Param
lsn_param(uint64_t lsn)
{
	return lsn == 0 ? Param{LSNOID, 0, 'n'} : Param{LSNOID, LSNGetDatum(lsn), ' '};
}

Param
int8_param(int64_t v)
{
	return {INT8OID, Int64GetDatum(v), ' '};
}

int
spi_run(const char *sql, std::initializer_list<Param> params, bool read_only)
{
	Oid types[16];
	Datum values[16];
	char nulls[16];
	int n = 0;
	for (const Param &p : params) {
		types[n] = p.type;
		values[n] = p.value;
		nulls[n] = p.null;
		n++;
	}
	return pg_call([&] {
		int rc = SPI_execute_with_args(sql, n, types, values, nulls, read_only, 0);
		if (rc < 0)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
		return rc;
	});
}

bool
is_null(uint64_t row, int col)
{
	bool isnull;
	SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	return isnull;
}

std::string
get_text(uint64_t row, int col)
{
	char *s = pg_call([&]() -> char * {
		bool isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
		return isnull ? nullptr : TextDatumGetCString(d);
	});
	return s == nullptr ? std::string() : std::string(s);
}

int64_t
get_int(uint64_t row, int col)
{
	bool isnull;
	Datum d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	if (isnull)
		return 0;
	Oid type = SPI_gettypeid(SPI_tuptable->tupdesc, col);
	if (type == INT4OID)
		return DatumGetInt32(d);
	if (type == BOOLOID)
		return DatumGetBool(d);
	return DatumGetInt64(d); /* int8, pg_lsn */
}

std::vector<std::string>
split_lines(const std::string &s)
{
	std::vector<std::string> out;
	size_t start = 0;
	while (start < s.size()) {
		size_t nl = s.find('\n', start);
		if (nl == std::string::npos)
			nl = s.size();
		if (nl > start)
			out.push_back(s.substr(start, nl - start));
		start = nl + 1;
	}
	return out;
}

/* Loads a target and its secrets; false when it does not exist. */
bool
load_target(const std::string &name, TargetConfig &c, bool &enabled)
{
	/* Targets of 0.1.0 record no owner: whom would the shipper connect for? */
	pg_call([] { require_current_sql_objects("The shipper"); });
	spi_run("SELECT t.kind, t.url, t.slot_name, t.columns, t.ca_file, s.bearer_token, s.password,"
			"       (SELECT pg_catalog.string_agg(h.key OPERATOR(pg_catalog.||) ': '"
			"                   OPERATOR(pg_catalog.||) (h.value OPERATOR(pg_catalog.#>>)"
			"                   '{}'::pg_catalog.text[]), E'\\n')"
			"          FROM pg_catalog.jsonb_each(s.headers) h),"
			"       t.batch_changes, t.batch_bytes, t.timeout_ms, st.consecutive_failures,"
			"       st.pending_end, st.resync_pending, t.enabled, st.acked_lsn,"
			"       pg_catalog.pg_get_userbyid(t.owner)::pg_catalog.text, r.rolsuper,"
			"       t.replica_schema, t.schema_changes"
			"  FROM edgesync.targets t"
			"  JOIN edgesync.target_secrets s ON s.name OPERATOR(pg_catalog.=) t.name"
			"  JOIN edgesync.target_state st ON st.name OPERATOR(pg_catalog.=) t.name"
			"  LEFT JOIN pg_catalog.pg_roles r"
			"         ON r.oid OPERATOR(pg_catalog.=) t.owner::pg_catalog.oid"
			" WHERE t.name OPERATOR(pg_catalog.=) $1",
			{text_param(name)}, true);
	if (SPI_processed == 0)
		return false;
	c.name = name;
	c.kind = get_text(0, 1);
	c.url = get_text(0, 2);
	c.slot = get_text(0, 3);
	c.columns = get_text(0, 4);
	c.ca_file = get_text(0, 5);
	c.bearer_token = get_text(0, 6);
	c.password = get_text(0, 7);
	c.headers = split_lines(get_text(0, 8));
	c.batch_changes = static_cast<int>(get_int(0, 9));
	c.batch_bytes = get_int(0, 10);
	c.timeout_ms = static_cast<int>(get_int(0, 11));
	c.failures = static_cast<int>(get_int(0, 12));
	c.pending_end = is_null(0, 13) ? 0 : static_cast<uint64_t>(get_int(0, 13));
	c.resync_pending = get_int(0, 14) != 0;
	enabled = get_int(0, 15) != 0;
	c.acked_lsn = is_null(0, 16) ? 0 : static_cast<uint64_t>(get_int(0, 16));
	c.owner = get_text(0, 17);
	c.owner_superuser = get_int(0, 18) != 0; /* a dropped role is no superuser */
	c.replica_schema = get_text(0, 19);
	c.schema_changes = get_text(0, 20);
	return true;
}

/*
 * The slot's confirmed position and where WAL ends, inserted if not yet
 * flushed (a commit with synchronous_commit off wakes the worker before the
 * WAL writer flushes it; decoding flushes what it reads); false if the slot
 * is gone.
 */
bool
slot_position(const TargetConfig &c, uint64_t &confirmed, uint64_t &flush)
{
	spi_run("SELECT confirmed_flush_lsn, pg_catalog.pg_current_wal_insert_lsn()"
			"  FROM pg_catalog.pg_replication_slots"
			" WHERE slot_name OPERATOR(pg_catalog.=) $1"
			"   AND database OPERATOR(pg_catalog.=) pg_catalog.current_database()",
			{text_param(c.slot)}, true);
	if (SPI_processed == 0)
		return false;
	confirmed = static_cast<uint64_t>(get_int(0, 1));
	flush = static_cast<uint64_t>(get_int(0, 2));
	return true;
}

void
advance(const TargetConfig &c, uint64_t to)
{
	spi_run("SELECT pg_catalog.pg_replication_slot_advance($1, $2)",
			{text_param(c.slot), lsn_param(to)}, false);
}

/* Adds what was delivered to the target's figures (target_status: progress). */
void
record_delivered(const TargetConfig &c, const Delivered &d)
{
	spi_run("UPDATE edgesync.target_state"
			"   SET batches_shipped = batches_shipped OPERATOR(pg_catalog.+) $2,"
			"       changes_shipped = changes_shipped OPERATOR(pg_catalog.+) $3,"
			"       bytes_shipped = bytes_shipped OPERATOR(pg_catalog.+) $4"
			" WHERE name OPERATOR(pg_catalog.=) $1",
			{text_param(c.name), int8_param(d.batches), int8_param(d.changes), int8_param(d.bytes)},
			false);
}

/*
 * Records a successful attempt and what it delivered: the target is healthy
 * again (consecutive_failures 0), and if it was failing, the error is
 * cleared now (last_error stays, for reference).  acked: the end of the
 * batch acknowledged, the slot's position to come back to after a crash (0:
 * a full re-send, which leaves it); resync_done: the full re-send is over.
 */
void
record_success(const TargetConfig &c, const Delivered &d, uint64_t acked, bool resync_done)
{
	spi_run("UPDATE edgesync.target_state SET last_success = pg_catalog.clock_timestamp(),"
			"       last_attempt = pg_catalog.clock_timestamp(),"
			"       batches_shipped = batches_shipped OPERATOR(pg_catalog.+) $2,"
			"       changes_shipped = changes_shipped OPERATOR(pg_catalog.+) $3,"
			"       bytes_shipped = bytes_shipped OPERATOR(pg_catalog.+) $4,"
			"       last_error_cleared_at = CASE"
			"           WHEN consecutive_failures OPERATOR(pg_catalog.>) 0"
			"           THEN pg_catalog.clock_timestamp() ELSE last_error_cleared_at END,"
			"       consecutive_failures = 0, next_retry = NULL, pending_end = NULL,"
			"       acked_lsn = COALESCE($5, acked_lsn),"
			"       resync_pending = resync_pending AND NOT $6"
			" WHERE name OPERATOR(pg_catalog.=) $1",
			{text_param(c.name),
			 int8_param(d.batches),
			 int8_param(d.changes),
			 int8_param(d.bytes),
			 lsn_param(acked),
			 {BOOLOID, BoolGetDatum(resync_done), ' '}},
			false);
}

} // namespace

std::vector<std::string>
TargetConfig::secrets() const
{
	std::vector<std::string> out = {bearer_token, password};
	for (const std::string &h : headers) {
		size_t colon = h.find(": ");
		if (colon != std::string::npos && h.size() > colon + 2)
			out.push_back(h.substr(colon + 2));
	}
	return out;
}

/*
 * Records a failed attempt: one more consecutive failure, the error with
 * secrets removed (last_error, which edgesync_reader reads; the receiver's
 * whole answer, detail, in last_error_detail, which only edgesync_admin
 * reads: transport.hpp), the next retry after a jittered exponential delay,
 * and the end of the unacknowledged batch (0: none).  Returns the redacted
 * error.
 */
static std::string
record_failure(const TargetConfig &c, const std::string &error, uint64_t pending_end,
			   const std::string &detail = std::string())
{
	static std::mt19937_64 random{std::random_device{}()};
	std::string redacted = redact(error, c.secrets());
	for (char &ch : redacted) /* one line */
		if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
			ch = ' ';
	std::string redacted_detail = redact(detail, c.secrets());
	int64_t delay = retry_delay_ms(c.failures + 1, retry_min_ms, retry_max_ms,
								   std::uniform_real_distribution<double>(0.0, 1.0)(random));
	spi_run("UPDATE edgesync.target_state SET last_attempt = pg_catalog.clock_timestamp(),"
			"       consecutive_failures = consecutive_failures OPERATOR(pg_catalog.+) 1,"
			"       last_error = $2, last_error_at = pg_catalog.clock_timestamp(),"
			"       next_retry = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)"
			"                    ($3 OPERATOR(pg_catalog.*) '1 millisecond'::pg_catalog.interval),"
			"       pending_end = $4, last_error_detail = $5"
			" WHERE name OPERATOR(pg_catalog.=) $1",
			{text_param(c.name), text_param(redacted), int8_param(delay), lsn_param(pending_end),
			 redacted_detail.empty() ? Param{TEXTOID, 0, 'n'} : text_param(redacted_detail)},
			false);
	return redacted;
}

std::string
record_error(const std::string &target, const std::string &error)
{
	std::string redacted = error;
	with_spi(true, [&] {
		TargetConfig config;
		bool enabled;
		if (load_target(target, config, enabled))
			redacted = record_failure(config, error, config.pending_end);
	});
	return redacted;
}

static ShipResult ship_locked(TargetConfig &config, int max_batches, bool own_transactions,
							  Transport &transport);

/* Whether a transport made for a would connect and send as one made for b. */
static bool
same_delivery(const TargetConfig &a, const TargetConfig &b)
{
	return a.name == b.name && a.kind == b.kind && a.url == b.url && a.password == b.password &&
		   a.owner == b.owner && a.owner_superuser == b.owner_superuser &&
		   a.timeout_ms == b.timeout_ms && a.ca_file == b.ca_file &&
		   a.bearer_token == b.bearer_token && a.headers == b.headers;
}

ShipResult
ship_target(const std::string &name, int max_batches, bool own_transactions, ShipSession *session)
{
	ShipResult result;
	TargetConfig config;
	bool found = false, enabled = false, locked = false;

	with_spi(own_transactions, [&] {
		spi_run(own_transactions
					? "SELECT pg_catalog.pg_try_advisory_lock($1, pg_catalog.hashtext($2))"
					: "SELECT pg_catalog.pg_try_advisory_xact_lock($1, pg_catalog.hashtext($2))",
				{{INT4OID, Int32GetDatum(kLockClass), ' '}, text_param(name)}, false);
		locked = get_int(0, 1) != 0;
		if (locked)
			found = load_target(name, config, enabled);
	});
	if (!locked) {
		result.busy = true;
		return result;
	}
	/* What this process does for the target shows in target_status (activity.hpp). */
	ActivityClaim claim(name);
	ShipResult r = result;
	if (found && (enabled || !own_transactions)) {
		std::unique_ptr<Transport> own;
		Transport *transport;
		if (session != nullptr) {
			if (session->transport == nullptr || !same_delivery(session->config, config)) {
				session->transport.reset();
				session->transport =
					config.kind == "http" ? make_http_transport(config) : make_pg_transport(config);
				session->config = config;
			}
			transport = session->transport.get();
		} else {
			own = config.kind == "http" ? make_http_transport(config) : make_pg_transport(config);
			transport = own.get();
		}
		r = ship_locked(config, max_batches, own_transactions, *transport);
	}
	/* (After an error, the worker releases every advisory lock it holds.) */
	if (own_transactions)
		with_spi(true, [&] {
			spi_run("SELECT pg_catalog.pg_advisory_unlock($1, pg_catalog.hashtext($2))",
					{{INT4OID, Int32GetDatum(kLockClass), ' '}, text_param(name)}, false);
		});
	return r;
}

/* ship_target() once the target is locked and loaded. */
static ShipResult
ship_locked(TargetConfig &config, int max_batches, bool own_transactions, Transport &delivery)
{
	ShipResult result;
	Transport *transport = &delivery;

	if (config.resync_pending) {
		bool ok = false;
		std::string error;
		Delivered sent;
		with_spi(own_transactions, [&] {
			ok = resend_current_rows(config, *transport, error, sent);
			report_activity(Activity::kRecording);
			if (ok)
				record_success(config, sent, 0, true);
			else {
				/* The batches acknowledged before the failure were delivered. */
				record_delivered(config, sent);
				result.error = record_failure(config, error, 0, transport->failure_detail());
				result.has_detail = !transport->failure_detail().empty();
			}
		});
		result.batches += sent.batches;
		result.changes += sent.changes;
		if (!ok) {
			result.failed = true;
			return result;
		}
		config.failures = 0;
	}

	/*
	 * The slot's position reaches disk only at checkpoints: after a crash it
	 * may be behind what the receiver acknowledged, which target_state
	 * (WAL-logged) remembers.  Catch up before decoding, so that nothing
	 * acknowledged is sent again.
	 */
	bool slot_found = false, idle = false;
	with_spi(own_transactions, [&] {
		uint64_t confirmed = 0, flush = 0;
		slot_found = slot_position(config, confirmed, flush);
		if (!slot_found) {
			result.error = record_failure(
				config,
				format("replication slot \"%s\" of target \"%s\" does not exist; "
					   "call edgesync.resync('%s')",
					   config.slot.c_str(), config.name.c_str(), config.name.c_str()),
				0);
			return;
		}
		if (config.acked_lsn > confirmed) {
			advance(config, config.acked_lsn);
			confirmed = config.acked_lsn;
		}
		if (config.pending_end != 0 && config.pending_end <= confirmed)
			config.pending_end = 0;
		idle = flush <= confirmed && config.pending_end == 0; /* no new WAL */
	});
	if (!slot_found) {
		result.failed = true;
		return result;
	}
	if (idle)
		return result;

	report_activity(Activity::kDecoding);
	std::unique_ptr<SlotReader> reader;
	with_transaction(own_transactions, [&] {
		reader = std::make_unique<SlotReader>(config.slot, config.kind == "http" ? "json" : "sql",
											  config.columns, config.replica_schema,
											  config.schema_changes);
	});

	/*
	 * Batch k is sent, batch k+1 decoded while the receiver takes k, then k
	 * acknowledged (recorded, slot confirmed) before k+1 is sent: one batch in
	 * flight at a time, so a failure still names exactly one batch to retry.
	 */
	struct Flight {
		bool active = false;
		uint64_t end = 0;
		int64_t changes = 0;
		int64_t bytes = 0;
	} flight;
	auto acknowledge = [&]() -> bool {
		std::string error;
		bool ok = transport->finish(error);
		report_activity(Activity::kRecording);
		with_spi(own_transactions, [&] {
			if (ok)
				record_success(config, Delivered{1, flight.changes, flight.bytes}, flight.end,
							   false);
			else {
				result.error =
					record_failure(config, error, flight.end, transport->failure_detail());
				result.has_detail = !transport->failure_detail().empty();
			}
		});
		flight.active = false;
		if (!ok) {
			result.failed = true;
			return false;
		}
		reader->confirm(flight.end);
		config.acked_lsn = flight.end;
		config.failures = 0;
		config.pending_end = 0;
		result.batches++;
		result.changes += flight.changes;
		return true;
	};

	/*
	 * Slow start: the first batch of a round is a sixteenth of the target's
	 * limits and each next one twice the last, up to the limits, so that the
	 * receiver starts early and every later batch is decoded while it takes
	 * the one before (decoding is faster than applying).
	 */
	BatchLimits limits = {std::max<int64_t>(1, config.batch_changes / 16),
						  std::max<int64_t>(1, config.batch_bytes / 16)};
	bool wal_left = true;
	for (int b = 0; b < max_batches; b++) {
		std::vector<Row> &rows = reader->rows();
		if (b > 0)
			limits = {std::min<int64_t>(config.batch_changes, limits.max_changes * 2),
					  std::min<int64_t>(config.batch_bytes, limits.max_bytes * 2)};
		/*
		 * A batch that was not acknowledged (pending_end, before anything is
		 * in flight) goes again, exactly: everything decoded up to its end.
		 */
		uint64_t retry_end = flight.active ? 0 : config.pending_end;
		report_activity(Activity::kDecoding);
		with_transaction(own_transactions, [&] {
			if (retry_end != 0)
				wal_left = reader->fill(SIZE_MAX, INT64_MAX, retry_end);
			else
				wal_left = reader->fill(static_cast<size_t>(limits.max_changes), limits.max_bytes,
										0, [&] { transport->pump(); });
			if (config.kind != "http")
				reader->take_held_run();
		});
		size_t n = 0;
		if (retry_end != 0) {
			while (n < rows.size() && rows[n].lsn <= retry_end)
				n++;
			if (n == 0)
				config.pending_end = 0; /* it has no output any more: start afresh */
		} else if (config.kind == "http")
			n = cut_batch(rows, limits);
		else
			n = rows.size(); /* the held run was written for exactly these transactions */
		if (n == 0) {
			if (flight.active && !acknowledge())
				return result;
			/*
			 * Nothing more to ship: every transaction that committed before
			 * the point decoded produced no output (untracked tables), so the
			 * slot may move there and hold no WAL back.
			 */
			if (!wal_left && config.pending_end == 0)
				reader->confirm(reader->decoded_up_to());
			break;
		}

		int64_t changes = count_changes(rows, n);
		/* An HTTP receiver's Idempotency-Key; a replica recognises a batch by its guard. */
		std::string key = config.kind == "http" ? idempotency_key(rows, n) : std::string();
		uint64_t end = rows[n - 1].lsn;
		/* Takes the rows' text (reader->take(n) below drops what is left of them). */
		Body body = config.kind == "http"
						? http_batch_body(rows, n)
						: replica_batch_body(rows, n, transport->replica_position(rows, n));
		body.spill = reader.get();

		if (flight.active && !acknowledge())
			return result;

		/*
		 * Remember the batch before sending it: if this process dies before
		 * the acknowledgement is recorded, the next attempt sends the same
		 * transactions under the same key (in ship(), only if the caller's
		 * transaction commits).
		 */
		if (config.pending_end != end)
			with_spi(own_transactions, [&] {
				spi_run("UPDATE edgesync.target_state SET pending_end = $2"
						" WHERE name OPERATOR(pg_catalog.=) $1",
						{text_param(config.name), lsn_param(end)}, false);
			});
		config.pending_end = end;

		std::string error;
		if (!transport->start(body, key, error)) {
			report_activity(Activity::kRecording);
			with_spi(own_transactions, [&] {
				result.error = record_failure(config, error, end, transport->failure_detail());
				result.has_detail = !transport->failure_detail().empty();
			});
			result.failed = true;
			return result;
		}
		flight = {true, end, changes, static_cast<int64_t>(body.size())};
		reader->take(n);
	}
	if (flight.active && !acknowledge())
		return result;
	result.more = !reader->rows().empty() || wal_left;
	/* Freed in a transaction: it clears the caches decoding filled. */
	with_transaction(own_transactions, [&] { reader.reset(); });
	return result;
}

} // namespace edgesync::ship
