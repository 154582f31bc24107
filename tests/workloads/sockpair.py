"""A parent and a child that talk over a stream and a datagram socketpair,
for checkpoints of connected Unix sockets with data waiting in them.

Usage: sockpair.py DIR

The parent sends the numbers 1..300, each as a line on the stream socket
and as a datagram, faster than the child reads them, so data waits in both
sockets. The child checks that both arrive in order and once, and replies
"done N" on the datagram socket. The parent writes the number sent so far
to DIR/progress and, at the end, "done N child_status=S" to DIR/result.
"""

import os
import socket
import sys
import time

COUNT = 300
directory = sys.argv[1]
stream_parent, stream_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
dgram_parent, dgram_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

child = os.fork()
if child == 0:
    stream_parent.close()
    dgram_parent.close()
    lines = stream_child.makefile("r")
    expected = 1
    for line in lines:
        number = int(line)
        datagram = int(dgram_child.recv(64))
        if number != expected or datagram != expected:
            os._exit(1)
        time.sleep(0.004)
        if number == COUNT:
            break
        expected += 1
    dgram_child.send(f"done {expected}".encode())
    os._exit(0)

stream_child.close()
dgram_child.close()
for number in range(1, COUNT + 1):
    stream_parent.sendall(f"{number}\n".encode())
    dgram_parent.send(str(number).encode())
    with open(os.path.join(directory, "progress.tmp"), "w") as progress:
        progress.write(f"{number}\n")
    os.rename(os.path.join(directory, "progress.tmp"), os.path.join(directory, "progress"))
    time.sleep(0.001)
reply = dgram_parent.recv(64).decode()
_, status = os.waitpid(child, 0)
with open(os.path.join(directory, "result"), "w") as result:
    result.write(f"{reply} child_status={os.waitstatus_to_exitcode(status)}\n")
