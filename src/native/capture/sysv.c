/*
 * SysV IPC objects the captured processes use (FORMAT.md "SysV IPC"), one record each, owned by
 * the root (they belong to the IPC namespace, not to one process). Which objects: a shared
 * memory segment some process attaches (an AREA /SYSVkkkkkkkk whose inode is the shmid); a
 * semaphore set one of whose semaphores a process of the tree operated on last (semctl GETPID);
 * a message queue a process of the tree sent to or received from last (lspid, lrpid). The kernel
 * keeps no other link from an object to its users. Read while every process is frozen.
 */
#include "capture.h"
#include "tree.h"

#include <errno.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MSG_COPY
#define MSG_COPY 040000     /* peek message number msgtyp (CONFIG_CHECKPOINT_RESTORE) */
#endif

struct pidset {
	const pid_t *p;
	size_t n;
	pid_t one;
};

static int in_set(const struct pidset *s, long pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->p[i] == pid)
			return 1;
	return 0;
}

static void perm_of(struct ckimg_sysv_ipc_perm *o, uint32_t fixed, int id, const struct ipc_perm *p)
{
	o->fixed_size = fixed;
	o->id = (uint32_t)id;
	o->key = (uint32_t)p->__key;
	o->mode = p->mode & 0777;
	o->uid = p->uid;
	o->gid = p->gid;
	o->cuid = p->cuid;
	o->cgid = p->cgid;
}

/* Ids listed in /proc/sysvipc/<what> (column 2), -1 terminated; NULL on error. */
static int *list_ids(const char *what)
{
	char path[64], *text = NULL;
	size_t n = 0, cap = 16;
	int *ids = malloc(cap * sizeof(*ids));

	snprintf(path, sizeof(path), "/proc/sysvipc/%s", what);
	if (!ids || read_file(path, &text, NULL)) {
		free(ids);
		return NULL;
	}
	char *line = strchr(text, '\n');       /* after the column names */
	while (line && *++line) {
		long key;
		int id;
		if (sscanf(line, "%ld %d", &key, &id) == 2) {
			if (n + 1 >= cap) {
				int *m = realloc(ids, (cap *= 2) * sizeof(*ids));
				if (!m)
					break;
				ids = m;
			}
			ids[n++] = id;
		}
		line = strchr(line, '\n');
	}
	ids[n] = -1;
	free(text);
	return ids;
}

/* shmids of the /SYSV areas of the processes. */
static int attached(const struct pidset *s, int shmid)
{
	for (size_t i = 0; i < s->n; i++) {
		char path[64], *maps = NULL;
		int found = 0;
		snprintf(path, sizeof(path), "/proc/%d/maps", s->p[i]);
		if (read_file(path, &maps, NULL))
			continue;
		for (char *l = maps; l && *l && !found;) {
			unsigned long long ino;
			int pos = 0;
			if (sscanf(l, "%*x-%*x %*s %*x %*x:%*x %llu %n", &ino, &pos) == 1 && pos &&
			    !strncmp(l + pos, "/SYSV", 5) && ino == (unsigned long long)shmid)
				found = 1;
			l = strchr(l, '\n');
			if (l)
				l++;
		}
		free(maps);
		if (found)
			return 1;
	}
	return 0;
}

static int put_shm(const struct pidset *s, struct image *im)
{
	int *ids = list_ids("shm"), err = 0;

	for (size_t i = 0; ids && !err && ids[i] >= 0; i++) {
		struct shmid_ds ds;
		if (shmctl(ids[i], IPC_STAT, &ds) < 0 || !attached(s, ids[i]))
			continue;
		struct ckimg_sysv_shm_fixed f = { .size = ds.shm_segsz };
		perm_of(&f.perm, sizeof(f), ids[i], &ds.shm_perm);
		if (ds.shm_perm.mode & SHM_DEST)
			f.flags |= CKIMG_SYSV_REMOVED;
		struct buf b = { 0 };
		err = buf_put(&b, &f, sizeof(f));
		if (!err)
			err = image_record(im, CKIMG_REC_SYSV_SHM, &b, (uint32_t)ids[i], 0);
		buf_free(&b);
	}
	free(ids);
	return err;
}

static int put_sem(const struct pidset *s, struct image *im)
{
	int *ids = list_ids("sem"), err = 0;

	for (size_t i = 0; ids && !err && ids[i] >= 0; i++) {
		struct semid_ds ds;
		union { int val; struct semid_ds *buf; unsigned short *array; } arg = { .buf = &ds };
		int used = 0;
		if (semctl(ids[i], 0, IPC_STAT, arg) < 0 || ds.sem_nsems == 0)
			continue;
		for (unsigned long k = 0; k < ds.sem_nsems && !used; k++)
			used = in_set(s, semctl(ids[i], (int)k, GETPID));
		if (!used)
			continue;
		unsigned short *vals = calloc(ds.sem_nsems, sizeof(*vals));
		if (!vals)
			return -ENOMEM;
		arg.array = vals;
		if (semctl(ids[i], 0, GETALL, arg) < 0) {
			free(vals);
			err = cap_fail(-errno, "SysV semaphore set %d: GETALL", ids[i]);
			break;
		}
		struct ckimg_sysv_sem_fixed f = { .nsems = (uint32_t)ds.sem_nsems };
		perm_of(&f.perm, sizeof(f), ids[i], &ds.sem_perm);
		struct buf b = { 0 };
		err = buf_put(&b, &f, sizeof(f));
		for (unsigned long k = 0; !err && k < ds.sem_nsems; k++) {
			struct { uint16_t value, reserved; uint32_t pid; } e = { vals[k], 0, (uint32_t)semctl(ids[i], (int)k, GETPID) };
			err = buf_put(&b, &e, sizeof(e));
		}
		if (!err)
			err = image_record(im, CKIMG_REC_SYSV_SEM, &b, (uint32_t)ids[i], 0);
		buf_free(&b);
		free(vals);
	}
	free(ids);
	return err;
}

static int put_msg(const struct pidset *s, struct image *im)
{
	int *ids = list_ids("msg"), err = 0;

	for (size_t i = 0; ids && !err && ids[i] >= 0; i++) {
		struct msqid_ds ds;
		if (msgctl(ids[i], IPC_STAT, &ds) < 0 || !(in_set(s, ds.msg_lspid) || in_set(s, ds.msg_lrpid)))
			continue;
		size_t max = ds.msg_qbytes + 8;     /* no message is larger than the queue */
		struct { long mtype; char text[]; } *m = malloc(sizeof(long) + max);
		struct ckimg_sysv_msg_fixed f = { .qbytes = ds.msg_qbytes, .count = (uint32_t)ds.msg_qnum };
		struct buf b = { 0 };
		if (!m)
			return -ENOMEM;
		perm_of(&f.perm, sizeof(f), ids[i], &ds.msg_perm);
		err = buf_put(&b, &f, sizeof(f));
		for (unsigned long k = 0; !err && k < ds.msg_qnum; k++) {
			ssize_t n = msgrcv(ids[i], m, max, (long)k, MSG_COPY | IPC_NOWAIT | MSG_NOERROR);
			if (n < 0) {
				err = cap_fail(-errno, errno == ENOSYS ? "SysV message queue %d: this kernel cannot peek at "
					       "messages (MSG_COPY needs CONFIG_CHECKPOINT_RESTORE)" :
					       "SysV message queue %d: message %lu (MSG_COPY)", ids[i], k);
				break;
			}
			int64_t type = m->mtype;
			uint32_t len = (uint32_t)n;
			err = buf_put(&b, &type, 8);
			if (!err)
				err = buf_put(&b, &len, 4);
			if (!err)
				err = buf_put(&b, m->text, len);
		}
		if (!err)
			err = image_record(im, CKIMG_REC_SYSV_MSG, &b, (uint32_t)ids[i], 0);
		buf_free(&b);
		free(m);
	}
	free(ids);
	return err;
}

/*
 * SEM_UNDO adjustments (semadj) cannot be read: Linux shows a process's undo list nowhere. That
 * a process has one shows through kcmp KCMP_SYSVSEM, which compares undo-list pointers: ours is
 * none. But the list also exists without any semop: every clone with CLONE_SYSVSEM (each
 * pthread_create) allocates it, so a threaded program has one. Adjustments need a semaphore set,
 * so with no set in the namespace there is nothing to lose and nothing to say. The image cannot
 * keep them: after restore, the process's exit undoes nothing. A warning per process.
 */
static void warn_sem_undo(const struct pidset *s, const struct cap_tree *t)
{
	int *sets = list_ids("sem");
	int any = !sets || sets[0] >= 0;        /* unreadable: assume there are */

	free(sets);
	if (!any)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (t && !t->procs[i].c)
			continue;       /* a zombie: its exit applied its adjustments */
		if (syscall(SYS_kcmp, getpid(), s->p[i], KCMP_SYSVSEM, 0, 0) > 0)
			cap_warn("process %d may hold SEM_UNDO adjustments (it has a semaphore undo list): they "
				 "cannot be read and are not kept (after restore its exit undoes nothing)", s->p[i]);
	}
}

int sysv_put_records(struct capture *c, struct image *im)
{
	struct pidset s = { .one = c->pid };
	pid_t *pids = NULL;
	int err;

	if (c->tree) {
		if (c->tree->procs[0].e.pid != (uint32_t)c->pid)
			return 0;       /* the root carries them */
		pids = calloc(c->tree->n, sizeof(*pids));
		if (!pids)
			return -ENOMEM;
		for (size_t i = 0; i < c->tree->n; i++)
			pids[i] = (pid_t)c->tree->procs[i].e.pid;
		s.p = pids;
		s.n = c->tree->n;
	} else {
		s.p = &s.one;
		s.n = 1;
	}
	warn_sem_undo(&s, c->tree);
	err = put_shm(&s, im);
	if (!err)
		err = put_sem(&s, im);
	if (!err)
		err = put_msg(&s, im);
	free(pids);
	return err;
}
