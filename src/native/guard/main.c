/*
 * ckimg-guard [--hold SIG,SIG,…] launch -- PROGRAM ARGS…
 * ckimg-guard [--hold SIG,SIG,…] restore -- RESTORER IMG ARGS…
 * ckimg-guard shield -- PROGRAM ARGS…   (PROGRAM with the job-wide signals blocked; see shield())
 *
 * The job's keeper under `ckimg run`. It starts the job (or has ckimg-restore rebuild it and
 * hand it over stopped, then adopts it as child subreaper) and stays its ptrace tracer, so that a signal meant to end the
 * job — a scheduler sends SIGTERM to every process of a job at requeue or preemption — is held
 * back until `ckimg run` has written a checkpoint, instead of killing the program first.
 *
 * Control: fd 3 is a socket to `ckimg run`. Events (one line each, guard → run):
 *   running PID          the job runs (launched, or restored and adopted)
 *   held SIG PID         SIG meant for PID (a job process) was intercepted and suppressed
 *   released / attached  answers to the commands below
 *   exit CODE | signal SIG   the job's main process ended (the guard exits after this line)
 *   error TEXT           the job could not be started (the guard exits 2)
 * Commands (run → guard):
 *   release              detach from every job thread (a capture is about to seize them)
 *   attach               trace the job again after a capture that let it run on
 *   watch CAPPID [NICE]  (after release) capturer CAPPID will seize the job and let it run on:
 *                        trace the job again as soon as it has, and renice the capturer's
 *                        threads to NICE for the rest of its work (no answer; attach follows)
 *   deliver SIG PID      send SIG to PID, letting it through once
 *   kill                 SIGKILL the job
 * Signals not in --hold pass through untouched; group-stops are kept (PTRACE_LISTEN).
 * The guard ignores the signals a scheduler or a terminal sends to the whole job.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard.h"

#define CTL_FD 3

static struct guard g;

void guard_event(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(CTL_FD, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += w;
	}
}

static int parse_hold(const char *list)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int sig = atoi(t);
		if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP) {
			fprintf(stderr, "ckimg-guard: --hold: not a signal number that can be held: '%s'\n", t);
			return -1;
		}
		g.hold[sig] = 1;
	}
	return 0;
}

/* The guard itself must outlive every signal the job's processes get from outside. */
static void ignore_job_signals(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE, SIGALRM, SIGXCPU };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_IGN);
}

/*
 * shield -- PROGRAM ARGS…: run PROGRAM (ckimg run's capturer) with the signals a scheduler or a
 * terminal sends to every process of the job blocked — pending, never acted on — so that a
 * SIGTERM to everyone does not abort the checkpoint it is taking; ckimg run acts on its own.
 */
static int shield(char **argv)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGTSTP, SIGTTIN, SIGTTOU, SIGALRM, SIGXCPU };
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	execv(argv[0], argv);
	fprintf(stderr, "ckimg-guard: %s: %s\n", argv[0], strerror(errno));
	return 127;
}

/* What a fresh program expects: default dispositions (and, with unblock, nothing blocked). */
static void reset_signals(int unblock)
{
	sigset_t none;

	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigemptyset(&none);
	if (unblock)
		sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * launch: the child stops itself, is seized, then execs — nothing of the program runs untraced.
 * Until it is traced it blocks every signal: one sent to the job meanwhile (a scheduler's
 * SIGTERM to every process, right after the start) stays pending, and once the child unblocks
 * it stops for the guard like any later one, instead of killing the child untraced.
 */
static int start_launch(char **argv)
{
	sigset_t all, none;
	int st;
	pid_t pid;

	sigfillset(&all);
	sigemptyset(&none);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &all, NULL);
		reset_signals(0);
		raise(SIGSTOP);
		sigprocmask(SIG_SETMASK, &none, NULL);   /* traced now */
		execvp(argv[0], argv);
		fprintf(stderr, "ckimg run: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st))
		return -ECHILD;
	g.main_pid = pid;
	if (guard_seize(&g, pid) < 0)
		return -errno;
	kill(pid, SIGCONT);
	return 0;
}

/*
 * "mask PID TID HEX" and "stopped PID" lines from ckimg-restore --hand-over (after the PID
 * line, up to "end"): the masks to set on the job's threads. Returns how many; -1 when the
 * text has no "end" (the restorer did not hand the job over).
 */
static ssize_t parse_hand_over(char *text, struct guard_mask *m, size_t max)
{
	size_t n = 0;
	int ended = 0, pid, tid;
	unsigned long long mask;
	char *save = NULL;

	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (sscanf(l, "mask %d %d %llx", &pid, &tid, &mask) == 3 && n < max)
			m[n++] = (struct guard_mask){ .pid = pid, .tid = tid, .mask = mask };
		else if (sscanf(l, "stopped %d", &pid) == 1)
			for (size_t i = 0; i < n; i++)
				m[i].stopped |= m[i].pid == pid;
		else if (!strcmp(l, "end"))
			ended = 1;
	}
	return ended ? (ssize_t)n : -1;
}

/*
 * restore: ckimg-restore --detach --hand-over rebuilds the job, lets it go stopped with every
 * signal blocked, says its PID and masks and exits; as subreaper we inherit the job, seize it,
 * set its masks and continue it (guard_adopt_stopped). A signal sent to the job at any time
 * meanwhile stays pending, then is held like any other: no window where the job runs untraced.
 */
static int start_restore(char **argv)
{
	static char buf[GUARD_MAX_TASKS * 48];       /* a "mask PID TID HEX" line per thread */
	static struct guard_mask masks[GUARD_MAX_TASKS];
	int pfd[2], st, adopted = -1;
	char fdarg[16], **av, *body;
	size_t n = 0, argc = 0;
	ssize_t nmask;
	pid_t rpid, pid;

	while (argv[argc])
		argc++;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	av = calloc(argc + 6, sizeof(*av));
	if (!av)
		return -ENOMEM;
	memcpy(av, argv, argc * sizeof(*av));
	snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
	av[argc++] = "--detach";
	av[argc++] = "--hand-over";
	av[argc++] = "--pid-fd";
	av[argc++] = fdarg;
	rpid = fork();
	if (rpid < 0)
		return -errno;
	if (rpid == 0) {
		reset_signals(1);
		fcntl(pfd[1], F_SETFD, 0);
		execv(av[0], av);
		fprintf(stderr, "ckimg run: %s: %s\n", av[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	/* up to "end" (not EOF: the restorer has exited by then, but who knows what else holds
	 * the pipe), or EOF when it failed */
	for (;;) {
		ssize_t r = read(pfd[0], buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
		buf[n] = 0;
		if (strstr(buf, "\nend\n") || n == sizeof(buf) - 1)
			break;
	}
	close(pfd[0]);
	buf[n] = 0;
	pid = strchr(buf, '\n') ? atoi(buf) : 0;
	body = strchr(buf, '\n');
	nmask = body ? parse_hand_over(body + 1, masks, GUARD_MAX_TASKS) : -1;
	if (pid > 0 && nmask >= 0) {
		g.main_pid = pid;
		adopted = guard_adopt_stopped(&g, masks, (size_t)nmask);
	}
	while (waitpid(rpid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || pid <= 0 || nmask < 0)
		return -ECANCELED;
	if (adopted < 0) {
		/* stopped with every signal blocked, and not ours: it must not stay so */
		guard_end_job(&g);
		return -ESRCH;
	}
	return 0;
}

/*
 * After the end line: stay until ckimg run has read it and hung up. Exiting at once would race
 * with a command it is writing meanwhile (a capture's `watch`): its write fails with EPIPE,
 * and Node then drops the socket with our end line still unread in it.
 */
static void await_hangup(void)
{
	char buf[256];

	for (;;) {
		struct pollfd p = { CTL_FD, POLLIN, 0 };
		int n = poll(&p, 1, 10000);     /* bounded: a client that never hangs up */
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || read(CTL_FD, buf, sizeof(buf)) <= 0)
			return;
	}
}

static int handle_command(char *line)
{
	int sig, pid;

	if (!strcmp(line, "release")) {
		guard_release(&g);
		guard_event("released");
	} else if (!strcmp(line, "attach")) {
		g.watch = 0;
		guard_seize_job(&g);
		guard_event("attached");
	} else if (sscanf(line, "watch %d %d", &pid, &sig) >= 1 && pid > 0) {
		g.watch = pid;
		g.watch_seen = 0;
		g.watch_nice = sscanf(line, "watch %d %d", &pid, &sig) == 2 && sig > 0 && sig < 20 ? sig : 0;
	} else if (sscanf(line, "deliver %d %d", &sig, &pid) == 2 && sig > 0 && sig < NSIG) {
		guard_deliver(&g, pid, sig);
	} else if (!strcmp(line, "kill")) {
		guard_kill_job(&g);
	} else {
		fprintf(stderr, "ckimg-guard: unknown command '%s'\n", line);
	}
	return 0;
}

int main(int argc, char **argv)
{
	char cmdbuf[512];
	size_t cmdlen = 0;
	sigset_t chld;
	int i = 1, err, sfd;
	const char *mode;

	if (argc > 3 && !strcmp(argv[1], "shield") && !strcmp(argv[2], "--"))
		return shield(argv + 3);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--hold") && i + 1 < argc) {
			if (parse_hold(argv[++i]))
				return 2;
		} else {
			break;
		}
	}
	if (i + 2 >= argc || strcmp(argv[i + 1], "--") || (strcmp(argv[i], "launch") && strcmp(argv[i], "restore"))) {
		fprintf(stderr, "usage: ckimg-guard [--hold SIG,…] launch|restore -- ARGV…\n");
		return 2;
	}
	if (fcntl(CTL_FD, F_SETFD, FD_CLOEXEC) < 0) {
		fprintf(stderr, "ckimg-guard: fd %d (control socket) is not open\n", CTL_FD);
		return 2;
	}
	mode = argv[i];
	g.debug = getenv("CKIMG_DEBUG") && !strcmp(getenv("CKIMG_DEBUG"), "1");
	ignore_job_signals();
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

	err = !strcmp(mode, "launch") ? start_launch(argv + i + 2) : start_restore(argv + i + 2);
	if (err) {
		guard_event("error %s", err == -ECANCELED ? "the restorer failed" : strerror(-err));
		return 2;
	}
	guard_event("running %d", g.main_pid);

	for (;;) {
		struct pollfd p[2] = { { CTL_FD, POLLIN, 0 }, { sfd, POLLIN, 0 } };
		if (guard_reap(&g))
			break;
		/* watching a capture: look at the job's tracer every 2 ms */
		if (poll(p, 2, guard_watch_step(&g) ? 2 : -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) > 0)
				;
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			ssize_t r = read(CTL_FD, cmdbuf + cmdlen, sizeof(cmdbuf) - 1 - cmdlen);
			if (r <= 0) {
				/* ckimg run is gone (its end of fd 3 closed, even when it was killed): the job
				 * goes with it — nobody would checkpoint it, and it would run on unguarded */
				guard_end_job(&g);
				return 2;
			}
			cmdlen += r;
			cmdbuf[cmdlen] = 0;
			char *nl;
			while ((nl = strchr(cmdbuf, '\n'))) {
				*nl = 0;
				handle_command(cmdbuf);
				cmdlen -= nl + 1 - cmdbuf;
				memmove(cmdbuf, nl + 1, cmdlen + 1);
			}
			if (cmdlen == sizeof(cmdbuf) - 1)
				cmdlen = 0;
		}
	}
	/* the main process ended: the job's other processes end with it, reaped before we say so */
	guard_end_job(&g);
	if (WIFSIGNALED(g.main_status))
		guard_event("signal %d", WTERMSIG(g.main_status));
	else
		guard_event("exit %d", WEXITSTATUS(g.main_status));
	await_hangup();
	return 0;
}
