/*
 * userfaultfd write-protection and the PAGEMAP_SCAN ioctl, as the kernel's UAPI numbers them
 * (include/uapi/linux/userfaultfd.h, include/uapi/linux/fs.h; WP_ASYNC and PAGEMAP_SCAN since
 * Linux 6.7). Debian 12's headers stop at 6.1 and lack them, so only what ckimg uses is
 * declared here, under names of its own (no clash when a newer linux/ header is included too).
 */
#ifndef CK_UFFD_WP_H
#define CK_UFFD_WP_H

#include <stdint.h>
#include <sys/ioctl.h>

#ifndef __NR_userfaultfd
#define __NR_userfaultfd 323
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif

/* userfaultfd(2) flags (besides O_CLOEXEC/O_NONBLOCK) */
#define CK_UFFD_USER_MODE_ONLY 1
#define CK_UFFD_API 0xAAull

/* UFFDIO_API features */
#define CK_UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1ull << 12)
#define CK_UFFD_FEATURE_WP_UNPOPULATED     (1ull << 13)
#define CK_UFFD_FEATURE_WP_ASYNC           (1ull << 15)

struct ck_uffdio_api {
	uint64_t api, features, ioctls;
};
struct ck_uffdio_range {
	uint64_t start, len;
};
struct ck_uffdio_register {
	struct ck_uffdio_range range;
	uint64_t mode, ioctls;
};
struct ck_uffdio_writeprotect {
	struct ck_uffdio_range range;
	uint64_t mode;
};
#define CK_UFFDIO_REGISTER_MODE_WP  (1ull << 1)
#define CK_UFFDIO_WRITEPROTECT_MODE_WP (1ull << 0)

#define CK_UFFDIO 0xAA
#define CK_UFFDIO_API          _IOWR(CK_UFFDIO, 0x3F, struct ck_uffdio_api)
#define CK_UFFDIO_REGISTER     _IOWR(CK_UFFDIO, 0x00, struct ck_uffdio_register)
#define CK_UFFDIO_WRITEPROTECT _IOWR(CK_UFFDIO, 0x06, struct ck_uffdio_writeprotect)

/* PAGEMAP_SCAN on /proc/PID/pagemap: page categories, flags, the argument and its output */
#define CK_PAGE_IS_WPALLOWED (1ull << 0)
#define CK_PAGE_IS_WRITTEN   (1ull << 1)
#define CK_PAGE_IS_FILE      (1ull << 2)
#define CK_PAGE_IS_PRESENT   (1ull << 3)
#define CK_PAGE_IS_SWAPPED   (1ull << 4)

#define CK_PM_SCAN_WP_MATCHING   (1ull << 0)   /* write-protect the pages reported, atomically */
#define CK_PM_SCAN_CHECK_WPASYNC (1ull << 1)   /* fail (EPERM) on an area not registered WP_ASYNC */

struct ck_page_region {
	uint64_t start, end, categories;
};
struct ck_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define CK_PAGEMAP_SCAN _IOWR('f', 16, struct ck_pm_scan_arg)

#endif /* CK_UFFD_WP_H */
