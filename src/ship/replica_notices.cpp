/*
 * replica_notices.cpp — a replica's text made fit for this server's log or
 * catalog (replica_notices.hpp).
 */
#include "ship/replica_notices.hpp"

extern "C" {
#include "mb/pg_wchar.h"
}

namespace edgesync::ship {

/*
 * What a replica wrote, as text fit for this server's log or catalog: its
 * first max bytes; control characters escaped (\\n, \\x1b; newlines kept when
 * keep_newlines), and a backslash too when not; bytes that are not valid in
 * the database encoding (a multibyte character cut at max, or a replica's
 * bad bytes) as \\xNN.  "..." marks a cut.
 */
std::string
printable(const std::string &raw, size_t max, bool keep_newlines)
{
	size_t n = std::min(raw.size(), max);
	int valid = pg_call([&] {
		return pg_encoding_verifymbstr(GetDatabaseEncoding(), raw.data(), static_cast<int>(n));
	});
	std::string out;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = static_cast<unsigned char>(raw[i]);
		if (c == '\n')
			out += keep_newlines ? "\n" : "\\n";
		else if (c == '\t')
			out += keep_newlines ? "\t" : "\\t";
		else if (c == '\r')
			out += "\\r";
		else if (c == '\\')
			out += keep_newlines ? "\\" : "\\\\";
		else if (c < 0x20 || c == 0x7f || (c >= 0x80 && i >= static_cast<size_t>(valid)))
			out += format("\\x%02x", c);
		else
			out.push_back(static_cast<char>(c));
	}
	if (raw.size() > max)
		out += "...";
	return out;
}

} // namespace edgesync::ship
