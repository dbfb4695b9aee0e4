/*
 * string_info_sink.hpp — lets the text_writer.hpp templates (JSON strings,
 * quoted identifiers) append to a PostgreSQL StringInfo.
 */
#pragma once

#include "core/postgres.hpp"

extern "C" {
#include "lib/stringinfo.h"
}

#include <cstddef>

namespace edgesync {

struct StringInfoSink {
	StringInfo s;
	void append(const char *data, size_t len)
	{
		appendBinaryStringInfo(s, data, static_cast<int>(len));
	}
	void push_back(char c) { appendStringInfoCharMacro(s, c); }
};

} // namespace edgesync
