"""
An asyncio program that carries on after capture -> kill -> restore: its event loop waits in
epoll, wakes up for call_later timers (epoll timeouts), for a real timerfd (ctypes) watched with
add_reader, and for call_soon_threadsafe from a worker thread, which writes to the loop's
self-pipe. The self-pipe is an eventfd here (asyncio's default is a socketpair). Every line
carries running counters so the test can see that the state went on, not restarted.
"""
import asyncio
import ctypes
import os
import selectors
import struct
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)


class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


class Itimerspec(ctypes.Structure):
    _fields_ = [("interval", Timespec), ("value", Timespec)]


def timerfd(period_ms):
    fd = libc.timerfd_create(1, os.O_NONBLOCK | os.O_CLOEXEC)  # CLOCK_MONOTONIC
    if fd < 0:
        raise OSError(ctypes.get_errno(), "timerfd_create")
    sec, ms = divmod(period_ms, 1000)
    its = Itimerspec(Timespec(sec, ms * 1_000_000), Timespec(sec, ms * 1_000_000))
    if libc.timerfd_settime(fd, 0, ctypes.byref(its), None) < 0:
        raise OSError(ctypes.get_errno(), "timerfd_settime")
    return fd


class EventfdLoop(asyncio.SelectorEventLoop):
    """asyncio's loop with an eventfd as its self-pipe."""

    def _make_self_pipe(self):
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._internal_fds += 1
        self._add_reader(self._efd, self._read_from_self)

    def _close_self_pipe(self):
        self._remove_reader(self._efd)
        os.close(self._efd)
        self._internal_fds -= 1

    def _read_from_self(self):
        try:
            os.eventfd_read(self._efd)
        except BlockingIOError:
            pass

    def _write_to_self(self):
        try:
            os.eventfd_write(self._efd, 1)
        except OSError:
            pass


state = {"timer": 0, "tfd": 0, "thread": 0, "total": 0}


async def main():
    loop = asyncio.get_running_loop()
    tfd = timerfd(70)

    def on_tfd():
        try:
            n = struct.unpack("Q", os.read(tfd, 8))[0]
        except BlockingIOError:
            return
        state["tfd"] += 1
        state["total"] += n

    loop.add_reader(tfd, on_tfd)

    def from_thread():
        state["thread"] += 1

    def worker():
        while True:
            time.sleep(0.05)
            loop.call_soon_threadsafe(from_thread)

    threading.Thread(target=worker, daemon=True).start()
    i = 0
    while True:
        await asyncio.sleep(0.1)
        i += 1
        state["timer"] = i
        print(f"tick {i} tfd {state['tfd']} thread {state['thread']} expirations {state['total']}", flush=True)


loop = EventfdLoop(selectors.EpollSelector())
asyncio.set_event_loop(loop)
loop.run_until_complete(main())
