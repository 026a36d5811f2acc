/* A socketpair with a queued message carrying an eventfd the process then closed (SCM_RIGHTS):
 * a file in flight that the image cannot describe (only the process's own files, regular files
 * and ends of its pipes can be passed again). */
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	int sv[2], p[2];
	char data[] = "with a file";
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } ctl;
	struct iovec iov = { data, sizeof(data) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) || (p[0] = eventfd(3, 0)) < 0)
		return 1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
	if (sendmsg(sv[0], &mh, 0) < 0)
		return 1;
	close(p[0]);      /* now only in flight */
	printf("ready %d\n", sv[1]);
	fflush(stdout);
	for (;;)
		pause();
}
