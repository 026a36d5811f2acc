/* A SIGTRAP handler survives capture and restore (CRIU zdtm sigtrap01): capture must not
 * force a SIGTRAP on the target (that resets a blocked signal's handler to SIG_DFL). */
#include <signal.h>
#include "zdtm.h"

static volatile sig_atomic_t traps;

static void on_trap(int sig)
{
	(void)sig;
	traps++;
}

int main(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_trap;
	sigaction(SIGTRAP, &sa, NULL);
	ready();
	wait_check();
	raise(SIGTRAP);
	if (traps != 1)
		fail("the SIGTRAP handler was not called (%d)", (int)traps);
	sigaction(SIGTRAP, NULL, &sa);
	if (sa.sa_handler != on_trap)
		fail("SIGTRAP handler is %p", (void *)sa.sa_handler);
	return finish();
}
