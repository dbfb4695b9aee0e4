/*
 * batch.cpp — batches of whole transactions, their keys, retry delays
 * (batch.hpp).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "ship/batch.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace edgesync::ship {

namespace {

/* How the sql format's guard starts (decode/replica_sql.hpp), lower case. */
constexpr std::string_view kGuardPrefix = "with edgesync_guard as (";

/* Whether data starts with prefix (lower case), ignoring the case of data. */
bool
starts_with_nocase(std::string_view data, std::string_view prefix)
{
	if (data.size() < prefix.size())
		return false;
	for (size_t i = 0; i < prefix.size(); i++)
		if (std::tolower(static_cast<unsigned char>(data[i])) != prefix[i])
			return false;
	return true;
}

/* The value after the last top-level "name": in a json line (see header). */
bool
json_field(std::string_view line, std::string_view name, std::string &value)
{
	std::string pattern = "\"" + std::string(name) + "\":";
	size_t pos = line.rfind(pattern);
	if (pos == std::string_view::npos)
		return false;
	pos += pattern.size();
	while (pos < line.size() && line[pos] == ' ')
		pos++;
	if (pos < line.size() && line[pos] == '"') {
		size_t end = line.find('"', pos + 1);
		if (end == std::string_view::npos)
			return false;
		value = std::string(line.substr(pos + 1, end - pos - 1));
		return true;
	}
	size_t end = pos;
	while (end < line.size() &&
		   (std::isalnum(static_cast<unsigned char>(line[end])) || line[end] == '/'))
		end++;
	if (end == pos)
		return false;
	value = std::string(line.substr(pos, end - pos));
	return true;
}

bool
change_position(const Row &row, std::string &out)
{
	std::string lsn, seq;
	if (!json_field(row.data, "commit_lsn", lsn) || !json_field(row.data, "seq", seq))
		return false;
	out = lsn + ":" + seq;
	return true;
}

/* The commit LSN a guard row records: '<lsn>' FROM edgesync_guard (replica_sql.cpp). */
uint64_t guard_commit_lsn(std::string_view guard);

std::string
lsn_text(uint64_t lsn)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%X/%X", static_cast<unsigned>(lsn >> 32),
			 static_cast<unsigned>(lsn));
	return buf;
}

} // namespace

bool
is_frame_row(std::string_view data)
{
	/* json: {"op":"begin"... / {"op":"commit"...; sql: BEGIN; / COMMIT; and the guard */
	auto starts = [&](std::string_view p) { return starts_with_nocase(data, p); };
	if (starts("{\"op\":\"begin\"") || starts("{\"op\":\"commit\"") || starts(kGuardPrefix))
		return true;
	/* the sql format's BEGIN; / COMMIT; rows */
	return data.size() < 32 && (starts("begin") || starts("commit"));
}

uint64_t
Body::size() const
{
	uint64_t n = 0;
	for (const BodyPiece &p : pieces)
		n += p.spill_bytes != 0 ? p.spill_bytes : p.text.size();
	return n;
}

const std::string *
Body::in_memory() const
{
	static const std::string empty;
	if (pieces.empty())
		return &empty;
	return pieces.size() == 1 && pieces[0].spill_bytes == 0 ? &pieces[0].text : nullptr;
}

size_t
cut_batch(const std::vector<Row> &rows, const BatchLimits &limits)
{
	size_t cut = 0; /* end of the last whole transaction that fits */
	int64_t bytes = 0;
	for (size_t i = 0; i < rows.size(); i++) {
		bytes += static_cast<int64_t>(rows[i].body_bytes());
		bool ends_txn = i + 1 == rows.size() || rows[i + 1].xid != rows[i].xid;
		if (!ends_txn)
			continue;
		bool fits = static_cast<int64_t>(i + 1) <= limits.max_changes && bytes <= limits.max_bytes;
		if (!fits && cut > 0)
			break;
		cut = i + 1;
		if (!fits)
			break; /* one oversized transaction is a batch of its own */
	}
	return cut;
}

bool
is_commit_row(std::string_view data)
{
	return starts_with_nocase(data, "{\"op\":\"commit\"") ||
		   (data.size() < 32 && starts_with_nocase(data, "commit"));
}

bool
is_transactional_message(std::string_view data)
{
	return starts_with_nocase(data, "{\"op\":\"message\",\"transactional\":true");
}

int64_t
count_changes(const std::vector<Row> &rows, size_t n)
{
	int64_t changes = 0;
	for (size_t i = 0; i < n && i < rows.size(); i++)
		changes += rows[i].changes;
	return changes;
}

std::string
idempotency_key(const std::vector<Row> &rows, size_t n)
{
	n = std::min(n, rows.size());
	std::string first, last;
	for (size_t i = 0; i < n && first.empty(); i++)
		if (!change_position(rows[i], first))
			first.clear();
	for (size_t i = n; i > 0 && last.empty(); i--)
		if (!change_position(rows[i - 1], last))
			last.clear();
	if (first.empty() || last.empty()) {
		if (n == 0)
			return "empty";
		first = lsn_text(rows[0].lsn);
		last = lsn_text(rows[n - 1].lsn);
	}
	return first + "-" + last;
}

std::string_view
strip_transaction(std::string_view sql)
{
	auto trim = [](std::string_view &s) {
		while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
			s.remove_prefix(1);
		while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
			s.remove_suffix(1);
	};
	auto iequal = [](std::string_view a, std::string_view b) {
		return a.size() == b.size() &&
			   std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
				   return std::tolower(static_cast<unsigned char>(x)) ==
						  std::tolower(static_cast<unsigned char>(y));
			   });
	};
	trim(sql);
	if (sql.size() >= 6 && iequal(sql.substr(0, 6), "BEGIN;"))
		sql.remove_prefix(6);
	trim(sql);
	if (sql.size() >= 7 && iequal(sql.substr(sql.size() - 7), "COMMIT;"))
		sql.remove_suffix(7);
	trim(sql);
	return sql;
}

/*
 * Appends row to body: its text and a newline, moved (the row's copy is
 * freed), or its spilled stretch as a piece of its own.
 */
static void
move_row(Body &body, Row &row)
{
	if (row.spilled()) {
		body.pieces.push_back(BodyPiece{std::string(), row.spill_offset, row.spill_bytes});
		return;
	}
	if (body.pieces.empty() || body.pieces.back().spill_bytes != 0)
		body.pieces.emplace_back();
	std::string &text = body.pieces.back().text;
	text.append(row.data);
	text.push_back('\n');
	std::string().swap(row.data);
}

/* Room for the text of rows[from, n) up to the first spilled stretch. */
static void
reserve_text(Body &body, const std::vector<Row> &rows, size_t from, size_t n, bool frames)
{
	size_t size = 0;
	for (size_t i = from; i < n && !rows[i].spilled(); i++)
		if (frames || !is_frame_row(rows[i].data))
			size += rows[i].data.size() + 1;
	if (size == 0)
		return;
	if (body.pieces.empty() || body.pieces.back().spill_bytes != 0)
		body.pieces.emplace_back();
	body.pieces.back().text.reserve(body.pieces.back().text.size() + size);
}

Body
replica_batch_body(std::vector<Row> &rows, size_t n, uint64_t applied_through)
{
	constexpr std::string_view guard_prefix = kGuardPrefix;
	n = std::min(n, rows.size());
	size_t guard = n;
	for (size_t i = 0; i < n; i++)
		if (!rows[i].spilled() && starts_with_nocase(rows[i].data, guard_prefix))
			guard = i;
	Body body;
	if (guard < n) {
		body.last_commit = guard_commit_lsn(rows[guard].data);
		body.pieces.emplace_back();
		body.pieces.back().text.append(rows[guard].data).push_back('\n');
	}
	bool applied = false; /* the rows of a transaction the replica has */
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].spilled() && starts_with_nocase(rows[i].data, guard_prefix)) {
			uint64_t commit = guard_commit_lsn(rows[i].data);
			applied = commit != 0 && commit <= applied_through;
		}
		if (i == 0 || rows[i - 1].spilled())
			reserve_text(body, rows, i, n, false);
		if (applied)
			rows[i].data.clear(); /* (taken like the others: the caller drops them) */
		else if (rows[i].spilled() ||
				 !is_frame_row(rows[i].data)) { /* no guards, BEGIN;, COMMIT; */
			body.units |= rows[i].unit;
			move_row(body, rows[i]);
		}
	}
	return body;
}

uint64_t
parse_lsn(std::string_view text)
{
	size_t slash = text.find('/');
	if (slash == std::string_view::npos || slash == 0 || slash + 1 >= text.size() || slash > 8 ||
		text.size() - slash - 1 > 8)
		return 0;
	uint64_t hi = 0, lo = 0;
	for (size_t i = 0; i < text.size(); i++) {
		if (i == slash)
			continue;
		char c = text[i];
		int v = c >= '0' && c <= '9'   ? c - '0'
				: c >= 'A' && c <= 'F' ? c - 'A' + 10
				: c >= 'a' && c <= 'f' ? c - 'a' + 10
									   : -1;
		if (v < 0)
			return 0;
		uint64_t &part = i < slash ? hi : lo;
		part = part * 16 + static_cast<uint64_t>(v);
	}
	return (hi << 32) | lo;
}

std::string
guard_position_query(std::string_view row)
{
	constexpr std::string_view start = "COALESCE((SELECT p.lsn FROM ";
	constexpr std::string_view end = "), '0/0')";
	if (!starts_with_nocase(row, kGuardPrefix))
		return std::string();
	size_t from = row.find(start);
	size_t to = from == std::string_view::npos ? from : row.find(end, from);
	if (to == std::string_view::npos)
		return std::string();
	return "SELECT " + std::string(row.substr(from, to + end.size() - from)) + "::pg_catalog.text;";
}

Body
http_batch_body(std::vector<Row> &rows, size_t n)
{
	n = std::min(n, rows.size());
	Body body;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || rows[i - 1].spilled())
			reserve_text(body, rows, i, n, true);
		move_row(body, rows[i]);
	}
	return body;
}

int64_t
retry_delay_ms(int failures, int64_t min_ms, int64_t max_ms, double random01)
{
	if (failures < 1)
		return 0;
	min_ms = std::max<int64_t>(min_ms, 1);
	max_ms = std::max(max_ms, min_ms);
	int64_t delay = min_ms;
	for (int i = 1; i < failures && delay < max_ms; i++)
		delay *= 2;
	delay = std::min(delay, max_ms);
	random01 = std::clamp(random01, 0.0, 1.0);
	return delay / 2 + static_cast<int64_t>(static_cast<double>(delay - delay / 2) * random01);
}

namespace {

uint64_t
guard_commit_lsn(std::string_view guard)
{
	size_t end = guard.rfind("' FROM edgesync_guard ");
	if (end == std::string_view::npos)
		return 0;
	size_t start = guard.rfind('\'', end - 1);
	return start == std::string_view::npos ? 0
										   : parse_lsn(guard.substr(start + 1, end - start - 1));
}

} // namespace

} // namespace edgesync::ship
