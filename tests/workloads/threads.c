/*
 * A multi-threaded workload that checks its own invariants across a
 * checkpoint: worker threads update a shared counter under a mutex,
 * meet at a barrier every round, and a waiter thread sleeps on a condition
 * variable until each round completes.
 *
 * Usage: threads STATUS_FILE STOP_FILE
 * Every 50 ms the main thread rewrites STATUS_FILE with
 * "rounds=R total=T". When STOP_FILE exists, the threads are stopped and
 * joined, the invariants checked, and "OK rounds=R total=T" or
 * "FAIL reason" is printed; the exit status is 0 only on success.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKERS 4
#define STEPS_PER_ROUND 200

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t round_done = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t barrier;
static long total;
static long per_worker[WORKERS];
static long rounds;
static long rounds_seen_by_waiter;
static volatile int stopping;
static char failure[256];

static void fail(const char *reason)
{
	pthread_mutex_lock(&lock);
	if (!failure[0])
		snprintf(failure, sizeof(failure), "%s", reason);
	pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
	long index = (long)arg;
	char name[16];

	snprintf(name, sizeof(name), "worker-%ld", index);
	pthread_setname_np(pthread_self(), name);
	while (!stopping) {
		for (int step = 0; step < STEPS_PER_ROUND; step++) {
			pthread_mutex_lock(&lock);
			total++;
			per_worker[index]++;
			long sum = 0;
			for (int i = 0; i < WORKERS; i++)
				sum += per_worker[i];
			if (sum != total)
				snprintf(failure, sizeof(failure), "total %ld != sum %ld", total, sum);
			pthread_mutex_unlock(&lock);
			usleep(50);
		}
		/* Every worker finishes the round before any starts the next. */
		int serial = pthread_barrier_wait(&barrier);
		if (serial == PTHREAD_BARRIER_SERIAL_THREAD) {
			pthread_mutex_lock(&lock);
			rounds++;
			if (total != rounds * WORKERS * STEPS_PER_ROUND)
				snprintf(failure, sizeof(failure), "after round %ld total is %ld", rounds, total);
			pthread_cond_broadcast(&round_done);
			pthread_mutex_unlock(&lock);
		}
		pthread_barrier_wait(&barrier);
	}
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "waiter");
	pthread_mutex_lock(&lock);
	while (!stopping) {
		long before = rounds;
		while (rounds == before && !stopping)
			pthread_cond_wait(&round_done, &lock);
		if (rounds < before)
			snprintf(failure, sizeof(failure), "round count went back from %ld to %ld", before, rounds);
		rounds_seen_by_waiter++;
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t workers[WORKERS], waiter_thread;

	if (argc != 3) {
		fprintf(stderr, "usage: %s STATUS_FILE STOP_FILE\n", argv[0]);
		return 2;
	}
	pthread_barrier_init(&barrier, NULL, WORKERS);
	for (long i = 0; i < WORKERS; i++)
		pthread_create(&workers[i], NULL, worker, (void *)i);
	pthread_create(&waiter_thread, NULL, waiter, NULL);

	while (access(argv[2], F_OK) != 0) {
		pthread_mutex_lock(&lock);
		long r = rounds, t = total;
		pthread_mutex_unlock(&lock);
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
		FILE *out = fopen(tmp, "w");
		if (out) {
			fprintf(out, "rounds=%ld total=%ld\n", r, t);
			fclose(out);
			rename(tmp, argv[1]);
		}
		usleep(50000);
	}

	/* Let the workers finish their round, then wake everyone. */
	stopping = 1;
	for (int i = 0; i < WORKERS; i++)
		pthread_join(workers[i], NULL);
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&round_done);
	pthread_mutex_unlock(&lock);
	pthread_join(waiter_thread, NULL);

	if (!failure[0] && total != rounds * WORKERS * STEPS_PER_ROUND)
		snprintf(failure, sizeof(failure), "final total %ld for %ld rounds", total, rounds);
	if (!failure[0] && rounds_seen_by_waiter == 0)
		snprintf(failure, sizeof(failure), "the waiter never woke");
	if (failure[0]) {
		printf("FAIL %s\n", failure);
		return 1;
	}
	printf("OK rounds=%ld total=%ld\n", rounds, total);
	return 0;
}
