/*
 * An event loop on epoll with a timerfd, an eventfd and a signalfd, for
 * checkpoints of those file kinds.
 *
 * Usage: eventloop STATUS_FILE STOP_FILE
 * A 10 ms periodic timerfd wakes the loop; on each expiration the loop
 * adds 1 to an eventfd, and counts what it reads back from the eventfd.
 * SIGUSR1 is blocked and read through a signalfd. After every wake-up,
 * STATUS_FILE gets "ticks=T events=E signals=S". When STOP_FILE exists the
 * loop checks that every tick produced one event and prints
 * "OK ticks=T events=E signals=S", or "FAIL reason"; the exit status is 0
 * only on success.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

static int fail(const char *what)
{
	printf("FAIL %s\n", what);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s STATUS_FILE STOP_FILE\n", argv[0]);
		return 2;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	int events = eventfd(0, EFD_NONBLOCK);
	int signals = signalfd(-1, &mask, SFD_NONBLOCK);
	int epoll = epoll_create1(0);
	if (timer < 0 || events < 0 || signals < 0 || epoll < 0)
		return fail("cannot create the files");
	struct itimerspec period = { { 0, 10000000 }, { 0, 10000000 } };
	timerfd_settime(timer, 0, &period, NULL);
	int watched[] = { timer, events, signals };
	for (int i = 0; i < 3; i++) {
		struct epoll_event event = { .events = EPOLLIN, .data.u64 = 1000 + watched[i] };
		if (epoll_ctl(epoll, EPOLL_CTL_ADD, watched[i], &event) != 0)
			return fail("epoll_ctl failed");
	}

	uint64_t ticks = 0, event_count = 0, signal_count = 0;
	while (access(argv[2], F_OK) != 0) {
		struct epoll_event ready[4];
		int n = epoll_wait(epoll, ready, 4, 1000);
		for (int i = 0; i < n; i++) {
			uint64_t value;
			int fd = (int)(ready[i].data.u64 - 1000);
			if (fd == timer && read(timer, &value, 8) == 8) {
				ticks += value;
				if (write(events, &value, 8) != 8)
					return fail("eventfd write failed");
			} else if (fd == events && read(events, &value, 8) == 8) {
				event_count += value;
			} else if (fd == signals) {
				struct signalfd_siginfo info;
				while (read(signals, &info, sizeof(info)) == sizeof(info))
					if (info.ssi_signo == SIGUSR1)
						signal_count++;
			} else if (fd != timer && fd != events) {
				return fail("epoll returned unknown data");
			}
		}
		/* Written to a temporary file and renamed, so readers never see a
		 * half-written status. */
		char temporary[4096];
		snprintf(temporary, sizeof(temporary), "%s.tmp", argv[1]);
		FILE *out = fopen(temporary, "w");
		if (out) {
			fprintf(out, "ticks=%llu events=%llu signals=%llu\n", (unsigned long long)ticks,
				(unsigned long long)event_count, (unsigned long long)signal_count);
			fclose(out);
			rename(temporary, argv[1]);
		}
	}
	/* Collect the event of the last tick, if the loop stopped before it. */
	uint64_t value;
	if (read(events, &value, 8) == 8)
		event_count += value;
	if (event_count != ticks) {
		printf("FAIL ticks=%llu events=%llu\n", (unsigned long long)ticks, (unsigned long long)event_count);
		return 1;
	}
	printf("OK ticks=%llu events=%llu signals=%llu\n", (unsigned long long)ticks,
	       (unsigned long long)event_count, (unsigned long long)signal_count);
	return 0;
}
