/*
 * remote_error.cpp — a replica's error without its values (remote_error.hpp).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "ship/remote_error.hpp"

#include <vector>

namespace edgesync::ship {

namespace {

bool
is_name(const RemoteError &e, const std::string &quoted)
{
	if (quoted.empty())
		return false;
	for (const std::string *name : {&e.schema, &e.table, &e.column, &e.datatype, &e.constraint})
		if (*name == quoted)
			return true;
	return false;
}

} // namespace

std::string
reader_message(const RemoteError &e)
{
	std::string code = e.sqlstate.size() == 5 ? e.sqlstate : "XX000";
	std::string cls = code.substr(0, 2);
	if (cls == "P0" || e.source_function == "exec_stmt_raise")
		return "an error raised by a function on the replica (SQLSTATE " + code + ")";

	std::string text = e.primary;
	if (cls == "22") {
		size_t colon = text.find(": ");
		if (colon != std::string::npos)
			text.resize(colon);
	}
	if (cls != "42" || code == "42601") {
		std::vector<size_t> quotes;
		for (size_t at = text.find('"'); at != std::string::npos; at = text.find('"', at + 1))
			quotes.push_back(at);
		for (size_t i = 0; i < quotes.size(); i += 2) {
			bool pair = i + 1 < quotes.size();
			if (pair && is_name(e, text.substr(quotes[i] + 1, quotes[i + 1] - quotes[i] - 1)))
				continue;
			/* To the last quote; a lone quote: to the end (a value cut short). */
			size_t end = pair ? quotes.back() + 1 : text.size();
			text.replace(quotes[i], end - quotes[i], "\"...\"");
			break;
		}
	}
	return text + " (SQLSTATE " + code + ")";
}

} // namespace edgesync::ship
