/*
 * url.hpp — target URLs: parsed, validated, and split from their secrets.
 *
 * A target is named by a URL: http://, https:// (NDJSON over HTTP) or
 * postgresql:// / postgres:// (a libpq connection URI of a cloud replica).
 * The catalog stores the URL without its password, which is kept in the
 * secrets table (src/ship/ship.sql).  Each kind is parsed by the library
 * that will use it, so that every spelling of the password it accepts is
 * found: libcurl's curl_url() for http (user:password@), libpq's
 * PQconninfoParse() for postgresql (user:password@, ?password=, and the
 * same with any of the letters percent-encoded).  A postgresql URL is
 * stored as rebuilt from libpq's options without the password, and checked
 * to parse back to the same options.  Error messages never echo the input,
 * which may hold a secret.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit); it uses
 * the client libraries libpq and libcurl.
 */
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgesync::ship {

enum class TargetKind { http, postgresql };

const char *kind_name(TargetKind kind);

struct TargetUrl {
	TargetKind kind;
	std::string scheme;			  /* lower case: http, https, postgresql, postgres */
	std::string user;			  /* decoded; empty when absent */
	std::string password;		  /* decoded; empty when absent */
	std::string host;			  /* http: the host; postgresql: libpq's host list */
	std::string port;			  /* digits (a list for libpq), or empty */
	std::string redacted;		  /* the URL without password: what the catalog stores */
	std::string without_userinfo; /* http: the URL without user or password (for curl) */
	/* postgresql: libpq's options as given, but the password (keyword, value). */
	std::vector<std::pair<std::string, std::string>> options;

	/* postgresql: the value of a libpq option, or empty. */
	std::string option(std::string_view keyword) const;
};

/*
 * Parses url; throws edgesync::Error (22023) when it is malformed or its
 * scheme is not one of ours.  The message names the problem, never the URL.
 */
TargetUrl parse_target_url(std::string_view url);

/* Replaces every occurrence of each non-empty secret (and of its
 * percent-encoded form) in text with "********". */
std::string redact(std::string_view text, const std::vector<std::string> &secrets);

/* Percent-decoding of a URL component; throws Error (22023) on a bad escape. */
std::string percent_decode(std::string_view s);
std::string percent_encode(std::string_view s);

} // namespace edgesync::ship
