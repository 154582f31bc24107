/*
 * Unix socket connections inside one process tree, for checkpoints of
 * named, abstract and unnamed connected sockets with data in flight.
 *
 * Usage: unixconn DIR exchange
 *        unixconn DIR closed
 *        unixconn DIR dgram
 *        unixconn DIR dgram-server
 *        unixconn DIR pending
 *        unixconn DIR pending-data
 *        unixconn DIR client PATH
 *
 * exchange: the server listens on DIR/stream.sock (SOCK_STREAM) and on the
 * abstract name "stasis-unixconn-PID" (SOCK_SEQPACKET), and forks four
 * clients:
 *   1: stream, unnamed, to DIR/stream.sock, with SO_PASSCRED set after
 *      connect
 *   2: seqpacket, bound to DIR/client2.sock, to the abstract name
 *   3: stream, bound to the abstract name "stasis-unixconn-PID-c3", to
 *      DIR/stream.sock
 *   4: seqpacket, unnamed, to the abstract name
 * Each client sends COUNT sequence-numbered requests, keeping up to WINDOW
 * of them without a reply, and the server sends a reply with the same
 * number to each. Both sides check every message (number, length, contents) and,
 * on every message, getsockname and getpeername of their socket against
 * the addresses they had at the start. The server handles one request per
 * connection every millisecond, so requests and replies wait in the
 * sockets most of the time. After that, two more clients (5: stream, 6:
 * seqpacket, both unnamed) connect to the listening sockets and exchange
 * SHORT_COUNT messages each. The server writes the number of requests it
 * has answered to DIR/progress, and at the end the line
 * "ok clients=6 requests=N replies=N" to DIR/result and to stdout, or an
 * error to stderr with exit status 1.
 *
 * closed: as exchange with the four clients, but with other names, and the
 * server closes its listening sockets once it has accepted them, so no
 * listening socket holds the address of an accepted socket.
 *
 * dgram: a parent and a child with a pair of named datagram sockets
 * connected to each other exchange DGRAM_COUNT numbered requests and
 * replies; the parent writes its progress to DIR/progress and "ok dgram
 * N" to DIR/result.
 *
 * dgram-server: an unconnected datagram server on a path and two clients
 * with names, one connected to it and one using sendto, exchange
 * DGRAM_COUNT requests and replies each; the server checks every sender
 * address.
 *
 * pending: listens on DIR/pending.sock and forks a child that connects.
 * DIR/ready appears once the child is connected. Both then wait for the
 * file DIR/go, before the server accepts the connection. Then the two
 * exchange one message each way, check both ends' addresses, and the
 * server writes "ok pending" to DIR/result.
 *
 * pending-data: as pending, but the child sends 5 bytes before the server
 * accepts, and both wait forever.
 *
 * client: connects to PATH, writes DIR/ready and waits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define COUNT 3000
#define SHORT_COUNT 20
#define DGRAM_COUNT 2000
#define WINDOW 8
#define CLIENTS 4
#define LATE_CLIENTS 2
#define STREAM_SIZE 64
#define HEADER_SIZE 16
#define MAX_MESSAGE 256
#define REQUEST_MAGIC 0x52455155u
#define REPLY_MAGIC 0x5245504cu

struct address {
    struct sockaddr_un sun;
    socklen_t len;
};

struct header {
    uint32_t magic;
    uint32_t id;
    uint32_t seq;
    uint32_t len;
};

static const char *directory;
/* SO_PASSCRED value that send_requests expects on its socket. */
static int expected_passcred;
/* Destination of send_message for an unconnected datagram socket, which
 * sends with sendto; NULL for a connected socket. */
static const struct address *send_destination;
static struct address stream_listener_address;
static struct address seqpacket_listener_address;
static struct address client_addresses[CLIENTS + LATE_CLIENTS + 1];

static void fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "unixconn[%d]: ", getpid());
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
    exit(1);
}

static struct address unnamed(void)
{
    struct address address = {.len = sizeof(sa_family_t)};
    address.sun.sun_family = AF_UNIX;
    return address;
}

static struct address path_address(const char *name)
{
    struct address address = unnamed();
    int written = snprintf(address.sun.sun_path, sizeof address.sun.sun_path, "%s/%s",
                           directory, name);
    if (written < 0 || (size_t)written >= sizeof address.sun.sun_path)
        fail("socket path %s/%s is too long", directory, name);
    address.len = offsetof(struct sockaddr_un, sun_path) + strlen(address.sun.sun_path) + 1;
    return address;
}

static struct address abstract_address(const char *name)
{
    struct address address = unnamed();
    size_t length = strlen(name);
    memcpy(address.sun.sun_path + 1, name, length);
    address.len = offsetof(struct sockaddr_un, sun_path) + 1 + length;
    return address;
}

static int same_address(const struct address *a, const struct address *b)
{
    return a->len == b->len && memcmp(&a->sun, &b->sun, a->len) == 0;
}

static void check_names(int fd, const struct address *own, const struct address *peer,
                        const char *who)
{
    struct address got;
    got.len = sizeof got.sun;
    if (getsockname(fd, (struct sockaddr *)&got.sun, &got.len) < 0)
        fail("%s: getsockname: %s", who, strerror(errno));
    if (!same_address(&got, own))
        fail("%s: getsockname returned %u bytes '%s', expected %u bytes '%s'", who, got.len,
             got.sun.sun_path[0] ? got.sun.sun_path : got.sun.sun_path + 1, own->len,
             own->sun.sun_path[0] ? own->sun.sun_path : own->sun.sun_path + 1);
    if (!peer)
        return;
    got.len = sizeof got.sun;
    if (getpeername(fd, (struct sockaddr *)&got.sun, &got.len) < 0)
        fail("%s: getpeername: %s", who, strerror(errno));
    if (!same_address(&got, peer))
        fail("%s: getpeername returned %u bytes '%s', expected %u bytes '%s'", who, got.len,
             got.sun.sun_path[0] ? got.sun.sun_path : got.sun.sun_path + 1, peer->len,
             peer->sun.sun_path[0] ? peer->sun.sun_path : peer->sun.sun_path + 1);
}

static void write_file(const char *name, const char *text)
{
    char path[4096], temporary[4096];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    snprintf(temporary, sizeof temporary, "%s/%s.tmp", directory, name);
    FILE *file = fopen(temporary, "w");
    if (!file || fputs(text, file) < 0 || fclose(file) != 0)
        fail("cannot write %s", temporary);
    if (rename(temporary, path) < 0)
        fail("cannot rename %s: %s", temporary, strerror(errno));
}

/* Message length: fixed on a stream, varying with the number on a
 * seqpacket socket, so that a merged or split message shows. */
static size_t message_length(int type, uint32_t seq)
{
    return type == SOCK_STREAM ? STREAM_SIZE : HEADER_SIZE + 1 + seq % 97;
}

static uint8_t payload_byte(uint32_t magic, uint32_t id, uint32_t seq, size_t i)
{
    return (uint8_t)(seq * (magic == REQUEST_MAGIC ? 7 : 13) + id * 31 + i);
}

static void fill_message(uint8_t *buffer, int type, uint32_t magic, uint32_t id, uint32_t seq)
{
    size_t length = message_length(type, seq);
    struct header header = {magic, id, seq, (uint32_t)length};
    memcpy(buffer, &header, sizeof header);
    for (size_t i = HEADER_SIZE; i < length; i++)
        buffer[i] = payload_byte(magic, id, seq, i);
}

static void send_message(int fd, int type, uint32_t magic, uint32_t id, uint32_t seq)
{
    uint8_t buffer[MAX_MESSAGE];
    fill_message(buffer, type, magic, id, seq);
    size_t length = message_length(type, seq), done = 0;
    while (done < length) {
        ssize_t sent =
            send_destination
                ? sendto(fd, buffer + done, length - done, MSG_NOSIGNAL,
                         (const struct sockaddr *)&send_destination->sun, send_destination->len)
                : send(fd, buffer + done, length - done, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            fail("client %u: send of message %u failed: %s", id, seq, strerror(errno));
        if (type != SOCK_STREAM && (size_t)sent != length)
            fail("client %u: seqpacket send of message %u was cut", id, seq);
        done += (size_t)sent;
    }
}

/* Receives one message into buffer and returns its length, or 0 at end of
 * stream. */
static size_t receive_message(int fd, int type, uint8_t *buffer, const char *who)
{
    if (type != SOCK_STREAM) {
        ssize_t got;
        do
            got = recv(fd, buffer, MAX_MESSAGE, 0);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            fail("%s: recv: %s", who, strerror(errno));
        return (size_t)got;
    }
    size_t done = 0;
    while (done < STREAM_SIZE) {
        ssize_t got = recv(fd, buffer + done, STREAM_SIZE - done, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            fail("%s: recv: %s", who, strerror(errno));
        if (got == 0) {
            if (done == 0)
                return 0;
            fail("%s: the stream ended inside a message after %zu bytes", who, done);
        }
        done += (size_t)got;
    }
    return done;
}

static void check_message(const uint8_t *buffer, size_t length, int type, uint32_t magic,
                          uint32_t id, uint32_t seq, const char *who)
{
    struct header header;
    if (length < HEADER_SIZE)
        fail("%s: message of %zu bytes, expected message %u", who, length, seq);
    memcpy(&header, buffer, sizeof header);
    if (header.magic != magic || header.id != id)
        fail("%s: message with magic %x id %u, expected %x id %u", who, header.magic, header.id,
             magic, id);
    if (header.seq != seq)
        fail("%s: message %u arrived where %u was expected", who, header.seq, seq);
    if (length != message_length(type, seq) || header.len != length)
        fail("%s: message %u is %zu bytes, expected %zu", who, seq, length,
             message_length(type, seq));
    for (size_t i = HEADER_SIZE; i < length; i++)
        if (buffer[i] != payload_byte(magic, id, seq, i))
            fail("%s: byte %zu of message %u is wrong", who, i, seq);
}

static int readable(int fd)
{
    struct pollfd poll_fd = {.fd = fd, .events = POLLIN};
    return poll(&poll_fd, 1, 0) > 0;
}

/* Sends `count` requests on the connected socket `fd`, keeping up to
 * WINDOW of them without a reply, and checks every reply and the
 * addresses of both ends. With `report_progress`, writes the number of
 * replies to DIR/progress every 100 replies. */
static void send_requests(int fd, int type, uint32_t id, uint32_t count,
                          const struct address *own, const struct address *peer,
                          const char *who, int report_progress)
{
    uint8_t buffer[MAX_MESSAGE];
    uint32_t sent = 0, received = 0;
    while (received < count) {
        while (sent < count && sent - received < WINDOW) {
            check_names(fd, own, peer, who);
            send_message(fd, type, REQUEST_MAGIC, id, sent);
            sent++;
        }
        usleep(2000);
        int passcred = -1;
        socklen_t passcred_length = sizeof passcred;
        if (getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &passcred, &passcred_length) < 0)
            fail("%s: getsockopt(SO_PASSCRED): %s", who, strerror(errno));
        if (passcred != expected_passcred)
            fail("%s: SO_PASSCRED is %d, expected %d", who, passcred, expected_passcred);
        do {
            size_t length = receive_message(fd, type, buffer, who);
            if (length == 0)
                fail("%s: the server closed the connection after %u replies", who, received);
            check_message(buffer, length, type, REPLY_MAGIC, id, received, who);
            check_names(fd, own, peer, who);
            received++;
            if (report_progress && received % 100 == 0) {
                char text[32];
                snprintf(text, sizeof text, "%u\n", received);
                write_file("progress", text);
            }
        } while (received < sent && readable(fd));
    }
}

struct client_plan {
    int type;
    int bind_first;
    const struct address *server;
};

static void run_client(uint32_t id, struct client_plan plan, uint32_t count)
{
    char who[32];
    snprintf(who, sizeof who, "client %u", id);
    int fd = socket(AF_UNIX, plan.type, 0);
    if (fd < 0)
        fail("%s: socket: %s", who, strerror(errno));
    const struct address *own = &client_addresses[id];
    if (plan.bind_first) {
        if (own->sun.sun_path[0])
            unlink(own->sun.sun_path);
        if (bind(fd, (const struct sockaddr *)&own->sun, own->len) < 0)
            fail("%s: bind: %s", who, strerror(errno));
    }
    if (connect(fd, (const struct sockaddr *)&plan.server->sun, plan.server->len) < 0)
        fail("%s: connect: %s", who, strerror(errno));
    if (id == 1) {
        /* Set after connect, so the unnamed socket stays unnamed. */
        expected_passcred = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &expected_passcred,
                       sizeof expected_passcred) < 0)
            fail("%s: setsockopt(SO_PASSCRED): %s", who, strerror(errno));
    }
    send_requests(fd, plan.type, id, count, own, plan.server, who, 0);
    close(fd);
    exit(0);
}

static struct client_plan plan_of(uint32_t id)
{
    switch (id) {
    case 1:
        return (struct client_plan){SOCK_STREAM, 0, &stream_listener_address};
    case 2:
        return (struct client_plan){SOCK_SEQPACKET, 1, &seqpacket_listener_address};
    case 3:
        return (struct client_plan){SOCK_STREAM, 1, &stream_listener_address};
    case 4:
        return (struct client_plan){SOCK_SEQPACKET, 0, &seqpacket_listener_address};
    case 5:
        return (struct client_plan){SOCK_STREAM, 0, &stream_listener_address};
    default:
        return (struct client_plan){SOCK_SEQPACKET, 0, &seqpacket_listener_address};
    }
}

static pid_t start_client(uint32_t id, uint32_t count, int listeners[2])
{
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(listeners[0]);
        close(listeners[1]);
        run_client(id, plan_of(id), count);
    }
    return pid;
}

static int listen_on(int type, const struct address *address)
{
    int fd = socket(AF_UNIX, type, 0);
    if (fd < 0)
        fail("socket: %s", strerror(errno));
    if (address->sun.sun_path[0])
        unlink(address->sun.sun_path);
    if (bind(fd, (const struct sockaddr *)&address->sun, address->len) < 0)
        fail("bind of a listening socket: %s", strerror(errno));
    if (listen(fd, 16) < 0)
        fail("listen: %s", strerror(errno));
    return fd;
}

struct connection {
    int fd;
    int type;
    uint32_t id;
    uint32_t expected;
    uint32_t count;
    int finished;
};

/* Accepts `expected_connections` connections, learning each one's client
 * from its first request, and replies to every request until each client
 * has sent `count` and closed. With `close_listeners`, closes both
 * listening sockets (and removes the file of one bound to a path) once the
 * connections are accepted. Returns the number of replies sent so far,
 * starting from `answered`. */
static uint64_t serve(int listeners[2], int expected_connections, uint32_t count,
                      uint64_t answered, int close_listeners)
{
    struct connection connections[CLIENTS];
    int accepted = 0;
    struct pollfd waiting[2] = {{.fd = listeners[0], .events = POLLIN},
                                {.fd = listeners[1], .events = POLLIN}};
    while (accepted < expected_connections) {
        if (poll(waiting, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fail("poll: %s", strerror(errno));
        }
        for (int i = 0; i < 2 && accepted < expected_connections; i++) {
            if (!(waiting[i].revents & POLLIN))
                continue;
            int fd = accept(listeners[i], NULL, NULL);
            if (fd < 0)
                fail("accept: %s", strerror(errno));
            connections[accepted++] = (struct connection){
                .fd = fd,
                .type = i == 0 ? SOCK_STREAM : SOCK_SEQPACKET,
                .count = count,
            };
        }
    }

    if (close_listeners) {
        for (int i = 0; i < 2; i++) {
            struct address address;
            address.len = sizeof address.sun;
            if (getsockname(listeners[i], (struct sockaddr *)&address.sun, &address.len) == 0 &&
                address.sun.sun_path[0])
                unlink(address.sun.sun_path);
            close(listeners[i]);
            listeners[i] = -1;
        }
    }

    int open_connections = expected_connections;
    uint8_t buffer[MAX_MESSAGE];
    while (open_connections > 0) {
        if (listeners[0] >= 0) {
            check_names(listeners[0], &stream_listener_address, NULL, "stream listener");
            check_names(listeners[1], &seqpacket_listener_address, NULL, "seqpacket listener");
        }
        for (int i = 0; i < expected_connections; i++) {
            struct connection *connection = &connections[i];
            if (connection->finished || !readable(connection->fd))
                continue;
            const char *who = "server";
            size_t length = receive_message(connection->fd, connection->type, buffer, who);
            if (length == 0) {
                if (connection->expected != connection->count)
                    fail("server: client %u closed after %u requests", connection->id,
                         connection->expected);
                close(connection->fd);
                connection->finished = 1;
                open_connections--;
                continue;
            }
            if (connection->id == 0) {
                struct header header;
                if (length < HEADER_SIZE)
                    fail("server: first message of %zu bytes", length);
                memcpy(&header, buffer, sizeof header);
                if (header.id == 0 || header.id > CLIENTS + LATE_CLIENTS)
                    fail("server: first message from unknown client %u", header.id);
                connection->id = header.id;
            }
            char name[32];
            snprintf(name, sizeof name, "server for client %u", connection->id);
            check_message(buffer, length, connection->type, REQUEST_MAGIC, connection->id,
                          connection->expected, name);
            check_names(connection->fd,
                        connection->type == SOCK_STREAM ? &stream_listener_address
                                                        : &seqpacket_listener_address,
                        &client_addresses[connection->id], name);
            send_message(connection->fd, connection->type, REPLY_MAGIC, connection->id,
                         connection->expected);
            connection->expected++;
            answered++;
            if (answered % 100 == 0) {
                char text[32];
                snprintf(text, sizeof text, "%llu\n", (unsigned long long)answered);
                write_file("progress", text);
            }
        }
        usleep(1000);
    }
    return answered;
}

static void wait_for_clients(const pid_t *pids, int number)
{
    for (int i = 0; i < number; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) < 0)
            fail("waitpid(%d): %s", pids[i], strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail("client process %d ended with status 0x%x", pids[i], status);
    }
}

static void exchange(void)
{
    char name[64];
    snprintf(name, sizeof name, "stasis-unixconn-%d", getpid());
    stream_listener_address = path_address("stream.sock");
    seqpacket_listener_address = abstract_address(name);
    for (int id = 0; id <= CLIENTS + LATE_CLIENTS; id++)
        client_addresses[id] = unnamed();
    client_addresses[2] = path_address("client2.sock");
    snprintf(name, sizeof name, "stasis-unixconn-%d-c3", getpid());
    client_addresses[3] = abstract_address(name);

    int listeners[2] = {listen_on(SOCK_STREAM, &stream_listener_address),
                        listen_on(SOCK_SEQPACKET, &seqpacket_listener_address)};
    pid_t pids[CLIENTS + LATE_CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        pids[i] = start_client(i + 1, COUNT, listeners);
    uint64_t answered = serve(listeners, CLIENTS, COUNT, 0, 0);
    wait_for_clients(pids, CLIENTS);

    for (int i = 0; i < LATE_CLIENTS; i++)
        pids[CLIENTS + i] = start_client(CLIENTS + i + 1, SHORT_COUNT, listeners);
    answered = serve(listeners, LATE_CLIENTS, SHORT_COUNT, answered, 0);
    wait_for_clients(pids + CLIENTS, LATE_CLIENTS);

    char text[128];
    snprintf(text, sizeof text, "ok clients=%d requests=%llu replies=%llu\n",
             CLIENTS + LATE_CLIENTS, (unsigned long long)answered,
             (unsigned long long)answered);
    write_file("result", text);
    fputs(text, stdout);
    unlink(stream_listener_address.sun.sun_path);
    unlink(client_addresses[2].sun.sun_path);
}

/* As exchange with other names: the stream listening socket has the
 * abstract name "stasis-unixconn-PID-closed", the seqpacket one the path
 * DIR/closed.sock. Client 2 is bound to DIR/closed-c2.sock and client 3 to
 * the abstract name "stasis-unixconn-PID-closed-c3". The server closes both
 * listening sockets once it has accepted the four clients, and writes
 * "ok closed clients=4 requests=N replies=N" to DIR/result. */
static void closed_listeners(void)
{
    char name[64];
    snprintf(name, sizeof name, "stasis-unixconn-%d-closed", getpid());
    stream_listener_address = abstract_address(name);
    seqpacket_listener_address = path_address("closed.sock");
    for (int id = 0; id <= CLIENTS + LATE_CLIENTS; id++)
        client_addresses[id] = unnamed();
    client_addresses[2] = path_address("closed-c2.sock");
    snprintf(name, sizeof name, "stasis-unixconn-%d-closed-c3", getpid());
    client_addresses[3] = abstract_address(name);

    int listeners[2] = {listen_on(SOCK_STREAM, &stream_listener_address),
                        listen_on(SOCK_SEQPACKET, &seqpacket_listener_address)};
    pid_t pids[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        pids[i] = start_client(i + 1, COUNT, listeners);
    uint64_t answered = serve(listeners, CLIENTS, COUNT, 0, 1);
    wait_for_clients(pids, CLIENTS);

    char text[128];
    snprintf(text, sizeof text, "ok closed clients=%d requests=%llu replies=%llu\n", CLIENTS,
             (unsigned long long)answered, (unsigned long long)answered);
    write_file("result", text);
    unlink(client_addresses[2].sun.sun_path);
}

/* A datagram socket pair with names, connected to each other: the parent
 * binds DIR/dgram.sock, the child the abstract name
 * "stasis-unixconn-PID-dgram". The parent sends DGRAM_COUNT requests and
 * the child replies to each, checking the sender address that recvfrom
 * returns. The parent writes "ok dgram N" to DIR/result. */
static void datagrams(void)
{
    char name[64];
    snprintf(name, sizeof name, "stasis-unixconn-%d-dgram", getpid());
    struct address parent_address = path_address("dgram.sock");
    struct address child_address = abstract_address(name);
    int parent_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    int child_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (parent_fd < 0 || child_fd < 0)
        fail("socket: %s", strerror(errno));
    unlink(parent_address.sun.sun_path);
    if (bind(parent_fd, (const struct sockaddr *)&parent_address.sun, parent_address.len) < 0 ||
        bind(child_fd, (const struct sockaddr *)&child_address.sun, child_address.len) < 0)
        fail("bind of a datagram socket: %s", strerror(errno));
    if (connect(parent_fd, (const struct sockaddr *)&child_address.sun, child_address.len) < 0 ||
        connect(child_fd, (const struct sockaddr *)&parent_address.sun, parent_address.len) < 0)
        fail("connect of a datagram socket: %s", strerror(errno));

    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(parent_fd);
        uint8_t buffer[MAX_MESSAGE];
        for (uint32_t seq = 0; seq < DGRAM_COUNT; seq++) {
            struct address sender;
            sender.len = sizeof sender.sun;
            ssize_t got;
            do
                got = recvfrom(child_fd, buffer, sizeof buffer, 0, (struct sockaddr *)&sender.sun,
                               &sender.len);
            while (got < 0 && errno == EINTR);
            if (got < 0)
                fail("datagram child: recvfrom: %s", strerror(errno));
            check_message(buffer, (size_t)got, SOCK_DGRAM, REQUEST_MAGIC, 7, seq,
                          "datagram child");
            if (!same_address(&sender, &parent_address))
                fail("datagram child: request %u came from another address", seq);
            check_names(child_fd, &child_address, &parent_address, "datagram child");
            send_message(child_fd, SOCK_DGRAM, REPLY_MAGIC, 7, seq);
            usleep(1000);
        }
        exit(0);
    }
    close(child_fd);
    send_requests(parent_fd, SOCK_DGRAM, 7, DGRAM_COUNT, &parent_address, &child_address,
                  "datagram parent", 1);
    wait_for_clients(&pid, 1);
    char text[64];
    snprintf(text, sizeof text, "ok dgram %d\n", DGRAM_COUNT);
    write_file("result", text);
    unlink(parent_address.sun.sun_path);
}

/* A datagram server bound to DIR/dgram-server.sock, not connected, and
 * two clients: client 1 bound to the abstract name
 * "stasis-unixconn-PID-da" and connected to the server, client 2 bound to
 * DIR/dgram-b.sock and sending with sendto. The server replies to each
 * request at the address recvfrom gives, and checks that address. The
 * server writes its progress to DIR/progress and "ok dgram-server
 * clients=2 requests=N" to DIR/result. */
static void datagram_server(void)
{
    char name[64];
    snprintf(name, sizeof name, "stasis-unixconn-%d-da", getpid());
    struct address server_address = path_address("dgram-server.sock");
    client_addresses[1] = abstract_address(name);
    client_addresses[2] = path_address("dgram-b.sock");
    int server = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (server < 0)
        fail("socket: %s", strerror(errno));
    unlink(server_address.sun.sun_path);
    if (bind(server, (const struct sockaddr *)&server_address.sun, server_address.len) < 0)
        fail("bind of the datagram server: %s", strerror(errno));

    pid_t pids[2];
    for (uint32_t id = 1; id <= 2; id++) {
        pids[id - 1] = fork();
        if (pids[id - 1] < 0)
            fail("fork: %s", strerror(errno));
        if (pids[id - 1] != 0)
            continue;
        close(server);
        char who[32];
        snprintf(who, sizeof who, "datagram client %u", id);
        const struct address *own = &client_addresses[id];
        int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (fd < 0)
            fail("%s: socket: %s", who, strerror(errno));
        if (own->sun.sun_path[0])
            unlink(own->sun.sun_path);
        if (bind(fd, (const struct sockaddr *)&own->sun, own->len) < 0)
            fail("%s: bind: %s", who, strerror(errno));
        const struct address *peer = NULL;
        if (id == 1) {
            if (connect(fd, (const struct sockaddr *)&server_address.sun, server_address.len) < 0)
                fail("%s: connect: %s", who, strerror(errno));
            peer = &server_address;
        } else {
            send_destination = &server_address;
        }
        send_requests(fd, SOCK_DGRAM, id, DGRAM_COUNT, own, peer, who, 0);
        if (own->sun.sun_path[0])
            unlink(own->sun.sun_path);
        exit(0);
    }

    uint32_t expected[3] = {0, 0, 0};
    uint64_t answered = 0;
    uint8_t buffer[MAX_MESSAGE];
    while (expected[1] < DGRAM_COUNT || expected[2] < DGRAM_COUNT) {
        struct address sender;
        sender.len = sizeof sender.sun;
        ssize_t got;
        do
            got = recvfrom(server, buffer, sizeof buffer, 0, (struct sockaddr *)&sender.sun,
                           &sender.len);
        while (got < 0 && errno == EINTR);
        if (got < (ssize_t)HEADER_SIZE)
            fail("datagram server: recvfrom returned %zd: %s", got, strerror(errno));
        struct header header;
        memcpy(&header, buffer, sizeof header);
        if (header.id < 1 || header.id > 2)
            fail("datagram server: request from unknown client %u", header.id);
        char who[48];
        snprintf(who, sizeof who, "datagram server for client %u", header.id);
        check_message(buffer, (size_t)got, SOCK_DGRAM, REQUEST_MAGIC, header.id,
                      expected[header.id], who);
        if (!same_address(&sender, &client_addresses[header.id]))
            fail("%s: request %u came from another address", who, expected[header.id]);
        check_names(server, &server_address, NULL, who);
        send_destination = &sender;
        send_message(server, SOCK_DGRAM, REPLY_MAGIC, header.id, expected[header.id]);
        send_destination = NULL;
        expected[header.id]++;
        answered++;
        if (answered % 100 == 0) {
            char text[32];
            snprintf(text, sizeof text, "%llu\n", (unsigned long long)answered);
            write_file("progress", text);
        }
        usleep(1000);
    }
    wait_for_clients(pids, 2);
    char text[64];
    snprintf(text, sizeof text, "ok dgram-server clients=2 requests=%llu\n",
             (unsigned long long)answered);
    write_file("result", text);
    unlink(server_address.sun.sun_path);
}

static void wait_for_file(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    while (access(path, F_OK) != 0)
        usleep(10000);
}

/* Listens on DIR/pending.sock and forks a client that connects. With
 * `send_early`, the client sends 5 bytes before the server accepts and
 * both wait forever. Otherwise both wait for DIR/go, then the server
 * accepts and the two exchange one message each way, checking the
 * addresses of both ends. */
static void pending(int send_early)
{
    struct address address = path_address("pending.sock");
    struct address client_address = unnamed();
    int listener = listen_on(SOCK_STREAM, &address);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(listener);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (const struct sockaddr *)&address.sun, address.len) < 0)
            fail("pending client: connect: %s", strerror(errno));
        if (send_early && send(fd, "early", 5, 0) != 5)
            fail("pending client: send: %s", strerror(errno));
        write_file("ready", "connected\n");
        if (send_early)
            for (;;)
                pause();
        wait_for_file("go");
        check_names(fd, &client_address, &address, "pending client");
        send_message(fd, SOCK_STREAM, REQUEST_MAGIC, 1, 0);
        uint8_t buffer[MAX_MESSAGE];
        size_t length = receive_message(fd, SOCK_STREAM, buffer, "pending client");
        check_message(buffer, length, SOCK_STREAM, REPLY_MAGIC, 1, 0, "pending client");
        exit(0);
    }
    if (send_early)
        for (;;)
            pause();
    wait_for_file("go");
    int fd = accept(listener, NULL, NULL);
    if (fd < 0)
        fail("pending server: accept: %s", strerror(errno));
    check_names(fd, &address, &client_address, "pending server");
    uint8_t buffer[MAX_MESSAGE];
    size_t length = receive_message(fd, SOCK_STREAM, buffer, "pending server");
    check_message(buffer, length, SOCK_STREAM, REQUEST_MAGIC, 1, 0, "pending server");
    send_message(fd, SOCK_STREAM, REPLY_MAGIC, 1, 0);
    wait_for_clients(&pid, 1);
    write_file("result", "ok pending\n");
    unlink(address.sun.sun_path);
}

static void client(const char *path)
{
    struct address address = unnamed();
    if (strlen(path) >= sizeof address.sun.sun_path)
        fail("socket path %s is too long", path);
    strcpy(address.sun.sun_path, path);
    address.len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&address.sun, address.len) < 0)
        fail("client: connect to %s: %s", path, strerror(errno));
    write_file("ready", "connected\n");
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    if (argc < 3)
        fail("usage: unixconn DIR exchange|closed|dgram|dgram-server|pending|pending-data|client PATH");
    directory = argv[1];
    if (strcmp(argv[2], "exchange") == 0)
        exchange();
    else if (strcmp(argv[2], "closed") == 0)
        closed_listeners();
    else if (strcmp(argv[2], "dgram") == 0)
        datagrams();
    else if (strcmp(argv[2], "dgram-server") == 0)
        datagram_server();
    else if (strcmp(argv[2], "pending") == 0)
        pending(0);
    else if (strcmp(argv[2], "pending-data") == 0)
        pending(1);
    else if (strcmp(argv[2], "client") == 0 && argc == 4)
        client(argv[3]);
    else
        fail("unknown mode %s", argv[2]);
    return 0;
}
