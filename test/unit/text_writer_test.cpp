/* Unit tests for core/text_writer.hpp: JSON and SQL escaping. */
#include "core/text_writer.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace edgesync::text;

namespace {

std::string
json(std::string_view s)
{
	std::string out;
	append_json_string(out, s);
	return out;
}

std::string
literal(std::string_view s)
{
	std::string out;
	append_sql_literal(out, s);
	return out;
}

std::string
ident(std::string_view s)
{
	std::string out;
	append_sql_identifier(out, s);
	return out;
}

} // namespace

TEST(JsonString, PlainTextIsQuotedOnly)
{
	EXPECT_EQ(json(""), "\"\"");
	EXPECT_EQ(json("Jane Doe"), "\"Jane Doe\"");
}

TEST(JsonString, QuotesAndBackslashes)
{
	EXPECT_EQ(json("say \"hi\""), "\"say \\\"hi\\\"\"");
	EXPECT_EQ(json("C:\\path"), "\"C:\\\\path\"");
}

TEST(JsonString, EveryControlCharacterIsEscaped)
{
	for (int c = 0; c < 0x20; c++) {
		std::string in(1, static_cast<char>(c));
		std::string out = json(in);
		EXPECT_EQ(out.find(static_cast<char>(c), 1), std::string::npos) << "control " << c;
		EXPECT_EQ(out[1], '\\') << "control " << c;
	}
	EXPECT_EQ(json(std::string_view("\0", 1)), "\"\\u0000\"");
	EXPECT_EQ(json("\x1f"), "\"\\u001f\"");
	EXPECT_EQ(json("a\nb\tc\r"), "\"a\\nb\\tc\\r\"");
	EXPECT_EQ(json("\b\f"), "\"\\b\\f\"");
}

TEST(JsonString, NoRawNewlineEverSurvives)
{
	std::string in = "line1\nline2\r\nline3\n";
	EXPECT_EQ(json(in).find('\n'), std::string::npos);
}

TEST(JsonString, Utf8PassesThroughUnchanged)
{
	/* 2-, 3- and 4-byte sequences, and DEL, are valid JSON as they are. */
	std::string in = "M\xC3\xBCller \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 \x7f";
	EXPECT_EQ(json(in), "\"" + in + "\"");
}

TEST(SqlLiteral, DoublesQuotes)
{
	EXPECT_EQ(literal("O'Brien"), "'O''Brien'");
	EXPECT_EQ(literal(""), "''");
	EXPECT_EQ(literal("''"), "''''''");
}

TEST(SqlLiteral, BackslashUsesEscapeStringSyntax)
{
	EXPECT_EQ(literal("a\\b"), "E'a\\\\b'");
	EXPECT_EQ(literal("it's \\ok"), "E'it''s \\\\ok'");
}

TEST(SqlIdentifier, AlwaysQuotedAndDoubled)
{
	EXPECT_EQ(ident("patients"), "\"patients\"");
	EXPECT_EQ(ident("Select"), "\"Select\"");
	EXPECT_EQ(ident("we\"ird"), "\"we\"\"ird\"");
}

namespace {

std::string
one_line(std::string_view s)
{
	std::string out;
	append_sql_literal_one_line(out, s);
	return out;
}

} // namespace

TEST(SqlLiteralOneLine, WithoutLineBreaksSameAsLiteral)
{
	EXPECT_EQ(one_line("it's"), literal("it's"));
	EXPECT_EQ(one_line("a\\b"), literal("a\\b"));
	EXPECT_EQ(one_line(""), "''");
}

TEST(SqlLiteralOneLine, LineBreaksBecomeEscapes)
{
	EXPECT_EQ(one_line("a\nb"), "E'a\\nb'");
	EXPECT_EQ(one_line("a\r\nb"), "E'a\\r\\nb'");
	EXPECT_EQ(one_line("it's\n\\"), "E'it''s\\n\\\\'");
	EXPECT_EQ(one_line("\n"), "E'\\n'");
	EXPECT_EQ(one_line("tab\there\n"), "E'tab\there\\n'");
	std::string out = one_line("x\ny\rz\\'");
	EXPECT_EQ(out.find('\n'), std::string::npos);
	EXPECT_EQ(out.find('\r'), std::string::npos);
}

TEST(Sizes, MatchWhatIsWritten)
{
	const char *cases[] = {"",			"plain",	  "it's",	"a\\b",		"line\nbreak",
						   "cr\r\n'\\", "\x01\x1f\"", "\t\b\f", "😀 ß 中文", "''''"};
	for (const char *c : cases) {
		std::string j, l;
		append_json_string(j, c);
		append_sql_literal_one_line(l, c);
		EXPECT_EQ(json_string_size(c), j.size()) << c;
		EXPECT_EQ(sql_literal_one_line_size(c), l.size()) << c;
	}
}
