/* A pre-fork server: the master listens on a loopback TCP port, forks 2 workers that share the
 * listening socket and answer each connection with "worker PID n\n" (n: that worker's count of
 * answers so far, so its memory is checked too), then waits for them.
 * Prints "ready PORT WORKER1 WORKER2". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void worker(int ls)
{
	unsigned n = 0;
	for (;;) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			continue;
		char buf[64];
		int len = snprintf(buf, sizeof(buf), "worker %d %u\n", getpid(), ++n);
		if (write(c, buf, (size_t)len) != len)
			n--;
		close(c);
	}
}

int main(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
	pid_t w[2];

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 64) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0)
		return 1;
	for (int i = 0; i < 2; i++) {
		w[i] = fork();
		if (w[i] == 0)
			worker(ls);
	}
	printf("ready %u %d %d\n", ntohs(sa.sin_port), w[0], w[1]);
	for (;;) {
		int st;
		pid_t p = wait(&st);
		if (p < 0)
			return 0;
		printf("worker %d exited\n", p);
	}
}
