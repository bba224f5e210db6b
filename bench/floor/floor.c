/*
 * floor: the least a server can do for sio-bench's chat protocol, to measure what the
 * machine itself costs (kernel, loopback TCP, the load generator) next to our server.
 *
 * One thread, one epoll, no library. It accepts WebSocket upgrades on any path, sends the
 * Engine.IO open packet, answers the Socket.IO CONNECT (`40` with an optional auth object
 * whose `room` picks the room), pings every client every --ping-interval-ms with one timer,
 * and turns every `42["message","TEXT"]` into one frame `42["message",{"text":"TEXT"}]`
 * written to every member of the sender's room. Nothing else: no polling, no acks, no
 * validation beyond staying memory-safe. Not a product: a benchmark's yardstick.
 *
 *   floor --port 3680 [--ping-interval-ms 5000]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_INPUT (64 * 1024)
#define MAX_PENDING (4 * 1024 * 1024)

typedef struct conn {
    int fd;
    int upgraded;
    int room;           /* index into rooms, -1 before CONNECT */
    int slot;           /* position in its room's member array */
    uint8_t *in;        /* grows up to MAX_INPUT as frames need it */
    size_t in_len, in_cap;
    uint8_t *out;       /* bytes the kernel did not take yet */
    size_t out_len, out_cap;
} conn;

typedef struct room {
    char *name;
    conn **members;
    int count, cap;
} room;

static room *rooms;
static int room_count, room_cap;
static conn **conns;   /* by fd */
static int conn_cap;
static int epfd;
static unsigned long sid_counter;
static int ping_interval_ms = 25000;

/* ---------------------------------------------------------------- SHA-1 (RFC 3174) */
static uint32_t rol(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

static void sha1(const uint8_t *data, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    uint8_t msg[256];
    if (total > sizeof msg) return;
    memset(msg, 0, total);
    memcpy(msg, data, len);
    msg[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) msg[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t chunk = 0; chunk < total; chunk += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)msg[chunk + 4 * i] << 24 | (uint32_t)msg[chunk + 4 * i + 1] << 16 |
                   (uint32_t)msg[chunk + 4 * i + 2] << 8 | msg[chunk + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    for (int i = 0; i < 5; i++) {
        out[4 * i] = h[i] >> 24; out[4 * i + 1] = h[i] >> 16; out[4 * i + 2] = h[i] >> 8; out[4 * i + 3] = h[i];
    }
}

static void base64(const uint8_t *in, size_t len, char *out) {
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
        out[o++] = table[(v >> 18) & 63];
        out[o++] = table[(v >> 12) & 63];
        out[o++] = i + 1 < len ? table[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? table[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---------------------------------------------------------------- connections */
static void close_conn(conn *c);

/* Queues what the kernel did not take; a client more than MAX_PENDING behind is closed. */
static int send_bytes(conn *c, const uint8_t *data, size_t len) {
    if (c->out_len == 0) {
        ssize_t n = write(c->fd, data, len);
        if (n == (ssize_t)len) return 0;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
            n = 0;
        }
        data += n; len -= (size_t)n;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = c->fd};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
    if (c->out_len + len > MAX_PENDING) return -1;
    if (c->out_len + len > c->out_cap) {
        size_t cap = (c->out_len + len) * 2;
        uint8_t *grown = realloc(c->out, cap);
        if (!grown) return -1;
        c->out = grown; c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

static void flush_out(conn *c) {
    while (c->out_len > 0) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            close_conn(c);
            return;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One unmasked server frame: FIN + text opcode, then the length. Returns the header size. */
static size_t frame_header(uint8_t *h, size_t payload) {
    h[0] = 0x81;
    if (payload <= 125) { h[1] = (uint8_t)payload; return 2; }
    if (payload <= 65535) { h[1] = 126; h[2] = payload >> 8; h[3] = payload & 255; return 4; }
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)payload >> (56 - 8 * i));
    return 10;
}

static int send_text(conn *c, const char *text, size_t len) {
    uint8_t buf[512];
    if (len + 10 > sizeof buf) return -1;
    size_t h = frame_header(buf, len);
    memcpy(buf + h, text, len);
    return send_bytes(c, buf, h + len);
}

static int find_or_add_room(const char *name, size_t len) {
    for (int i = 0; i < room_count; i++)
        if (strlen(rooms[i].name) == len && memcmp(rooms[i].name, name, len) == 0) return i;
    if (room_count == room_cap) {
        int cap = room_cap ? room_cap * 2 : 64;
        room *grown = realloc(rooms, sizeof(room) * (size_t)cap);
        if (!grown) return -1;
        rooms = grown; room_cap = cap;
    }
    room *r = &rooms[room_count];
    r->name = strndup(name, len);
    r->members = NULL; r->count = r->cap = 0;
    return room_count++;
}

static void join_room(conn *c, int index) {
    room *r = &rooms[index];
    if (r->count == r->cap) {
        int cap = r->cap ? r->cap * 2 : 4;
        conn **grown = realloc(r->members, sizeof(conn *) * (size_t)cap);
        if (!grown) return;
        r->members = grown; r->cap = cap;
    }
    c->room = index;
    c->slot = r->count;
    r->members[r->count++] = c;
}

static void leave_room(conn *c) {
    if (c->room < 0) return;
    room *r = &rooms[c->room];
    conn *last = r->members[--r->count];
    r->members[c->slot] = last;
    last->slot = c->slot;
    c->room = -1;
}

static void close_conn(conn *c) {
    if (c->fd < 0) return;
    leave_room(c);
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    c->fd = -1;
    free(c->in); free(c->out); free(c);
}

/* ---------------------------------------------------------------- protocol */
static const char *find(const uint8_t *hay, size_t len, const char *needle) {
    return memmem(hay, len, needle, strlen(needle));
}

static int handle_http(conn *c) {
    const char *end = find(c->in, c->in_len, "\r\n\r\n");
    if (!end) return c->in_len < 8192 ? 0 : -1;
    const char *key = find(c->in, c->in_len, "Sec-WebSocket-Key: ");
    if (!key) key = find(c->in, c->in_len, "sec-websocket-key: ");
    if (!key) return -1;
    key += strlen("Sec-WebSocket-Key: ");
    const char *key_end = memchr(key, '\r', (size_t)(end - key) + 1);
    if (!key_end || key_end - key > 64) return -1;
    char joined[128];
    size_t key_len = (size_t)(key_end - key);
    memcpy(joined, key, key_len);
    memcpy(joined + key_len, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    uint8_t digest[20];
    sha1((const uint8_t *)joined, key_len + 36, digest);
    char accept[32];
    base64(digest, 20, accept);
    char response[256];
    int n = snprintf(response, sizeof response,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    size_t consumed = (size_t)(end + 4 - (const char *)c->in);
    memmove(c->in, c->in + consumed, c->in_len - consumed);
    c->in_len -= consumed;
    c->upgraded = 1;
    if (send_bytes(c, (const uint8_t *)response, (size_t)n) < 0) return -1;
    char open[160];
    n = snprintf(open, sizeof open,
                 "0{\"sid\":\"floor%lu\",\"upgrades\":[],\"pingInterval\":%d,\"pingTimeout\":20000,\"maxPayload\":1000000}",
                 ++sid_counter, ping_interval_ms);
    return send_text(c, open, (size_t)n);
}

/* `40` or `40{...,"room":"NAME",...}`: joins the room (default "general") and answers. */
static int handle_connect(conn *c, const uint8_t *p, size_t len) {
    const char *name = "general";
    size_t name_len = 7;
    const char *marker = find(p, len, "\"room\":\"");
    if (marker) {
        const char *start = marker + 8;
        const char *stop = memchr(start, '"', len - (size_t)(start - (const char *)p));
        if (stop) { name = start; name_len = (size_t)(stop - start); }
    }
    int index = find_or_add_room(name, name_len);
    if (index < 0) return -1;
    if (c->room < 0) join_room(c, index);
    char reply[64];
    int n = snprintf(reply, sizeof reply, "40{\"sid\":\"s%lu\"}", ++sid_counter);
    return send_text(c, reply, (size_t)n);
}

/* `42["message","TEXT"]` -> one frame `42["message",{"text":"TEXT"}]` to the whole room. */
static void handle_message(conn *c, const uint8_t *p, size_t len) {
    static const char prefix[] = "42[\"message\",\"";
    if (c->room < 0 || len < sizeof prefix || memcmp(p, prefix, sizeof prefix - 1) != 0) return;
    const uint8_t *text = p + sizeof prefix - 1;
    const uint8_t *stop = memchr(text, '"', len - (sizeof prefix - 1));
    if (!stop) return;
    size_t text_len = (size_t)(stop - text);
    static uint8_t frame[MAX_INPUT + 64];
    size_t payload = strlen("42[\"message\",{\"text\":\"") + text_len + strlen("\"}]");
    size_t h = frame_header(frame, payload);
    size_t o = h;
    memcpy(frame + o, "42[\"message\",{\"text\":\"", 22); o += 22;
    memcpy(frame + o, text, text_len); o += text_len;
    memcpy(frame + o, "\"}]", 3); o += 3;
    room *r = &rooms[c->room];
    for (int i = 0; i < r->count; i++) {
        conn *m = r->members[i];
        if (send_bytes(m, frame, o) < 0) {
            close_conn(m);
            i--;  /* the last member moved into this slot */
        }
    }
}

/* Reads complete client frames (masked) from the input buffer. */
static int handle_frames(conn *c) {
    int fd = c->fd;
    size_t at = 0;
    while (c->in_len - at >= 2) {
        uint8_t *f = c->in + at;
        int opcode = f[0] & 15;
        size_t len = f[1] & 127, h = 2;
        if (len == 126) { if (c->in_len - at < 4) break; len = (size_t)f[2] << 8 | f[3]; h = 4; }
        else if (len == 127) { if (c->in_len - at < 10) break; len = 0; for (int i = 0; i < 8; i++) len = len << 8 | f[2 + i]; h = 10; }
        if (!(f[1] & 128) || len > MAX_INPUT) return -1;  /* clients must mask; bounded frames */
        if (c->in_len - at < h + 4 + len) break;
        uint8_t *mask = f + h, *p = f + h + 4;
        for (size_t i = 0; i < len; i++) p[i] ^= mask[i & 3];
        if (opcode == 8) return -1;
        if (opcode == 9) {
            uint8_t pong[2 + 125];
            if (len <= 125) { pong[0] = 0x8A; pong[1] = (uint8_t)len; memcpy(pong + 2, p, len); send_bytes(c, pong, 2 + len); }
        } else if (opcode == 1 && len >= 1) {
            if (p[0] == '4' && len >= 2 && p[1] == '0') { if (handle_connect(c, p, len) < 0) return -1; }
            else if (p[0] == '4' && len >= 2 && p[1] == '2') {
                handle_message(c, p, len);
                if (conns[fd] != c) return -2;  /* closed (and freed) while writing to itself */
            }
        }
        at += h + 4 + len;
    }
    memmove(c->in, c->in + at, c->in_len - at);
    c->in_len -= at;
    return 0;
}

static void on_readable(conn *c) {
    for (;;) {
        if (c->in_len == c->in_cap) {
            if (c->in_cap == MAX_INPUT) { close_conn(c); return; }
            size_t cap = c->in_cap ? c->in_cap * 2 : 1024;
            uint8_t *grown = realloc(c->in, cap > MAX_INPUT ? MAX_INPUT : cap);
            if (!grown) { close_conn(c); return; }
            c->in = grown; c->in_cap = cap > MAX_INPUT ? MAX_INPUT : cap;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0) { close_conn(c); return; }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            close_conn(c);
            return;
        }
        c->in_len += (size_t)n;
        int fd = c->fd;
        int result = c->upgraded ? handle_frames(c) : handle_http(c);
        if (result == -2 || conns[fd] != c) return;
        if (result < 0) { close_conn(c); return; }
        if (c->upgraded && c->in_len > 0) {
            result = handle_frames(c);
            if (result == -2 || conns[fd] != c) return;
            if (result < 0) { close_conn(c); return; }
        }
    }
}

static void ping_all(void) {
    static const uint8_t ping[3] = {0x81, 1, '2'};
    for (int fd = 0; fd < conn_cap; fd++) {
        conn *c = conns[fd];
        if (c && c->room >= 0 && send_bytes(c, ping, 3) < 0) close_conn(c);
    }
}

int main(int argc, char **argv) {
    int port = 3680;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ping-interval-ms")) ping_interval_ms = atoi(argv[i + 1]);
    }
    signal(SIGPIPE, SIG_IGN);
    conn_cap = 1 << 20;
    conns = calloc((size_t)conn_cap, sizeof(conn *));
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 4096) < 0) {
        perror("floor: bind/listen");
        return 1;
    }
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec every = {
        .it_interval = {ping_interval_ms / 1000, (ping_interval_ms % 1000) * 1000000L},
        .it_value = {ping_interval_ms / 1000, (ping_interval_ms % 1000) * 1000000L},
    };
    timerfd_settime(timer, 0, &every, NULL);
    ev.data.fd = timer;
    epoll_ctl(epfd, EPOLL_CTL_ADD, timer, &ev);
    fprintf(stderr, "floor: listening on 127.0.0.1:%d\n", port);

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                for (;;) {
                    int client = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
                    if (client < 0) break;
                    if (client >= conn_cap) { close(client); continue; }
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *c = calloc(1, sizeof(conn));
                    if (!c) { close(client); continue; }
                    c->fd = client; c->room = -1;
                    conns[client] = c;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, client, &cev);
                }
            } else if (fd == timer) {
                uint64_t expirations;
                if (read(timer, &expirations, sizeof expirations) > 0) ping_all();
            } else {
                conn *c = conns[fd];
                if (!c) continue;
                if (events[i].events & EPOLLOUT) { flush_out(c); if (conns[fd] != c) continue; }
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
            }
        }
    }
}
