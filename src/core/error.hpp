/*
 * error.hpp — errors raised by edgesync's C++ code, in PostgreSQL's terms.
 *
 * C++ code reports a problem by throwing edgesync::Error, which carries what
 * ereport() needs: a SQLSTATE, a primary message (lower case, no period), and
 * optional detail and hint (full sentences).  The entry guard (guard.hpp)
 * turns it into ereport(ERROR) once every C++ frame has been unwound.
 *
 * This header includes no PostgreSQL header, so pure C++ code (unit-tested
 * without a server) can throw it too; SQLSTATEs are passed as their
 * five-character text, e.g. "22023".
 */
#pragma once

#include <cstdarg>
#include <exception>
#include <string>

namespace edgesync {

/* printf-style formatting into a std::string. */
std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string vformat(const char *fmt, va_list args) __attribute__((format(printf, 1, 0)));

class Error : public std::exception {
  public:
	Error(const char *sqlstate, std::string message) : message_(std::move(message))
	{
		set_sqlstate(sqlstate);
	}

	Error &detail(std::string text)
	{
		detail_ = std::move(text);
		return *this;
	}

	Error &hint(std::string text)
	{
		hint_ = std::move(text);
		return *this;
	}

	const char *what() const noexcept override { return message_.c_str(); }
	const char *sqlstate() const noexcept { return sqlstate_; }
	const std::string &detail_text() const noexcept { return detail_; }
	const std::string &hint_text() const noexcept { return hint_; }

  private:
	void set_sqlstate(const char *code) noexcept;

	char sqlstate_[6];
	std::string message_;
	std::string detail_;
	std::string hint_;
};

} // namespace edgesync
