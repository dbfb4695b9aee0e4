/*
 * shared_struct.cpp — edgesync's named structs in shared memory
 * (shared_struct.hpp).
 */
#include "core/shared_struct.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

namespace edgesync {

namespace {

constexpr int kMaxStructs = 4;
const SharedStruct *structs[kMaxStructs];
int nstructs = 0;
shmem_request_hook_type previous_request = nullptr;
shmem_startup_hook_type previous_startup = nullptr;

void
request_memory()
{
	if (previous_request != nullptr)
		previous_request();
	for (int i = 0; i < nstructs; i++)
		RequestAddinShmemSpace(structs[i]->size());
}

void
startup_memory()
{
	if (previous_startup != nullptr)
		previous_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	for (int i = 0; i < nstructs; i++) {
		bool found;
		void *memory = ShmemInitStruct(structs[i]->name, structs[i]->size(), &found);
		structs[i]->attach(memory, found);
	}
	LWLockRelease(AddinShmemInitLock);
}

} // namespace

void
request_shared_struct(const SharedStruct *s)
{
	if (nstructs == kMaxStructs)
		elog(ERROR, "edgesync asks for too many shared structs");
	if (nstructs == 0) {
		previous_request = shmem_request_hook;
		shmem_request_hook = request_memory;
		previous_startup = shmem_startup_hook;
		shmem_startup_hook = startup_memory;
	}
	structs[nstructs++] = s;
}

} // namespace edgesync
