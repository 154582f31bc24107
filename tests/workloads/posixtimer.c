/*
 * A process with a periodic POSIX timer, for checkpoints of timers made
 * with timer_create.
 *
 * Usage: posixtimer STATUS_FILE STOP_FILE
 * A 10 ms CLOCK_MONOTONIC timer sends SIGUSR2, whose handler counts it and
 * checks the si_value the timer carries. The main loop rewrites
 * STATUS_FILE with "fired=N" every 20 ms. When STOP_FILE exists it prints
 * "OK fired=N id=I" (or "FAIL reason") and exits 0 only on success.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x5743

static volatile sig_atomic_t fired;
static volatile sig_atomic_t bad_value;

static void on_timer(int signo, siginfo_t *info, void *context)
{
	(void)signo;
	(void)context;
	if (info->si_value.sival_int != MAGIC)
		bad_value = 1;
	fired++;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s STATUS_FILE STOP_FILE\n", argv[0]);
		return 2;
	}
	struct sigaction action = { .sa_sigaction = on_timer, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigaction(SIGUSR2, &action, NULL);

	/* A first timer that is deleted, so the timer in use has ID 1, not 0. */
	timer_t unused, timer;
	struct sigevent event = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2 };
	event.sigev_value.sival_int = MAGIC;
	if (timer_create(CLOCK_MONOTONIC, &event, &unused) != 0 || timer_create(CLOCK_MONOTONIC, &event, &timer) != 0) {
		printf("FAIL timer_create\n");
		return 1;
	}
	timer_delete(unused);
	struct itimerspec period = { { 0, 10000000 }, { 0, 10000000 } };
	timer_settime(timer, 0, &period, NULL);

	char temporary[4096];
	snprintf(temporary, sizeof(temporary), "%s.tmp", argv[1]);
	while (access(argv[2], F_OK) != 0) {
		FILE *out = fopen(temporary, "w");
		if (out) {
			fprintf(out, "fired=%d\n", (int)fired);
			fclose(out);
			rename(temporary, argv[1]);
		}
		usleep(20000);
	}
	if (bad_value) {
		printf("FAIL a timer signal carried the wrong si_value\n");
		return 1;
	}
	printf("OK fired=%d id=%ld\n", (int)fired, (long)timer);
	return 0;
}
