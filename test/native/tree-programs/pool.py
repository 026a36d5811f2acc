# A multiprocessing.Pool (fork start method) of 2 workers squaring 0..N-1 slowly, for tree
# capture/restore tests: prints "progress K" every 50 results and "result SUM" at the end.
# Between the processes: task and result pipes, POSIX semaphores (sem_open files in /dev/shm,
# unlinked, mapped shared), the parent's handler threads.
import multiprocessing as mp
import sys
import time


def work(i):
    time.sleep(0.02)
    return i * i


if __name__ == "__main__":
    n = int(sys.argv[1])
    mp.set_start_method("fork")
    with mp.Pool(2) as pool:
        total = 0
        for k, v in enumerate(pool.imap(work, range(n), chunksize=1)):
            total += v
            if k % 50 == 0:
                print("progress", k, flush=True)
    print("result", total, flush=True)
