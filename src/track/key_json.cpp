/*
 * key_json.cpp — reading a primary key's JSON back (see key_json.hpp).
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#include "track/key_json.hpp"

namespace edgesync::track {

namespace {

struct Reader {
	const char *p;
	const char *end;
	char *out; /* next free byte of scratch */

	void skip_space()
	{
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
	}

	bool take(char c)
	{
		skip_space();
		if (p == end || *p != c)
			return false;
		p++;
		return true;
	}

	static int hex_digit(char c)
	{
		if (c >= '0' && c <= '9')
			return c - '0';
		if (c >= 'a' && c <= 'f')
			return c - 'a' + 10;
		if (c >= 'A' && c <= 'F')
			return c - 'A' + 10;
		return -1;
	}

	/* A JSON string, unescaped into scratch. */
	bool string(std::string_view *result)
	{
		if (!take('"'))
			return false;
		char *start = out;
		while (p < end && *p != '"') {
			unsigned char c = static_cast<unsigned char>(*p);
			if (c < 0x20)
				return false;
			if (c != '\\') {
				*out++ = *p++;
				continue;
			}
			if (++p == end)
				return false;
			switch (*p++) {
			case '"':
				*out++ = '"';
				break;
			case '\\':
				*out++ = '\\';
				break;
			case '/':
				*out++ = '/';
				break;
			case 'b':
				*out++ = '\b';
				break;
			case 'f':
				*out++ = '\f';
				break;
			case 'n':
				*out++ = '\n';
				break;
			case 'r':
				*out++ = '\r';
				break;
			case 't':
				*out++ = '\t';
				break;
			case 'u': {
				if (end - p < 4)
					return false;
				int code = 0;
				for (int i = 0; i < 4; i++) {
					int d = hex_digit(p[i]);
					if (d < 0)
						return false;
					code = code * 16 + d;
				}
				/* \u0000 is no text character; beyond ASCII the server's encoding would decide. */
				if (code == 0 || code > 0x7f)
					return false;
				*out++ = static_cast<char>(code);
				p += 4;
				break;
			}
			default:
				return false;
			}
		}
		if (p == end)
			return false;
		p++; /* the closing quote */
		*result = std::string_view(start, static_cast<size_t>(out - start));
		return true;
	}

	/* A number, true, false or null: its text, up to the next delimiter. */
	bool literal(std::string_view *result)
	{
		skip_space();
		const char *start = p;
		while (p < end && *p != ',' && *p != '}' && *p != ' ' && *p != '\t' && *p != '\n' &&
			   *p != '\r') {
			if (*p == '"' || *p == '{' || *p == '[' || *p == ']' || *p == ':')
				return false;
			p++;
		}
		if (p == start)
			return false;
		*result = std::string_view(start, static_cast<size_t>(p - start));
		if (*result == "true" || *result == "false" || *result == "null")
			return true;
		/* A JSON number: -?digits[.digits][e[+-]digits] */
		const char *q = start;
		if (q < p && *q == '-')
			q++;
		const char *digits = q;
		while (q < p && *q >= '0' && *q <= '9')
			q++;
		if (q == digits || (*digits == '0' && q - digits > 1))
			return false;
		if (q < p && *q == '.') {
			const char *fraction = ++q;
			while (q < p && *q >= '0' && *q <= '9')
				q++;
			if (q == fraction)
				return false;
		}
		if (q < p && (*q == 'e' || *q == 'E')) {
			q++;
			if (q < p && (*q == '+' || *q == '-'))
				q++;
			const char *exponent = q;
			while (q < p && *q >= '0' && *q <= '9')
				q++;
			if (q == exponent)
				return false;
		}
		return q == p;
	}
};

} // namespace

int
parse_key_json(std::string_view text, char *scratch, KeyMember *members, int max) noexcept
{
	Reader r{text.data(), text.data() + text.size(), scratch};
	if (!r.take('{'))
		return -1;
	int n = 0;
	r.skip_space();
	if (r.p < r.end && *r.p == '}')
		r.p++;
	else
		for (;;) {
			if (n == max)
				return -1;
			KeyMember &m = members[n++];
			if (!r.string(&m.name) || !r.take(':'))
				return -1;
			r.skip_space();
			if (r.p < r.end && *r.p == '"') {
				if (!r.string(&m.value))
					return -1;
				m.is_string = true;
				m.is_null = false;
			} else {
				if (!r.literal(&m.value))
					return -1;
				m.is_string = false;
				m.is_null = m.value == "null";
			}
			if (r.take(','))
				continue;
			if (!r.take('}'))
				return -1;
			break;
		}
	r.skip_space();
	return r.p == r.end ? n : -1;
}

} // namespace edgesync::track
