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
	/* A backslash needs nothing outside the U& form. */
	EXPECT_EQ(ident("a\\b"), "\"a\\b\"");
	EXPECT_EQ(ident("😀 ß"), "\"😀 ß\"");
}

namespace {

/*
 * Reads an identifier token back as PostgreSQL's lexer does ("" is ", and in
 * U&"..." \\ is \ and \XXXX a code point, here always below 0x80); false if
 * it is not one whole token.
 */
bool
read_identifier(std::string_view token, std::string &name)
{
	bool unicode = token.substr(0, 2) == "U&";
	if (unicode)
		token.remove_prefix(2);
	if (token.size() < 2 || token.front() != '"' || token.back() != '"')
		return false;
	token = token.substr(1, token.size() - 2);
	name.clear();
	for (size_t i = 0; i < token.size(); i++) {
		char c = token[i];
		if (c == '"') {
			if (i + 1 >= token.size() || token[i + 1] != '"')
				return false;
			name.push_back('"');
			i++;
		} else if (unicode && c == '\\') {
			if (i + 1 < token.size() && token[i + 1] == '\\') {
				name.push_back('\\');
				i++;
				continue;
			}
			if (i + 4 >= token.size())
				return false;
			name.push_back(
				static_cast<char>(std::stoi(std::string(token.substr(i + 1, 4)), nullptr, 16)));
			i += 4;
		} else
			name.push_back(c);
	}
	return true;
}

} // namespace

TEST(SqlIdentifier, ControlCharactersUseUnicodeEscapes)
{
	EXPECT_EQ(ident("x\nCREATE TABLE pwned(a int);--"),
			  "U&\"x\\000aCREATE TABLE pwned(a int);--\"");
	EXPECT_EQ(ident("a\rb\tc\x7f"), "U&\"a\\000db\\0009c\\007f\"");
	/* In the U& form a backslash is doubled and a quote still is. */
	EXPECT_EQ(ident("\n\\\"'"), "U&\"\\000a\\\\\"\"'\"");
}

TEST(SqlIdentifier, EveryNameStaysOnOneLineAndReadsBack)
{
	for (int c = 1; c < 0x100; c++) {
		std::string name = std::string("a") + static_cast<char>(c) + "\\\"" + static_cast<char>(c);
		std::string out = ident(name);
		for (char o : out)
			EXPECT_FALSE(static_cast<unsigned char>(o) < 0x20 || o == 0x7f) << "byte " << c;
		std::string back;
		EXPECT_TRUE(read_identifier(out, back)) << out;
		EXPECT_EQ(back, name) << "byte " << c;
	}
}

TEST(SqlIdentifier, InsideAStringThePlainForm)
{
	std::string out;
	append_sql_identifier(out, "a\nb\"c\\", IdentifierUse::kInString);
	EXPECT_EQ(out, "\"a\nb\"\"c\\\"");
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
