/*
 * text_writer.hpp — fast JSON and SQL text escaping into any byte sink.
 *
 * The output plugin and the change log write millions of small strings; these
 * functions append them escaped to a sink in one pass, copying runs of plain
 * bytes at once.  A sink is anything with append(const char *, size_t) and
 * push_back(char): std::string in unit tests, a StringInfo adapter in the
 * server (decode/).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 * Input is assumed to be valid UTF-8 (PostgreSQL has validated it); bytes >=
 * 0x80 are copied unchanged, which is valid JSON.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace edgesync::text {

namespace detail {

/* 0: copy as is; otherwise the character after the backslash ('u' = \u00XX). */
struct JsonEscapeTable {
	char action[256];
	constexpr JsonEscapeTable() : action()
	{
		for (int c = 0; c < 0x20; c++)
			action[c] = 'u';
		action[static_cast<unsigned char>('\b')] = 'b';
		action[static_cast<unsigned char>('\f')] = 'f';
		action[static_cast<unsigned char>('\n')] = 'n';
		action[static_cast<unsigned char>('\r')] = 'r';
		action[static_cast<unsigned char>('\t')] = 't';
		action[static_cast<unsigned char>('"')] = '"';
		action[static_cast<unsigned char>('\\')] = '\\';
	}
};

inline constexpr JsonEscapeTable kJsonEscape{};

} // namespace detail

/*
 * The bytes append_json_string(s) writes, quotes included: lets a caller
 * that must stay under a size limit check before writing.
 */
inline size_t
json_string_size(std::string_view s)
{
	size_t size = 2;
	for (char c : s) {
		char action = detail::kJsonEscape.action[static_cast<unsigned char>(c)];
		size += action == 0 ? 1 : action == 'u' ? 6 : 2;
	}
	return size;
}

/* The bytes append_sql_literal_one_line(s) writes (at most 2 * size + 3). */
inline size_t
sql_literal_one_line_size(std::string_view s)
{
	size_t size = 2;
	bool escaped = false;
	for (char c : s) {
		size += (c == '\'' || c == '\\' || c == '\n' || c == '\r') ? 2 : 1;
		escaped |= c == '\\' || c == '\n' || c == '\r';
	}
	return size + (escaped ? 1 : 0); /* the E of E'...' */
}

/* Appends s as a JSON string, quotes included. */
template <typename Sink>
void
append_json_string(Sink &out, std::string_view s)
{
	static constexpr char hex[] = "0123456789abcdef";
	const char *p = s.data();
	const char *end = p + s.size();
	const char *run = p;

	out.push_back('"');
	for (; p < end; p++) {
		char action = detail::kJsonEscape.action[static_cast<unsigned char>(*p)];
		if (action == 0)
			continue;
		if (p > run)
			out.append(run, static_cast<size_t>(p - run));
		if (action == 'u') {
			unsigned char c = static_cast<unsigned char>(*p);
			const char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
			out.append(esc, 6);
		} else {
			const char esc[2] = {'\\', action};
			out.append(esc, 2);
		}
		run = p + 1;
	}
	if (end > run)
		out.append(run, static_cast<size_t>(end - run));
	out.push_back('"');
}

/*
 * Appends s as a SQL string literal that reads back as s whatever
 * standard_conforming_strings says: 'it''s', or E'a\\b' when s holds a
 * backslash (the same rule as PostgreSQL's quote_literal).
 */
template <typename Sink>
void
append_sql_literal(Sink &out, std::string_view s)
{
	bool has_backslash = s.find('\\') != std::string_view::npos;
	if (has_backslash)
		out.push_back('E');
	out.push_back('\'');
	const char *p = s.data();
	const char *end = p + s.size();
	const char *run = p;
	for (; p < end; p++) {
		if (*p != '\'' && *p != '\\')
			continue;
		out.append(run, static_cast<size_t>(p + 1 - run));
		out.push_back(*p); /* double it */
		run = p + 1;
	}
	if (end > run)
		out.append(run, static_cast<size_t>(end - run));
	out.push_back('\'');
}

/*
 * Like append_sql_literal, but the literal never spans lines: a string with
 * a newline or carriage return is written as E'...' with \n and \r escapes
 * (and backslashes doubled), so one SQL statement stays on one line.
 */
template <typename Sink>
void
append_sql_literal_one_line(Sink &out, std::string_view s)
{
	if (s.find_first_of("\n\r") == std::string_view::npos) {
		append_sql_literal(out, s);
		return;
	}
	out.push_back('E');
	out.push_back('\'');
	const char *p = s.data();
	const char *end = p + s.size();
	const char *run = p;
	for (; p < end; p++) {
		const char *esc;
		switch (*p) {
		case '\'':
			esc = "''";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			continue;
		}
		if (p > run)
			out.append(run, static_cast<size_t>(p - run));
		out.append(esc, 2);
		run = p + 1;
	}
	if (end > run)
		out.append(run, static_cast<size_t>(end - run));
	out.push_back('\'');
}

/* Where append_sql_identifier writes a name. */
enum class IdentifierUse : char {
	kToken,	   /* an identifier token of SQL text */
	kInString, /* text inside a SQL literal or a JSON string that a name parser reads */
};

/*
 * Appends name as a SQL identifier, always double-quoted: exact for every
 * name, keyword or not, mixed case or not.  Every name the output plugin and
 * the shipper write (schemas, tables, columns, types, operators' schemas)
 * goes through this one function, comments included.
 *
 * As a token (kToken), a name holding a control character (line break, tab,
 * ..., DEL) is written in PostgreSQL's Unicode escape form, U&"a\000ab": each
 * control character as \XXXX, a backslash as \\.  The statement then stays on
 * one line, so neither a line-based reader (psql) nor a -- comment around
 * the name can be ended inside it.  U&"..." identifiers read the same
 * whatever standard_conforming_strings says (only U&'...' strings depend on
 * it) and in any client encoding (the escapes are ASCII).
 *
 * kInString writes the plain "..." form that regclass input and parse_ident()
 * read (they do not know U&): the caller puts it inside a literal or JSON
 * string whose own escaping keeps control characters off the line.
 */
template <typename Sink>
void
append_sql_identifier(Sink &out, std::string_view name, IdentifierUse use = IdentifierUse::kToken)
{
	static constexpr char hex[] = "0123456789abcdef";
	bool unicode = false;
	if (use == IdentifierUse::kToken)
		for (char c : name)
			unicode |= static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
	if (unicode) {
		out.push_back('U');
		out.push_back('&');
	}
	out.push_back('"');
	const char *p = name.data();
	const char *end = p + name.size();
	const char *run = p;
	for (; p < end; p++) {
		unsigned char c = static_cast<unsigned char>(*p);
		if (c == '"') {
			out.append(run, static_cast<size_t>(p + 1 - run));
			out.push_back('"'); /* doubled */
			run = p + 1;
		} else if (unicode && (c < 0x20 || c == 0x7f || c == '\\')) {
			if (p > run)
				out.append(run, static_cast<size_t>(p - run));
			if (c == '\\') {
				out.append("\\\\", 2);
			} else {
				const char esc[5] = {'\\', '0', '0', hex[c >> 4], hex[c & 0xf]};
				out.append(esc, 5);
			}
			run = p + 1;
		}
	}
	if (end > run)
		out.append(run, static_cast<size_t>(end - run));
	out.push_back('"');
}

} // namespace edgesync::text
