/*
 * options.cpp — parsing the output plugin's options (see options.hpp).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "decode/options.hpp"

#include <algorithm>
#include <cctype>

namespace edgesync::decode {

namespace {

constexpr const char *kOptionNames[] = {
	"format", "include-transaction", "tables",		"skip-origins",	  "columns",
	"source", "batch-rows",			 "batch-bytes", "replica-schema", "schema-changes"};

std::string
lower(std::string_view s)
{
	std::string out(s);
	for (char &c : out)
		if (c >= 'A' && c <= 'Z')
			c = static_cast<char>(c - 'A' + 'a');
	return out;
}

Error
bad_value(const std::string &name, const std::optional<std::string> &value, std::string detail)
{
	return Error("22023", format("invalid value for option \"%s\": \"%s\"", name.c_str(),
								 value ? value->c_str() : ""))
		.detail(std::move(detail));
}

bool
bool_option(const RawOption &opt)
{
	if (!opt.second)
		return true; /* "-o include-transaction" alone means on */
	std::optional<bool> b = parse_bool(*opt.second);
	if (!b)
		throw bad_value(opt.first, opt.second, "The value must be a boolean (true or false).");
	return *b;
}

const std::string &
required_value(const RawOption &opt)
{
	if (!opt.second)
		throw Error("22023", format("option \"%s\" requires a value", opt.first.c_str()));
	return *opt.second;
}

bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Reads one identifier at text[pos], moving pos past it. */
std::string
read_identifier(std::string_view text, size_t &pos)
{
	std::string out;
	if (pos < text.size() && text[pos] == '"') {
		pos++;
		for (;;) {
			if (pos >= text.size())
				throw Error("22023", "invalid value for option \"tables\"")
					.detail("A quoted name is not closed.");
			if (text[pos] == '"') {
				if (pos + 1 < text.size() && text[pos + 1] == '"') {
					out.push_back('"');
					pos += 2;
					continue;
				}
				pos++;
				break;
			}
			out.push_back(text[pos++]);
		}
		if (out.empty())
			throw Error("22023", "invalid value for option \"tables\"")
				.detail("A quoted name is empty.");
		return out;
	}
	while (pos < text.size() && text[pos] != '.' && text[pos] != ',' && !is_space(text[pos]) &&
		   text[pos] != '"')
		out.push_back(text[pos++]);
	if (out.empty())
		throw Error("22023", "invalid value for option \"tables\"")
			.detail("Each entry must be a schema-qualified table name, like public.patients.");
	return lower(out);
}

/* A whole number in [min, max], written in decimal digits. */
int
int_option(const RawOption &opt, int min, int max)
{
	const std::string &v = required_value(opt);
	long long n = 0;
	bool ok = !v.empty() && v.size() <= 10;
	for (char c : v) {
		ok &= c >= '0' && c <= '9';
		if (ok)
			n = n * 10 + (c - '0');
	}
	if (!ok || n < min || n > max)
		throw bad_value(opt.first, opt.second,
						format("The value must be a whole number from %d to %d.", min, max));
	return static_cast<int>(n);
}

} // namespace

std::optional<bool>
parse_bool(std::string_view text)
{
	std::string v = lower(text);
	if (v == "true" || v == "on" || v == "yes" || v == "1" || v == "t")
		return true;
	if (v == "false" || v == "off" || v == "no" || v == "0" || v == "f")
		return false;
	return std::nullopt;
}

std::vector<QualifiedName>
parse_table_list(std::string_view text)
{
	std::vector<QualifiedName> names;
	size_t pos = 0;
	for (;;) {
		while (pos < text.size() && is_space(text[pos]))
			pos++;
		QualifiedName name;
		name.schema = read_identifier(text, pos);
		if (pos >= text.size() || text[pos] != '.')
			throw Error("22023", "invalid value for option \"tables\"")
				.detail(format("\"%s\" is not schema-qualified; write it as schema.table.",
							   name.schema.c_str()));
		pos++;
		name.table = read_identifier(text, pos);
		while (pos < text.size() && is_space(text[pos]))
			pos++;
		names.push_back(std::move(name));
		if (pos >= text.size())
			return names;
		if (text[pos] != ',')
			throw Error("22023", "invalid value for option \"tables\"")
				.detail("Names are separated by commas; a name has at most two parts.");
		pos++;
	}
}

Options
parse_options(const std::vector<RawOption> &raw)
{
	Options opts;
	std::vector<std::string> seen;

	for (const RawOption &opt : raw) {
		const std::string &name = opt.first;
		if (std::find(std::begin(kOptionNames), std::end(kOptionNames), name) ==
			std::end(kOptionNames))
			throw Error("42704", format("unrecognized edgesync option \"%s\"", name.c_str()))
				.hint("Valid options are format, include-transaction, tables, skip-origins, "
					  "columns, source, batch-rows, batch-bytes, replica-schema and "
					  "schema-changes.");
		if (std::find(seen.begin(), seen.end(), name) != seen.end())
			throw Error("42601", format("option \"%s\" given more than once", name.c_str()));
		seen.push_back(name);

		if (name == "format") {
			std::string v = lower(required_value(opt));
			if (v == "json")
				opts.format = Format::kJson;
			else if (v == "sql")
				opts.format = Format::kSql;
			else
				throw bad_value(name, opt.second, "Valid values are \"json\" and \"sql\".");
		} else if (name == "include-transaction") {
			opts.include_transaction = bool_option(opt);
		} else if (name == "skip-origins") {
			opts.skip_origins = bool_option(opt);
		} else if (name == "columns") {
			std::string v = lower(required_value(opt));
			if (v == "policy")
				opts.columns = ColumnsMode::kPolicy;
			else if (v == "raw")
				opts.columns = ColumnsMode::kRaw;
			else
				throw bad_value(name, opt.second, "Valid values are \"policy\" and \"raw\".");
		} else if (name == "tables") {
			opts.tables = parse_table_list(required_value(opt));
			opts.has_tables = true;
		} else if (name == "source") {
			const std::string &v = required_value(opt);
			if (v.empty() || v.size() > 200)
				throw bad_value(name, opt.second, "A source name has 1 to 200 characters.");
			opts.source = v;
		} else if (name == "batch-rows") {
			opts.batch_rows = int_option(opt, 1, kMaxBatchRows);
		} else if (name == "batch-bytes") {
			opts.batch_bytes = int_option(opt, kMinBatchBytes, kMaxBatchBytes);
		} else if (name == "replica-schema") {
			/* Taken as written, like a quoted identifier: it names a schema on the replica. */
			const std::string &v = required_value(opt);
			if (v.empty() || v.size() > 63)
				throw bad_value(name, opt.second, "A schema name has 1 to 63 bytes.");
			opts.replica_schema = v;
		} else if (name == "schema-changes") {
			std::string v = lower(required_value(opt));
			if (v == "apply")
				opts.schema_changes = SchemaChanges::kApply;
			else if (v == "check")
				opts.schema_changes = SchemaChanges::kCheck;
			else
				throw bad_value(name, opt.second, "Valid values are \"apply\" and \"check\".");
		}
	}
	return opts;
}

} // namespace edgesync::decode
