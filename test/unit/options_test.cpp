/* Unit tests for decode/options.hpp: the output plugin's option parsing. */
#include "decode/options.hpp"

#include <gtest/gtest.h>

using namespace edgesync::decode;

namespace {

Options
parse(std::vector<RawOption> raw)
{
	return parse_options(raw);
}

std::string
sqlstate_of(std::vector<RawOption> raw)
{
	try {
		parse_options(raw);
	} catch (const edgesync::Error &e) {
		return e.sqlstate();
	}
	return "none";
}

} // namespace

TEST(Options, Defaults)
{
	Options o = parse({});
	EXPECT_EQ(o.format, Format::kJson);
	EXPECT_FALSE(o.include_transaction);
	EXPECT_FALSE(o.skip_origins);
	EXPECT_EQ(o.columns, ColumnsMode::kPolicy);
	EXPECT_FALSE(o.has_tables);
	EXPECT_FALSE(o.source.has_value());
}

TEST(Options, EveryOption)
{
	Options o = parse({{"format", "SQL"},
					   {"include-transaction", std::nullopt},
					   {"skip-origins", "on"},
					   {"columns", "raw"},
					   {"tables", "public.a, \"My Schema\".\"B\"\"x\""},
					   {"source", "hospital-1"}});
	EXPECT_EQ(o.format, Format::kSql);
	EXPECT_TRUE(o.include_transaction);
	EXPECT_TRUE(o.skip_origins);
	EXPECT_EQ(o.columns, ColumnsMode::kRaw);
	ASSERT_TRUE(o.has_tables);
	ASSERT_EQ(o.tables.size(), 2u);
	EXPECT_EQ(o.tables[0], (QualifiedName{"public", "a"}));
	EXPECT_EQ(o.tables[1], (QualifiedName{"My Schema", "B\"x"}));
	EXPECT_EQ(*o.source, "hospital-1");
}

TEST(Options, Booleans)
{
	for (const char *t : {"true", "TRUE", "on", "yes", "1", "t"})
		EXPECT_EQ(parse_bool(t), std::optional<bool>(true)) << t;
	for (const char *f : {"false", "Off", "no", "0", "f"})
		EXPECT_EQ(parse_bool(f), std::optional<bool>(false)) << f;
	EXPECT_FALSE(parse_bool("maybe").has_value());
	EXPECT_FALSE(parse_bool("").has_value());
}

TEST(Options, UnquotedNamesAreLowerCased)
{
	auto names = parse_table_list("Public.Patients");
	ASSERT_EQ(names.size(), 1u);
	EXPECT_EQ(names[0], (QualifiedName{"public", "patients"}));
}

TEST(Options, Errors)
{
	EXPECT_EQ(sqlstate_of({{"fromat", "json"}}), "42704");
	EXPECT_EQ(sqlstate_of({{"format", "xml"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"format", std::nullopt}}), "22023");
	EXPECT_EQ(sqlstate_of({{"columns", "all"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"include-transaction", "maybe"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"tables", "patients"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"tables", "a.b.c"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"tables", "a.b,"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"tables", "\"a.b"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"tables", "\"\".b"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"source", ""}}), "22023");
	EXPECT_EQ(sqlstate_of({{"format", "json"}, {"format", "sql"}}), "42601");
}

TEST(Options, BatchLimits)
{
	Options d = parse({});
	EXPECT_EQ(d.batch_rows, kDefaultBatchRows);
	EXPECT_EQ(d.batch_bytes, kDefaultBatchBytes);
	Options o = parse({{"batch-rows", "1"}, {"batch-bytes", "1024"}});
	EXPECT_EQ(o.batch_rows, 1);
	EXPECT_EQ(o.batch_bytes, 1024);
	EXPECT_EQ(parse({{"batch-rows", "100000"}}).batch_rows, 100000);
	for (const char *bad : {"0", "-1", "100001", "1e3", " 5", "", "99999999999"})
		EXPECT_EQ(sqlstate_of({{"batch-rows", bad}}), "22023") << bad;
	EXPECT_EQ(sqlstate_of({{"batch-rows", std::nullopt}}), "22023");
	EXPECT_EQ(sqlstate_of({{"batch-bytes", "1023"}}), "22023");
	EXPECT_EQ(sqlstate_of({{"batch-bytes", "268435457"}}), "22023");
}

TEST(Options, ReplicaSchemaAndSchemaChanges)
{
	Options d = parse({});
	EXPECT_FALSE(d.replica_schema.has_value());
	EXPECT_EQ(d.schema_changes, SchemaChanges::kApply);
	Options o = parse({{"replica-schema", "Hospital A"}, {"schema-changes", "Check"}});
	EXPECT_EQ(*o.replica_schema, "Hospital A"); /* as written: it names a schema on the replica */
	EXPECT_EQ(o.schema_changes, SchemaChanges::kCheck);
	EXPECT_EQ(parse({{"schema-changes", "apply"}}).schema_changes, SchemaChanges::kApply);
	EXPECT_EQ(sqlstate_of({{"replica-schema", ""}}), "22023");
	EXPECT_EQ(sqlstate_of({{"replica-schema", std::string(64, 'x')}}), "22023");
	EXPECT_EQ(sqlstate_of({{"replica-schema", std::nullopt}}), "22023");
	EXPECT_EQ(sqlstate_of({{"schema-changes", "off"}}), "22023");
}

TEST(Options, ErrorNamesTheOption)
{
	try {
		parse_options({{"columns", "all"}});
		FAIL();
	} catch (const edgesync::Error &e) {
		EXPECT_NE(std::string(e.what()).find("\"columns\""), std::string::npos);
		EXPECT_NE(e.detail_text().find("policy"), std::string::npos);
	}
}
