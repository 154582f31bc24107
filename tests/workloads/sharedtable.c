/*
 * sharedtable: a parent and a child that share one fd table and one fs
 * state (clone with CLONE_FILES | CLONE_FS, no CLONE_VM), for checkpoints
 * of such processes.
 *
 * Usage: sharedtable DIR
 *
 * DIR must be an absolute path. The two processes talk through two pipes
 * that both see in the shared table, and send each other fd numbers.
 *
 * Before the dump:
 *   1. The child enters DIR/one, sets umask 027, opens child-file there
 *      and sends its fd number. The parent checks that the fd is open in
 *      its own table, that its cwd is DIR/one and its umask 027, and
 *      writes "parent\n" through that fd.
 *   2. The parent opens DIR/parent-file and sends its fd number. The child
 *      checks that the fd is open and writes "child\n" through it.
 *   3. The parent writes "ready parent=P child=C" to DIR/status and polls
 *      for DIR/go every 10 ms, while the child waits in read(2).
 * After DIR/go exists (the test creates it after the restore):
 *   4. The parent wakes the child. The child enters DIR/two, sets umask
 *      077, opens second-file, closes its first fd and sends the new fd's
 *      number.
 *   5. The parent checks that the closed fd is closed for it too (EBADF),
 *      that the new fd is open, that its cwd is DIR/two and its umask 077.
 *      It writes "parent\n" through the new fd, closes the fd it opened in
 *      step 2 and sends the child a message.
 *   6. The child checks that the parent's fd is closed for it too and that
 *      the shared file position is 7 (after the parent's write), and exits
 *      with 0 if every check held.
 * The parent waits for the child and prints "OK" and exits 0, or prints
 * "FAIL reason" lines and exits 1. Setup errors exit 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static int to_child[2];
static int to_parent[2];
static int failures;

static void die(const char *message)
{
	fprintf(stderr, "sharedtable: %s: %s\n", message, strerror(errno));
	exit(2);
}

/* Reports a failed check; the child reports through its exit status. */
static void fail(const char *format, ...)
{
	char line[512];
	va_list args;
	va_start(args, format);
	vsnprintf(line, sizeof(line), format, args);
	va_end(args);
	/* write(2), not stdio: both processes share fd 1, each with its own buffer. */
	dprintf(1, "FAIL %s\n", line);
	failures++;
}

static void send_int(int fd, int value)
{
	if (write(fd, &value, sizeof(value)) != sizeof(value))
		die("cannot write to a pipe");
}

static int receive_int(int fd)
{
	int value;
	ssize_t got;
	do {
		got = read(fd, &value, sizeof(value));
	} while (got < 0 && errno == EINTR);
	if (got != sizeof(value))
		die("cannot read from a pipe");
	return value;
}

static void path_in(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

/* Returns the umask without changing it, from /proc/self/status. */
static int current_umask(void)
{
	FILE *status = fopen("/proc/self/status", "r");
	char line[256];
	int mask = -1;
	if (status == NULL)
		die("cannot open /proc/self/status");
	while (fgets(line, sizeof(line), status) != NULL)
		if (sscanf(line, "Umask: %o", (unsigned *)&mask) == 1)
			break;
	fclose(status);
	return mask;
}

static void check_fs(const char *context, const char *expected_dir, int expected_umask)
{
	char cwd[PATH_MAX], expected[PATH_MAX];
	path_in(expected, sizeof(expected), expected_dir);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		die("getcwd failed");
	if (strcmp(cwd, expected) != 0)
		fail("%s: cwd is %s, expected %s", context, cwd, expected);
	int mask = current_umask();
	if (mask != expected_umask)
		fail("%s: umask is %03o, expected %03o", context, mask, expected_umask);
}

static void check_open(const char *context, int fd)
{
	if (fcntl(fd, F_GETFD) < 0)
		fail("%s: fd %d is not open: %s", context, fd, strerror(errno));
}

static void check_closed(const char *context, int fd)
{
	if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
		fail("%s: fd %d is still open after the other process closed it", context, fd);
}

static int child_main(void *unused)
{
	(void)unused;
	char path[PATH_MAX];

	/* Step 1. */
	path_in(path, sizeof(path), "one");
	if (chdir(path) != 0)
		die("cannot enter DIR/one");
	umask(027);
	int first = open("child-file", O_RDWR | O_CREAT | O_TRUNC, 0666);
	if (first < 0)
		die("cannot open child-file");
	send_int(to_parent[1], first);

	/* Step 2. */
	int parent_fd = receive_int(to_child[0]);
	check_open("child before the dump", parent_fd);
	if (write(parent_fd, "child\n", 6) != 6)
		fail("child: cannot write through fd %d: %s", parent_fd, strerror(errno));

	/* Step 4: waits here, in read(2), through the dump and the restore. */
	receive_int(to_child[0]);
	path_in(path, sizeof(path), "two");
	if (chdir(path) != 0)
		die("cannot enter DIR/two");
	umask(077);
	/* Opened before the close, so it cannot take the closed fd's number. */
	int second = open("second-file", O_RDWR | O_CREAT | O_TRUNC, 0666);
	if (second < 0)
		die("cannot open second-file");
	close(first);
	send_int(to_parent[1], second);

	/* Step 6. */
	receive_int(to_child[0]);
	check_closed("child after the restore", parent_fd);
	off_t position = lseek(second, 0, SEEK_CUR);
	if (position != 7)
		fail("child: position of fd %d is %lld, expected 7 after the parent's write", second,
		     (long long)position);
	return failures == 0 ? 0 : 1;
}

static void write_status(const char *text)
{
	char path[PATH_MAX], temporary[PATH_MAX];
	path_in(path, sizeof(path), "status");
	path_in(temporary, sizeof(temporary), "status.tmp");
	int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die("cannot write the status file");
	close(fd);
	if (rename(temporary, path) != 0)
		die("cannot rename the status file");
}

int main(int argc, char **argv)
{
	static char stack[1 << 16];
	char path[PATH_MAX];

	if (argc != 2 || argv[1][0] != '/') {
		fprintf(stderr, "usage: sharedtable ABSOLUTE_DIR\n");
		return 2;
	}
	dir = argv[1];
	path_in(path, sizeof(path), "one");
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("cannot create DIR/one");
	path_in(path, sizeof(path), "two");
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("cannot create DIR/two");
	if (pipe(to_child) != 0 || pipe(to_parent) != 0)
		die("cannot create the pipes");

	/* Its own stack: without CLONE_VM the child runs on a copy of it. */
	pid_t child = clone(child_main, stack + sizeof(stack), CLONE_FILES | CLONE_FS | SIGCHLD, NULL);
	if (child < 0)
		die("clone failed");

	/* Step 1. */
	int child_fd = receive_int(to_parent[0]);
	check_open("parent before the dump", child_fd);
	check_fs("parent before the dump", "one", 027);
	if (write(child_fd, "parent\n", 7) != 7)
		fail("parent: cannot write through fd %d: %s", child_fd, strerror(errno));

	/* Step 2. */
	path_in(path, sizeof(path), "parent-file");
	int parent_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (parent_fd < 0)
		die("cannot open parent-file");
	send_int(to_child[1], parent_fd);

	/* Step 3. */
	char ready[128];
	snprintf(ready, sizeof(ready), "ready parent=%d child=%d\n", (int)getpid(), (int)child);
	write_status(ready);
	path_in(path, sizeof(path), "go");
	while (access(path, F_OK) != 0)
		usleep(10000);

	/* Step 5. */
	send_int(to_child[1], 1);
	int second = receive_int(to_parent[0]);
	check_closed("parent after the restore", child_fd);
	check_open("parent after the restore", second);
	check_fs("parent after the restore", "two", 077);
	if (write(second, "parent\n", 7) != 7)
		fail("parent: cannot write through fd %d: %s", second, strerror(errno));
	close(parent_fd);
	send_int(to_child[1], 2);

	int status;
	if (waitpid(child, &status, 0) != child)
		die("waitpid failed");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("the child ended with status 0x%x", status);
	if (failures == 0)
		dprintf(1, "OK\n");
	return failures == 0 ? 0 : 1;
}
