#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile int stop;
__attribute__((noinline)) void wait_here(int n) {
  if (n < 5) write(1, "ready\n", 6);
  while (!stop) pause();
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) void spin_here(int n) {
  if (n < 5) write(1, "ready\n", 6);
  while (!stop) __asm__ volatile("" ::: "memory");
}
/* mode 3: spin calling clock_gettime, which runs in the vDSO */
__attribute__((noinline)) void clock_here(int n) {
  struct timespec ts;
  if (n < 5) write(1, "ready\n", 6);
  while (!stop) clock_gettime(CLOCK_MONOTONIC, &ts);
}
/* mode 2: the thread sleeps inside a signal handler, interrupted in raise() called from level2 */
__attribute__((noinline)) void in_handler(int sig) { (void)sig; wait_here(1); }
__attribute__((noinline)) void level2(int n, int spin) {
  if (spin == 3) clock_here(n + 1);
  else if (spin == 2) raise(SIGUSR1);
  else if (spin) spin_here(n + 1); else wait_here(n + 1);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) void *thread_main(void *a) { (void)a; level2(10, 0); return 0; }
int main(int argc, char **argv) {
  int spin = argc > 1 && !strcmp(argv[1], "spin") ? 1 : argc > 1 && !strcmp(argv[1], "signal") ? 2 : argc > 1 && !strcmp(argv[1], "vdso") ? 3 : 0;
  signal(SIGUSR1, in_handler);
  pthread_t t;
  pthread_create(&t, 0, thread_main, 0);
  level2(1, spin);
  return 0;
}
