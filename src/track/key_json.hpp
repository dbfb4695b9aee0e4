/*
 * key_json.hpp — a primary key as JSON text, read back into its members.
 *
 * The change log writes each key as a flat JSON object of scalars
 * ({"id":42}, {"hospital":"A","n":7}: tracked_rel.cpp's append_key_json),
 * and a loading cursor carries the last key loaded the same way.  pull()
 * reads these back into typed values, to look rows up through the primary
 * key's index rather than by JSON.  Members come back by name, with their
 * text unescaped: a string's characters, a number or true/false as written.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).  It
 * allocates nothing and throws nothing, so C-style code may call it.
 */
#pragma once

#include <string_view>

namespace edgesync::track {

struct KeyMember {
	std::string_view name;
	std::string_view value; /* the string unescaped, or the literal's text */
	bool is_string;			/* value was a JSON string */
	bool is_null;			/* the JSON null */
};

/*
 * Reads text, a JSON object whose members are all scalars (strings,
 * numbers, true, false, null), into members[0 .. result - 1].  Unescaped
 * names and strings are written to scratch, which must hold text.size()
 * bytes (unescaping never lengthens); the members point into scratch or
 * into text.  Returns the number of members, or -1 if text is not such an
 * object, has more than max members, or escapes a character beyond ASCII
 * (neither the log nor jsonb writes one).
 */
int parse_key_json(std::string_view text, char *scratch, KeyMember *members, int max) noexcept;

} // namespace edgesync::track
