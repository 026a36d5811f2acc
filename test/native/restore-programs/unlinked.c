/*
 * Files that exist only inside the process (after CRIU zdtm's unlink_fstat00, plus memfd):
 *   fd A: a sparse file in DIR (argv[1]), 4 KiB of data, a 1 MiB hole, 4 KiB more, then
 *         unlinked while open, offset left at 1234;
 *         mapped twice: its first page MAP_SHARED (a byte written through it), its last
 *         page MAP_PRIVATE (a byte changed: the copy differs from the file);
 *   fd B: a memfd "ckimg-memfd" with 8 KiB, sealed against shrinking and growing, mapped
 *         MAP_SHARED read-write; a byte written through the mapping before the capture.
 * Prints "ready", waits for SIGUSR1 (sent after the restore), then checks that everything is
 * as it was and that new writes still land where they should (file offset; mapping <-> memfd).
 * Prints "ok unlinked" / "ok memfd" or "FAIL what", exit status 0 when all is well.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOLE (1 << 20)
static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

static int fails;
#define CHECK(c, ...) do { if (!(c)) { printf("FAIL " __VA_ARGS__); printf("\n"); fails++; } } while (0)

static void pattern(unsigned char *b, size_t n, int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 31 + seed);
}

int main(int argc, char **argv)
{
	char path[4096], link[4200], self[64];
	unsigned char a[4096], b[4096], mbuf[8192], got[8192];
	struct stat st;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);
	snprintf(path, sizeof(path), "%s/unlinked.dat", argc > 1 ? argv[1] : "/tmp");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
	pattern(a, sizeof(a), 1);
	pattern(b, sizeof(b), 2);
	if (fd < 0 || pwrite(fd, a, sizeof(a), 0) != sizeof(a) || pwrite(fd, b, sizeof(b), HOLE) != sizeof(b) ||
	    lseek(fd, 1234, SEEK_SET) != 1234 || unlink(path) < 0) {
		perror("setup file");
		return 2;
	}

	unsigned char *fmap = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	unsigned char *fpriv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, HOLE);
	if (fmap == MAP_FAILED || fpriv == MAP_FAILED) {
		perror("mapping the file");
		return 2;
	}
	fmap[10] = 0x5A;        /* lands in the file */
	a[10] = 0x5A;
	fpriv[20] = 0xA5;       /* private copy only */

	int mfd = memfd_create("ckimg-memfd", MFD_ALLOW_SEALING);
	pattern(mbuf, sizeof(mbuf), 3);
	if (mfd < 0 || write(mfd, mbuf, sizeof(mbuf)) != sizeof(mbuf)) {
		perror("setup memfd");
		return 2;
	}
	unsigned char *map = mmap(NULL, sizeof(mbuf), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (map == MAP_FAILED || fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		perror("setup mapping");
		return 2;
	}
	map[100] = 0xAB;
	mbuf[100] = 0xAB;
	printf("ready %d %d\n", fd, mfd);

	while (!go)             /* polled: a signal between the test and a pause() would be lost */
		usleep(10000);

	/* the unlinked file */
	CHECK(fstat(fd, &st) == 0 && st.st_nlink == 0, "unlinked: nlink %lu", (unsigned long)st.st_nlink);
	CHECK(st.st_size == HOLE + 4096, "unlinked: size %lld", (long long)st.st_size);
	CHECK((st.st_mode & 0777) == 0640, "unlinked: mode %o", st.st_mode & 0777);
	CHECK(lseek(fd, 0, SEEK_CUR) == 1234, "unlinked: offset %lld", (long long)lseek(fd, 0, SEEK_CUR));
	CHECK(pread(fd, got, 4096, 0) == 4096 && !memcmp(got, a, 4096), "unlinked: first block");
	CHECK(pread(fd, got, 4096, HOLE) == 4096 && !memcmp(got, b, 4096), "unlinked: last block");
	CHECK(lseek(fd, 4096, SEEK_DATA) == HOLE, "unlinked: the hole is gone (SEEK_DATA from 4096 = %lld)",
	      (long long)lseek(fd, 4096, SEEK_DATA));
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(self, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	CHECK(n > 10 && strstr(link, " (deleted)"), "unlinked: link %s", link);
	CHECK(fmap[10] == 0x5A && !memcmp(fmap, a, 4096), "unlinked: shared mapping content");
	fmap[11] = 0x77;
	CHECK(pread(fd, got, 1, 11) == 1 && got[0] == 0x77, "unlinked: a write through the shared mapping reaches the file");
	a[11] = 0x77;
	CHECK(fpriv[20] == 0xA5 && fpriv[21] == b[21], "unlinked: private mapping keeps its changed page");
	CHECK(pread(fd, got, 1, HOLE + 20) == 1 && got[0] == b[20], "unlinked: the private change is not in the file");
	lseek(fd, 1234, SEEK_SET);
	CHECK(write(fd, "hello", 5) == 5 && pread(fd, got, 5, 1234) == 5 && !memcmp(got, "hello", 5) &&
	      lseek(fd, 0, SEEK_CUR) == 1239, "unlinked: write at the offset");
	if (!fails)
		printf("ok unlinked\n");

	/* the memfd and its shared mapping */
	int before = fails;
	int seals = fcntl(mfd, F_GET_SEALS);
	CHECK(seals == (F_SEAL_SHRINK | F_SEAL_GROW), "memfd: seals %#x", seals);
	CHECK(fstat(mfd, &st) == 0 && st.st_size == sizeof(mbuf), "memfd: size %lld", (long long)st.st_size);
	CHECK(pread(mfd, got, sizeof(mbuf), 0) == sizeof(mbuf) && !memcmp(got, mbuf, sizeof(mbuf)), "memfd: content");
	CHECK(!memcmp(map, mbuf, sizeof(mbuf)), "memfd: mapping content");
	map[200] = 0xCD;
	CHECK(pread(mfd, got, 1, 200) == 1 && got[0] == 0xCD, "memfd: a write through the mapping reaches the file");
	CHECK(pwrite(mfd, "Z", 1, 300) == 1 && map[300] == 'Z', "memfd: a write to the file shows in the mapping");
	CHECK(ftruncate(mfd, 100) < 0 && errno == EPERM, "memfd: F_SEAL_SHRINK holds");
	snprintf(self, sizeof(self), "/proc/self/fd/%d", mfd);
	n = readlink(self, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	CHECK(!strncmp(link, "/memfd:ckimg-memfd", 18), "memfd: link %s", link);
	if (fails == before)
		printf("ok memfd\n");
	printf("done %d\n", fails);
	return fails ? 1 : 0;
}
