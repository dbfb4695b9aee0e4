/*
 * url.cpp — parsing target URLs and removing secrets from text (url.hpp).
 *
 * http URLs are parsed by libcurl (curl_url()), postgresql URLs by libpq
 * (PQconninfoParse()): the libraries that use them, so the password is found
 * however it is spelled.  Neither library's error text is passed on as it
 * is: both quote the input, which may hold the password.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit); it uses
 * the client libraries libpq and libcurl.
 */
#include "ship/url.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <cctype>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <new>

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

/* Percent-encodes s, keeping unreserved characters and those in keep. */
std::string
encode(std::string_view s, std::string_view keep)
{
	static constexpr char hex[] = "0123456789ABCDEF";
	std::string out;
	for (unsigned char c : s) {
		if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
			keep.find(static_cast<char>(c)) != std::string_view::npos)
			out.push_back(static_cast<char>(c));
		else {
			out.push_back('%');
			out.push_back(hex[c >> 4]);
			out.push_back(hex[c & 0xf]);
		}
	}
	return out;
}

std::vector<std::string>
split(const std::string &s, char sep)
{
	std::vector<std::string> out;
	size_t start = 0;
	for (;;) {
		size_t end = s.find(sep, start);
		out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
		if (end == std::string::npos)
			return out;
		start = end + 1;
	}
}

/*
 * A library's error message about the URL, without what it quotes of it:
 * libpq and libcurl quote the URL or a part of it, which may be the
 * password.  A quoted single character ("=", ":") says where, and stays.
 */
std::string
without_quoted(std::string text)
{
	while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '.'))
		text.pop_back();
	std::string out;
	for (size_t i = 0; i < text.size(); i++) {
		size_t close = text[i] == '"' ? text.find('"', i + 1) : std::string::npos;
		if (close == std::string::npos || close - i <= 2) {
			out.push_back(text[i]);
			continue;
		}
		out += "\"...\"";
		i = close;
	}
	for (char &c : out)
		if (static_cast<unsigned char>(c) < 0x20)
			c = ' ';
	return out;
}

/* curl_url() and the parts we read from it. */
class CurlUrl {
  public:
	CurlUrl() : handle_(curl_url())
	{
		if (handle_ == nullptr)
			throw std::bad_alloc();
	}
	~CurlUrl() { curl_url_cleanup(handle_); }
	CurlUrl(const CurlUrl &) = delete;
	CurlUrl &operator=(const CurlUrl &) = delete;

	CURLUcode set(CURLUPart part, const char *value)
	{
		CURLUcode rc = curl_url_set(handle_, part, value, 0);
		if (rc == CURLUE_OUT_OF_MEMORY)
			throw std::bad_alloc();
		return rc;
	}

	/* A part as written in the URL (not decoded); empty when absent. */
	std::string get(CURLUPart part)
	{
		char *value = nullptr;
		CURLUcode rc = curl_url_get(handle_, part, &value, 0);
		if (rc == CURLUE_OUT_OF_MEMORY)
			throw std::bad_alloc();
		std::string out = rc == CURLUE_OK && value != nullptr ? value : "";
		curl_free(value);
		return out;
	}

  private:
	CURLU *handle_;
};

/* What a curl_url_set() failure means, in words that quote nothing. */
std::string
curl_problem(CURLUcode rc)
{
	switch (rc) {
	case CURLUE_BAD_PORT_NUMBER:
		return "port is not a number from 1 to 65535";
	case CURLUE_NO_HOST:
		return "no host";
	case CURLUE_MALFORMED_INPUT:
		return "malformed";
	case CURLUE_UNSUPPORTED_SCHEME:
	case CURLUE_NO_SCHEME:
		return "no scheme libcurl supports";
	default:
		return format("libcurl cannot parse it (CURLUcode %d)", static_cast<int>(rc));
	}
}

void
parse_http(const std::string &input, TargetUrl &t)
{
	/* libcurl reads "http:///x" as host x: an empty authority is refused. */
	size_t authority = input.find("://") + 3;
	if (authority >= input.size() || input[authority] == '/' || input[authority] == '?' ||
		input[authority] == '#')
		bad_url("no host");
	CurlUrl url;
	CURLUcode rc = url.set(CURLUPART_URL, input.c_str());
	if (rc != CURLUE_OK)
		bad_url(curl_problem(rc));
	/* Decoded here, strictly: a bad escape is an error, not a literal "%". */
	t.user = percent_decode(url.get(CURLUPART_USER));
	t.password = percent_decode(url.get(CURLUPART_PASSWORD));
	if (t.user.empty() && !t.password.empty())
		bad_url("empty user name before \"@\"");
	t.host = url.get(CURLUPART_HOST);
	t.port = url.get(CURLUPART_PORT);
	if (t.host.empty())
		bad_url("no host");
	for (char c : t.host)
		if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
			  c == '[' || c == ']' || c == ':' || c == '%'))
			bad_url("invalid character in host name");
	if (t.port == "0")
		bad_url("port is not a number from 1 to 65535");
	if (url.set(CURLUPART_PASSWORD, nullptr) != CURLUE_OK)
		bad_url("malformed");
	t.redacted = url.get(CURLUPART_URL);
	if (url.set(CURLUPART_USER, nullptr) != CURLUE_OK)
		bad_url("malformed");
	t.without_userinfo = url.get(CURLUPART_URL);
}

/* libpq's options of a connection string: those given, as (keyword, value). */
std::vector<std::pair<std::string, std::string>>
conninfo_options(const std::string &conninfo, std::string &error)
{
	std::vector<std::pair<std::string, std::string>> out;
	char *message = nullptr;
	PQconninfoOption *options = PQconninfoParse(conninfo.c_str(), &message);
	if (options == nullptr) {
		if (message == nullptr)
			throw std::bad_alloc();
		error = message;
		PQfreemem(message);
		return out;
	}
	struct Free {
		PQconninfoOption *options;
		~Free() { PQconninfoFree(options); }
	} free_options{options};
	for (PQconninfoOption *o = options; o->keyword != nullptr; o++)
		if (o->val != nullptr)
			out.emplace_back(o->keyword, o->val);
	return out;
}

/*
 * The URL of libpq's options t.options (no password): user and hosts in the
 * authority when they fit there, the database as the path, everything else
 * as query parameters, each percent-encoded.
 */
std::string
rebuild_postgresql(const TargetUrl &t)
{
	const std::string host_list = t.option("host");
	const std::string port_list = t.option("port");
	std::vector<std::string> hosts = split(host_list, ',');
	std::vector<std::string> ports = split(port_list, ',');
	bool hosts_in_authority = !host_list.empty();
	for (const std::string &h : hosts) {
		bool name = !h.empty() && std::all_of(h.begin(), h.end(), [](unsigned char c) {
			return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':';
		});
		if (!name)
			hosts_in_authority = false; /* a socket directory, an empty entry, ... */
	}
	bool ports_in_authority =
		hosts_in_authority && !port_list.empty() && ports.size() == hosts.size() &&
		std::all_of(port_list.begin(), port_list.end(),
					[](unsigned char c) { return std::isdigit(c) || c == ','; });

	std::string out = t.scheme + "://";
	if (!t.option("user").empty())
		out += encode(t.option("user"), "") + "@";
	if (hosts_in_authority)
		for (size_t i = 0; i < hosts.size(); i++) {
			if (i > 0)
				out += ",";
			bool v6 = hosts[i].find(':') != std::string::npos;
			out += v6 ? "[" + hosts[i] + "]" : hosts[i];
			if (ports_in_authority && !ports[i].empty())
				out += ":" + ports[i];
		}
	out += "/" + encode(t.option("dbname"), "");
	char sep = '?';
	for (const auto &[keyword, value] : t.options) {
		if (keyword == "user" || keyword == "dbname" || (keyword == "host" && hosts_in_authority) ||
			(keyword == "port" && ports_in_authority))
			continue;
		out += sep + keyword + "=" + encode(value, "/:,@");
		sep = '&';
	}
	return out;
}

void
parse_postgresql(const std::string &input, TargetUrl &t)
{
	std::string error;
	std::vector<std::pair<std::string, std::string>> options = conninfo_options(input, error);
	if (!error.empty())
		bad_url(without_quoted(error));
	for (auto &option : options) {
		if (option.first == "password")
			t.password = std::move(option.second); /* the one libpq would use */
		else
			t.options.push_back(std::move(option));
	}
	if (!t.option("replication").empty())
		bad_url("replication connections are not supported");
	/*
	 * The passphrase of a client key is a secret too, but the URL is stored
	 * and shown as it is: refused rather than kept in clear text.
	 */
	if (!t.option("sslpassword").empty())
		throw Error(kInvalid, "invalid target URL: sslpassword is not accepted")
			.detail("The target's URL is stored and shown without its password only; a key "
					"passphrase in it would be kept in clear text.")
			.hint("Give the server an unencrypted client key file that only its operating "
				  "system user can read (sslkey), or authenticate with a password.");
	std::string dbname = t.option("dbname");
	if (dbname.find('=') != std::string::npos || dbname.find("://") != std::string::npos)
		bad_url("dbname must be the name of a database, not a connection string");
	t.user = t.option("user");
	t.host = t.option("host");
	t.port = t.option("port");
	t.redacted = rebuild_postgresql(t);

	/* What is stored must connect exactly as what was given, but the password. */
	std::vector<std::pair<std::string, std::string>> again = conninfo_options(t.redacted, error);
	if (!error.empty() || again != t.options)
		throw Error("XX000", "could not rebuild the target URL without its password")
			.hint("Write the URL with its password in ?password=, or report the URL's form as a "
				  "bug.");
}

} // namespace

const char *
kind_name(TargetKind kind)
{
	return kind == TargetKind::http ? "http" : "postgresql";
}

std::string
TargetUrl::option(std::string_view keyword) const
{
	for (const auto &[k, v] : options)
		if (k == keyword)
			return v;
	return std::string();
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
	return encode(s, "");
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
	for (char c : t.scheme)
		if (!std::isalpha(static_cast<unsigned char>(c)))
			bad_url("malformed scheme");
	if (t.scheme == "http" || t.scheme == "https")
		t.kind = TargetKind::http;
	else if (t.scheme == "postgresql" || t.scheme == "postgres")
		t.kind = TargetKind::postgresql;
	else
		throw Error(kInvalid, "unsupported target URL scheme \"" + t.scheme + "\"")
			.detail("Supported schemes are http, https, postgresql and postgres.");

	/* Both libraries want the scheme in lower case. */
	std::string input = t.scheme + std::string(url.substr(sep));
	if (t.kind == TargetKind::http)
		parse_http(input, t);
	else
		parse_postgresql(input, t);
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
