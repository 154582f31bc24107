/*
 * unsupported: a process with one resource that `stasis dump` rejects.
 *
 * Usage: unsupported MODE DIR
 *
 *   pidfd   keeps a pidfd of itself open
 *   sharedvm    clones a child that shares its address space (CLONE_VM
 *               without CLONE_THREAD)
 *   splitfiles  clones two children that share its fd table (CLONE_FILES),
 *               then gives itself a table of its own (unshare), so the two
 *               children share a table that their parent does not have
 *   socket  keeps a Unix domain socket open (unbound and unconnected, so it sends nothing)
 *   tty     keeps both ends of a pseudoterminal open, opened with O_NOCTTY
 *
 * Once the resource exists it writes DIR/ready with one line of key=value
 * pairs: "pid=P child=C", "pid=P child=C,D", "pid=P fd=N" or
 * "pid=P fd=M,S" (master and slave). Then it rewrites DIR/status at offset 0 every 10 ms with
 * "tick N", so a test can see that it still runs, until it is killed.
 * Setup errors exit 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *message)
{
    fprintf(stderr, "unsupported: %s: %s\n", message, strerror(errno));
    exit(2);
}

static int pause_forever(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return 0;
}

static void write_ready_file(const char *dir, const char *text)
{
    char path[4096], temporary[4096];
    int fd;

    /* Written under another name and renamed, so a reader never sees half a line. */
    snprintf(path, sizeof(path), "%s/ready", dir);
    snprintf(temporary, sizeof(temporary), "%s/ready.tmp", dir);
    fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("cannot create the ready file");
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        die("cannot write the ready file");
    close(fd);
    if (rename(temporary, path) != 0)
        die("cannot rename the ready file");
}

int main(int argc, char **argv)
{
    char ready[256];
    char status_path[4096];
    pid_t pid = getpid();

    if (argc != 3) {
        fprintf(stderr, "usage: unsupported pidfd|sharedvm|splitfiles|socket|tty DIR\n");
        return 2;
    }
    const char *mode = argv[1];
    const char *dir = argv[2];

    if (strcmp(mode, "sharedvm") == 0) {
        /* The child runs on this stack in the shared memory, so the parent never uses it. */
        static char stack[65536];
        int child = clone(pause_forever, stack + sizeof(stack), CLONE_VM | SIGCHLD, NULL);
        if (child < 0)
            die("clone failed");
        snprintf(ready, sizeof(ready), "pid=%d child=%d\n", (int)pid, child);
    } else if (strcmp(mode, "splitfiles") == 0) {
        /* Without CLONE_VM each child runs on its own copy of this stack. */
        static char stack[65536];
        int first = clone(pause_forever, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
        if (first < 0)
            die("clone failed");
        int second = clone(pause_forever, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
        if (second < 0)
            die("clone failed");
        if (unshare(CLONE_FILES) != 0)
            die("unshare failed");
        snprintf(ready, sizeof(ready), "pid=%d child=%d,%d\n", (int)pid, first, second);
    } else if (strcmp(mode, "pidfd") == 0) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0)
            die("pidfd_open failed");
        snprintf(ready, sizeof(ready), "pid=%d fd=%d\n", (int)pid, fd);
    } else if (strcmp(mode, "socket") == 0) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket failed");
        snprintf(ready, sizeof(ready), "pid=%d fd=%d\n", (int)pid, fd);
    } else if (strcmp(mode, "tty") == 0) {
        int master = posix_openpt(O_RDWR | O_NOCTTY);
        if (master < 0)
            die("posix_openpt failed");
        if (grantpt(master) != 0 || unlockpt(master) != 0)
            die("grantpt or unlockpt failed");
        const char *slave_path = ptsname(master);
        if (slave_path == NULL)
            die("ptsname failed");
        int slave = open(slave_path, O_RDWR | O_NOCTTY);
        if (slave < 0)
            die("cannot open the pseudoterminal slave");
        snprintf(ready, sizeof(ready), "pid=%d fd=%d,%d\n", (int)pid, master, slave);
    } else {
        fprintf(stderr, "unsupported: unknown mode %s, expected pidfd, sharedvm, splitfiles, socket or tty\n",
                mode);
        return 2;
    }

    snprintf(status_path, sizeof(status_path), "%s/status", dir);
    int status_fd = open(status_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (status_fd < 0)
        die("cannot open the status file");
    write_ready_file(dir, ready);

    for (unsigned long long tick = 1;; tick++) {
        char line[32];
        /* Fixed width, so a shorter line never leaves digits of a longer one behind. */
        int length = snprintf(line, sizeof(line), "tick %020llu\n", tick);
        if (pwrite(status_fd, line, (size_t)length, 0) != length)
            die("cannot write the status file");
        usleep(10000);
    }
}
