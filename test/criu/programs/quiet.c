/*
 * A process whose state holds still while two checkpointers look at it: threads blocked in
 * pthread_cond_wait, the main thread in pause(), a pipe, a unix socketpair and a listening
 * TCP socket on 127.0.0.1, a heap string and a marker in .data. Prints "ready PID PORT".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char marker[64] = "CKIMG-CRIU-MARKER-quiet";
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
volatile char *heap_note;

static void *waiter(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;)
		pthread_cond_wait(&never, &lock);
	return NULL;
}

int main(void)
{
	int p[2], sv[2];
	if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 1;
	if (write(p[1], "in-the-pipe", 11) != 11 || write(sv[0], "in-the-socket", 13) != 13)
		return 1;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4) || getsockname(ls, (struct sockaddr *)&a, &al))
		return 1;
	char *h = malloc(4096);
	snprintf(h, 4096, "heap-note-%s", marker);
	heap_note = h;
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, waiter, NULL);
	usleep(100000);
	printf("ready %d %d\n", getpid(), ntohs(a.sin_port));
	fflush(stdout);
	for (;;)
		pause();
}
