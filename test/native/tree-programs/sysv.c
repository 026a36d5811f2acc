/* SysV IPC between a parent and its child, for tree capture/restore tests:
 *   a shared memory segment (3 pages, attached by both, then IPC_RMID: it goes with the last
 *   detach), a set of 2 semaphores (0: the parent's turn, 1: the child's), a message queue
 *   holding 2 messages.
 * Ping-pong: the parent waits on semaphore 0, increments the counter in the segment, prints
 * "ping N" and posts semaphore 1; the child waits on 1, increments the counter, posts 0. The
 * parent checks that the counter is the one it expects (the child's increments land in the same
 * memory) and prints "bad ..." otherwise. On SIGUSR1 the parent takes the queued messages and
 * prints "msg TYPE TEXT" for each.
 * First line: "ready PID child=C shm=ID sem=ID msg=ID". */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t want_msgs;
static void on_usr1(int s) { (void)s; want_msgs = 1; }

static void op(int sem, unsigned short n, short d)
{
	struct sembuf b = { n, d, 0 };
	while (semop(sem, &b, 1) < 0)
		;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int shm = shmget(IPC_PRIVATE, 3 * 4096, IPC_CREAT | 0600);
	int sem = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
	int msg = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (shm < 0 || sem < 0 || msg < 0)
		return 1;
	volatile long *counter = shmat(shm, NULL, 0);
	if (counter == (void *)-1)
		return 1;
	shmctl(shm, IPC_RMID, NULL);
	strcpy((char *)counter + 8192, "written before the fork");
	struct { long mtype; char text[32]; } m1 = { 7, "first" }, m2 = { 9, "second" };
	msgsnd(msg, &m1, 6, 0);
	msgsnd(msg, &m2, 7, 0);
	unsigned short init[2] = { 1, 0 };
	semctl(sem, 0, SETALL, init);
	pid_t child = fork();
	if (child == 0) {
		for (;;) {
			op(sem, 1, -1);
			*counter = *counter + 1;
			op(sem, 0, 1);
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	printf("ready %d child=%d shm=%d sem=%d msg=%d\n", getpid(), child, shm, sem, msg);
	long expect = 0;
	for (;;) {
		op(sem, 0, -1);
		if (*counter != expect)
			printf("bad counter %ld, expected %ld\n", *counter, expect);
		if (strcmp((char *)counter + 8192, "written before the fork"))
			printf("bad text\n");
		long n = *counter + 1;
		*counter = n;
		expect = n + 1;
		printf("ping %ld\n", n);
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
		op(sem, 1, 1);
		if (want_msgs) {
			want_msgs = 0;
			struct { long mtype; char text[32]; } r;
			ssize_t got;
			while ((got = msgrcv(msg, &r, sizeof(r.text), 0, IPC_NOWAIT)) >= 0)
				printf("msg %ld %.*s\n", r.mtype, (int)got, r.text);
		}
	}
}
