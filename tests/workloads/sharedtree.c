/*
 * sharedtree: a tree of four processes where the sharing of the fd table
 * and the fs state differs between them, for checkpoints of such trees.
 *
 * Usage: sharedtree DIR
 *
 *   parent       opens DIR/parent-file and stays in DIR;
 *   files_child  clone(CLONE_FILES) of the parent: the parent's fd table,
 *                but its own fs state, with cwd DIR/one and umask 077;
 *   grandchild   clone(CLONE_FILES | CLONE_FS) of files_child: the same
 *                fd table and the fs state of files_child;
 *   plain_child  fork of the parent after the others exist: a copy of the
 *                table, to which it adds DIR/plain-file.
 *
 * DIR must be an absolute path. Once all four exist the parent writes
 * "ready parent=P files_child=C grandchild=G plain_child=F" to
 * DIR/status, and all four wait in pause(2) until they are killed.
 * Setup errors exit 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir;
static int ready_pipe[2];

static void die(const char *message)
{
	fprintf(stderr, "sharedtree: %s: %s\n", message, strerror(errno));
	exit(2);
}

static void send_pid(void)
{
	int pid = getpid();
	if (write(ready_pipe[1], &pid, sizeof(pid)) != sizeof(pid))
		die("cannot write to the ready pipe");
}

static int receive_pid(void)
{
	int pid;
	if (read(ready_pipe[0], &pid, sizeof(pid)) != sizeof(pid))
		die("cannot read from the ready pipe");
	return pid;
}

static int wait_forever(void *unused)
{
	(void)unused;
	for (;;)
		pause();
	return 0;
}

static int grandchild_main(void *unused)
{
	send_pid();
	return wait_forever(unused);
}

static int files_child_main(void *unused)
{
	/* Without CLONE_VM the grandchild runs on a copy of this stack. */
	static char stack[1 << 16];
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/one", dir);
	if (chdir(path) != 0)
		die("cannot enter DIR/one");
	umask(077);
	send_pid();
	if (clone(grandchild_main, stack + sizeof(stack), CLONE_FILES | CLONE_FS | SIGCHLD, NULL) < 0)
		die("clone of the grandchild failed");
	return wait_forever(unused);
}

int main(int argc, char **argv)
{
	/* Without CLONE_VM the child runs on a copy of this stack. */
	static char stack[1 << 16];
	char path[PATH_MAX];

	if (argc != 2 || argv[1][0] != '/') {
		fprintf(stderr, "usage: sharedtree ABSOLUTE_DIR\n");
		return 2;
	}
	dir = argv[1];
	if (chdir(dir) != 0)
		die("cannot enter DIR");
	snprintf(path, sizeof(path), "%s/one", dir);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("cannot create DIR/one");
	snprintf(path, sizeof(path), "%s/parent-file", dir);
	if (open(path, O_RDWR | O_CREAT | O_TRUNC, 0644) < 0)
		die("cannot open parent-file");
	if (pipe(ready_pipe) != 0)
		die("cannot create the ready pipe");

	if (clone(files_child_main, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL) < 0)
		die("clone of files_child failed");
	int files_child = receive_pid();
	int grandchild = receive_pid();

	pid_t plain_child = fork();
	if (plain_child < 0)
		die("fork failed");
	if (plain_child == 0) {
		snprintf(path, sizeof(path), "%s/plain-file", dir);
		if (open(path, O_RDWR | O_CREAT | O_TRUNC, 0644) < 0)
			die("cannot open plain-file");
		send_pid();
		wait_forever(NULL);
	}
	receive_pid();

	char ready[256];
	snprintf(ready, sizeof(ready), "ready parent=%d files_child=%d grandchild=%d plain_child=%d\n",
		 (int)getpid(), files_child, grandchild, (int)plain_child);
	char temporary[PATH_MAX];
	snprintf(temporary, sizeof(temporary), "%s/status.tmp", dir);
	snprintf(path, sizeof(path), "%s/status", dir);
	int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, ready, strlen(ready)) != (ssize_t)strlen(ready))
		die("cannot write the status file");
	close(fd);
	if (rename(temporary, path) != 0)
		die("cannot rename the status file");
	return wait_forever(NULL);
}
