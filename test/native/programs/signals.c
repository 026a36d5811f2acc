/* Custom handlers (SIGUSR1 on an alternate stack, SIGTERM ignored) and a blocked-signal mask. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	char msg[32];
	int n = snprintf(msg, sizeof(msg), "got %d\n", sig);
	(void)si;
	(void)uc;
	write(1, msg, (size_t)n);
}

int main(void)
{
	struct sigaction sa;
	sigset_t block;
	stack_t ss = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16, .ss_flags = 0 };

	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGTERM, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	printf("ready handler=%p altstack=%p size=%zu\n", (void *)on_usr1, ss.ss_sp, ss.ss_size);
	for (unsigned long k = 0;; k++) {
		printf("tick %lu\n", k);
		usleep(20000);
	}
}
