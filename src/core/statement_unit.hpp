/*
 * statement_unit.hpp — one statement with binary parameters, as an output
 * row of the sql format: how the plugin writes it for the shipper
 * (decode/sql_runs.cpp, binary runs) and how the shipper reads it back
 * (ship/pg_transport.cpp), so the two agree by construction.
 *
 * Every other row of the sql format is one statement on one line.  A unit is
 * a statement whose values travel apart from its text, each a PostgreSQL
 * binary array sent as a parameter of the extended protocol:
 *
 *   0x01                       marker (no statement of the format starts so)
 *   uint32 length              of the rest of the unit, big-endian
 *   the statement, then 0x00   ($1, $2, ... stand for the parameters)
 *   uint16 nparams
 *   per parameter: uint32 length, then its bytes
 *
 * The length makes a unit self-delimiting in a stream of rows separated by
 * newlines (the shipper's spill file), although its bytes may hold any.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace edgesync::unit {

constexpr char kMarker = '\x01';
/* The marker and the length. */
constexpr size_t kHeaderBytes = 5;

inline uint32_t
read_u32(const char *p)
{
	const auto *u = reinterpret_cast<const unsigned char *>(p);
	return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

inline void
write_u32(char *p, uint32_t v)
{
	p[0] = static_cast<char>(v >> 24);
	p[1] = static_cast<char>(v >> 16);
	p[2] = static_cast<char>(v >> 8);
	p[3] = static_cast<char>(v);
}

/* A unit read back: views into the bytes it was read from. */
struct Unit {
	std::string_view statement; /* without its terminating 0x00 */
	std::vector<std::string_view> params;
};

constexpr size_t kIncomplete = std::string_view::npos;

/*
 * The length of the row starting at row[0], without the newline that ends
 * it: a unit's whole length, or a statement's up to its newline; kIncomplete
 * when row does not hold all of it yet.
 */
inline size_t
row_length(std::string_view row)
{
	if (!row.empty() && row[0] == kMarker) {
		if (row.size() < kHeaderBytes)
			return kIncomplete;
		size_t len = kHeaderBytes + read_u32(row.data() + 1);
		return len < row.size() ? len : kIncomplete; /* its newline included */
	}
	return row.find('\n');
}

/* Parses a whole unit (row_length() bytes from its marker); false if malformed. */
inline bool
parse(std::string_view bytes, Unit &unit)
{
	unit = Unit();
	if (bytes.size() < kHeaderBytes || bytes[0] != kMarker ||
		bytes.size() != kHeaderBytes + read_u32(bytes.data() + 1))
		return false;
	std::string_view rest = bytes.substr(kHeaderBytes);
	size_t nul = rest.find('\0');
	if (nul == std::string_view::npos || rest.size() < nul + 3)
		return false;
	unit.statement = rest.substr(0, nul);
	rest.remove_prefix(nul + 1);
	const auto *u = reinterpret_cast<const unsigned char *>(rest.data());
	size_t nparams = (size_t{u[0]} << 8) | u[1];
	rest.remove_prefix(2);
	for (size_t i = 0; i < nparams; i++) {
		if (rest.size() < 4)
			return false;
		size_t len = read_u32(rest.data());
		if (rest.size() - 4 < len)
			return false;
		unit.params.push_back(rest.substr(4, len));
		rest.remove_prefix(4 + len);
	}
	return rest.empty();
}

} // namespace edgesync::unit
