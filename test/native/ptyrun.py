#!/usr/bin/env python3
"""Run a command on a new pseudo-terminal of ROWS x COLS as its controlling terminal.

usage: ptyrun.py ROWS COLS CMD [ARG...]

The command's terminal output is copied to our stdout, our stdin to its terminal. Exits with
the command's status (128 + signal when killed). Tests use it to give a process a terminal.
"""
import fcntl
import os
import pty
import select
import struct
import sys
import termios


def main() -> int:
    rows, cols, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    watch = [fd, 0]
    while True:
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            continue
        if fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            os.write(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                os.write(fd, data)
            else:
                watch.remove(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
