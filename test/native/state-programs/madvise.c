/*
 * madvise state and mapping flags of each area come back (CRIU zdtm maps02): the VmFlags that
 * madvise/mmap/mlock set ("dc" dontfork, "lo" locked, "sr"/"rr" read-ahead advice, "nr"
 * noreserve, "dd" dontdump, "hg"/"nh" THP advice, "mg" mergeable, "wf" wipeonfork, "dp"
 * droppable) are compared token by token before and after.
 */
#include <sys/mman.h>
#include "zdtm.h"

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#define N 10
#define SZ (8 * 4096)

static const char *watched[] = { "dc", "lo", "sr", "rr", "nr", "dd", "hg", "nh", "mg", "wf", "dp", "lf" };

/* The watched VmFlags tokens of the area at addr, as one string. */
static void flags_of(void *addr, char *out, size_t n)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0;

	out[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, ' ') && line[strlen(line) - 1] == '\n' &&
		    strncmp(line, "VmFlags", 7)) {
			in = (unsigned long)addr >= s && (unsigned long)addr < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			for (size_t i = 0; i < sizeof(watched) / sizeof(watched[0]); i++) {
				char tok[5] = { ' ', watched[i][0], watched[i][1], ' ', 0 };
				char padded[520];
				snprintf(padded, sizeof(padded), "%s ", line + 8);
				for (char *p = padded; *p; p++)
					if (*p == '\n')
						*p = ' ';
				if (strstr(padded, tok)) {
					strncat(out, watched[i], n - strlen(out) - 1);
					strncat(out, " ", n - strlen(out) - 1);
				}
			}
			break;
		}
	}
	if (f)
		fclose(f);
}

int main(void)
{
	struct { int flags, adv; const char *what; } m[N] = {
		{ MAP_PRIVATE | MAP_ANONYMOUS, MADV_DONTFORK, "dontfork" },
		{ MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, MADV_SEQUENTIAL, "locked+sequential" },
		{ MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, MADV_DONTDUMP, "noreserve+dontdump" },
		{ MAP_PRIVATE | MAP_ANONYMOUS, MADV_HUGEPAGE, "hugepage" },
		{ MAP_PRIVATE | MAP_ANONYMOUS, MADV_NOHUGEPAGE, "nohugepage" },
		{ MAP_PRIVATE | MAP_ANONYMOUS, MADV_MERGEABLE, "mergeable" },
		{ MAP_PRIVATE | MAP_ANONYMOUS, MADV_WIPEONFORK, "wipeonfork" },
		{ MAP_PRIVATE | MAP_ANONYMOUS, MADV_RANDOM, "random" },
		{ MAP_DROPPABLE | MAP_ANONYMOUS, MADV_NORMAL, "droppable" },
		{ MAP_PRIVATE | MAP_ANONYMOUS, -1, "lock-on-fault" },
	};
	void *addr[N];
	char before[N][64], after[64];

	for (int i = 0; i < N; i++) {
		/* a guard page between areas, so that none merges with its neighbour */
		char *g = mmap(NULL, SZ + 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		addr[i] = mmap(g + 4096, SZ, PROT_READ | PROT_WRITE, m[i].flags | MAP_FIXED, -1, 0);
		if (addr[i] == MAP_FAILED) {
			fail("mmap %s: %s", m[i].what, strerror(errno));
			return finish();
		}
		memset(addr[i], i + 1, SZ / 2);
		if (m[i].adv >= 0 && madvise(addr[i], SZ, m[i].adv))
			fail("madvise %s: %s", m[i].what, strerror(errno));
		if (m[i].adv < 0 && mlock2(addr[i], SZ, MLOCK_ONFAULT))
			fail("mlock2 %s: %s", m[i].what, strerror(errno));
		flags_of(addr[i], before[i], sizeof(before[i]));
	}
	ready();
	wait_check();
	for (int i = 0; i < N; i++) {
		flags_of(addr[i], after, sizeof(after));
		if (strcmp(before[i], after))
			fail("%s: VmFlags [%s] became [%s]", m[i].what, before[i], after);
		for (int k = 0; k < SZ / 2; k += 4096)
			if (((unsigned char *)addr[i])[k] != i + 1 && strcmp(m[i].what, "droppable"))
				fail("%s: content lost", m[i].what);
	}
	return finish();
}
