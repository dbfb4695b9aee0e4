/*
 * url.hpp — target URLs: parsed, validated, and split from their secrets.
 *
 * A target is named by a URL: http://, https:// (NDJSON over HTTP) or
 * postgresql:// / postgres:// (a libpq connection URI of a cloud replica).
 * The catalog stores the URL without its secrets: a password in the userinfo
 * (user:password@host) or, for postgresql://, a password=... query parameter,
 * is taken out and kept in the secrets table (src/ship/ship.sql).  Error
 * messages never echo the input, which may hold a secret.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace edgesync::ship {

enum class TargetKind { http, postgresql };

const char *kind_name(TargetKind kind);

struct TargetUrl {
	TargetKind kind;
	std::string scheme;			  /* lower case: http, https, postgresql, postgres */
	std::string user;			  /* percent-decoded; empty when absent */
	std::string password;		  /* percent-decoded; empty when absent */
	std::string host;			  /* as written (may be [v6], or a comma list for libpq) */
	std::string port;			  /* digits, or empty */
	std::string rest;			  /* path, query and fragment, secrets removed */
	std::string redacted;		  /* the URL without password: what the catalog stores */
	std::string without_userinfo; /* the URL without user or password (for curl) */
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
