"""A parent and a child that check their own PIDs, for restores into a new
PID namespace.

Usage: pidns.py DIR

The parent forks a child and writes "parent=P child=C" to DIR/ready. The
child waits for SIGTERM, then exits with status 0 if getpid() still returns
the PID it had at the start, and 1 otherwise. The parent waits for SIGUSR1,
then sends SIGTERM to the child by the PID that fork returned, waits for
it, and writes one line to DIR/result:

    start_pid=P pid=Q child=C child_status=S ppid=R proc_self=T

where P is the parent's PID at the start, Q the one getpid() returns at
the end, R what getppid() returns and T the PID that /proc/self names.
It exits with status 0 if P equals Q, and 1 otherwise.
"""

import os
import signal
import sys

directory = sys.argv[1]
# Blocked before fork, so neither signal can arrive before sigwait.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
start_pid = os.getpid()

child = os.fork()
if child == 0:
    child_start_pid = os.getpid()
    signal.sigwait({signal.SIGTERM})
    os._exit(0 if os.getpid() == child_start_pid else 1)

with open(os.path.join(directory, "ready.tmp"), "w") as ready:
    ready.write(f"parent={start_pid} child={child}\n")
os.rename(os.path.join(directory, "ready.tmp"), os.path.join(directory, "ready"))

signal.sigwait({signal.SIGUSR1})
os.kill(child, signal.SIGTERM)
_, status = os.waitpid(child, 0)
pid = os.getpid()
with open(os.path.join(directory, "result.tmp"), "w") as result:
    result.write(
        f"start_pid={start_pid} pid={pid} child={child} "
        f"child_status={os.waitstatus_to_exitcode(status)} "
        f"ppid={os.getppid()} proc_self={os.readlink('/proc/self')}\n"
    )
os.rename(os.path.join(directory, "result.tmp"), os.path.join(directory, "result"))
sys.exit(0 if pid == start_pid else 1)
