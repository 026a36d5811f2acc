/*
 * Credentials and prctl state per process and per thread (CRIU zdtm groups, caps00,
 * sched_policy00, sched_prio00, pdeath_sig, thp_disable, seccomp_no_new_privs): supplementary
 * groups, capabilities (bounding set, effective/permitted/inheritable, ambient), securebits,
 * scheduler policy/priority/nice per thread, timer slack per thread, no_new_privs in one
 * thread, pdeathsig, child subreaper, THP-disable, dumpable, oom_score_adj.
 * With argument "nonroot" the process also moves to uid/gid 1000 keeping its capabilities.
 */
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include "zdtm.h"

#define SECBIT_NO_SETUID_FIXUP_ 0x4

struct sattr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

static volatile pid_t worker_tid;
static volatile int phase;      /* 1: worker set up, 2: check, 3: worker checked */

struct tstate { uint64_t slack; int nnp; uint32_t policy, prio; int nice; };
static struct tstate want_main, want_worker;

static void caps(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	syscall(SYS_capget, &h, d);
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	*inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
}

static int set_caps(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
					       { (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) } };
	return (int)syscall(SYS_capset, &h, d);
}

static struct tstate read_tstate(void)
{
	struct tstate t;
	struct sattr a = { .size = sizeof(a) };
	t.slack = (uint64_t)prctl(PR_GET_TIMERSLACK);
	t.nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0);
	t.policy = a.policy;
	t.prio = a.priority;
	t.nice = a.nice;
	return t;
}

static void compare(const char *who, struct tstate got, struct tstate want)
{
	if (got.slack != want.slack)
		fail("%s: timer slack %llu, was %llu", who, (unsigned long long)got.slack, (unsigned long long)want.slack);
	if (got.nnp != want.nnp)
		fail("%s: no_new_privs %d, was %d", who, got.nnp, want.nnp);
	if (got.policy != want.policy || got.prio != want.prio || got.nice != want.nice)
		fail("%s: sched %u/%u/%d, was %u/%u/%d", who, got.policy, got.prio, got.nice, want.policy, want.prio, want.nice);
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = (pid_t)syscall(SYS_gettid);
	prctl(PR_SET_TIMERSLACK, 777777);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	struct sched_param sp = { .sched_priority = 3 };
	if (sched_setscheduler(0, SCHED_RR, &sp))
		fail("SCHED_RR: %s", strerror(errno));
	want_worker = read_tstate();
	phase = 1;
	while (phase < 2)
		usleep(5000);
	compare("worker", read_tstate(), want_worker);
	phase = 3;
	return NULL;
}

int main(int argc, char **argv)
{
	int nonroot = argc > 1 && !strcmp(argv[1], "nonroot");
	gid_t groups[3] = { 1234, 5678, 42 }, got[16];
	uint64_t eff, prm, inh, eff2, prm2, inh2;
	pthread_t th;
	FILE *f;

	if (setgroups(3, groups))
		fail("setgroups: %s", strerror(errno));
	gid_t had[16];
	int nhad = getgroups(16, had);     /* the kernel keeps them sorted */
	f = fopen("/proc/self/oom_score_adj", "w");
	fprintf(f, "321\n");
	fclose(f);
	prctl(PR_SET_TIMERSLACK, 123456);
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	setpriority(PRIO_PROCESS, 0, 3);
	struct sched_param sp0 = { 0 };
	sched_setscheduler(0, SCHED_BATCH, &sp0);

	pthread_create(&th, NULL, worker, NULL);
	while (phase < 1)
		usleep(1000);

	/* capabilities: CAP_SYS_BOOT out of the bounding set, CAP_NET_RAW out of eff/prm,
	 * CAP_NET_ADMIN inheritable and ambient */
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0))
		fail("PR_CAPBSET_DROP: %s", strerror(errno));
	caps(&eff, &prm, &inh);
	eff &= ~(1ull << CAP_NET_RAW);
	prm &= ~(1ull << CAP_NET_RAW);
	inh |= 1ull << CAP_NET_ADMIN;
	if (set_caps(eff, prm, inh))
		fail("capset: %s", strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0))
		fail("ambient raise: %s", strerror(errno));
	if (nonroot) {
		/* glibc applies these to every thread */
		prctl(PR_SET_KEEPCAPS, 1);
		if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
			fail("setresuid 1000: %s", strerror(errno));
		caps(&eff, &prm, &inh);
		eff = prm;              /* KEEPCAPS kept prm, the uid change cleared eff */
		if (set_caps(eff, prm, inh))
			fail("capset after setresuid: %s", strerror(errno));
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0);
	}
	if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP_ | (nonroot ? 0x10 : 0), 0, 0, 0))
		fail("securebits: %s", strerror(errno));
	prctl(PR_SET_DUMPABLE, 0);
	/* a uid change clears the parent-death signal (commit_creds): set it last */
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
	caps(&eff, &prm, &inh);
	want_main = read_tstate();
	int secbits = prctl(PR_GET_SECUREBITS);

	ready();
	wait_check();

	int n = getgroups(16, got);
	if (n != 3 || nhad != 3 || memcmp(got, had, sizeof(gid_t) * 3))
		fail("groups: %d of them, first %d", n, n > 0 ? (int)got[0] : -1);
	f = fopen("/proc/self/oom_score_adj", "r");
	int oom = 0;
	if (!f || fscanf(f, "%d", &oom) != 1 || oom != 321)
		fail("oom_score_adj %d", oom);
	if (f)
		fclose(f);
	int v = 0;
	prctl(PR_GET_PDEATHSIG, &v);
	if (v != SIGUSR2)
		fail("pdeathsig %d", v);
	prctl(PR_GET_CHILD_SUBREAPER, &v);
	if (v != 1)
		fail("child subreaper %d", v);
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1)
		fail("THP-disable lost");
	if (prctl(PR_GET_DUMPABLE) != 0)
		fail("dumpable %d", prctl(PR_GET_DUMPABLE));
	if (prctl(PR_GET_SECUREBITS) != secbits)
		fail("securebits %#x, was %#x", prctl(PR_GET_SECUREBITS), secbits);
	caps(&eff2, &prm2, &inh2);
	if (eff2 != eff || prm2 != prm || inh2 != inh)
		fail("caps eff %llx prm %llx inh %llx, were %llx %llx %llx", (unsigned long long)eff2,
		     (unsigned long long)prm2, (unsigned long long)inh2, (unsigned long long)eff,
		     (unsigned long long)prm, (unsigned long long)inh);
	if (prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0) != 0 || prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 1)
		fail("bounding set");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_ADMIN, 0, 0) != 1)
		fail("ambient CAP_NET_ADMIN lost");
	if (nonroot && (getuid() != 1000 || geteuid() != 1000 || getgid() != 1000))
		fail("uid %d gid %d", (int)getuid(), (int)getgid());
	compare("main", read_tstate(), want_main);
	phase = 2;
	while (phase < 3)
		usleep(5000);
	return finish();
}
