/*
 * url.cpp — parsing target URLs and removing secrets from text (url.hpp).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "ship/url.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <cctype>

namespace edgesync::ship {

namespace {

constexpr const char *kInvalid = "22023"; /* invalid_parameter_value */

[[noreturn]] void
bad_url(const std::string &what)
{
	throw Error(kInvalid, "invalid target URL: " + what)
		.hint("A target URL looks like https://host/path or postgresql://user@host/dbname.");
}

int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

std::string
lower(std::string_view s)
{
	std::string out(s);
	std::transform(out.begin(), out.end(), out.begin(),
				   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
	return out;
}

/* Removes password=... from a libpq URI query; returns its decoded value. */
std::string
take_query_password(std::string &query)
{
	std::string password;
	std::string kept;
	size_t start = 0;
	while (start <= query.size()) {
		size_t amp = query.find('&', start);
		if (amp == std::string::npos)
			amp = query.size();
		std::string_view param(query.data() + start, amp - start);
		if (lower(param.substr(0, 9)) == "password=")
			password = percent_decode(param.substr(9));
		else if (!param.empty()) {
			if (!kept.empty())
				kept.push_back('&');
			kept.append(param);
		}
		start = amp + 1;
	}
	query = kept;
	return password;
}

} // namespace

const char *
kind_name(TargetKind kind)
{
	return kind == TargetKind::http ? "http" : "postgresql";
}

std::string
percent_decode(std::string_view s)
{
	std::string out;
	out.reserve(s.size());
	for (size_t i = 0; i < s.size(); i++) {
		if (s[i] != '%') {
			out.push_back(s[i]);
			continue;
		}
		if (i + 2 >= s.size())
			bad_url("incomplete percent escape");
		int hi = hex_value(s[i + 1]);
		int lo = hex_value(s[i + 2]);
		if (hi < 0 || lo < 0)
			bad_url("invalid percent escape");
		out.push_back(static_cast<char>(hi * 16 + lo));
		i += 2;
	}
	return out;
}

std::string
percent_encode(std::string_view s)
{
	static constexpr char hex[] = "0123456789ABCDEF";
	std::string out;
	for (unsigned char c : s) {
		if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			out.push_back(static_cast<char>(c));
		else {
			out.push_back('%');
			out.push_back(hex[c >> 4]);
			out.push_back(hex[c & 0xf]);
		}
	}
	return out;
}

TargetUrl
parse_target_url(std::string_view url)
{
	TargetUrl t;

	if (url.empty())
		bad_url("empty");
	for (unsigned char c : url)
		if (c <= 0x20 || c == 0x7f)
			bad_url("it contains a space or a control character");

	size_t sep = url.find("://");
	if (sep == std::string_view::npos || sep == 0)
		bad_url("no scheme (expected http://, https:// or postgresql://)");
	t.scheme = lower(url.substr(0, sep));
	if (t.scheme == "http" || t.scheme == "https")
		t.kind = TargetKind::http;
	else if (t.scheme == "postgresql" || t.scheme == "postgres")
		t.kind = TargetKind::postgresql;
	else
		throw Error(kInvalid, "unsupported target URL scheme \"" + t.scheme + "\"")
			.detail("Supported schemes are http, https, postgresql and postgres.");
	for (char c : t.scheme)
		if (!std::isalpha(static_cast<unsigned char>(c)))
			bad_url("malformed scheme");

	std::string_view after = url.substr(sep + 3);
	size_t auth_end = after.find_first_of("/?#");
	std::string_view authority = after.substr(0, auth_end);
	std::string rest(auth_end == std::string_view::npos ? std::string_view()
														: after.substr(auth_end));

	std::string_view hostport = authority;
	size_t at = authority.rfind('@');
	if (at != std::string_view::npos) {
		std::string_view userinfo = authority.substr(0, at);
		hostport = authority.substr(at + 1);
		size_t colon = userinfo.find(':');
		t.user = percent_decode(userinfo.substr(0, colon));
		if (colon != std::string_view::npos)
			t.password = percent_decode(userinfo.substr(colon + 1));
		if (t.user.empty())
			bad_url("empty user name before \"@\"");
	}

	/* Host and port; libpq also accepts host1:p1,host2:p2. */
	if (t.kind == TargetKind::http) {
		std::string_view host = hostport;
		if (!hostport.empty() && hostport[0] == '[') {
			size_t close = hostport.find(']');
			if (close == std::string_view::npos)
				bad_url("unterminated IPv6 address");
			host = hostport.substr(0, close + 1);
			std::string_view tail = hostport.substr(close + 1);
			if (!tail.empty()) {
				if (tail[0] != ':')
					bad_url("unexpected text after IPv6 address");
				t.port = std::string(tail.substr(1));
				if (t.port.empty())
					bad_url("empty port");
			}
		} else {
			size_t colon = hostport.rfind(':');
			if (colon != std::string_view::npos) {
				host = hostport.substr(0, colon);
				t.port = std::string(hostport.substr(colon + 1));
				if (t.port.empty())
					bad_url("empty port");
			}
		}
		t.host = std::string(host);
		if (t.host.empty())
			bad_url("no host");
		for (char c : t.host)
			if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
				  c == '[' || c == ']' || c == ':' || c == '%'))
				bad_url("invalid character in host name");
		if (!t.port.empty()) {
			if (t.port.size() > 5 || !std::all_of(t.port.begin(), t.port.end(),
												  [](unsigned char c) { return std::isdigit(c); }))
				bad_url("port is not a number");
			int port = std::stoi(t.port);
			if (port < 1 || port > 65535)
				bad_url("port out of range");
		}
	} else {
		t.host = std::string(hostport); /* libpq checks the details at connect */
		for (char c : t.host)
			if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
				  c == '[' || c == ']' || c == ':' || c == ',' || c == '%'))
				bad_url("invalid character in host name");
		/* A password=... query parameter is a secret too. */
		size_t q = rest.find('?');
		if (q != std::string::npos) {
			size_t hash = rest.find('#', q);
			std::string query =
				rest.substr(q + 1, hash == std::string::npos ? std::string::npos : hash - q - 1);
			std::string tail = hash == std::string::npos ? std::string() : rest.substr(hash);
			std::string pw = take_query_password(query);
			if (!pw.empty()) {
				if (!t.password.empty())
					bad_url("password given twice");
				t.password = pw;
			}
			rest = rest.substr(0, q) + (query.empty() ? "" : "?" + query) + tail;
		}
	}
	t.rest = rest;

	std::string base = t.scheme + "://";
	std::string hp = t.host + (t.port.empty() ? "" : ":" + t.port);
	t.without_userinfo = base + hp + t.rest;
	t.redacted = base + (t.user.empty() ? "" : percent_encode(t.user) + "@") + hp + t.rest;
	return t;
}

std::string
redact(std::string_view text, const std::vector<std::string> &secrets)
{
	std::string out(text);
	for (const std::string &secret : secrets) {
		if (secret.empty())
			continue;
		for (const std::string &form : {secret, percent_encode(secret)}) {
			size_t pos = 0;
			while ((pos = out.find(form, pos)) != std::string::npos) {
				out.replace(pos, form.size(), "********");
				pos += 8;
			}
		}
	}
	return out;
}

} // namespace edgesync::ship
