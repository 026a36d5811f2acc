#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <signal.h>
volatile unsigned long counter_total, worker_total;
static void on_usr1(int s) { (void)s; counter_total += 1000; }
static void *worker(void *a) { (void)a; for (;;) { worker_total++; usleep(100000); } return 0; }
int main(void) {
  pthread_t t; signal(SIGUSR1, on_usr1); pthread_create(&t, 0, worker, 0);
  for (;;) { counter_total++; usleep(100000); }
}
