/*
 * Two processes that work together through System V IPC, for checkpoints
 * of a tree in its own IPC namespace (run it with unshare --ipc).
 *
 * Usage: sysvipc STATUS_FILE STOP_FILE [MODE]
 *
 * Objects:
 * - segment "counter" (key 0x53540001, 3 pages plus 100 bytes, mode 0640,
 *   locked with SHM_LOCK), attached by both processes. It contains a
 *   counter that both add to under semaphore 0, and how much each added;
 * - a semaphore set (key 0x53540002, mode 0600) of two semaphores: 0 is
 *   the lock (1 when free), 1 stays 7;
 * - a message queue (key 0x53540003, mode 0620, msg_qbytes 12000): the
 *   parent sends round N as a type 1 message, the child adds to the counter
 *   and replies with type 2 and the same N. At the start the parent also
 *   queues 5 type 3 messages of different lengths that stay queued until
 *   the end;
 * - segment "unattached" (key 0x53540004), filled with a pattern, then
 *   detached;
 * - segment "removed" (IPC_PRIVATE), filled with a pattern and removed
 *   with IPC_RMID while the parent keeps it attached.
 * A semaphore set and a message queue are created and removed before the
 * others, so that the IDs in use are not the first ones.
 *
 * semop runs without SEM_UNDO. Every System V call is retried on EINTR,
 * which a stop (such as a checkpoint) can cause.
 *
 * The parent rewrites STATUS_FILE with "rounds=N" after every 10 rounds.
 * When STOP_FILE exists it stops the child, checks every object and the
 * IDs it saw at the start, and prints "OK rounds=N counter=C" (or "FAIL
 * reason") and exits 0 only on success.
 *
 * A MODE other than partial sets up a special case, and then the parent
 * only counts rounds of 1 ms sleeps into STATUS_FILE until it is killed.
 * A checkpoint must reject attach-only, child-namespace and posix-queue,
 * and accept the others:
 * - attach-only: only one IPC_PRIVATE segment, attached and removed, in
 *   the IPC namespace the program starts in;
 * - forced: sets kernel.shm_rmid_forced to 1, then creates the
 *   unattached segment without ever attaching it, because with that
 *   setting the last detach removes a segment. A checkpoint must keep
 *   that segment;
 * - undo: the objects above, and a semop with SEM_UNDO by the parent,
 *   whose undo list a checkpoint cannot save and warns about;
 * - child-namespace: the objects above, and a child that moves to an IPC
 *   namespace of its own (unshare CLONE_NEWIPC);
 * - partial: the normal run, with two attachments that cover only part
 *   of their segment (see main);
 * - posix-queue: only a POSIX message queue, kept open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define COUNTER_KEY 0x53540001
#define SEM_KEY 0x53540002
#define QUEUE_KEY 0x53540003
#define UNATTACHED_KEY 0x53540004
#define COUNTER_SIZE (3 * 4096 + 100)
#define PATTERN_SIZE 8192
#define BALLAST 5

struct shared {
	long counter;
	long parent_adds;
	long child_adds;
};

struct message {
	long mtype;
	char text[1024];
};

static int sem_id, queue_id;

static void fail(const char *what)
{
	printf("FAIL %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static void sem_change(int delta)
{
	struct sembuf op = { .sem_num = 0, .sem_op = delta, .sem_flg = 0 };
	while (semop(sem_id, &op, 1) != 0)
		if (errno != EINTR)
			fail("semop");
}

static void queue_send(long type, const void *text, size_t len)
{
	struct message message = { .mtype = type };
	memcpy(message.text, text, len);
	while (msgsnd(queue_id, &message, len, 0) != 0)
		if (errno != EINTR)
			fail("msgsnd");
}

static ssize_t queue_receive(long type, struct message *message)
{
	ssize_t len;
	while ((len = msgrcv(queue_id, message, sizeof(message->text), type, 0)) < 0)
		if (errno != EINTR)
			fail("msgrcv");
	return len;
}

static void add(struct shared *shared, long *mine)
{
	sem_change(-1);
	shared->counter++;
	(*mine)++;
	sem_change(1);
}

static char pattern_byte(int seed, size_t index)
{
	return (char)((index * 31 + seed) & 0xff);
}

/*
 * Replies to rounds until round 0. The child also attaches the counter
 * segment read-only, and at the end checks that this view shows what the
 * writable one shows and is still mapped read-only.
 */
static int child(int counter_id, struct shared *shared)
{
	const struct shared *view = shmat(counter_id, NULL, SHM_RDONLY);
	if (view == (void *)-1)
		fail("shmat read-only");
	struct message message;
	for (;;) {
		queue_receive(1, &message);
		long round;
		memcpy(&round, message.text, sizeof(round));
		if (round == 0) {
			if (view->counter != shared->counter) {
				printf("FAIL the read-only view shows %ld, the segment %ld\n",
				       view->counter, shared->counter);
				return 1;
			}
			char expected[64];
			snprintf(expected, sizeof(expected), "%lx-", (unsigned long)view);
			FILE *maps = fopen("/proc/self/maps", "r");
			char line[512];
			int read_only = 0;
			while (maps && fgets(line, sizeof(line), maps))
				if (strncmp(line, expected, strlen(expected)) == 0)
					read_only = strncmp(line + strcspn(line, " ") + 1, "r--s", 4) == 0;
			if (maps)
				fclose(maps);
			if (!read_only) {
				printf("FAIL the read-only view is not mapped r--s\n");
				return 1;
			}
			return 0;
		}
		add(shared, &shared->child_adds);
		queue_send(2, &round, sizeof(round));
	}
}

/* Counts rounds of 1 ms sleeps into the status file until killed. */
static _Noreturn void idle(const char *status)
{
	char temporary[4096];
	snprintf(temporary, sizeof(temporary), "%s.tmp", status);
	for (long rounds = 1;; rounds++) {
		usleep(1000);
		if (rounds % 10 == 0) {
			FILE *out = fopen(temporary, "w");
			if (out) {
				fprintf(out, "rounds=%ld\n", rounds);
				fclose(out);
				rename(temporary, status);
			}
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s STATUS_FILE STOP_FILE [MODE]\n", argv[0]);
		return 2;
	}
	const char *mode = argc == 4 ? argv[3] : "";

	if (strcmp(mode, "posix-queue") == 0) {
		if (mq_open("/stasis-test", O_CREAT | O_RDWR, 0600, NULL) == (mqd_t)-1)
			fail("mq_open");
		idle(argv[1]);
	}
	if (strcmp(mode, "forced") == 0) {
		FILE *sysctl = fopen("/proc/sys/kernel/shm_rmid_forced", "w");
		if (!sysctl || fputs("1\n", sysctl) < 0 || fclose(sysctl) != 0)
			fail("setting shm_rmid_forced");
		if (shmget(UNATTACHED_KEY, PATTERN_SIZE, IPC_CREAT | IPC_EXCL | 0604) < 0)
			fail("unattached segment");
		idle(argv[1]);
	}
	if (strcmp(mode, "attach-only") == 0) {
		int id = shmget(IPC_PRIVATE, 4096, 0600);
		if (id < 0 || shmat(id, NULL, 0) == (void *)-1 || shmctl(id, IPC_RMID, NULL) != 0)
			fail("private segment");
		idle(argv[1]);
	}

	/* Objects created and removed first, so that IDs do not start at 0. */
	int early = semget(IPC_PRIVATE, 1, 0600);
	if (early < 0 || semctl(early, 0, IPC_RMID) != 0)
		fail("early semaphore set");
	early = msgget(IPC_PRIVATE, 0600);
	if (early < 0 || msgctl(early, IPC_RMID, NULL) != 0)
		fail("early message queue");

	int counter_id = shmget(COUNTER_KEY, COUNTER_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	if (counter_id < 0)
		fail("shmget counter");
	struct shared *shared = shmat(counter_id, NULL, 0);
	if (shared == (void *)-1)
		fail("shmat counter");
	if (shmctl(counter_id, SHM_LOCK, NULL) != 0)
		fail("shmctl SHM_LOCK");
	/* The last byte of the segment, past the last full page. */
	((char *)shared)[COUNTER_SIZE - 1] = 'Z';

	sem_id = semget(SEM_KEY, 2, IPC_CREAT | IPC_EXCL | 0600);
	unsigned short initial[2] = { 1, 7 };
	if (sem_id < 0 || semctl(sem_id, 0, SETALL, initial) != 0)
		fail("semaphore set");

	queue_id = msgget(QUEUE_KEY, IPC_CREAT | IPC_EXCL | 0620);
	struct msqid_ds queue_state;
	if (queue_id < 0 || msgctl(queue_id, IPC_STAT, &queue_state) != 0)
		fail("message queue");
	queue_state.msg_qbytes = 12000;
	if (msgctl(queue_id, IPC_SET, &queue_state) != 0)
		fail("msgctl IPC_SET");
	for (int i = 0; i < BALLAST; i++) {
		char text[200];
		memset(text, 'a' + i, sizeof(text));
		queue_send(3, text, 40 * i + 1);
	}

	int unattached_id = shmget(UNATTACHED_KEY, PATTERN_SIZE, IPC_CREAT | IPC_EXCL | 0604);
	char *unattached = shmat(unattached_id, NULL, 0);
	if (unattached_id < 0 || unattached == (void *)-1)
		fail("unattached segment");
	for (size_t i = 0; i < PATTERN_SIZE; i++)
		unattached[i] = pattern_byte(1, i);
	shmdt(unattached);

	int removed_id = shmget(IPC_PRIVATE, PATTERN_SIZE, 0600);
	char *removed = shmat(removed_id, NULL, 0);
	if (removed_id < 0 || removed == (void *)-1)
		fail("removed segment");
	for (size_t i = 0; i < PATTERN_SIZE; i++)
		removed[i] = pattern_byte(2, i);
	if (shmctl(removed_id, IPC_RMID, NULL) != 0)
		fail("shmctl IPC_RMID");

	if (strcmp(mode, "undo") == 0) {
		struct sembuf ops[2] = { { 1, -1, SEM_UNDO }, { 1, 1, SEM_UNDO } };
		if (semop(sem_id, ops, 2) != 0)
			fail("semop SEM_UNDO");
		idle(argv[1]);
	}
	/*
	 * In partial mode the second page of the removed segment is unmapped.
	 * A second attachment of the unattached segment keeps only its second
	 * page. So the parent has two attachments that cover part of their
	 * segment, one of them at offset 4096.
	 */
	int partial = strcmp(mode, "partial") == 0;
	char *second_half = NULL;
	if (partial) {
		second_half = shmat(unattached_id, NULL, SHM_RDONLY);
		if (second_half == (void *)-1 || munmap(removed + 4096, 4096) != 0 ||
		    munmap(second_half, 4096) != 0)
			fail("partial attachments");
	}
	if (strcmp(mode, "child-namespace") == 0) {
		pid_t pid = fork();
		if (pid < 0)
			fail("fork");
		if (pid == 0) {
			if (unshare(CLONE_NEWIPC) != 0)
				fail("unshare");
			for (;;)
				pause();
		}
		idle(argv[1]);
	}

	pid_t pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0)
		return child(counter_id, shared);

	char temporary[4096];
	snprintf(temporary, sizeof(temporary), "%s.tmp", argv[1]);
	long rounds = 0;
	while (access(argv[2], F_OK) != 0) {
		rounds++;
		queue_send(1, &rounds, sizeof(rounds));
		add(shared, &shared->parent_adds);
		struct message answer;
		queue_receive(2, &answer);
		long echoed;
		memcpy(&echoed, answer.text, sizeof(echoed));
		if (echoed != rounds) {
			printf("FAIL round %ld came back as %ld\n", rounds, echoed);
			return 1;
		}
		if (rounds % 10 == 0) {
			FILE *out = fopen(temporary, "w");
			if (out) {
				fprintf(out, "rounds=%ld\n", rounds);
				fclose(out);
				rename(temporary, argv[1]);
			}
			usleep(2000);
		}
	}

	long stop = 0;
	queue_send(1, &stop, sizeof(stop));
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL the child ended with status %#x\n", status);
		return 1;
	}

	if (shared->parent_adds != rounds || shared->child_adds != rounds ||
	    shared->counter != 2 * rounds) {
		printf("FAIL counter %ld, parent added %ld, child added %ld, rounds %ld\n",
		       shared->counter, shared->parent_adds, shared->child_adds, rounds);
		return 1;
	}
	if (((char *)shared)[COUNTER_SIZE - 1] != 'Z') {
		printf("FAIL the last byte of the counter segment changed\n");
		return 1;
	}
	if (shmget(COUNTER_KEY, 0, 0) != counter_id || semget(SEM_KEY, 0, 0) != sem_id ||
	    msgget(QUEUE_KEY, 0) != queue_id || shmget(UNATTACHED_KEY, 0, 0) != unattached_id) {
		printf("FAIL an object has another ID than at the start\n");
		return 1;
	}
	struct shmid_ds counter_state;
	if (shmctl(counter_id, IPC_STAT, &counter_state) != 0 ||
	    counter_state.shm_segsz != COUNTER_SIZE || (counter_state.shm_perm.mode & 0777) != 0640 ||
	    counter_state.shm_nattch != 1 || !(counter_state.shm_perm.mode & SHM_LOCKED)) {
		printf("FAIL counter segment: size %zu, mode %o, %lu attachments\n",
		       (size_t)counter_state.shm_segsz, counter_state.shm_perm.mode & 07777,
		       (unsigned long)counter_state.shm_nattch);
		return 1;
	}
	unsigned short values[2];
	if (semctl(sem_id, 0, GETALL, values) != 0 || values[0] != 1 || values[1] != 7) {
		printf("FAIL semaphore values %u %u, expected 1 7\n", values[0], values[1]);
		return 1;
	}
	if (msgctl(queue_id, IPC_STAT, &queue_state) != 0 || queue_state.msg_qbytes != 12000 ||
	    (queue_state.msg_perm.mode & 0777) != 0620 || queue_state.msg_qnum != BALLAST) {
		printf("FAIL queue: max %lu bytes, mode %o, %lu messages\n",
		       (unsigned long)queue_state.msg_qbytes, queue_state.msg_perm.mode & 0777,
		       (unsigned long)queue_state.msg_qnum);
		return 1;
	}
	for (int i = 0; i < BALLAST; i++) {
		struct message message;
		ssize_t len = queue_receive(3, &message);
		if (len != 40 * i + 1 || message.text[0] != 'a' + i || message.text[len - 1] != 'a' + i) {
			printf("FAIL queued message %d has %zd bytes starting with %c\n", i, len,
			       message.text[0]);
			return 1;
		}
	}
	if (partial) {
		for (size_t i = 4096; i < PATTERN_SIZE; i++) {
			if (second_half[i] != pattern_byte(1, i)) {
				printf("FAIL the second half differs at byte %zu\n", i);
				return 1;
			}
		}
		/* shmdt finds the remaining part by the original attach address. */
		struct shmid_ds state;
		if (shmdt(second_half) != 0 || shmctl(unattached_id, IPC_STAT, &state) != 0 ||
		    state.shm_nattch != 0) {
			printf("FAIL shmdt of the second half: %s\n", strerror(errno));
			return 1;
		}
	}
	unattached = shmat(unattached_id, NULL, SHM_RDONLY);
	if (unattached == (void *)-1)
		fail("shmat unattached");
	size_t removed_mapped = partial ? 4096 : PATTERN_SIZE;
	for (size_t i = 0; i < PATTERN_SIZE; i++) {
		if (unattached[i] != pattern_byte(1, i) ||
		    (i < removed_mapped && removed[i] != pattern_byte(2, i))) {
			printf("FAIL pattern differs at byte %zu\n", i);
			return 1;
		}
	}
	struct shmid_ds removed_state;
	if (shmctl(removed_id, IPC_STAT, &removed_state) != 0 ||
	    !(removed_state.shm_perm.mode & SHM_DEST)) {
		printf("FAIL the removed segment is not marked for removal\n");
		return 1;
	}

	printf("OK rounds=%ld counter=%ld\n", rounds, shared->counter);
	return 0;
}
