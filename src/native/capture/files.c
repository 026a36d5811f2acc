/*
 * Identity of every mapped file (FORMAT.md 4.9): stat, SHA-256 of the content and the GNU
 * build-id. Files are reached through /proc/PID/map_files/START-END, which names exactly the
 * mapped inode even when the path was replaced or deleted. SHA-256 results are cached by
 * (dev, inode, size, mtime, ctime) under $CKIMG_CACHE_DIR, $XDG_CACHE_HOME/ckimg,
 * ~/.cache/ckimg or /var/cache/ckimg, so repeated captures do not rehash libc.
 */
#include "capture.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "sha256.h"

static struct mapped_file *find_file(struct capture *c, const struct area *a)
{
	for (size_t i = 0; i < c->nfiles; i++) {
		struct mapped_file *f = &c->files[i];
		if (f->map_start && f->inode == a->inode && f->dev_major == a->dev_major &&
		    f->dev_minor == a->dev_minor)
			return f;
	}
	return NULL;
}

static void map_files_path(char *buf, size_t n, pid_t pid, uint64_t s, uint64_t e)
{
	snprintf(buf, n, "/proc/%d/map_files/%llx-%llx", pid, (unsigned long long)s, (unsigned long long)e);
}

static void fill_stat(struct mapped_file *f, const struct stat *st)
{
	f->size = (uint64_t)st->st_size;
	f->mtime_ns = (uint64_t)st->st_mtim.tv_sec * 1000000000ull + (uint64_t)st->st_mtim.tv_nsec;
	f->ctime_ns = (uint64_t)st->st_ctim.tv_sec * 1000000000ull + (uint64_t)st->st_ctim.tv_nsec;
	f->mode = st->st_mode;
}

/* Stat every mapped file (freeze phase: sizes are needed to plan deleted-file areas). */
int collect_mapped_files(struct capture *c)
{
	size_t cap = 0;
	char mf[96];
	struct stat st;

	for (size_t i = 0; i < c->nareas; i++) {
		struct area *a = &c->areas[i];
		if (a->kind != CKIMG_KIND_FILE)
			continue;
		struct mapped_file *f = find_file(c, a);
		if (!f) {
			if (c->nfiles == cap) {
				cap = cap ? cap * 2 : 32;
				struct mapped_file *n = realloc(c->files, cap * sizeof(*n));
				if (!n)
					return -ENOMEM;
				c->files = n;
			}
			f = &c->files[c->nfiles];
			memset(f, 0, sizeof(*f));
			f->id = (uint32_t)++c->nfiles;
			f->dev_major = a->dev_major;
			f->dev_minor = a->dev_minor;
			f->inode = a->inode;
			f->map_start = a->start;
			f->map_end = a->end;
			f->path = strdup(a->path);
			if (!f->path)
				return -ENOMEM;
			if (a->flags & CKIMG_AREA_DELETED)
				f->flags |= CKIMG_FILE_DELETED;
			map_files_path(mf, sizeof(mf), c->pid, a->start, a->end);
			if (stat(mf, &st) == 0 ||
			    (stat(a->path, &st) == 0 && st.st_ino == a->inode &&
			     !(a->flags & CKIMG_AREA_DELETED))) {
				fill_stat(f, &st);
				f->dev_major = major(st.st_dev);
				f->dev_minor = minor(st.st_dev);
				f->inode = st.st_ino;
			} else {
				f->flags |= CKIMG_FILE_UNREADABLE;
			}
		}
		a->file_id = f->id;
	}
	return 0;
}

static int cache_dir(char *buf, size_t n)
{
	const char *d = getenv("CKIMG_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
	if (d && *d)
		snprintf(buf, n, "%s", d);
	else if (x && *x)
		snprintf(buf, n, "%s/ckimg", x);
	else if (h && *h)
		snprintf(buf, n, "%s/.cache/ckimg", h);
	else
		snprintf(buf, n, "/var/cache/ckimg");
	/* mkdir -p */
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(buf, 0700);
			*p = '/';
		}
	return mkdir(buf, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

static void cache_name(char *buf, size_t n, const char *dir, const struct mapped_file *f)
{
	snprintf(buf, n, "%s/sha256-%x-%x-%llu-%llu-%llu-%llu", dir, f->dev_major, f->dev_minor,
		 (unsigned long long)f->inode, (unsigned long long)f->size,
		 (unsigned long long)f->mtime_ns, (unsigned long long)f->ctime_ns);
}

static int cache_get(const char *name, uint8_t out[32])
{
	int fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, out, 32);
	close(fd);
	return n == 32 ? 0 : -EINVAL;
}

static void cache_put(const char *name, const uint8_t sum[32])
{
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", name, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	int ok = write(fd, sum, 32) == 32;
	close(fd);
	if (!ok || rename(tmp, name) < 0)
		unlink(tmp);
}

/* GNU build-id from the PT_NOTE segments of a 64-bit little-endian ELF file. */
static void read_build_id(int fd, struct mapped_file *f)
{
	Elf64_Ehdr eh;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG))
		return;
	f->flags |= CKIMG_FILE_ELF;
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 256)
		return;
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) != (ssize_t)sizeof(ph))
			return;
		if (ph.p_type != PT_NOTE || ph.p_filesz > 65536 || ph.p_filesz < 12)
			continue;
		uint8_t *n = malloc(ph.p_filesz);
		if (!n || pread(fd, n, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz) {
			free(n);
			return;
		}
		uint64_t al = ph.p_align == 8 ? 8 : 4;
		for (uint64_t o = 0; o + 12 <= ph.p_filesz;) {
			uint32_t namesz, descsz, type;
			memcpy(&namesz, n + o, 4);
			memcpy(&descsz, n + o + 4, 4);
			memcpy(&type, n + o + 8, 4);
			uint64_t name = o + 12, desc = name + ((namesz + al - 1) & ~(al - 1));
			if (desc + descsz > ph.p_filesz)
				break;
			if (type == NT_GNU_BUILD_ID && namesz == 4 && !memcmp(n + name, "GNU", 4) &&
			    descsz <= sizeof(f->build_id)) {
				memcpy(f->build_id, n + desc, descsz);
				f->build_id_len = descsz;
				f->flags |= CKIMG_FILE_BUILD_ID;
				free(n);
				return;
			}
			o = desc + ((descsz + al - 1) & ~(al - 1));
		}
		free(n);
	}
}

static void hash_one(struct capture *c, struct mapped_file *f, const char *dir)
{
	char mf[96], name[4200];
	struct stat st;
	int fd;

	if ((f->flags & CKIMG_FILE_UNREADABLE) || f->has_content)
		return;
	map_files_path(mf, sizeof(mf), c->pid, f->map_start, f->map_end);
	fd = open(mf, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && !(f->flags & CKIMG_FILE_DELETED))
		fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_ino != f->inode) {
		f->flags |= CKIMG_FILE_UNREADABLE;
		goto out;
	}
	read_build_id(fd, f);
	if (!S_ISREG(st.st_mode))
		goto out;
	int cacheable = dir && !(f->flags & CKIMG_FILE_DELETED);
	if (cacheable) {
		cache_name(name, sizeof(name), dir, f);
		if (cache_get(name, f->sha256) == 0) {
			f->flags |= CKIMG_FILE_SHA256;
			goto out;
		}
	}
	if (sha256_fd(fd, f->sha256) == 0) {
		f->flags |= CKIMG_FILE_SHA256;
		if (cacheable)
			cache_put(name, f->sha256);
	}
out:
	if (fd >= 0)
		close(fd);
}

int hash_mapped_files(struct capture *c)
{
	char dir[4096];
	int have_dir = c->use_hash_cache && cache_dir(dir, sizeof(dir)) == 0;

	for (size_t i = 0; i < c->nfiles && !cap_abort; i++)
		hash_one(c, &c->files[i], have_dir ? dir : NULL);
	return cap_abort ? (cap_fail(0, "interrupted by a signal; the target was released"), -EINTR) : 0;
}
