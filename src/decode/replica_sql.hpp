/*
 * replica_sql.hpp — the statements a replica is applied with, in plain SQL:
 * nothing of edgesync need be installed there (docs/replica.md, "What a
 * replica needs", is the contract).
 *
 *   setup         once per session: the position table <S>.applied_lsn when
 *                 missing, and whether the role may enter replica mode
 *   guard         first statement of a transaction (of a batch, for the
 *                 shipper): reads the source's recorded LSN into
 *                 edgesync_apply.skip_through and records the commit LSN
 *   condition     in every other statement: its transaction's commit LSN is
 *                 beyond skip_through
 *   resync start  a re-send's batch: apply everything, record nothing
 *   table block   a DO block keeping a replica table in step with the
 *                 hospital's (create, add, rename, drop, retype a column,
 *                 rename the table; or, in check mode, report the first
 *                 difference with the statement that would fix it)
 *
 * The sql format (src/decode), the shipper's connection and re-send
 * (src/ship) use these and nothing else, so that every path applies the
 * same way.  Every name goes through text::append_sql_identifier or, inside
 * the DO blocks' data, a literal; every operator and function is named with
 * its schema, since the applying role's search_path is not ours.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#pragma once

#include "core/text_writer.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgesync::decode::replica {

/* The replica schema when none is given: where edgesync's own table is, if installed. */
constexpr const char *kDefaultSchema = "edgesync";
/* The session settings (a custom prefix: edgesync. is reserved where our library is loaded). */
constexpr const char *kSkipThrough = "edgesync_apply.skip_through";
constexpr const char *kReplicaRole = "edgesync_apply.replica_role";
/* How every guard starts: the shipper finds a transaction's guard by it. */
constexpr std::string_view kGuardStart = "WITH edgesync_guard AS (";

/*
 * The apply condition of a statement of the transaction committed at
 * commit_lsn ("0/1A2B3C8"), without a leading AND: true when the guard found
 * that transaction new.
 */
template <typename Sink>
void
append_apply_condition(Sink &out, std::string_view commit_lsn)
{
	out.push_back('\'');
	out.append(commit_lsn.data(), commit_lsn.size());
	static constexpr std::string_view rest =
		"'::pg_catalog.pg_lsn OPERATOR(pg_catalog.>) "
		"pg_catalog.current_setting('edgesync_apply.skip_through')::pg_catalog.pg_lsn";
	out.append(rest.data(), rest.size());
}

/*
 * Appends s as a SQL string literal without any control character in it: a
 * string holding one is written E'...' with each control character as \xHH
 * (quotes doubled, backslashes doubled), so that a name of the hospital's
 * inside a literal keeps the statement on one clean line, as
 * text::append_sql_identifier keeps it as a token.
 */
template <typename Sink>
void
append_clean_literal(Sink &out, std::string_view s)
{
	bool control = false;
	for (char c : s)
		control |= static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
	if (!control) {
		text::append_sql_literal(out, s);
		return;
	}
	static constexpr char hex[] = "0123456789abcdef";
	out.push_back('E');
	out.push_back('\'');
	for (char c : s) {
		unsigned char u = static_cast<unsigned char>(c);
		if (c == '\'' || c == '\\') {
			out.push_back(c);
			out.push_back(c);
		} else if (u < 0x20 || u == 0x7f) {
			const char esc[4] = {'\\', 'x', hex[u >> 4], hex[u & 0xf]};
			out.append(esc, 4);
		} else
			out.push_back(c);
	}
	out.push_back('\'');
}

/* Once per session, before the first guard: creates <schema>.applied_lsn if missing. */
std::string setup_statement(std::string_view schema);

/* The guard of the transaction (or batch) of source whose last commit is at commit_lsn. */
std::string guard_statement(std::string_view schema, std::string_view source,
							std::string_view commit_lsn);

/* The first statement of each batch of a re-send: every statement applies, nothing is recorded. */
std::string resync_start_statement();

/* "DO $tag$<body>$tag$;" with a tag the body does not contain. */
std::string do_block(std::string_view body);

/* Whether an output row is a guard. */
bool is_guard(std::string_view row);

enum class SchemaMode { kApply, kCheck };

/* A replica table as the hospital's table is at one point of the stream. */
struct TableShape {
	struct Column {
		std::string name;
		std::string type;		 /* as the sql format casts to it (text for a hashed column) */
		int32_t typmod = -1;	 /* the hospital's (for a retype's comparison) */
		bool not_null = false;	 /* false for a redacted column: it never arrives */
		std::string generated;	 /* STORED generation expression, or empty */
		std::string fill;		 /* added here: the value existing rows have (SQL), or empty */
		bool added_here = false; /* added by the change this block follows */
	};
	std::string schema; /* on the replica */
	std::string table;
	std::vector<Column> columns;
	std::vector<std::string> key; /* primary key columns, in order */
};

/* What the hospital did to get to the shape: applied in this order. */
struct TableChange {
	std::optional<std::pair<std::string, std::string>> renamed_from;  /* schema, table */
	std::vector<std::pair<std::string, std::string>> renamed_columns; /* old, new */
	std::vector<std::string> dropped_columns;
	std::vector<std::string> retyped_columns;
};

/*
 * The DO block that brings the replica table to shape (kApply) or stops
 * the apply naming the first difference and its fix (kCheck), under the
 * apply condition of commit_lsn (empty: always).  Either way it refuses a
 * table the applying role could not write: missing privileges, row level
 * security without a policy for it.
 */
std::string table_block(const TableShape &shape, const TableChange &change, SchemaMode mode,
						std::string_view commit_lsn);

} // namespace edgesync::decode::replica
