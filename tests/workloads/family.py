"""A parent with two children, for checkpoints of a process tree.

Usage: family.py DIR

- The first child exits at once with status 7 and stays a zombie until the
  parent waits for it at the end.
- The second child and the parent append numbered lines to DIR/log through
  one shared file descriptor without O_APPEND, so the lines land one after
  another only if they share the file offset.

DIR/ready gets "parent=P zombie=Z writer=W" once both children exist. When
DIR/stop appears, the parent stops the writer, waits for both children and
writes "zombie_status=S writer_status=T" to DIR/result.
"""

import os
import signal
import sys
import time

directory = sys.argv[1]
log = os.open(os.path.join(directory, "log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


def append_lines(name):
    number = 0
    while True:
        number += 1
        os.write(log, f"{name} {number}\n".encode())
        time.sleep(0.005)
        if name == "parent" and os.path.exists(os.path.join(directory, "stop")):
            return


zombie = os.fork()
if zombie == 0:
    os._exit(7)

writer = os.fork()
if writer == 0:
    append_lines("child")

with open(os.path.join(directory, "ready.tmp"), "w") as ready:
    ready.write(f"parent={os.getpid()} zombie={zombie} writer={writer}\n")
os.rename(os.path.join(directory, "ready.tmp"), os.path.join(directory, "ready"))

append_lines("parent")
os.kill(writer, signal.SIGTERM)
_, writer_status = os.waitpid(writer, 0)
_, zombie_status = os.waitpid(zombie, 0)
with open(os.path.join(directory, "result"), "w") as result:
    result.write(f"zombie_status={os.waitstatus_to_exitcode(zombie_status)} "
                 f"writer_status={os.waitstatus_to_exitcode(writer_status)}\n")
