/* Unit tests for core/error.hpp: message formatting and SQLSTATE checks. */
#include "core/error.hpp"

#include <gtest/gtest.h>

#include <string>

using edgesync::Error;

TEST(Format, FormatsLikePrintf)
{
	EXPECT_EQ(edgesync::format("table \"%s\" has %d columns", "patients", 7),
			  "table \"patients\" has 7 columns");
	EXPECT_EQ(edgesync::format("%s", ""), "");
	std::string longer(5000, 'x');
	EXPECT_EQ(edgesync::format("%s!", longer.c_str()).size(), 5001u);
}

TEST(Error, CarriesSqlstateMessageDetailHint)
{
	Error e = Error("22023", "invalid value for option \"format\"")
				  .detail("Valid values are \"json\" and \"sql\".")
				  .hint("Check the slot options.");
	EXPECT_STREQ(e.sqlstate(), "22023");
	EXPECT_STREQ(e.what(), "invalid value for option \"format\"");
	EXPECT_EQ(e.detail_text(), "Valid values are \"json\" and \"sql\".");
	EXPECT_EQ(e.hint_text(), "Check the slot options.");
}

TEST(Error, MalformedSqlstateBecomesInternalError)
{
	EXPECT_STREQ(Error("2202", "x").sqlstate(), "XX000");
	EXPECT_STREQ(Error("2202a", "x").sqlstate(), "XX000");
	EXPECT_STREQ(Error(nullptr, "x").sqlstate(), "XX000");
	EXPECT_STREQ(Error("40001", "x").sqlstate(), "40001");
}
