/*
 * memory.hpp — RAII for PostgreSQL memory contexts.
 *
 * Per-row and per-change work allocates in a context that is reset after
 * each unit of work, so memory use stays flat however long a session runs.
 * These two classes make that the default shape in C++ code: the context is
 * deleted, and the previous CurrentMemoryContext restored, on every exit path
 * including exceptions.
 */
#pragma once

#include "core/guard.hpp"
#include "core/postgres.hpp"

namespace edgesync {

/* Switches CurrentMemoryContext for the lifetime of the object. */
class MemoryContextSwitch {
  public:
	explicit MemoryContextSwitch(MemoryContext target) noexcept
		: previous_(MemoryContextSwitchTo(target))
	{}
	~MemoryContextSwitch() { MemoryContextSwitchTo(previous_); }
	MemoryContextSwitch(const MemoryContextSwitch &) = delete;
	MemoryContextSwitch &operator=(const MemoryContextSwitch &) = delete;

  private:
	MemoryContext previous_;
};

/*
 * A child memory context owned by a C++ object: deleted with it.  name must be
 * a string literal (PostgreSQL keeps the pointer, not a copy).
 */
class OwnedMemoryContext {
  public:
	OwnedMemoryContext(MemoryContext parent, const char *name)
		: context_(pg_call(
			  [&] { return AllocSetContextCreateInternal(parent, name, ALLOCSET_DEFAULT_SIZES); }))
	{}
	~OwnedMemoryContext()
	{
		if (context_ != nullptr)
			MemoryContextDelete(context_);
	}
	OwnedMemoryContext(const OwnedMemoryContext &) = delete;
	OwnedMemoryContext &operator=(const OwnedMemoryContext &) = delete;

	MemoryContext get() const noexcept { return context_; }
	void reset() noexcept { MemoryContextReset(context_); }

  private:
	MemoryContext context_;
};

} // namespace edgesync
