/*
 * Process trees, capture side (see tree.h). Consistency: a frozen process cannot fork or
 * reap, so once every known process is frozen a re-scan that finds no new child proves the
 * set complete; a child that exits meanwhile stays a zombie (its parent is frozen) and is
 * recorded as one with the status wait(2) would report.
 */
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Incremental and tracked captures of a tree: each descendant's work that needs no freeze
 * (its parent image's digests, its tracking session and the copy of the pages written so far)
 * is done before the root is frozen, for the descendants there are then; add_process takes
 * these captures when it seizes the same processes (same pid and start time).
 */
static struct pre_capture {
	struct capture *c;
	uint64_t start_time;
} *pre;
static size_t npre;

/* Fields of /proc/PID/stat after the comm: state, ppid, pgrp, session, start time (22, into
 * *start_time unless NULL), exit_code (52). */
static int read_stat(pid_t pid, char *state, struct ckimg_tree_entry *e, uint64_t *start_time)
{
	char path[64], *s = NULL;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int err = read_file(path, &s, NULL);
	if (err)
		return err;
	char *p = strrchr(s, ')');
	if (!p || p[1] != ' ') {
		free(s);
		return -EIO;
	}
	p += 2;
	*state = *p;
	unsigned long long field[52];
	int n = 0;
	for (char *tok = strtok(p, " "); tok && n < 52; tok = strtok(NULL, " "))
		field[n++] = strtoull(tok, NULL, 10);
	free(s);
	if (n < 4)
		return -EIO;
	/* field[k] is stat field k + 3 (1-based): ppid 4, pgrp 5, session 6, exit_code 52 */
	e->ppid = (uint32_t)field[1];
	e->pgid = (uint32_t)field[2];
	e->sid = (uint32_t)field[3];
	e->exit_status = n >= 50 ? (uint32_t)field[49] : 0;
	if (start_time)
		*start_time = n >= 20 ? field[19] : 0;
	return 0;
}

static int known(const struct cap_tree *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if ((pid_t)t->procs[i].e.pid == pid)
			return 1;
	return 0;
}

/* A descendant's capture state, gone: its tracking session closed (a scan without commit makes
 * the keeper give up), its parent image and page copies freed. */
static void tree_free_capture(struct capture *c)
{
	track_close(c);
	track_free_preread(c);
	incr_free(c);
	free(c->track);
	fds_free(c);
	free(c);
}

static struct capture *new_capture(const struct capture *root, pid_t pid)
{
	struct capture *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->pid = pid;
	c->out_path = root->out_path;
	c->codec = root->codec;
	c->use_hash_cache = root->use_hash_cache;
	c->buffer_bytes = root->buffer_bytes;
	c->kill_after = root->kill_after;
	c->track_wanted = root->track_wanted;
	c->track_off = root->track_off;
	return c;
}

/* Threads of pid's group (/proc/PID/status "Threads", the exited leader of a group counted), or 0. */
static int thread_count(pid_t pid)
{
	char path[64], *s = NULL;
	unsigned long long n = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (read_file(path, &s, NULL))
		return 0;
	proc_status_value(s, "Threads", 10, &n);
	free(s);
	return (int)n;
}

/* Add pid (a child of parent) to the tree: seized, or recorded as a zombie. */
static int add_process(struct cap_tree *t, const struct capture *root, pid_t pid, pid_t parent)
{
	struct tree_proc p = { .e = { .pid = (uint32_t)pid }, .subreaper = -1 };
	char state;
	int err;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct tree_proc *n = realloc(t->procs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->procs = n;
		t->cap = cap;
	}
	uint64_t st = 0;
	if ((err = read_stat(pid, &state, &p.e, &st)))
		return parent ? 0 : cap_fail(err, "process %d is gone", pid);   /* reaped meanwhile */
	if (parent && (pid_t)p.e.ppid != parent)
		return 0;               /* reaped and the pid reused meanwhile */
	if (state != 'Z' && state != 'X') {
		for (size_t k = 0; pid != root->pid && k < npre; k++)
			if (pre[k].c && pre[k].c->pid == pid && pre[k].start_time == st) {
				p.c = pre[k].c;         /* prepared before the freeze */
				pre[k].c = NULL;
			}
		int prepared = p.c != NULL;
		if (!p.c)
			p.c = pid == root->pid ? (struct capture *)root : new_capture(root, pid);
		if (!p.c)
			return -ENOMEM;
		p.c->tree = t;
		if (p.c != root && !prepared) {
			collect_prefreeze_states(p.c);
			/* incremental: the same process in the parent image, and its tracking */
			err = incr_load_parent_of_child(root, p.c);
			if (!err)
				err = track_open(p.c);
			if (err) {
				tree_free_capture(p.c);
				return err;
			}
		}
		err = pt_freeze(&p.c->pt, pid);
		if (err && parent && read_stat(pid, &state, &p.e, NULL) == 0 && state == 'Z')
			err = 0;        /* it exited before the seize: a zombie now */
		if (err) {
			if (p.c != root)
				tree_free_capture(p.c);
			return err;
		}
		if (p.c->pt.nthreads == 0) {
			if (p.c != root)
				tree_free_capture(p.c);
			p.c = NULL;
		}
		if (p.c) {
			p.c->frozen = 1;
			read_stat(pid, &state, &p.e, NULL);   /* relations as frozen */
		}
	}
	if (!p.c) {
		/* a zombie leader whose other threads run (pthread_exit in main: zdtm pthread02) is no
		 * zombie: its /proc views (fds, maps, mem) are empty and ptrace refuses it */
		int threads = thread_count(pid);
		if (threads > 1)
			return cap_fail(-ENOTSUP, "process %d: its main thread has exited while %d other thread(s) still run; "
					"a process whose thread-group leader is gone cannot be captured", pid, threads - 1);
		p.e.flags = CKIMG_TREE_ZOMBIE;
		if (!parent)
			return cap_fail(-ESRCH, "process %d is a zombie", pid);
	} else {
		p.e.exit_status = 0;
		p.e.thread_count = (uint32_t)p.c->pt.nthreads;
	}
	t->procs[t->n++] = p;
	return 0;
}

/* Children of a frozen process: /proc/PID/task/TID/children of every thread. */
static int scan_children(struct cap_tree *t, const struct capture *root, size_t i, int *added)
{
	char path[96];
	pid_t pid = (pid_t)t->procs[i].e.pid;
	struct dirent *de;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	while (!err && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char cpath[320], *list = NULL;
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", pid, de->d_name);
		if (read_file(cpath, &list, NULL))
			continue;
		for (char *tok = strtok(list, " \n"); !err && tok; tok = strtok(NULL, " \n")) {
			pid_t child = (pid_t)atoi(tok);
			/* (not this capturer: libckimg's caller forks it to capture its own tree) */
			if (child > 0 && child != getpid() && !known(t, child)) {
				err = add_process(t, root, child, pid);
				*added = 1;
			}
		}
		free(list);
	}
	closedir(d);
	return err;
}

/* What every live process has open, for the questions the fd kinds ask about the others. */
static int list_tree_fds(struct cap_tree *t)
{
	size_t cap = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (!t->procs[i].c)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%u/fd", t->procs[i].e.pid);
		DIR *d = opendir(path);
		struct dirent *de;
		if (!d)
			return cap_fail(-errno, "%s", path);
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char fpath[320], *info = NULL;
			struct stat st;
			snprintf(fpath, sizeof(fpath), "/proc/%u/fd/%s", t->procs[i].e.pid, de->d_name);
			if (stat(fpath, &st) < 0)
				continue;
			if (t->nfds == cap) {
				cap = cap ? cap * 2 : 64;
				struct tree_fd *n = realloc(t->fds, cap * sizeof(*n));
				if (!n) {
					closedir(d);
					return -ENOMEM;
				}
				t->fds = n;
			}
			unsigned long long flags = 0;
			snprintf(fpath, sizeof(fpath), "/proc/%u/fdinfo/%s", t->procs[i].e.pid, de->d_name);
			if (read_file(fpath, &info, NULL) == 0) {
				char *f = strstr(info, "flags:");
				if (f)
					flags = strtoull(f + 6, NULL, 8);
				free(info);
			}
			t->fds[t->nfds++] = (struct tree_fd){ .proc = i, .fd = atoi(de->d_name),
				.acc = (int)(flags & O_ACCMODE), .dev = st.st_dev, .ino = st.st_ino };
		}
		closedir(d);
	}
	return 0;
}

static int kcmp_same(uint32_t a, uint32_t b, int type)
{
	return syscall(SYS_kcmp, (pid_t)a, (pid_t)b, type, 0, 0) == 0;
}

/*
 * fd tables, fs and signal handlers a process shares with its parent (CLONE_FILES, CLONE_FS,
 * CLONE_SIGHAND; FORMAT.md TREE flags): kcmp on the frozen processes. Sharing with another
 * process of the tree than the parent cannot be recorded: a warning.
 */
static void note_sharing(struct cap_tree *t)
{
	static const struct { int kcmp; uint32_t flag; const char *what; } kinds[] = {
		{ KCMP_FILES, CKIMG_TREE_SHARES_FILES, "fd table" },
		{ KCMP_FS, CKIMG_TREE_SHARES_FS, "cwd, root and umask" },
		{ KCMP_SIGHAND, CKIMG_TREE_SHARES_SIGHAND, "signal handlers" },
	};

	for (size_t i = 1; i < t->n; i++) {
		struct ckimg_tree_entry *e = &t->procs[i].e;
		if (!t->procs[i].c)
			continue;
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			if (kcmp_same(e->ppid, e->pid, kinds[k].kcmp)) {
				e->flags |= kinds[k].flag;
				continue;
			}
			for (size_t j = 0; j < i && t->n <= 512; j++)     /* (bounded: n² calls) */
				if (t->procs[j].c && t->procs[j].e.pid != e->ppid && kcmp_same(t->procs[j].e.pid, e->pid, kinds[k].kcmp)) {
					cap_warn("process %u shares its %s with process %u, not its parent: restored with a copy",
						 e->pid, kinds[k].what, t->procs[j].e.pid);
					break;
				}
		}
	}
}

/* The descendants of pid as they are now (not frozen: a hint), their pre-freeze work done. */
static int prepare(const struct capture *root, pid_t pid, int depth)
{
	char path[96], *list = NULL;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	if (depth > 64 || read_file(path, &list, NULL))
		return 0;
	int err = 0;
	for (char *save = NULL, *tok = strtok_r(list, " \n", &save); !err && tok; tok = strtok_r(NULL, " \n", &save)) {
		struct ckimg_tree_entry e;
		char state;
		uint64_t st = 0;
		pid_t child = (pid_t)atoi(tok);
		if (child <= 0 || read_stat(child, &state, &e, &st) || state == 'Z' || state == 'X')
			continue;
		struct pre_capture pc = { new_capture(root, child), st };
		struct pre_capture *n = realloc(pre, (npre + 1) * sizeof(*pre));
		if (!pc.c || !n) {
			free(pc.c);
			if (n)
				pre = n;
			return -ENOMEM;
		}
		pre = n;
		collect_prefreeze_states(pc.c);
		err = incr_load_parent_of_child(root, pc.c);
		if (!err)
			err = track_open(pc.c);
		pre[npre++] = pc;       /* (freed with the others on error) */
		if (!err)
			err = prepare(root, child, depth + 1);
	}
	free(list);
	return err;
}

/* Prepared captures no process of the tree took (gone, or not a descendant any more). */
static void drop_prepared(void)
{
	for (size_t k = 0; k < npre; k++)
		if (pre[k].c)
			tree_free_capture(pre[k].c);
	free(pre);
	pre = NULL;
	npre = 0;
}

int tree_freeze(struct capture *root, struct cap_tree **out)
{
	struct cap_tree *t = calloc(1, sizeof(*t));
	int err, added;

	*out = t;
	if (!t)
		return -ENOMEM;
	t->next_file_id = 1;
	err = root->parent_path || root->track_wanted ? prepare(root, root->pid, 0) : 0;
	if (!err)
		err = add_process(t, root, root->pid, 0);
	if (err) {
		drop_prepared();
		free(t->procs);
		free(t);
		*out = NULL;
		return err;
	}
	do {            /* until a whole pass over the frozen tree finds no new child */
		added = 0;
		for (size_t i = 0; !err && i < t->n; i++)
			if (t->procs[i].c)
				err = scan_children(t, root, i, &added);
	} while (!err && added);
	drop_prepared();
	if (!err)
		err = list_tree_fds(t);
	if (!err)
		note_sharing(t);
	if (err)
		tree_release(t, 0);
	return err;
}

void tree_release(struct cap_tree *t, int kill_all)
{
	if (!t)
		return;
	t->released = 1;
	if (kill_all)   /* all first: none runs on while the others die */
		for (size_t i = 0; i < t->n; i++)
			if (t->procs[i].c && t->procs[i].c->frozen)
				kill((pid_t)t->procs[i].e.pid, SIGKILL);
	for (size_t i = 0; i < t->n; i++) {
		struct capture *c = t->procs[i].c;
		if (!c || !c->frozen)
			continue;
		if (c->fdt)
			fds_release(c, kill_all);
		pt_release(&c->pt);
		c->frozen = 0;
	}
}

void tree_free(struct cap_tree *t)
{
	if (!t)
		return;
	for (size_t i = 1; i < t->n; i++)
		if (t->procs[i].c)
			tree_free_capture(t->procs[i].c);
	free(t->procs);
	free(t->fds);
	free(t->shm);
	free(t);
}

int tree_put_record(struct cap_tree *t, struct image *im)
{
	struct ckimg_tree_fixed f = { sizeof(f), t->procs[0].e.pid, (uint32_t)t->n, sizeof(struct ckimg_tree_entry) };
	struct buf b = { 0 };
	int err = buf_put(&b, &f, sizeof(f));
	for (size_t i = 0; !err && i < t->n; i++)
		err = buf_put(&b, &t->procs[i].e, sizeof(t->procs[i].e));
	if (!err) {
		uint32_t owner = im->owner;
		im->owner = 0;
		err = image_record(im, CKIMG_REC_TREE, &b, 0, 0);
		im->owner = owner;
	}
	buf_free(&b);
	return err;
}

static size_t proc_index(const struct cap_tree *t, const struct capture *c)
{
	for (size_t i = 0; i < t->n; i++)
		if ((pid_t)t->procs[i].e.pid == c->pid)
			return i;
	return SIZE_MAX;
}

uint32_t tree_file_id(struct capture *c, int fd)
{
	struct cap_tree *t = c->tree;
	size_t me = proc_index(t, c), mine = SIZE_MAX;
	uint32_t id = 0;

	for (size_t i = 0; i < t->nfds; i++)
		if (t->fds[i].proc == me && t->fds[i].fd == fd)
			mine = i;
	if (mine == SIZE_MAX)
		return t->next_file_id++;       /* opened after the scan: cannot be (it is frozen) */
	/* the same description in an earlier process (processes are captured in tree order) */
	for (size_t i = 0; !id && i < t->nfds; i++) {
		const struct tree_fd *o = &t->fds[i];
		if (o->proc >= me || !o->file_id || o->dev != t->fds[mine].dev || o->ino != t->fds[mine].ino)
			continue;
		if (syscall(SYS_kcmp, c->pid, (pid_t)t->procs[o->proc].e.pid, KCMP_FILE, fd, o->fd) == 0)
			id = o->file_id;
	}
	if (!id)
		id = t->next_file_id++;
	t->fds[mine].file_id = id;
	return id;
}

static int holds(const struct capture *c, dev_t dev, ino_t ino, int acc, int earlier_only)
{
	const struct cap_tree *t = c->tree;
	size_t me = proc_index(t, c);

	for (size_t i = 0; i < t->nfds; i++) {
		const struct tree_fd *o = &t->fds[i];
		if (o->proc == me || (earlier_only && o->proc > me) || o->ino != ino || o->dev != dev)
			continue;
		if (acc < 0 || o->acc == acc || o->acc == O_RDWR)
			return 1;
	}
	return 0;
}

int tree_other_holds(const struct capture *c, dev_t dev, ino_t ino, int acc)
{
	return c->tree && holds(c, dev, ino, acc, 0);
}

int tree_earlier_holds(const struct capture *c, dev_t dev, ino_t ino)
{
	return c->tree && holds(c, dev, ino, -1, 1);
}

int tree_parent_pagemap(const struct capture *c)
{
	const struct cap_tree *t = c->tree;
	size_t me;
	char path[64];

	if (!t || (me = proc_index(t, c)) == SIZE_MAX || me == 0)
		return -1;
	for (size_t i = 0; i < me; i++)
		if (t->procs[i].e.pid == t->procs[me].e.ppid && t->procs[i].c) {
			/* it runs on: its page frames tell nothing now — unless its pages were copied at
			 * the freeze (tracked, track.c): a frame it still shares with the child's twin
			 * cannot have been written since (a write unshares it), so it is the page it
			 * had at the freeze, the one its image holds */
			if (t->released && !t->procs[i].twin && !t->procs[i].preread)
				return -1;
			/* the parent's twin when it has one: its page frames are the parent's at
			 * the freeze, the parent's own change once it runs on */
			snprintf(path, sizeof(path), "/proc/%u/pagemap",
				 t->procs[i].twin ? (unsigned)t->procs[i].twin : t->procs[i].e.pid);
			return open(path, O_RDONLY | O_CLOEXEC);
		}
	return -1;
}

int tree_cow_allowed(const struct cap_tree *t, size_t i)
{
	for (pid_t pp = (pid_t)t->procs[i].e.ppid;;) {
		size_t k = 0;
		while (k < i && (pid_t)t->procs[k].e.pid != pp)
			k++;
		if (k == i)
			return 1;       /* above the tree: not a target */
		if (t->procs[k].subreaper)
			return 0;
		pp = (pid_t)t->procs[k].e.ppid;
	}
}

struct shared_run {
	uint64_t start;
	uint32_t pages, area_id;
};

int tree_shared_page(struct capture *c, uint32_t area_id, uint64_t addr)
{
	struct shared_run *last = c->nshared_runs ?
		(struct shared_run *)(c->shared_runs.p + (c->nshared_runs - 1) * sizeof(*last)) : NULL;

	c->shared_pages++;
	if (last && last->area_id == area_id && last->start + (uint64_t)last->pages * PAGE_SIZE_4K == addr) {
		last->pages++;
		return 0;
	}
	struct shared_run r = { addr, 1, area_id };
	c->nshared_runs++;
	return buf_put(&c->shared_runs, &r, sizeof(r));
}

static int run_order(const void *a, const void *b)
{
	const struct shared_run *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

int tree_put_shared_pages(struct capture *c, struct image *im)
{
	struct {
		uint32_t fixed_size, count, parent_pid, reserved;
	} f = { 16, c->nshared_runs, 0, 0 };
	const struct cap_tree *t = c->tree;
	size_t me = t ? proc_index(t, c) : SIZE_MAX;
	struct buf b = { 0 };
	int err;

	if (!c->nshared_runs || me == SIZE_MAX)
		return 0;
	f.parent_pid = t->procs[me].e.ppid;
	/* in address order (copy-on-write plans the areas read while frozen first) */
	qsort(c->shared_runs.p, c->nshared_runs, sizeof(struct shared_run), run_order);
	err = buf_put(&b, &f, sizeof(f));
	if (!err)
		err = buf_put(&b, c->shared_runs.p, c->shared_runs.len);
	if (!err)
		err = image_record(im, CKIMG_REC_SHARED_PAGES, &b, 0, 0);
	buf_free(&b);
	return err;
}

int tree_shmem_stored(const struct capture *c, const struct area *a, uint64_t off)
{
	const struct cap_tree *t = c->tree;

	for (size_t i = 0; t && i < t->nshm; i++) {
		const struct tree_shm_range *r = &t->shm[i];
		if (r->inode == a->inode && r->dev_major == a->dev_major && r->dev_minor == a->dev_minor &&
		    off >= r->start && off < r->end)
			return 1;
	}
	return 0;
}

int tree_shmem_note(struct capture *c, const struct area *a)
{
	struct cap_tree *t = c->tree;

	if (!t || a->kind != CKIMG_KIND_SHMEM || !a->shared)
		return 0;
	if (t->nshm == t->shm_cap) {
		size_t cap = t->shm_cap ? t->shm_cap * 2 : 16;
		struct tree_shm_range *n = realloc(t->shm, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->shm = n;
		t->shm_cap = cap;
	}
	t->shm[t->nshm++] = (struct tree_shm_range){ a->dev_major, a->dev_minor, a->inode, a->file_offset,
						     a->file_offset + (a->end - a->start) };
	return 0;
}
