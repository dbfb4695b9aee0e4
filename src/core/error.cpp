/*
 * error.cpp — formatting helpers for edgesync::Error.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "core/error.hpp"

#include <cstdio>
#include <cstring>

namespace edgesync {

std::string
vformat(const char *fmt, va_list args)
{
	va_list copy;
	va_copy(copy, args);
	int needed = std::vsnprintf(nullptr, 0, fmt, copy);
	va_end(copy);
	if (needed <= 0)
		return std::string();
	std::string out(static_cast<size_t>(needed), '\0');
	std::vsnprintf(out.data(), out.size() + 1, fmt, args);
	return out;
}

std::string
format(const char *fmt, ...)
{
	va_list args;
	va_start(args, fmt);
	std::string out = vformat(fmt, args);
	va_end(args);
	return out;
}

/*
 * A SQLSTATE is exactly five characters of [0-9A-Z]; anything else would make
 * ereport() report garbage, so it becomes XX000 (internal_error).
 */
void
Error::set_sqlstate(const char *code) noexcept
{
	bool ok = code != nullptr && std::strlen(code) == 5;
	for (int i = 0; ok && i < 5; i++)
		ok = (code[i] >= '0' && code[i] <= '9') || (code[i] >= 'A' && code[i] <= 'Z');
	std::memcpy(sqlstate_, ok ? code : "XX000", 5);
	sqlstate_[5] = '\0';
}

} // namespace edgesync
