/*
 * Process-wide state: /proc/PID/{stat,status,personality,comm,exe,cwd,root,cmdline,environ,
 * auxv}, prlimit, and the open file descriptors (/proc/PID/fd, fdinfo). See proc(5).
 */
#include "capture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Field n (1-based, as proc(5) numbers them) of a /proc stat line. */
static int stat_fields(const char *stat, unsigned long long *f, int maxf)
{
	const char *p = strrchr(stat, ')');   /* comm may hold spaces and ')' */
	int n = 3;
	if (!p)
		return -EINVAL;
	p += 2;
	memset(f, 0, sizeof(*f) * (size_t)maxf);
	f[3] = (unsigned char)*p;              /* state letter */
	p++;
	while (*p && n + 1 < maxf) {
		char *end;
		n++;
		f[n] = strtoull(p, &end, 10);
		if (end == p)
			break;
		p = end;
	}
	return 0;
}

/* "Name:\tv1\tv2..." in a status file: up to max numbers in the given base. */
static int status_nums(const char *status, const char *name, int base, unsigned long long *v, int max)
{
	size_t nl = strlen(name);
	for (const char *p = status; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, name, nl) || p[nl] != ':')
			continue;
		const char *q = p + nl + 1;
		int i;
		for (i = 0; i < max; i++) {
			char *end;
			v[i] = strtoull(q, &end, base);
			if (end == q)
				break;
			q = end;
		}
		return i;
	}
	return 0;
}

int proc_status_value(const char *status, const char *name, int base, unsigned long long *v)
{
	return status_nums(status, name, base, v, 1) == 1 ? 0 : -ENOENT;
}

/* A process's start time as collect_process records it (stat field 22): a pid with another
 * start time is another process. -errno when pid is gone or the line is cut short. */
int proc_start_time(pid_t pid, uint64_t *out)
{
	char path[64], *stat = NULL;
	unsigned long long f[23];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int err = read_file(path, &stat, NULL);
	if (!err)
		err = stat_fields(stat, f, 23);
	free(stat);
	if (!err && !f[22])
		err = -EINVAL;
	if (!err)
		*out = f[22];
	return err;
}

unsigned long long proc_seccomp_mode(pid_t pid)
{
	char path[64], *status = NULL;
	unsigned long long v = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (read_file(path, &status, NULL) == 0) {
		proc_status_value(status, "Seccomp", 10, &v);
		free(status);
	}
	return v;
}

/* NUL-separated /proc strings into count × STR. */
static int put_nul_strings(struct buf *b, uint32_t *count, const char *data, size_t len)
{
	uint32_t n = 0;
	int err = buf_put(b, &(struct ckimg_list_fixed){ 8, 0 }, 8);
	for (size_t i = 0; !err && i < len;) {
		size_t l = strnlen(data + i, len - i);
		err = buf_put_str(b, data + i, l);
		n++;
		i += l + 1;
	}
	if (!err)
		memcpy(b->p + 4, &n, 4);
	*count = n;
	return err;
}

static int collect_strings(struct capture *c)
{
	char path[64], *data = NULL;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", c->pid);
	err = read_file(path, &data, &len);
	if (err)
		return cap_fail(err, "read %s", path);
	err = put_nul_strings(&c->argv, &c->argc, data, len);
	free(data);
	if (err)
		return err;
	snprintf(path, sizeof(path), "/proc/%d/environ", c->pid);
	err = read_file(path, &data, &len);
	if (err)
		return cap_fail(err, "read %s", path);
	err = put_nul_strings(&c->environ, &c->envc, data, len);
	free(data);
	return err;
}

static int collect_auxv(struct capture *c)
{
	char path[64], *data = NULL;
	size_t len;
	uint32_t n = 0;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/auxv", c->pid);
	err = read_file(path, &data, &len);
	if (err)
		return cap_fail(err, "read %s", path);
	err = buf_put(&c->auxv, &(struct ckimg_list_fixed){ 8, 0 }, 8);
	for (size_t i = 0; !err && i + 16 <= len; i += 16) {
		uint64_t type;
		memcpy(&type, data + i, 8);
		if (type == 0)  /* AT_NULL */
			break;
		err = buf_put(&c->auxv, data + i, 16);
		n++;
	}
	free(data);
	if (!err)
		memcpy(c->auxv.p + 4, &n, 4);
	c->auxc = n;
	return err;
}

/* /proc/PID/limits, in RLIMIT_* order: "Name (padded to 26)  soft  hard  units". Used when
 * prlimit() is refused (another uid and no CAP_SYS_RESOURCE). */
static int limits_from_proc(struct capture *c, int r, struct rlimit *rl)
{
	char path[64], *text = NULL, *line;
	int idx = -1, err = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/limits", c->pid);
	if (read_file(path, &text, NULL))
		return -errno;
	for (line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (idx++ != r || strlen(line) < 27)
			continue;
		char *p = line + 26, *end;
		unsigned long long v[2];
		for (int k = 0; k < 2; k++) {
			while (*p == ' ')
				p++;
			if (!strncmp(p, "unlimited", 9)) {
				v[k] = RLIM_INFINITY;
				p += 9;
			} else {
				v[k] = strtoull(p, &end, 10);
				if (end == p)
					goto out;
				p = end;
			}
		}
		rl->rlim_cur = v[0];
		rl->rlim_max = v[1];
		err = 0;
		break;
	}
out:
	free(text);
	return err;
}

static int collect_rlimits(struct capture *c)
{
	uint32_t n = 0;
	int err = buf_put(&c->rlimits, &(struct ckimg_list_fixed){ 8, 0 }, 8);
	for (int r = 0; !err && r < RLIM_NLIMITS; r++) {
		struct rlimit rl;
		if (prlimit(c->pid, r, NULL, &rl) < 0 && (errno != EPERM || limits_from_proc(c, r, &rl)))
			return cap_fail(-errno, "prlimit %d", r);
		struct ckimg_rlimit_entry e = { (uint32_t)r, 0, rl.rlim_cur, rl.rlim_max };
		err = buf_put(&c->rlimits, &e, sizeof(e));
		n++;
	}
	if (!err)
		memcpy(c->rlimits.p + 4, &n, 4);
	c->nrlimits = n;
	return err;
}

static char *trim_nl(char *s)
{
	size_t l = s ? strlen(s) : 0;
	if (l && s[l - 1] == '\n')
		s[l - 1] = 0;
	return s;
}

int collect_process(struct capture *c)
{
	char path[64], *stat = NULL, *status = NULL, *pers = NULL;
	unsigned long long f[53], v[4];
	struct ckimg_process_fixed *p = &c->proc;
	struct utsname u;
	int err;

	p->fixed_size = sizeof(*p);
	p->pid = (uint32_t)c->pid;
	snprintf(path, sizeof(path), "/proc/%d/stat", c->pid);
	err = read_file(path, &stat, NULL);
	if (err) {
		cap_fail(err, "read %s", path);
		goto out;
	}
	err = stat_fields(stat, f, 53);
	if (err) {
		cap_fail(err, "parse %s", path);
		goto out;
	}
	p->ppid = (uint32_t)f[4];
	p->pgid = (uint32_t)f[5];
	p->sid = (uint32_t)f[6];
	p->start_time = f[22];
	/* start_code end_code start_data end_data start_brk brk start_stack arg_start arg_end
	 * env_start env_end; brk is not in stat: a remote brk(0) fills it in (threads.c). */
	const int idx[11] = { 26, 27, 45, 46, 47, 0, 28, 48, 49, 50, 51 };
	for (int i = 0; i < 11; i++)
		p->mm[i] = idx[i] ? f[idx[i]] : 0;

	snprintf(path, sizeof(path), "/proc/%d/status", c->pid);
	err = read_file(path, &status, NULL);
	if (err) {
		cap_fail(err, "read %s", path);
		goto out;
	}
	if (status_nums(status, "Uid", 10, v, 4) == 4)
		for (int i = 0; i < 4; i++)
			p->uid[i] = (uint32_t)v[i];
	if (status_nums(status, "Gid", 10, v, 4) == 4)
		for (int i = 0; i < 4; i++)
			p->gid[i] = (uint32_t)v[i];
	p->umask = status_nums(status, "Umask", 8, v, 1) == 1 ? (uint32_t)v[0] : 0xFFFFFFFFu;
	/* NSpid: the pid in our PID namespace, then in each one nested below it. ckimg makes no
	 * namespaces: restore brings the process back in its own, where getpid() gives the first. */
	int depth = status_nums(status, "NSpid", 10, v, 4);
	if (depth > 1)
		cap_warn("process %d lives in another PID namespace (its pid there is %llu): restore brings it "
			 "back in restore's own namespace, where its pid is %d", c->pid, v[depth - 1], c->pid);

	snprintf(path, sizeof(path), "/proc/%d/personality", c->pid);
	if (!read_file(path, &pers, NULL))
		p->personality = (uint32_t)strtoul(pers, NULL, 16);

	snprintf(path, sizeof(path), "/proc/%d/comm", c->pid);
	if (read_file(path, &c->comm, NULL) == 0)
		trim_nl(c->comm);
	snprintf(path, sizeof(path), "/proc/%d/exe", c->pid);
	read_link(path, &c->exe);
	snprintf(path, sizeof(path), "/proc/%d/cwd", c->pid);
	read_link(path, &c->cwd);
	snprintf(path, sizeof(path), "/proc/%d/root", c->pid);
	read_link(path, &c->root);
	c->kernel = strdup(uname(&u) == 0 ? u.release : "");

	err = collect_strings(c);
	if (!err)
		err = collect_auxv(c);
	if (!err)
		err = collect_rlimits(c);
out:
	free(stat);
	free(status);
	free(pers);
	return err;
}
