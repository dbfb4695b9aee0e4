/* Unit tests for core/statement_unit.hpp: the binary-run units of the sql
 * format, as the plugin writes them and the shipper reads them back from a
 * stream of newline-separated rows. */
#include "core/statement_unit.hpp"
#include "ship/batch.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace edgesync;

namespace {

/* A unit as the plugin writes it (decode/sql_runs.cpp, write_binary_run). */
std::string
make_unit(std::string_view statement, const std::vector<std::string> &params)
{
	std::string rest(statement);
	rest.push_back('\0');
	rest.push_back(static_cast<char>(params.size() >> 8));
	rest.push_back(static_cast<char>(params.size()));
	for (const std::string &p : params) {
		char len[4];
		unit::write_u32(len, static_cast<uint32_t>(p.size()));
		rest.append(len, 4);
		rest += p;
	}
	std::string u(1, unit::kMarker);
	char len[4];
	unit::write_u32(len, static_cast<uint32_t>(rest.size()));
	u.append(len, 4);
	return u + rest;
}

} // namespace

TEST(StatementUnit, RoundTripsBinaryParameters)
{
	/* Parameters may hold newlines, zero bytes and the marker itself. */
	std::string a("\x01\n\0\xff", 4), b;
	std::string u = make_unit("INSERT INTO t SELECT pg_catalog.unnest($1::integer[]), $2", {a, b});
	unit::Unit parsed;
	ASSERT_TRUE(unit::parse(u, parsed));
	EXPECT_EQ(parsed.statement, "INSERT INTO t SELECT pg_catalog.unnest($1::integer[]), $2");
	EXPECT_EQ(parsed.statement.data()[parsed.statement.size()], '\0'); /* a C string for libpq */
	ASSERT_EQ(parsed.params.size(), 2u);
	EXPECT_EQ(parsed.params[0], a);
	EXPECT_EQ(parsed.params[1], b);
}

TEST(StatementUnit, MalformedUnitsAreRefused)
{
	std::string u = make_unit("SELECT $1", {"abc"});
	unit::Unit parsed;
	EXPECT_FALSE(unit::parse(u.substr(0, u.size() - 1), parsed)); /* shorter than it says */
	EXPECT_FALSE(unit::parse(u + "x", parsed));					  /* longer */
	std::string no_nul = u;
	no_nul.erase(no_nul.find('\0'), 1);
	no_nul[4] = static_cast<char>(no_nul[4] - 1);
	EXPECT_FALSE(unit::parse(no_nul, parsed));
	std::string too_many = make_unit("SELECT $1", {"abc"});
	too_many[5 + 10] = 2; /* low byte of nparams: two, with one there */
	EXPECT_FALSE(unit::parse(too_many, parsed));
	EXPECT_FALSE(unit::parse("SELECT 1", parsed));
}

TEST(StatementUnit, RowsOfAStreamAreFoundWhateverTheUnitsHold)
{
	std::string u = make_unit("SELECT $1", {std::string("x\ny\n", 4)});
	std::string stream = "BEGIN;\n" + u + "\n" + "COMMIT;\n";
	std::string_view s = stream;
	EXPECT_EQ(unit::row_length(s), 6u);
	s.remove_prefix(7);
	EXPECT_EQ(unit::row_length(s), u.size());
	/* Not all there yet: any prefix of a unit, or of it without its newline. */
	for (size_t n = 0; n <= u.size(); n++)
		EXPECT_EQ(unit::row_length(s.substr(0, n)), unit::kIncomplete) << n;
	s.remove_prefix(u.size() + 1);
	EXPECT_EQ(unit::row_length(s), 7u);
	EXPECT_EQ(unit::row_length("COMMIT;"), unit::kIncomplete);
}

TEST(StatementUnit, ReplicaBodySaysWhetherItHoldsUnits)
{
	using ship::Row;
	std::string guard = "WITH edgesync_guard AS (SELECT 1) INSERT INTO x SELECT '0/10' FROM "
						"edgesync_guard ON CONFLICT (source) DO NOTHING;";
	std::vector<Row> rows = {Row{1, 7, "BEGIN;"}, Row{2, 7, guard}, Row{3, 7, "INSERT 1;"},
							 Row{4, 7, "COMMIT;"}};
	EXPECT_FALSE(ship::replica_batch_body(rows, 4, 0).units);
	std::vector<Row> with_unit = {Row{1, 7, "BEGIN;"}, Row{2, 7, guard},
								  Row{3, 7, make_unit("SELECT $1", {"a"})}, Row{4, 7, "COMMIT;"}};
	with_unit[2].unit = true;
	ship::Body body = ship::replica_batch_body(with_unit, 4, 0);
	EXPECT_TRUE(body.units);
	/* A transaction the replica has already is left out, and its units with it. */
	std::vector<Row> applied = with_unit;
	applied[2].unit = true;
	EXPECT_FALSE(ship::replica_batch_body(applied, 4, 0x10).units);
}
