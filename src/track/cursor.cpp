/*
 * cursor.cpp — parsing and formatting sync_log cursors (see cursor.hpp).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "track/cursor.hpp"

#include "core/error.hpp"
#include "track/key_json.hpp"

#include <charconv>
#include <vector>

namespace edgesync::track {

namespace {

constexpr std::string_view kPrefix = "es1";

/* The most columns a key has (PostgreSQL's INDEX_MAX_KEYS). */
constexpr int kMaxKeyMembers = 32;

/* s split at sep; at most max parts, the last one the rest of s. */
std::vector<std::string_view>
split(std::string_view s, char sep, size_t max = SIZE_MAX)
{
	std::vector<std::string_view> parts;
	size_t start = 0;
	for (;;) {
		size_t pos = parts.size() + 1 < max ? s.find(sep, start) : std::string_view::npos;
		parts.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
		if (pos == std::string_view::npos)
			return parts;
		start = pos + 1;
	}
}

bool
parse_uint(std::string_view s, uint64_t &out)
{
	if (s.empty() || s.size() > 20)
		return false;
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
	return ec == std::errc() && end == s.data() + s.size();
}

int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

[[noreturn]] void
malformed(std::string_view text, const char *why)
{
	throw Error("22023", "invalid cursor")
		.detail(format("%s (cursor \"%.*s\").", why,
					   static_cast<int>(std::min<size_t>(text.size(), 200)), text.data()))
		.hint("Pass a cursor returned by edgesync.changes() or edgesync.pull(), or NULL to start "
			  "from the beginning.");
}

} // namespace

bool
is_snapshot_text(std::string_view s)
{
	std::vector<std::string_view> parts = split(s, ':');
	uint64_t xmin, xmax;
	if (parts.size() != 3 || !parse_uint(parts[0], xmin) || !parse_uint(parts[1], xmax) ||
		xmin > xmax || xmin == 0)
		return false;
	if (parts[2].empty())
		return true;
	uint64_t previous = 0;
	for (std::string_view xip : split(parts[2], ',')) {
		uint64_t x;
		if (!parse_uint(xip, x) || x < xmin || x >= xmax || x <= previous)
			return false;
		previous = x;
	}
	return true;
}

Cursor
parse_cursor(std::string_view text)
{
	/* The load position, last, is the rest of the text: a key's JSON may hold "/". */
	std::vector<std::string_view> f = split(text, '/', 8);
	if ((f.size() != 7 && f.size() != 8) || f[0] != kPrefix)
		malformed(text,
				  "A cursor has seven or eight fields separated by \"/\" and starts with \"es1\"");

	Cursor c;
	c.database = std::string(f[1]);
	c.scope = std::string(f[2]);
	if (c.database.empty() || c.scope.empty())
		malformed(text, "The database and scope fields are empty");
	if (f[3] != "-") {
		if (!is_snapshot_text(f[3]))
			malformed(text, "The fourth field is not a snapshot");
		c.seen = std::string(f[3]);
	}
	bool open = f[4] != "-";
	if (open != (f[5] != "-") || open != (f[6] != "-"))
		malformed(text, "The window fields must be all set or all \"-\"");
	if (open) {
		uint64_t xid, id;
		if (!is_snapshot_text(f[4]))
			malformed(text, "The fifth field is not a snapshot");
		if (!parse_uint(f[5], xid) || !parse_uint(f[6], id) || xid > INT64_MAX || id > INT64_MAX)
			malformed(text, "The last two fields are not a transaction id and a log id");
		c.window = std::string(f[4]);
		c.last_xid = static_cast<int64_t>(xid);
		c.last_id = static_cast<int64_t>(id);
	}
	if (f.size() == 8) {
		/*
		 * The load position: "k", then the key's JSON as it is, or (as
		 * earlier cursors carry it) in lower-case hex.
		 */
		std::string_view field = f[7];
		if (field.empty() || field[0] != 'k')
			malformed(text, "The eighth field is not a load position");
		std::string key;
		if (field.size() > 1 && field[1] == '{')
			key = std::string(field.substr(1));
		else {
			if ((field.size() - 1) % 2 != 0)
				malformed(text, "The eighth field is not a load position");
			for (size_t i = 1; i < field.size(); i += 2) {
				int hi = hex_value(field[i]), lo = hex_value(field[i + 1]);
				if (hi < 0 || lo < 0)
					malformed(text, "The eighth field is not a load position");
				key += static_cast<char>(hi * 16 + lo);
			}
		}
		if (!key.empty()) {
			std::string scratch(key.size(), '\0');
			KeyMember members[kMaxKeyMembers];
			if (parse_key_json(key, scratch.data(), members, kMaxKeyMembers) < 1)
				malformed(text, "The load position is not a key");
		}
		c.load = std::move(key);
	}
	return c;
}

std::string
format_cursor_head(const Cursor &c)
{
	std::string out(kPrefix);
	out += '/' + c.database + '/' + c.scope + '/';
	out += c.seen ? *c.seen : "-";
	out += '/';
	out += c.window ? *c.window : "-";
	return out;
}

std::string
format_cursor(const Cursor &c)
{
	std::string out = format_cursor_head(c);
	if (c.window)
		out += '/' + std::to_string(c.last_xid) + '/' + std::to_string(c.last_id);
	else
		out += "/-/-";
	if (c.load)
		out += "/k" + *c.load;
	return out;
}

} // namespace edgesync::track
