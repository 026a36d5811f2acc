/*
 * SysV IPC objects (FORMAT.md "SysV IPC": SYSV_SHM, SYSV_SEM, SYSV_MSG), made again with their
 * ids before any process is created: the kernel gives a new object the id written to
 * /proc/sys/kernel/{shm,sem,msg}_next_id (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the IPC
 * namespace), once. An id still held by the captured object itself (it outlives its
 * processes) is freed first; one held by another object is refused with the ipcrm command
 * that frees it: two programs must never share an object by accident. Segments are attached by the processes' areas
 * (mm.c, remote shmat at the recorded address); a segment that was removed (IPC_RMID) while
 * attached is removed again once every process has attached it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <signal.h>
#include <unistd.h>

#include "crc32.h"
#include "restore.h"

static struct made {
	uint16_t type;
	int id;
	uint32_t flags;
} *made;
static size_t nmade;

static const char *kind_name(uint16_t type)
{
	return type == CKIMG_REC_SYSV_SHM ? "SYSV_SHM" : type == CKIMG_REC_SYSV_SEM ? "SYSV_SEM" : "SYSV_MSG";
}

static void remove_object(uint16_t type, int id)
{
	if (type == CKIMG_REC_SYSV_SHM)
		shmctl(id, IPC_RMID, NULL);
	else if (type == CKIMG_REC_SYSV_SEM)
		semctl(id, 0, IPC_RMID);
	else
		msgctl(id, IPC_RMID, NULL);
}

static int set_next_id(struct restore_args *a, const char *what, uint32_t id)
{
	char path[64], v[16];
	int fd, n = snprintf(v, sizeof(v), "%u", id);

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s_next_id", what);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, v, (size_t)n) != n) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return rst_err(a, -e, "SysV %s id %u: writing %s: %s", what, id, path, strerror(e));
	}
	close(fd);
	return 0;
}

/* ipc_perm as recorded: owner, group, mode (IPC_SET; the creator ids stay ours). */
static void set_perm(struct ipc_perm *p, const struct ckimg_sysv_ipc_perm *r)
{
	p->uid = r->uid;
	p->gid = r->gid;
	p->mode = (unsigned short)(r->mode & 0777);
}

/* A process that used the object last still runs (the original beside a --new-pid copy). */
static int alive(long pid)
{
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/*
 * The id must be free. An id carries a sequence number the kernel bumps at every creation in
 * that slot, so an object that still has it, with the recorded key, creator and size, is the
 * captured object itself, left behind by its processes (SysV objects outlive them): it is
 * removed and made again from the image — unless it is still in use (a segment attached, a
 * set or queue whose last user runs). Anything else with that id is someone else's: refused.
 */
static int take_over_leftover(struct restore_args *a, uint16_t type, const uint8_t *pl,
			      const struct ckimg_sysv_ipc_perm *p, const char *what)
{
	struct ipc_perm *have;
	struct shmid_ds shm;
	struct semid_ds sem;
	struct msqid_ds msg;
	uint64_t size = 0, want = 0;
	int busy = 0;

	if (type == CKIMG_REC_SYSV_SHM) {
		if (shmctl((int)p->id, IPC_STAT, &shm) < 0)
			return 0;
		have = &shm.shm_perm;
		size = shm.shm_segsz;
		memcpy(&want, pl + 32, 8);
		busy = shm.shm_nattch != 0;
	} else if (type == CKIMG_REC_SYSV_SEM) {
		if (semctl((int)p->id, 0, IPC_STAT, &sem) < 0)
			return 0;
		have = &sem.sem_perm;
		size = sem.sem_nsems;
		uint32_t n;
		memcpy(&n, pl + 32, 4);
		want = n;
		for (unsigned long k = 0; k < sem.sem_nsems && !busy; k++)
			busy = alive(semctl((int)p->id, (int)k, GETPID));
	} else {
		if (msgctl((int)p->id, IPC_STAT, &msg) < 0)
			return 0;
		have = &msg.msg_perm;
		busy = alive(msg.msg_lspid) || alive(msg.msg_lrpid);
	}
	if (busy)
		return rst_err(a, -EEXIST, "%s record: SysV %s id %u is still in use (%s); remove it with `ipcrm -%c %u` "
			       "if it is no longer needed", kind_name(type), what, p->id,
			       type == CKIMG_REC_SYSV_SHM ? "attached" : "its last user runs", what[1] == 'h' ? 'm' : what[1] == 'e' ? 's' : 'q', p->id);
	if ((uint32_t)have->__key != p->key || have->cuid != p->cuid || have->cgid != p->cgid || size != want)
		return rst_err(a, -EEXIST, "%s record: SysV %s id %u is in use by another object (key %#x, another key, "
			       "creator or size); remove it with `ipcrm -%c %u` if it is no longer needed", kind_name(type), what,
			       p->id, (unsigned)have->__key, what[1] == 'h' ? 'm' : what[1] == 'e' ? 's' : 'q', p->id);
	rst_warn("SysV %s %u: the captured object is still there; it is made again from the image", what, p->id);
	remove_object(type, (int)p->id);
	return 0;
}

static int make_one(struct restore_args *a, uint16_t type, const uint8_t *pl, uint64_t len, uint64_t at)
{
	struct ckimg_sysv_ipc_perm p;
	const char *what = type == CKIMG_REC_SYSV_SHM ? "shm" : type == CKIMG_REC_SYSV_SEM ? "sem" : "msg";
	size_t fixed = type == CKIMG_REC_SYSV_SEM ? sizeof(struct ckimg_sysv_sem_fixed) : 48;
	int id, err;
	key_t key;

	memcpy(&p, pl, sizeof(p));
	if (len < fixed || p.fixed_size < fixed || p.fixed_size > len || p.id > 0x7fffffff)
		return rst_err(a, -EBADMSG, "BAD_FIELD: %s record at offset %llu: fixed_size %u of %llu bytes",
			       kind_name(type), (unsigned long long)at, p.fixed_size, (unsigned long long)len);
	key = (key_t)p.key;
	if ((err = take_over_leftover(a, type, pl, &p, what)))
		return err;
	if ((err = set_next_id(a, what, p.id)))
		return err;
	if (type == CKIMG_REC_SYSV_SHM) {
		struct ckimg_sysv_shm_fixed f;
		memcpy(&f, pl, sizeof(f));
		if (f.flags & CKIMG_SYSV_REMOVED)
			key = IPC_PRIVATE;      /* a removed segment's key is free for others */
		id = shmget(key, f.size, IPC_CREAT | IPC_EXCL | 0600);
	} else if (type == CKIMG_REC_SYSV_SEM) {
		struct ckimg_sysv_sem_fixed f;
		memcpy(&f, pl, sizeof(f));
		if (f.nsems == 0 || f.nsems > (len - p.fixed_size) / 8)
			return rst_err(a, -EBADMSG, "BAD_FIELD: SYSV_SEM record at offset %llu: %u semaphores in %llu bytes",
				       (unsigned long long)at, f.nsems, (unsigned long long)len);
		id = semget(key, (int)f.nsems, IPC_CREAT | IPC_EXCL | 0600);
	} else {
		id = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
	}
	if (id < 0) {
		int e = errno;
		set_next_id(a, what, (uint32_t)-1);
		return rst_err(a, -e, "%s record: creating SysV %s %u (key %#x): %s", kind_name(type), what, p.id, p.key,
			       strerror(e));
	}
	struct made *m = realloc(made, (nmade + 1) * sizeof(*made));
	if (!m) {
		remove_object(type, id);
		return -ENOMEM;
	}
	made = m;
	made[nmade++] = (struct made){ type, id, 0 };
	if ((uint32_t)id != p.id)
		return rst_err(a, -EEXIST, "%s record: SysV %s %u came back as %d (another program created one meanwhile)",
			       kind_name(type), what, p.id, id);
	if (type == CKIMG_REC_SYSV_SHM) {
		struct ckimg_sysv_shm_fixed f;
		struct shmid_ds ds;
		memcpy(&f, pl, sizeof(f));
		made[nmade - 1].flags = f.flags;
		if (shmctl(id, IPC_STAT, &ds) == 0) {
			set_perm(&ds.shm_perm, &p);
			if (shmctl(id, IPC_SET, &ds) < 0)
				rst_warn("SysV shm %d: owner and mode not set: %s", id, strerror(errno));
		}
	} else if (type == CKIMG_REC_SYSV_SEM) {
		struct ckimg_sysv_sem_fixed f;
		struct semid_ds ds;
		memcpy(&f, pl, sizeof(f));
		unsigned short *vals = calloc(f.nsems, sizeof(*vals));
		if (!vals)
			return -ENOMEM;
		for (uint32_t k = 0; k < f.nsems; k++)
			memcpy(&vals[k], pl + p.fixed_size + (size_t)k * 8, 2);
		int r = semctl(id, 0, SETALL, vals);
		free(vals);
		if (r < 0)
			return rst_err(a, -errno, "SYSV_SEM record: semaphore set %d: SETALL: %s", id, strerror(errno));
		if (semctl(id, 0, IPC_STAT, &ds) == 0) {
			set_perm(&ds.sem_perm, &p);
			if (semctl(id, 0, IPC_SET, &ds) < 0)
				rst_warn("SysV semaphore set %d: owner and mode not set: %s", id, strerror(errno));
		}
	} else {
		struct ckimg_sysv_msg_fixed f;
		struct msqid_ds ds;
		uint64_t off = p.fixed_size;
		memcpy(&f, pl, sizeof(f));
		if (msgctl(id, IPC_STAT, &ds) == 0 && f.qbytes > ds.msg_qbytes) {
			ds.msg_qbytes = f.qbytes;       /* room for every message first */
			msgctl(id, IPC_SET, &ds);
		}
		struct { long mtype; char text[]; } *msg = NULL;
		for (uint32_t k = 0; k < f.count; k++) {
			int64_t type64;
			uint32_t mlen;
			if (len - off < 12)
				break;
			memcpy(&type64, pl + off, 8);
			memcpy(&mlen, pl + off + 8, 4);
			off += 12;
			if (mlen > len - off || type64 <= 0) {
				free(msg);
				return rst_err(a, -EBADMSG, "BAD_FIELD: SYSV_MSG record at offset %llu: message %u", (unsigned long long)at, k);
			}
			void *n = realloc(msg, sizeof(long) + mlen + 1);
			if (!n) {
				free(msg);
				return -ENOMEM;
			}
			msg = n;
			msg->mtype = (long)type64;
			memcpy(msg->text, pl + off, mlen);
			off += mlen;
			if (msgsnd(id, msg, mlen, IPC_NOWAIT) < 0) {
				free(msg);
				return rst_err(a, -errno, "SYSV_MSG record: queue %d: message %u: %s", id, k, strerror(errno));
			}
		}
		free(msg);
		if (off != len)
			return rst_err(a, -EBADMSG, "BAD_FIELD: SYSV_MSG record at offset %llu: %u messages do not fill it",
				       (unsigned long long)at, f.count);
		if (msgctl(id, IPC_STAT, &ds) == 0) {
			set_perm(&ds.msg_perm, &p);
			ds.msg_qbytes = f.qbytes;
			if (msgctl(id, IPC_SET, &ds) < 0)
				rst_warn("SysV message queue %d: owner, mode and size not set: %s", id, strerror(errno));
		}
	}
	return 0;
}

int restore_sysv_make(struct restore_args *a)
{
	struct img *img = a->img;

	for (uint64_t k = 0; k < img->nents; k++) {
		const struct ckimg_index_entry *e = &img->ents[k];
		uint8_t *pl;
		int err;
		if (e->type != CKIMG_REC_SYSV_SHM && e->type != CKIMG_REC_SYSV_SEM && e->type != CKIMG_REC_SYSV_MSG)
			continue;
		if (img->tree && img->owners[k] != img->owner)
			continue;
		if (e->payload_length < sizeof(struct ckimg_sysv_ipc_perm) || e->payload_length > CKIMG_MAX_METADATA_PAYLOAD)
			return rst_err(a, -EBADMSG, "BAD_FIELD: %s record at offset %llu: %llu bytes", kind_name(e->type),
				       (unsigned long long)e->offset, (unsigned long long)e->payload_length);
		err = img_read_payload(img, e, &pl);
		if (err == -EBADMSG)
			return rst_err(a, err, "BAD_CHECKSUM: %s record at offset %llu", kind_name(e->type),
				       (unsigned long long)e->offset);
		if (err)
			return err;
		err = make_one(a, e->type, pl, e->payload_length, e->offset);
		free(pl);
		if (err)
			return err;
	}
	return 0;
}

int restore_sysv_is_segment(const struct img_area *ar)
{
	if (ar->f.kind != CKIMG_KIND_SHMEM || !(ar->f.flags & CKIMG_AREA_SHARED) || strncmp(ar->path.s, "/SYSV", 5))
		return 0;
	for (size_t i = 0; i < nmade; i++)
		if (made[i].type == CKIMG_REC_SYSV_SHM && (uint64_t)made[i].id == ar->f.inode)
			return 1;
	return 0;
}

void restore_sysv_finish(void)
{
	for (size_t i = 0; i < nmade; i++)
		if (made[i].type == CKIMG_REC_SYSV_SHM && (made[i].flags & CKIMG_SYSV_REMOVED))
			shmctl(made[i].id, IPC_RMID, NULL);
	free(made);
	made = NULL;
	nmade = 0;
}

void restore_sysv_abort(void)
{
	for (size_t i = 0; i < nmade; i++)
		remove_object(made[i].type, made[i].id);
	free(made);
	made = NULL;
	nmade = 0;
}
