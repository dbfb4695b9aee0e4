/*
 * guard.cpp — the non-template halves of the C++/PostgreSQL crossings.
 *
 * The functions here that touch setjmp/longjmp keep no C++ objects with
 * destructors in their frames: that is what makes the longjmp safe.
 */
#include "core/guard.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

namespace edgesync {

const char *
PgException::what() const noexcept
{
	return data_ != nullptr && data_->message != nullptr ? data_->message : "PostgreSQL error";
}

void
PgException::discard() noexcept
{
	guard_detail::free_error(data_);
	data_ = nullptr;
}

namespace guard_detail {

/*
 * Frees an error copied by run_catching_pg_error(): all of its memory context.
 * FreeErrorData() alone is not enough: current minor releases' CopyErrorData()
 * also copies filename, funcname, domain, context_domain and message_id, which
 * FreeErrorData() does not free (about 200 bytes an error).
 */
void
free_error(ErrorData *error) noexcept
{
	if (error != nullptr)
		MemoryContextDelete(error->assoc_context);
}

/* malloc, not palloc: we are inside a catch block and must not longjmp. */
static char *
copy_text(const char *text)
{
	return text != nullptr && text[0] != '\0' ? strdup(text) : nullptr;
}

static void
set_error(PendingError &pending, const char *sqlstate, const char *message,
		  const char *detail = nullptr, const char *hint = nullptr)
{
	std::memcpy(pending.sqlstate, sqlstate, 6);
	pending.message = copy_text(message);
	pending.detail = copy_text(detail);
	pending.hint = copy_text(hint);
}

/*
 * Called from a catch(...) block: classify the exception and keep plain
 * copies of what to report.  Must not throw and must not longjmp.
 */
void
capture_current_exception(PendingError &pending) noexcept
{
	try {
		throw;
	} catch (const PgException &e) {
		pending.pg_error = e.data();
	} catch (const Error &e) {
		set_error(pending, e.sqlstate(), e.what(), e.detail_text().c_str(), e.hint_text().c_str());
	} catch (const std::bad_alloc &) {
		set_error(pending, "53200", "out of memory");
	} catch (const std::exception &e) {
		set_error(pending, "XX000", "internal error in edgesync", e.what());
	} catch (...) {
		set_error(pending, "XX000", "internal error in edgesync",
				  "An unknown C++ exception was thrown.");
	}
}

/* Moves a malloc'd string into the current memory context. */
static char *
adopt_text(char *text)
{
	if (text == nullptr)
		return nullptr;
	char *copy = pstrdup(text);
	free(text);
	return copy;
}

/* A string that lives as long as the error being raised. */
static const char *
error_lifetime_copy(const char *text)
{
	return text != nullptr ? MemoryContextStrdup(ErrorContext, text) : nullptr;
}

void
raise(PendingError &pending)
{
	if (pending.pg_error != nullptr) {
		ErrorData *volatile saved = pending.pg_error;

		/*
		 * ReThrowError copies the data onto the error stack, and then ours is
		 * freed; but it copies only the strings FreeErrorData frees, and keeps
		 * the others as pointers: give it copies that live as long as the
		 * error (in ErrorContext, reset once the error is handled).
		 */
		PG_TRY();
		{
			ErrorData *e = saved;
			e->filename = error_lifetime_copy(e->filename);
			e->funcname = error_lifetime_copy(e->funcname);
			e->domain = error_lifetime_copy(e->domain);
			e->context_domain = error_lifetime_copy(e->context_domain);
			e->message_id = error_lifetime_copy(e->message_id);
			ReThrowError(e);
		}
		PG_CATCH();
		{
			free_error(saved);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}

	char *message = adopt_text(pending.message);
	char *detail = adopt_text(pending.detail);
	char *hint = adopt_text(pending.hint);
	const char *s = pending.sqlstate;

	ereport(ERROR, (errcode(MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4])),
					errmsg_internal("%s", message ? message : "internal error in edgesync"),
					detail ? errdetail_internal("%s", detail) : 0, hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/*
 * Runs body under PG_TRY.  Returns nullptr, or a copy of the error it raised,
 * with PostgreSQL's error state flushed.  The copy has a memory context of
 * its own under TopMemoryContext (no memory context reset during C++
 * unwinding can free it), which free_error() deletes.
 */
ErrorData *
run_catching_pg_error(void (*body)(void *), void *arg) noexcept
{
	MemoryContext caller_context = CurrentMemoryContext;
	ErrorData *volatile copied = nullptr;

	PG_TRY();
	{
		body(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(
			AllocSetContextCreate(TopMemoryContext, "edgesync error", ALLOCSET_SMALL_SIZES));
		copied = CopyErrorData();
		MemoryContextSwitchTo(caller_context);
		FlushErrorState();
	}
	PG_END_TRY();
	return copied;
}

} // namespace guard_detail
} // namespace edgesync
