/*
 * membarrier(2) registrations (zdtm membarrier): PRIVATE_EXPEDITED and GLOBAL_EXPEDITED (and
 * PRIVATE_EXPEDITED_RSEQ where the kernel has it) are registered, SYNC_CORE is not. After
 * restore the registrations are the same (MEMBARRIER_CMD_GET_REGISTRATIONS), the registered
 * barriers work and the unregistered one still fails with EPERM.
 * Needs Linux >= 6.3 (GET_REGISTRATIONS); prints "SKIP" before "ready" otherwise.
 */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <sys/syscall.h>

#include "zdtm.h"

#define GET_REGISTRATIONS (1 << 9)

static long mb(int cmd)
{
	return syscall(__NR_membarrier, cmd, 0, 0);
}

int main(void)
{
	long before, after;

	if (mb(GET_REGISTRATIONS) < 0) {
		printf("SKIP\n");
		return 0;
	}
	if (mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) || mb(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
		fail("register: %s", strerror(errno));
	mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ);     /* (CONFIG_RSEQ) */
	before = mb(GET_REGISTRATIONS);
	ready();
	wait_check();
	after = mb(GET_REGISTRATIONS);
	if (after != before)
		fail("registrations %#lx, were %#lx", after, before);
	if (mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		fail("PRIVATE_EXPEDITED barrier: %s", strerror(errno));
	if (mb(MEMBARRIER_CMD_GLOBAL_EXPEDITED))
		fail("GLOBAL_EXPEDITED barrier: %s", strerror(errno));
	if (mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) != -1 || errno != EPERM)
		fail("SYNC_CORE barrier without its registration did not fail with EPERM");
	return finish();
}
