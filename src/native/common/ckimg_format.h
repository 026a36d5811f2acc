/*
 * ckimg image format v1.0: on-disk layouts and constants, exactly as docs/FORMAT.md defines
 * them (that document is normative; this header must agree with it byte for byte).
 * Constants and structs only, no logic. Everything is little-endian; x86-64 is too, so the
 * structs are written and read as they are.
 */
#ifndef CKIMG_FORMAT_H
#define CKIMG_FORMAT_H

#include <stdint.h>
#include <assert.h>

#define CKIMG_MAGIC            "\x89" "CKIMG\r\n"   /* 8 bytes */
#define CKIMG_RECORD_MAGIC     "CKR1"                /* 4 bytes */
#define CKIMG_TRAILER_MAGIC    "CKIMGEND"            /* 8 bytes */
#define CKIMG_VERSION_MAJOR    1
#define CKIMG_VERSION_MINOR    2
#define CKIMG_HEADER_SIZE      64
#define CKIMG_RECORD_HDR_SIZE  32
#define CKIMG_TRAILER_SIZE     32
#define CKIMG_EM_X86_64        62

/* Record types (section 4). */
enum ckimg_record_type {
	CKIMG_REC_PROCESS     = 0x0001,
	CKIMG_REC_ARGV        = 0x0002,
	CKIMG_REC_ENVIRON     = 0x0003,
	CKIMG_REC_AUXV        = 0x0004,
	CKIMG_REC_RLIMITS     = 0x0005,
	CKIMG_REC_SIGACTIONS  = 0x0006,
	CKIMG_REC_THREAD      = 0x0010,
	CKIMG_REC_AREA        = 0x0020,
	CKIMG_REC_PAGES       = 0x0021,
	CKIMG_REC_MAPPED_FILE = 0x0030,
	CKIMG_REC_FD          = 0x0040,
	CKIMG_REC_INDEX       = 0x7FFE,
};

#define CKIMG_RECF_MUST_UNDERSTAND 0x0001

/* Limits (section 5). */
#define CKIMG_MAX_METADATA_PAYLOAD (64u << 20)
#define CKIMG_MAX_CHUNK_RAW        (64u << 20)
#define CKIMG_MAX_SPAN_PAGES       (1u << 20)
/* Writers place spans on this grid (pages) so images of one process chunk alike. */
#define CKIMG_SPAN_GRID_PAGES      256

/* PAGES codecs. */
enum ckimg_codec {
	CKIMG_CODEC_NONE    = 0,
	CKIMG_CODEC_LZ4     = 1,
	CKIMG_CODEC_LZF     = 2,
	CKIMG_CODEC_DEFLATE = 3,
};

/* AREA.prot */
#define CKIMG_PROT_READ  0x1
#define CKIMG_PROT_WRITE 0x2
#define CKIMG_PROT_EXEC  0x4

/* AREA.flags */
#define CKIMG_AREA_SHARED      (1u << 0)
#define CKIMG_AREA_GROWSDOWN   (1u << 1)
#define CKIMG_AREA_DELETED     (1u << 2)
#define CKIMG_AREA_DONTDUMP    (1u << 3)
#define CKIMG_AREA_HUGEPAGE    (1u << 4)
#define CKIMG_AREA_NOHUGEPAGE  (1u << 5)
#define CKIMG_AREA_LOCKED      (1u << 6)
#define CKIMG_AREA_NORESERVE   (1u << 7)
#define CKIMG_AREA_DONTFORK    (1u << 8)
#define CKIMG_AREA_WIPEONFORK  (1u << 9)
#define CKIMG_AREA_MERGEABLE   (1u << 10)
#define CKIMG_AREA_UNREADABLE  (1u << 11)  /* some/all pages unreadable: those are not stored, content unknown */

/* AREA.kind */
enum ckimg_area_kind {
	CKIMG_KIND_ANON = 0, CKIMG_KIND_FILE = 1, CKIMG_KIND_HEAP = 2, CKIMG_KIND_STACK = 3,
	CKIMG_KIND_VDSO = 4, CKIMG_KIND_VVAR = 5, CKIMG_KIND_VSYSCALL = 6, CKIMG_KIND_SHMEM = 7,
	CKIMG_KIND_SPECIAL = 8,
};
#define CKIMG_NO_FILE 0xFFFFFFFFu

/* THREAD.flags */
#define CKIMG_THREAD_MAIN         (1u << 0)
#define CKIMG_THREAD_IN_SYSCALL   (1u << 1)
#define CKIMG_THREAD_FPREGS_ONLY  (1u << 2)

/* PROCESS.flags */
#define CKIMG_PROCESS_STOPPED     (1u << 0)

/* MAPPED_FILE.flags */
#define CKIMG_FILE_SHA256      (1u << 0)
#define CKIMG_FILE_BUILD_ID    (1u << 1)
#define CKIMG_FILE_ELF         (1u << 2)
#define CKIMG_FILE_DELETED     (1u << 3)
#define CKIMG_FILE_UNREADABLE  (1u << 4)

/* FD.kind */
enum ckimg_fd_kind {
	CKIMG_FD_UNKNOWN = 0, CKIMG_FD_REGULAR = 1, CKIMG_FD_DIRECTORY = 2, CKIMG_FD_CHARDEV = 3,
	CKIMG_FD_BLOCKDEV = 4, CKIMG_FD_FIFO = 5, CKIMG_FD_SOCKET = 6, CKIMG_FD_TTY = 7,
	CKIMG_FD_ANON_INODE = 8,
};
#define CKIMG_FD_CLOEXEC 0x1

struct ckimg_header {
	uint8_t  magic[8];
	uint16_t version_major;
	uint16_t version_minor;
	uint32_t header_size;
	uint32_t flags;
	uint32_t page_size;
	uint16_t machine;
	uint16_t reserved0;
	uint32_t reserved1;
	uint64_t created_ns;
	uint8_t  image_id[16];
	uint32_t reserved2;
	uint32_t header_crc;        /* crc32 of bytes 0..59 */
} __attribute__((packed));

struct ckimg_record_header {
	uint8_t  magic[4];
	uint16_t type;
	uint16_t flags;
	uint64_t payload_length;
	uint32_t payload_crc;
	uint32_t sequence;
	uint32_t owner_pid;         /* 1.2 tree images: the process the record belongs to, else 0 */
	uint32_t header_crc;        /* crc32 of bytes 0..27 */
} __attribute__((packed));

struct ckimg_index_fixed {
	uint32_t fixed_size;        /* 16 */
	uint32_t entry_size;        /* 40 */
	uint64_t entry_count;
} __attribute__((packed));

struct ckimg_index_entry {
	uint16_t type;
	uint16_t flags;
	uint32_t key32;
	uint64_t offset;
	uint64_t payload_length;
	uint64_t key64;
	uint32_t aux_a;
	uint32_t aux_b;
} __attribute__((packed));

struct ckimg_trailer {
	uint8_t  magic[8];
	uint64_t index_offset;
	uint64_t record_count;
	uint32_t flags;
	uint32_t trailer_crc;       /* crc32 of bytes 0..27 */
} __attribute__((packed));

/* Payload FIXED parts. Each starts with its own size; VARIABLE fields follow (see spec). */

struct ckimg_process_fixed {
	uint32_t fixed_size;        /* 176 */
	uint32_t pid, ppid, pgid, sid;
	uint32_t uid[4];            /* real, effective, saved, fs */
	uint32_t gid[4];
	uint32_t personality;
	uint32_t umask;
	uint32_t thread_count;
	uint64_t capture_ns;
	uint64_t start_time;
	uint64_t mm[11];            /* start_code end_code start_data end_data start_brk brk
	                               start_stack arg_start arg_end env_start env_end
	                               (stat fields 26 27 45 46 47, brk from brk(0), 28 48-51) */
	uint32_t flags;
	uint32_t reserved;
} __attribute__((packed));
/* VARIABLE: STR comm, STR exe, STR cwd, STR root, STR kernel */

struct ckimg_list_fixed {       /* ARGV, ENVIRON, AUXV, RLIMITS */
	uint32_t fixed_size;        /* 8 */
	uint32_t count;
} __attribute__((packed));

struct ckimg_rlimit_entry {
	uint32_t resource;
	uint32_t reserved;
	uint64_t cur;
	uint64_t max;
} __attribute__((packed));

struct ckimg_sigactions_fixed {
	uint32_t fixed_size;        /* 16 */
	uint32_t count;
	uint64_t shared_pending;
} __attribute__((packed));

struct ckimg_sigaction_entry {
	uint32_t signo;
	uint32_t reserved;
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
} __attribute__((packed));

struct ckimg_thread_fixed {
	uint32_t fixed_size;        /* 88 */
	uint32_t tid;
	uint32_t flags;
	uint32_t state;             /* stat state letter from before the freeze */
	uint64_t sigmask;
	uint64_t pending;
	uint64_t clear_child_tid;
	uint64_t robust_list;
	uint64_t robust_list_len;
	uint64_t altstack_sp;
	uint64_t altstack_size;
	uint32_t altstack_flags;
	uint32_t regs_size;         /* 216 */
	uint32_t xstate_size;
	uint32_t reserved;
} __attribute__((packed));
/* VARIABLE: regs[regs_size] (struct user_regs_struct), xstate[xstate_size] */

struct ckimg_area_fixed {
	uint32_t fixed_size;        /* 64 */
	uint32_t area_id;
	uint64_t start;
	uint64_t end;
	uint64_t file_offset;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t inode;
	uint32_t prot;
	uint32_t flags;
	uint32_t kind;
	uint32_t file_id;
} __attribute__((packed));
/* VARIABLE: STR path, STR vmflags */

struct ckimg_pages_fixed {
	uint32_t fixed_size;        /* 48 */
	uint32_t area_id;
	uint64_t first_page;
	uint32_t span_pages;
	uint32_t stored_pages;
	uint8_t  codec;
	uint8_t  reserved0[3];
	uint32_t stored_size;
	uint32_t raw_crc;
	uint32_t data_offset;
	uint64_t reserved1;
} __attribute__((packed));
/* VARIABLE: bitmap[ceil(span_pages/8)], zero padding to data_offset, DATA[stored_size] */

struct ckimg_mapped_file_fixed {
	uint32_t fixed_size;        /* 80 */
	uint32_t file_id;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t inode;
	uint64_t size;
	uint64_t mtime_ns;
	uint32_t mode;
	uint32_t flags;
	uint8_t  sha256[32];
} __attribute__((packed));
/* VARIABLE: STR path, STR build_id */

struct ckimg_fd_fixed {
	uint32_t fixed_size;        /* 56 */
	uint32_t fd;
	uint32_t kind;
	uint32_t open_flags;
	uint32_t fd_flags;
	uint32_t mode;
	uint64_t pos;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t inode;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	/* format 1.1 (fixed_size 80; a 1.0 record has 56 and these read as 0) */
	uint32_t file_id;           /* open file description: fds with one non-zero id share it */
	uint32_t owner_type;        /* F_GETOWN_EX type: 0 F_OWNER_TID, 1 F_OWNER_PID, 2 F_OWNER_PGRP */
	uint32_t owner_id;          /* F_GETOWN_EX pid (0: no owner) */
	uint32_t owner_signal;      /* F_GETSIG (0: SIGIO) */
	uint32_t state;             /* CKIMG_FDS_* */
	uint32_t reserved;
} __attribute__((packed));
/* VARIABLE: STR path, STR note (1.1: why the fd cannot be brought back, empty if it can) */

static_assert(sizeof(struct ckimg_header) == 64, "header layout");
static_assert(sizeof(struct ckimg_record_header) == 32, "record header layout");
static_assert(sizeof(struct ckimg_index_fixed) == 16, "index layout");
static_assert(sizeof(struct ckimg_index_entry) == 40, "index entry layout");
static_assert(sizeof(struct ckimg_trailer) == 32, "trailer layout");
static_assert(sizeof(struct ckimg_process_fixed) == 176, "process layout");
static_assert(sizeof(struct ckimg_list_fixed) == 8, "list layout");
static_assert(sizeof(struct ckimg_rlimit_entry) == 24, "rlimit layout");
static_assert(sizeof(struct ckimg_sigactions_fixed) == 16, "sigactions layout");
static_assert(sizeof(struct ckimg_sigaction_entry) == 40, "sigaction layout");
static_assert(sizeof(struct ckimg_thread_fixed) == 88, "thread layout");
static_assert(sizeof(struct ckimg_area_fixed) == 64, "area layout");
static_assert(sizeof(struct ckimg_pages_fixed) == 48, "pages layout");
static_assert(sizeof(struct ckimg_mapped_file_fixed) == 80, "mapped file layout");
static_assert(sizeof(struct ckimg_fd_fixed) == 80, "fd layout");


/* ---------------------------------------------------------------------------------------
 * Format 1.1, issue 10 "fd": per-fd kind state (FORMAT.md 4.11-4.16), types 0x0041-0x004F.
 * Shared kernel objects carry an object id (the inode): several fds, descriptions or (later)
 * processes refer to one object, which is recorded once.
 */
#define CKIMG_FD_MIN_FIXED_1_0  56
#define CKIMG_FDS_UNRESTORABLE  (1u << 0)   /* FD.state: cannot be brought back (note says why) */
#define CKIMG_FDS_PEER_OUTSIDE  (1u << 1)   /* FD.state: its other end is in a process outside the
                                              * image; it comes back detached (note says how) */

enum ckimg_fd_record_type {
	CKIMG_REC_PIPE        = 0x0041,
	CKIMG_REC_UNIX_SOCKET = 0x0042,
	CKIMG_REC_INET_SOCKET = 0x0043,
	CKIMG_REC_TCP_STREAM  = 0x0044,
	CKIMG_REC_FILE_LOCK   = 0x0045,
	CKIMG_REC_UNIX_FILES  = 0x0046,
	CKIMG_REC_UDP_QUEUE   = 0x0047,
};

/* PIPE (0x0041): one per pipe or FIFO whose buffer is recorded; key32 = first fd, key64 = pipe_id */
struct ckimg_pipe_fixed {
	uint32_t fixed_size;        /* 32 */
	uint32_t flags;             /* CKIMG_PIPE_* */
	uint64_t pipe_id;           /* the pipe's inode (pipefs, or the FIFO's inode) */
	uint32_t pipe_size;         /* F_GETPIPE_SZ, bytes */
	uint32_t data_length;       /* buffered bytes that follow */
	uint32_t dev_major;         /* st_dev of the inode */
	uint32_t dev_minor;
} __attribute__((packed));
/* VARIABLE: DATA[data_length] (the bytes waiting in the pipe, oldest first) */
#define CKIMG_PIPE_FIFO         (1u << 0)   /* a named FIFO (reopened by the FD record's path) */
#define CKIMG_PIPE_HAS_READER   (1u << 1)   /* a reading end is among the recorded fds */
#define CKIMG_PIPE_HAS_WRITER   (1u << 2)   /* a writing end is among the recorded fds */
static_assert(sizeof(struct ckimg_pipe_fixed) == 32, "pipe layout");

/* UNIX_SOCKET (0x0042): one per unix socket; key32 = first fd, key64 = inode */
struct ckimg_unix_fixed {
	uint32_t fixed_size;        /* 96 (80 before peer_pid/uid/gid, 64 before file_mode/uid/gid) */
	uint32_t type;              /* SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5 */
	uint32_t state;             /* kernel socket state: 1 connected, 7 unconnected, 10 listening */
	uint32_t flags;             /* CKIMG_UNIX_* */
	uint64_t inode;
	uint64_t peer_inode;        /* 0: none */
	uint32_t backlog;           /* listen(2) backlog */
	uint32_t sndbuf;            /* SO_SNDBUF as getsockopt gives it (doubled by the kernel) */
	uint32_t rcvbuf;
	uint32_t queue_count;       /* messages in QUEUE */
	uint32_t pending;           /* listening: connections waiting for accept */
	uint32_t pending_closed;    /* listening: of those, how many lost their client (closed):
	                             * restore makes as many connections and closes them (was reserved) */
	uint64_t queue_bytes;       /* bytes in QUEUE */
	/* fixed_size 80 (a 64-byte record reads these as 0: not recorded) */
	uint32_t file_mode;         /* bound to a path: st_mode of the socket file (0: not recorded) */
	uint32_t file_uid;
	uint32_t file_gid;
	uint32_t reserved2;
	/* fixed_size 96 (an 80-byte record reads these as 0: not recorded) */
	uint32_t peer_pid;          /* SO_PEERCRED of a connected socket (a pair: its maker); 0: none */
	uint32_t peer_uid;
	uint32_t peer_gid;
	uint32_t reserved3;
} __attribute__((packed));
#define CKIMG_UNIX_MIN_FIXED    64
/* VARIABLE: STR name (sun_path bytes; abstract names begin with NUL; empty: unbound),
 *           STR peer_name, queue_count × (u32 length, bytes): the receive queue, oldest first */
#define CKIMG_UNIX_PEER_INSIDE  (1u << 0)   /* the peer is a recorded socket */
#define CKIMG_UNIX_SHUT_RD      (1u << 1)
#define CKIMG_UNIX_SHUT_WR      (1u << 2)
#define CKIMG_UNIX_PASSCRED     (1u << 3)
/* bit 4: CKIMG_UNIX_QUEUE_ELSEWHERE (process trees, below) */
#define CKIMG_UNIX_PASSSEC      (1u << 6)
#define CKIMG_UNIX_SENDERS      (1u << 7)   /* (1.2) queue_count x STR sender follow the QUEUE */
#define CKIMG_UNIX_NAME_GONE    (1u << 8)   /* bound to a path whose socket file was removed (or replaced) */
#define CKIMG_UNIX_IN_BACKLOG   (1u << 5)   /* connected to a listening socket of ours, not yet
                                             * accepted: restore connects to its name again */
static_assert(sizeof(struct ckimg_unix_fixed) == 96, "unix layout");

/* UNIX_FILES (0x0046): the files passed (SCM_RIGHTS) in the messages of one unix socket's
 * receive queue (its UNIX_SOCKET record's QUEUE); key32 = first fd, key64 = the socket's inode.
 * FIXED, then `count` entries in queue order, each an entry FIXED of entry_size bytes and
 * STR path. Restore sends each message again with its files (FORMAT.md 4.14a). */
struct ckimg_unix_files_fixed {
	uint32_t fixed_size;        /* 24 */
	uint32_t count;             /* entries */
	uint64_t inode;             /* the socket (== key64) */
	uint32_t entry_size;        /* 40 */
	uint32_t reserved;
} __attribute__((packed));
struct ckimg_unix_file_entry {
	uint32_t message;           /* index of the message in the queue that carries it */
	uint32_t kind;              /* CKIMG_PASSED_* */
	uint32_t fd;                /* PASSED_FD: the fd whose open file description it is */
	uint32_t open_flags;        /* F_GETFL of the passed description */
	uint64_t pos;               /* PASSED_FILE: its offset */
	uint64_t inode;             /* PASSED_PIPE: the pipe's inode; PASSED_FILE: st_ino */
	uint32_t dev_major;         /* st_dev of the passed file */
	uint32_t dev_minor;
} __attribute__((packed));
/* VARIABLE per entry: STR path (PASSED_FILE: the path reopened; else the fd link, for people) */
#define CKIMG_PASSED_FD    1        /* the same description as one of the process's fds */
#define CKIMG_PASSED_FILE  2        /* a regular file reopened by path, flags and offset */
#define CKIMG_PASSED_PIPE  3        /* an end of a pipe the image holds (new description) */
static_assert(sizeof(struct ckimg_unix_files_fixed) == 24, "unix files layout");
static_assert(sizeof(struct ckimg_unix_file_entry) == 40, "unix file entry layout");

/* UDP_QUEUE (0x0047): the datagrams waiting in a UDP socket's receive queue, oldest first,
 * with their source addresses; key32 = first fd, key64 = the socket's inode (FORMAT.md 4.18a).
 * FIXED, then `count` × (entry FIXED of entry_size bytes, DATA[length]). */
struct ckimg_udp_queue_fixed {
	uint32_t fixed_size;        /* 24 */
	uint32_t count;
	uint64_t inode;
	uint32_t entry_size;        /* 28 */
	uint32_t reserved;
} __attribute__((packed));
struct ckimg_udp_datagram {
	uint32_t family;            /* of the source address: AF_INET 2, AF_INET6 10 */
	uint8_t  addr[16];          /* network order; IPv4 in the first 4 bytes */
	uint16_t port;              /* host order */
	uint16_t reserved;
	uint32_t length;            /* bytes of DATA, <= 65535 */
} __attribute__((packed));
static_assert(sizeof(struct ckimg_udp_queue_fixed) == 24, "udp queue layout");
static_assert(sizeof(struct ckimg_udp_datagram) == 28, "udp datagram layout");

/* INET_SOCKET (0x0043): one per IPv4/IPv6 TCP or UDP socket; key32 = first fd, key64 = inode */
struct ckimg_inet_fixed {
	uint32_t fixed_size;        /* 128 (96, 112 in older images) */
	uint32_t family;            /* AF_INET 2, AF_INET6 10 */
	uint32_t type;              /* SOCK_STREAM 1, SOCK_DGRAM 2 */
	uint32_t protocol;          /* IPPROTO_TCP 6, IPPROTO_UDP 17 */
	uint32_t state;             /* TCP state (1 ESTABLISHED, 7 CLOSE, 10 LISTEN); UDP: 1 connected, 7 not */
	uint32_t flags;             /* CKIMG_INET_* */
	uint64_t inode;
	uint8_t  local_addr[16];    /* network order; IPv4 in the first 4 bytes */
	uint8_t  peer_addr[16];
	uint16_t local_port;        /* host order */
	uint16_t peer_port;
	uint32_t backlog;           /* listening: listen(2) backlog */
	uint32_t sndbuf;            /* SO_SNDBUF / SO_RCVBUF as getsockopt gives them */
	uint32_t rcvbuf;
	uint32_t linger;            /* SO_LINGER seconds (with CKIMG_INET_LINGER) */
	uint32_t keepidle;          /* TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT */
	uint32_t keepintvl;
	uint32_t keepcnt;
	/* fixed_size 112 (a 96-byte record reads these as 0: not recorded, defaults kept) */
	uint32_t priority;          /* SO_PRIORITY */
	uint32_t rcvlowat;          /* SO_RCVLOWAT (0: not recorded) */
	uint32_t mark;              /* SO_MARK */
	uint32_t more_flags;        /* CKIMG_INET2_* */
	/* fixed_size 128 (a shorter record reads it as empty: not bound to a device) */
	char     bound_dev[16];     /* SO_BINDTODEVICE interface name, NUL-terminated; "" none */
} __attribute__((packed));
#define CKIMG_INET_MIN_FIXED    96
#define CKIMG_INET2_DONTROUTE   (1u << 0)
#define CKIMG_INET2_NO_CHECK    (1u << 1)
#define CKIMG_INET2_OOBINLINE   (1u << 2)
#define CKIMG_INET_REUSEADDR    (1u << 0)
#define CKIMG_INET_REUSEPORT    (1u << 1)
#define CKIMG_INET_KEEPALIVE    (1u << 2)
#define CKIMG_INET_NODELAY      (1u << 3)
#define CKIMG_INET_V6ONLY       (1u << 4)
#define CKIMG_INET_BROADCAST    (1u << 5)
#define CKIMG_INET_LINGER       (1u << 6)
#define CKIMG_INET_SHUT_RD      (1u << 7)
#define CKIMG_INET_SHUT_WR      (1u << 8)
static_assert(sizeof(struct ckimg_inet_fixed) == 128, "inet layout");

/* TCP_STREAM (0x0044): an established TCP connection's repair state (TCP_REPAIR, tcp(7));
 * key32 = first fd, key64 = inode (its INET_SOCKET) */
struct ckimg_tcp_fixed {
	uint32_t fixed_size;        /* 64 */
	uint32_t options;           /* CKIMG_TCP_OPT_* negotiated (TCP_INFO tcpi_options) */
	uint32_t snd_seq;           /* TCP_QUEUE_SEQ of the send queue: write_seq (after outq) */
	uint32_t rcv_seq;           /* TCP_QUEUE_SEQ of the receive queue: rcv_nxt (after inq) */
	uint32_t mss;               /* TCP_MAXSEG */
	uint32_t snd_wscale;
	uint32_t rcv_wscale;
	uint32_t timestamp;         /* TCP_TIMESTAMP */
	uint32_t snd_wl1;           /* TCP_REPAIR_WINDOW */
	uint32_t snd_wnd;
	uint32_t max_window;
	uint32_t rcv_wnd;
	uint32_t rcv_wup;
	uint32_t inq_len;           /* bytes received, not yet read by the program */
	uint32_t outq_len;          /* bytes written, not yet acknowledged (incl. unsent) */
	uint32_t unsent_len;        /* of outq, not yet sent */
} __attribute__((packed));
/* VARIABLE: OUTQ[outq_len], INQ[inq_len] */
#define CKIMG_TCP_OPT_TIMESTAMPS (1u << 0)
#define CKIMG_TCP_OPT_SACK       (1u << 1)
#define CKIMG_TCP_OPT_WSCALE     (1u << 2)
#define CKIMG_TCP_MAX_QUEUE      (64u << 20)
static_assert(sizeof(struct ckimg_tcp_fixed) == 64, "tcp layout");

/* FILE_LOCK (0x0045): one per lock or lease the process holds (fdinfo "lock:" lines);
 * key32 = an fd of the locked description, key64 = the file's inode */
struct ckimg_lock_fixed {
	uint32_t fixed_size;        /* 32 */
	uint32_t kind;              /* CKIMG_LOCK_* */
	uint32_t type;              /* 0 read (shared), 1 write (exclusive) */
	uint32_t reserved;
	uint64_t start;             /* byte range (POSIX, OFD); 0 for flock and leases */
	uint64_t end;               /* last byte, inclusive; CKIMG_LOCK_EOF: to the end of file */
} __attribute__((packed));
#define CKIMG_LOCK_FLOCK 1
#define CKIMG_LOCK_POSIX 2
#define CKIMG_LOCK_OFD   3
#define CKIMG_LOCK_LEASE 4
#define CKIMG_LOCK_EOF   UINT64_MAX
static_assert(sizeof(struct ckimg_lock_fixed) == 32, "lock layout");
/* ===================================================================================== */
/* Format 1.1, issue 10 "state": per-process and per-thread state (FORMAT.md 4.11-4.14).  */
/* Types 0x0007-0x000F (per process) and 0x0011-0x0017 (per thread) belong to this block. */
/* ===================================================================================== */

#define CKIMG_REC_TIMERS         0x0007   /* itimers + POSIX timers, 0-1 */
#define CKIMG_REC_PROCESS_STATE  0x0008   /* groups, oom_score_adj, prctl process flags, 0-1 */
#define CKIMG_REC_SECCOMP        0x0009   /* seccomp filter programs, 0-1 */
#define CKIMG_REC_THREAD_STATE   0x0011   /* rseq, sched, caps, seccomp mode, prctl per thread; key32 = tid */
#define CKIMG_REC_SIGQUEUE       0x0012   /* (1.2) pending signals with their siginfo, 0-1 per process */

/* SIGQUEUE (FORMAT.md 4.14a): FIXED, then count entries, process-wide queue first */
struct ckimg_sigqueue_fixed {
	uint32_t fixed_size;        /* 16 */
	uint32_t count;
	uint64_t reserved;
} __attribute__((packed));
struct ckimg_sigqueue_entry {
	uint32_t tid;               /* 0 = process-wide queue, else the thread's private queue */
	uint32_t reserved;
	uint8_t siginfo[128];       /* kernel siginfo_t: i32 si_signo, si_errno, si_code, fields */
} __attribute__((packed));
#define CKIMG_SIGQUEUE_MAX 65536u
static_assert(sizeof(struct ckimg_sigqueue_entry) == 136, "sigqueue entry layout");

struct ckimg_timers_fixed {
	uint32_t fixed_size;        /* 64 */
	uint32_t count;             /* POSIX timers */
	uint32_t entry_size;        /* 48 */
	uint32_t reserved;
	uint64_t itimer[3][2];      /* ITIMER_REAL, _VIRTUAL, _PROF: interval_ns, value_ns */
} __attribute__((packed));

/* notify (sigev_notify as the kernel keeps it) */
#define CKIMG_SIGEV_SIGNAL    0
#define CKIMG_SIGEV_NONE      1
#define CKIMG_SIGEV_THREAD_ID 4

struct ckimg_posix_timer {
	uint32_t timer_id;
	int32_t  clock_id;          /* raw clockid_t (CPU clocks encode a pid/tid) */
	uint32_t notify;
	uint32_t signo;
	uint32_t notify_tid;        /* SIGEV_THREAD_ID: the thread; else 0 */
	uint32_t overrun;           /* timer_getoverrun() at capture (not restorable) */
	uint64_t sival;             /* sigev_value */
	uint64_t interval_ns;
	uint64_t value_ns;          /* time to the next expiry; 0 = disarmed */
} __attribute__((packed));

/* PROCESS_STATE.valid: which fields the capturer could read */
#define CKIMG_PS_OOM        (1u << 0)
#define CKIMG_PS_GROUPS     (1u << 1)
#define CKIMG_PS_PRCTL      (1u << 2)   /* dumpable, child_subreaper, thp_disable */
#define CKIMG_PS_MEMBARRIER (1u << 3)   /* membarrier */

struct ckimg_process_state_fixed {
	uint32_t fixed_size;        /* 32 */
	uint32_t valid;
	int32_t  oom_score_adj;     /* -1000..1000 */
	uint32_t dumpable;          /* PR_GET_DUMPABLE: 0, 1 (2 = suid_dumpable mode) */
	uint32_t child_subreaper;
	uint32_t thp_disable;
	uint32_t ngroups;           /* supplementary groups that follow (VARIABLE: u32 each) */
	uint32_t membarrier;        /* MEMBARRIER_CMD_GET_REGISTRATIONS: the REGISTER_* commands made
				     * (with CKIMG_PS_MEMBARRIER; was reserved, 0) */
} __attribute__((packed));

struct ckimg_seccomp_fixed {
	uint32_t fixed_size;        /* 8 */
	uint32_t count;             /* filters */
} __attribute__((packed));

#define CKIMG_NO_FILTER 0xFFFFFFFFu
#define CKIMG_SECCOMP_MAX_INSNS 4096   /* BPF_MAXINSNS */

struct ckimg_seccomp_filter {   /* VARIABLE entry; insns[ninsns] (struct sock_filter, 8 bytes) follow */
	uint32_t parent;            /* index of the filter installed before it, CKIMG_NO_FILTER */
	uint32_t flags;             /* SECCOMP_FILTER_FLAG_* (PTRACE_SECCOMP_GET_METADATA) */
	uint32_t ninsns;            /* 1..4096 */
	uint32_t reserved;
} __attribute__((packed));

/* THREAD_STATE.valid */
#define CKIMG_TS_RSEQ       (1u << 0)
#define CKIMG_TS_SCHED      (1u << 1)
#define CKIMG_TS_CAPS       (1u << 2)
#define CKIMG_TS_SECCOMP    (1u << 3)
#define CKIMG_TS_PRCTL      (1u << 4)   /* pdeathsig, timer slack, securebits */
/* THREAD_STATE.flags */
#define CKIMG_TS_NO_NEW_PRIVS (1u << 0)

struct ckimg_thread_state_fixed {
	uint32_t fixed_size;        /* 136 */
	uint32_t tid;
	uint32_t valid;
	uint32_t flags;
	uint64_t rseq_addr;         /* 0: not registered */
	uint32_t rseq_len;
	uint32_t rseq_sig;
	uint32_t sched_policy;      /* SCHED_* | SCHED_RESET_ON_FORK (0x40000000) */
	uint32_t sched_priority;
	int32_t  nice;
	uint32_t pdeathsig;
	uint64_t timer_slack_ns;
	uint64_t cap_inheritable, cap_permitted, cap_effective, cap_bounding, cap_ambient;
	uint32_t securebits;
	uint32_t seccomp_mode;      /* 0 off, 1 strict, 2 filter */
	uint32_t seccomp_filter;    /* newest filter of the thread's chain, CKIMG_NO_FILTER */
	uint32_t reserved;
	uint64_t dl_runtime, dl_deadline, dl_period;   /* SCHED_DEADLINE */
} __attribute__((packed));

static_assert(sizeof(struct ckimg_timers_fixed) == 64, "timers layout");
static_assert(sizeof(struct ckimg_posix_timer) == 48, "posix timer layout");
static_assert(sizeof(struct ckimg_process_state_fixed) == 32, "process state layout");
static_assert(sizeof(struct ckimg_seccomp_fixed) == 8, "seccomp layout");
static_assert(sizeof(struct ckimg_seccomp_filter) == 16, "seccomp filter layout");
static_assert(sizeof(struct ckimg_thread_state_fixed) == 136, "thread state layout");

/* ----- issue 10 "state", anon-inode fds (FORMAT.md 4.21-4.24), types 0x0050-0x0057 -- */
/* Keyed like every fd kind record: INDEX key32 = the first fd of the open file description. */
#define CKIMG_REC_EVENTFD   0x0050
#define CKIMG_REC_TIMERFD   0x0051
#define CKIMG_REC_SIGNALFD  0x0052
#define CKIMG_REC_EPOLL     0x0053

#define CKIMG_EVENTFD_SEMAPHORE (1u << 0)

struct ckimg_eventfd_fixed {
	uint32_t fixed_size;        /* 24 */
	uint32_t flags;             /* CKIMG_EVENTFD_SEMAPHORE */
	uint64_t count;             /* < 0xFFFFFFFFFFFFFFFF */
	uint64_t id;                /* fdinfo eventfd-id (informational) */
} __attribute__((packed));

struct ckimg_timerfd_fixed {
	uint32_t fixed_size;        /* 40 */
	int32_t  clock_id;          /* CLOCK_REALTIME, MONOTONIC, BOOTTIME, *_ALARM */
	uint32_t settime_flags;     /* TFD_TIMER_ABSTIME 1, TFD_TIMER_CANCEL_ON_SET 2 (as set; restored relative) */
	uint32_t reserved;
	uint64_t ticks;             /* expirations not yet read */
	uint64_t value_ns;          /* time to the next expiry; 0 = disarmed */
	uint64_t interval_ns;
} __attribute__((packed));

struct ckimg_signalfd_fixed {
	uint32_t fixed_size;        /* 16 */
	uint32_t reserved;
	uint64_t sigmask;           /* bit n-1 = signal n */
} __attribute__((packed));

struct ckimg_epoll_fixed {
	uint32_t fixed_size;        /* 16 */
	uint32_t count;             /* watched fds */
	uint32_t entry_size;        /* 24 */
	uint32_t reserved;
} __attribute__((packed));

struct ckimg_epoll_entry {
	uint32_t tfd;               /* the watched fd number (an FD record) */
	uint32_t events;            /* EPOLL* event mask as registered (EPOLLET, EPOLLONESHOT, ... included) */
	uint64_t data;              /* epoll_data */
	uint64_t inode;             /* inode of the watched file, to check tfd still names it */
	uint32_t via_fd;            /* (1.2, entry_size >= 32) an fd with the watched file open (= tfd when it still names it) */
	uint32_t reserved;
} __attribute__((packed));
#define CKIMG_EPOLL_ENTRY_1_1 24u     /* entry_size without via_fd */

static_assert(sizeof(struct ckimg_eventfd_fixed) == 24, "eventfd layout");
static_assert(sizeof(struct ckimg_timerfd_fixed) == 40, "timerfd layout");
static_assert(sizeof(struct ckimg_signalfd_fixed) == 16, "signalfd layout");
static_assert(sizeof(struct ckimg_epoll_fixed) == 16, "epoll layout");
static_assert(sizeof(struct ckimg_epoll_entry) == 32, "epoll entry layout");

/* INOTIFY (0x0054, FORMAT.md 4.25): FIXED, then `count` watches, each an entry FIXED of
 * entry_size bytes followed by path_len bytes of its path (no NUL). */
#define CKIMG_REC_INOTIFY   0x0054

struct ckimg_inotify_fixed {
	uint32_t fixed_size;        /* 16 */
	uint32_t count;             /* watches */
	uint32_t entry_size;        /* 32: bytes of each entry before its path */
	uint32_t reserved;
} __attribute__((packed));

struct ckimg_inotify_entry {
	uint32_t wd;                /* watch descriptor, as inotify_add_watch returned it */
	uint32_t mask;              /* IN_* events and IN_ONESHOT / IN_EXCL_UNLINK as registered */
	uint32_t ignored_mask;      /* fdinfo's ignored_mask (0 for inotify) */
	uint32_t dev;               /* st_dev of the watched inode (kernel encoding major << 20 | minor) */
	uint64_t inode;             /* the watched inode, to check the path still names it */
	uint32_t path_len;          /* bytes of path that follow */
	uint32_t reserved;
} __attribute__((packed));

static_assert(sizeof(struct ckimg_inotify_fixed) == 16, "inotify layout");
static_assert(sizeof(struct ckimg_inotify_entry) == 32, "inotify entry layout");
/* ===================================================================================== */
/* end of the issue 10 "state" block                                                       */
/* ===================================================================================== */
/* ---- format 1.1, issue 10 "tty-files": file contents and terminals (FORMAT.md "Files and
 * terminals"). Record types 0x0031-0x0037 and 0x0058-0x005F belong to this block. ---- */

#define CKIMG_REC_FILE_CONTENT 0x0031
#define CKIMG_REC_FILE_DATA    0x0032
#define CKIMG_REC_FD_FILE      0x0033
#define CKIMG_REC_TTY          0x0058

/* FILE_CONTENT.kind */
#define CKIMG_CONTENT_DELETED  1
#define CKIMG_CONTENT_MEMFD    2
/* FILE_CONTENT.flags */
#define CKIMG_CONTENT_MAPPED        (1u << 0)
#define CKIMG_CONTENT_WRITE_SHARED  (1u << 1)
/* FILE_DATA.length limit */
#define CKIMG_MAX_FILE_RUN     (16u << 20)

struct ckimg_file_content_fixed {
	uint32_t fixed_size;        /* 80 (72 in early 1.1 images) */
	uint32_t content_id;
	uint32_t kind;
	uint32_t flags;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t inode;
	uint64_t size;
	uint64_t mtime_ns;
	uint32_t mode;
	uint32_t seals;             /* memfd F_GET_SEALS */
	uint64_t data_bytes;
	uint32_t run_count;
	uint32_t reserved;
	/* fixed_size 80 (a 72-byte record reads these as CKIMG_CONTENT_NO_OWNER) */
	uint32_t uid;               /* owner of the file at capture (fchown on restore) */
	uint32_t gid;
} __attribute__((packed));
/* VARIABLE: STR path (DELETED: former path; MEMFD: memfd name) */
#define CKIMG_CONTENT_MIN_FIXED 72
#define CKIMG_CONTENT_NO_OWNER  0xFFFFFFFFu

struct ckimg_file_data_fixed {
	uint32_t fixed_size;        /* 40 */
	uint32_t content_id;
	uint64_t offset;
	uint32_t length;            /* raw bytes, <= CKIMG_MAX_FILE_RUN */
	uint8_t  codec;
	uint8_t  reserved0[3];
	uint32_t stored_size;
	uint32_t raw_crc;
	uint64_t reserved1;
} __attribute__((packed));
/* VARIABLE: DATA[stored_size] */

/* FD_FILE.flags */
#define CKIMG_FDFILE_DELETED   (1u << 0)
#define CKIMG_FDFILE_MEMFD     (1u << 1)

struct ckimg_fd_file_fixed {
	uint32_t fixed_size;        /* 40 */
	uint32_t fd;
	uint32_t content_id;        /* 0: on disk, reopened by path */
	uint32_t flags;
	uint64_t size;
	uint64_t mtime_ns;
	uint64_t ctime_ns;
} __attribute__((packed));

/* TTY.flags */
#define CKIMG_TTY_CONTROLLING  (1u << 0)
#define CKIMG_TTY_PTY_MASTER   (1u << 1)
#define CKIMG_TTY_PTY_SLAVE    (1u << 2)
#define CKIMG_TTY_PAIRED       (1u << 3)
#define CKIMG_TTY_LOCKED       (1u << 4)
#define CKIMG_TTY_PACKET       (1u << 5)
#define CKIMG_TTY_EXCLUSIVE    (1u << 6)
#define CKIMG_TTY_FOREGROUND   (1u << 7)
#define CKIMG_TTY_NCCS         19
#define CKIMG_TTY_NONE         0xFFFFFFFFu

struct ckimg_tty_fixed {
	uint32_t fixed_size;        /* 112 (96 before uid/gid/mode) */
	uint32_t fd;
	uint32_t flags;
	uint32_t index;             /* pty number, CKIMG_TTY_NONE */
	uint32_t sid;
	uint32_t fg_pgrp;
	uint32_t c_iflag, c_oflag, c_cflag, c_lflag;
	uint8_t  c_line;
	uint8_t  c_cc[CKIMG_TTY_NCCS];
	uint32_t ispeed, ospeed;
	uint16_t ws_row, ws_col, ws_xpixel, ws_ypixel;
	uint32_t in_queued, out_queued;
	uint32_t peer_fd;           /* PAIRED: lowest fd on the other side, else CKIMG_TTY_NONE */
	uint32_t data_length;
	uint32_t reserved;
	/* fixed_size 112 (a 96-byte record reads these as CKIMG_TTY_NONE: not recorded) */
	uint32_t uid;               /* PTY_SLAVE: owner of /dev/pts/N, else CKIMG_TTY_NONE */
	uint32_t gid;
	uint32_t mode;              /* PTY_SLAVE: st_mode & 07777 of /dev/pts/N, else CKIMG_TTY_NONE */
	uint32_t reserved2;
} __attribute__((packed));
#define CKIMG_TTY_MIN_FIXED    96
/* VARIABLE: STR name, DATA[data_length] */

static_assert(sizeof(struct ckimg_file_content_fixed) == 80, "file content layout");
static_assert(sizeof(struct ckimg_file_data_fixed) == 40, "file data layout");
static_assert(sizeof(struct ckimg_fd_file_fixed) == 40, "fd file layout");
static_assert(sizeof(struct ckimg_tty_fixed) == 112, "tty layout");
/* ---- end of the "tty-files" block ---- */

/* ---- format 1.2: process trees (FORMAT.md "Process trees") ---- */
#define CKIMG_REC_TREE           0x000A   /* MUST_UNDERSTAND, owner 0, 0-1 */
#define CKIMG_REC_SHARED_PAGES   0x000B   /* 0-1 per process */
#define CKIMG_INDEX_ENTRY_SIZE_TREE 48     /* entry + u32 owner_pid + u32 reserved */

struct ckimg_tree_fixed {
	uint32_t fixed_size;        /* 16 */
	uint32_t root_pid;
	uint32_t count;
	uint32_t entry_size;        /* 32 */
} __attribute__((packed));

struct ckimg_tree_entry {
	uint32_t pid, ppid, pgid, sid;
	uint32_t flags;             /* CKIMG_TREE_* */
	uint32_t exit_status;       /* zombies: wait(2) status */
	uint32_t thread_count;      /* 0 for a zombie */
	uint32_t reserved;
} __attribute__((packed));

#define CKIMG_TREE_ZOMBIE       (1u << 0)
#define CKIMG_TREE_SHARES_FILES   (1u << 1)   /* one fd table with the parent (CLONE_FILES) */
#define CKIMG_TREE_SHARES_FS      (1u << 2)   /* one cwd/root/umask with the parent (CLONE_FS) */
#define CKIMG_TREE_SHARES_SIGHAND (1u << 3)   /* one signal-handler table (CLONE_SIGHAND) */
#define CKIMG_PIPE_DATA_ELSEWHERE  (1u << 3)   /* tree: the bytes are in an earlier process's PIPE */
#define CKIMG_UNIX_QUEUE_ELSEWHERE (1u << 4)   /* tree: the queue is in an earlier process's record */

static_assert(sizeof(struct ckimg_tree_fixed) == 16, "tree layout");
static_assert(sizeof(struct ckimg_tree_entry) == 32, "tree entry layout");

/* ---- incremental images (format 1.2, FORMAT.md "Incremental images") ---- */
#define CKIMG_REC_PARENT        0x000E   /* MUST_UNDERSTAND: pages come from a parent image */
#define CKIMG_REC_PAGE_DIGESTS  0x0023   /* pages the image holds, one digest each */
#define CKIMG_DIGEST_CRC_ADLER  1        /* digest = crc32(page), adler32(page) */
#define CKIMG_MAX_CHAIN_DEPTH   1024

struct ckimg_parent_fixed {
	uint32_t fixed_size;        /* 48 */
	uint32_t depth;             /* 1: the parent is a standalone image; n: n images below */
	uint8_t  parent_image_id[16];
	uint32_t parent_pid;
	uint32_t reserved;
	uint64_t parent_start_time; /* PROCESS.start_time of the parent */
	uint64_t parent_created_ns; /* HEADER.created_ns of the parent */
} __attribute__((packed));
/* VARIABLE: STR path_hint */

struct ckimg_page_digests_fixed {
	uint32_t fixed_size;        /* 32 */
	uint32_t area_id;
	uint64_t first_page;
	uint32_t span_pages;
	uint32_t held_pages;        /* set bits of the bitmap = digests that follow */
	uint32_t digest_kind;       /* CKIMG_DIGEST_CRC_ADLER */
	uint32_t reserved;
} __attribute__((packed));
/* VARIABLE: bitmap[ceil(span_pages / 8)] zero-padded to a multiple of 8, then held_pages x
 * { u32 crc32, u32 adler32 } in address order. */

static_assert(sizeof(struct ckimg_parent_fixed) == 48, "parent layout");
static_assert(sizeof(struct ckimg_page_digests_fixed) == 32, "page digests layout");
/* ---- end of the incremental block ---- */

/* ---- unreadable pages (format 1.2, FORMAT.md "Unreadable pages") ---- */
#define CKIMG_REC_UNREADABLE_PAGES 0x0022 /* pages of an UNREADABLE area that failed to read */

struct ckimg_unreadable_fixed {
	uint32_t fixed_size;        /* 24 */
	uint32_t area_id;           /* an AREA flagged UNREADABLE; index key32 */
	uint32_t count;             /* ranges that follow */
	uint32_t entry_size;        /* 16: { u64 start, u64 end }, page-aligned, sorted, disjoint */
	uint64_t reserved;
} __attribute__((packed));

static_assert(sizeof(struct ckimg_unreadable_fixed) == 24, "unreadable pages layout");

/* ---- SysV IPC objects (format 1.2, FORMAT.md "SysV IPC"); types 0x0060-0x0067 ---- */
#define CKIMG_REC_SYSV_SHM   0x0060   /* a shared memory segment a process attaches; key32 = shmid */
#define CKIMG_REC_SYSV_SEM   0x0061   /* a semaphore set; key32 = semid */
#define CKIMG_REC_SYSV_MSG   0x0062   /* a message queue and its messages; key32 = msqid */
#define CKIMG_SYSV_REMOVED   (1u << 0) /* IPC_RMID done: the segment goes with its last detach */

struct ckimg_sysv_ipc_perm {   /* the common head of the three */
	uint32_t fixed_size;
	uint32_t id;                /* shmid / semid / msqid */
	uint32_t key;               /* 0: IPC_PRIVATE */
	uint32_t mode;              /* permission bits (the low 9 of ipc_perm.mode) */
	uint32_t uid, gid, cuid, cgid;
} __attribute__((packed));

struct ckimg_sysv_shm_fixed {
	struct ckimg_sysv_ipc_perm perm;   /* fixed_size 48 */
	uint64_t size;              /* shm_segsz */
	uint32_t flags;             /* CKIMG_SYSV_REMOVED */
	uint32_t reserved;
} __attribute__((packed));
/* no VARIABLE: the content is in the pages of the SHMEM AREAs (inode = shmid) attaching it */

struct ckimg_sysv_sem_fixed {
	struct ckimg_sysv_ipc_perm perm;   /* fixed_size 40 */
	uint32_t nsems;
	uint32_t reserved;
} __attribute__((packed));
/* VARIABLE: nsems x { u16 value, u16 reserved, u32 sempid } */

struct ckimg_sysv_msg_fixed {
	struct ckimg_sysv_ipc_perm perm;   /* fixed_size 48 */
	uint64_t qbytes;            /* msg_qbytes: the queue's byte limit */
	uint32_t count;             /* messages that follow, oldest first */
	uint32_t reserved;
} __attribute__((packed));
/* VARIABLE: count x { i64 mtype, u32 length, bytes[length] } */

static_assert(sizeof(struct ckimg_sysv_shm_fixed) == 48, "sysv shm layout");
static_assert(sizeof(struct ckimg_sysv_sem_fixed) == 40, "sysv sem layout");
static_assert(sizeof(struct ckimg_sysv_msg_fixed) == 48, "sysv msg layout");
/* ---- end of the SysV block ---- */

#endif /* CKIMG_FORMAT_H */
