/*
 * A process that watches a directory with inotify, for checkpoints of
 * inotify instances.
 *
 * Usage: inotify DIR STATUS_FILE STOP_FILE
 * A first watch (on DIR/gap) is added and removed, so the watch on DIR
 * gets descriptor 2. Every IN_CREATE event on DIR for a file whose name
 * starts with "file" is counted; STATUS_FILE gets "created=N". When
 * STOP_FILE exists the program prints "OK created=N wd=W" and exits 0, or
 * "FAIL reason" and exits 1 if an event came from another descriptor.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s DIR STATUS_FILE STOP_FILE\n", argv[0]);
		return 2;
	}
	char gap[4096];
	snprintf(gap, sizeof(gap), "%s/gap", argv[1]);
	mkdir(gap, 0755);
	int fd = inotify_init1(IN_NONBLOCK);
	int first = inotify_add_watch(fd, gap, IN_CREATE);
	inotify_rm_watch(fd, first);
	int wd = inotify_add_watch(fd, argv[1], IN_CREATE);
	if (fd < 0 || wd < 0) {
		printf("FAIL inotify setup\n");
		return 1;
	}

	int created = 0;
	char temporary[4096];
	snprintf(temporary, sizeof(temporary), "%s.tmp", argv[2]);
	while (access(argv[3], F_OK) != 0) {
		char buffer[4096] __attribute__((aligned(8)));
		ssize_t n;
		while ((n = read(fd, buffer, sizeof(buffer))) > 0) {
			for (char *at = buffer; at < buffer + n;) {
				struct inotify_event *event = (struct inotify_event *)at;
				at += sizeof(*event) + event->len;
				/* Removing the first watch queued an IN_IGNORED event for it. */
				if (event->mask & IN_IGNORED)
					continue;
				if (event->wd != wd) {
					printf("FAIL event from descriptor %d, expected %d\n", event->wd, wd);
					return 1;
				}
				if (event->len > 0 && strncmp(event->name, "file", 4) == 0)
					created++;
			}
		}
		FILE *out = fopen(temporary, "w");
		if (out) {
			fprintf(out, "created=%d\n", created);
			fclose(out);
			rename(temporary, argv[2]);
		}
		usleep(10000);
	}
	printf("OK created=%d wd=%d\n", created, wd);
	return 0;
}
