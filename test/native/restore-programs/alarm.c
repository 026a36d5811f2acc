/* Signal handlers: SIGALRM (armed every round, interrupts a 2 s nanosleep) and SIGUSR1 both
 * count and print from the handler; SIGUSR2 stays blocked all the time. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile long alarms, usr1s;

static void say(const char *what, long n)
{
	char b[64];
	int k = snprintf(b, sizeof(b), "%s %ld\n", what, n);
	write(1, b, k);
}

static void on_alarm(int s) { say("alarm", ++alarms); }
static void on_usr1(int s) { say("usr1", ++usr1s); }

int main(void)
{
	struct sigaction sa;
	sigset_t m;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	say("ready", 0);
	for (;;) {
		struct timespec ts = { 2, 0 };
		alarm(1);
		nanosleep(&ts, NULL);
	}
}
