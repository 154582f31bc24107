/*
 * memtest: a workload for checkpoint/restore tests that verifies its own state.
 *
 * Usage: memtest [-m MIB] [-n MAX_ITERATIONS] [-s SLEEP_US] [-l LOG] DIR
 *
 *   -m MIB             size of the heap buffer (default 256)
 *   -n MAX_ITERATIONS  stop after this many iterations, 0 for no limit (default 0)
 *   -s SLEEP_US        sleep per iteration in microseconds (default 5000)
 *   -l LOG             log file (default DIR/log)
 *
 * Files in DIR:
 *   status  held open for the whole run and rewritten at offset 0 after each
 *           iteration with one fixed-width line:
 *           "iteration N signals S first_signal_iteration F checksum X"
 *           F is the iteration in which SIGUSR1 was first seen, 0 before that.
 *   ready   created and closed after setup, before the first iteration
 *   finish  created by the test; memtest stops after the iteration that finds it
 *
 * The log file is held open without O_APPEND. After a header line, each
 * iteration writes one fixed-width line at the current file offset, so a
 * restored process that gets a wrong file offset leaves a gap or overwrites a
 * line.
 *
 * Every iteration checks, before it changes anything:
 *   - one 1 MiB chunk of the buffer, word by word, against the pattern that
 *     the iteration count implies (the chunk moves on each iteration, so every
 *     chunk is checked once per MIB iterations);
 *   - four AVX registers and one double, which the loop keeps in registers
 *     across the sleep system call and updates once per iteration, against
 *     their value computed from the iteration count;
 *   - the rounding mode (round toward zero, set at start) in MXCSR and in the
 *     x87 control word, and an SSE and an x87 division whose last bit depends
 *     on it;
 *   - the log file offset.
 * Then it rewrites one chunk with its next generation, updates the running
 * checksum of the whole buffer, appends a log line and sleeps.
 *
 * At the end it checks every word of the buffer, compares the full checksum
 * with the running one, rereads the log file, and prints
 * "memtest: PASS iterations=N signals=S first_signal_iteration=F checksum=X"
 * on stdout and exits 0. The first failed check prints "memtest: FAIL ..." on
 * stdout and stderr and exits 1. Usage and setup errors exit 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fenv.h>
#include <immintrin.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if !defined(__x86_64__) || !defined(__AVX2__)
#error "memtest needs x86-64 and AVX2: build it with -mavx2"
#endif

#define CHUNK_BYTES (1024u * 1024u)
#define CHUNK_WORDS (CHUNK_BYTES / sizeof(uint64_t))
#define LOG_HEADER "memtest log\n"
/* "iteration %012llu\n" */
#define LOG_LINE_LEN 23
#define STATUS_LINE_LEN 112
/* MXCSR bits 13-14 select the rounding mode, 11b is round toward zero. */
#define MXCSR_RC_MASK 0x6000u
#define MXCSR_RC_ZERO 0x6000u

static volatile sig_atomic_t usr1_count;
static unsigned long long iteration;

static void on_usr1(int signo)
{
    (void)signo;
    usr1_count++;
}

static void fail(const char *format, ...)
{
    char message[512];
    va_list args;

    va_start(args, format);
    vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    printf("memtest: FAIL iteration %llu: %s\n", iteration, message);
    fflush(stdout);
    fprintf(stderr, "memtest: FAIL iteration %llu: %s\n", iteration, message);
    exit(1);
}

static void die_setup(const char *action, const char *path)
{
    fprintf(stderr, "memtest: %s %s: %s\n", action, path, strerror(errno));
    exit(2);
}

/* splitmix64 finalizer: a cheap bijective mix, so distinct inputs give distinct words. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Value of word `index` when its chunk is at `generation`. */
static uint64_t pattern(uint64_t index, uint64_t generation)
{
    return mix64(index ^ (generation * 0xd1b54a32d192ed03ull));
}

/* Generation of `chunk` after `done` iterations: iteration k rewrites chunk k % chunks. */
static uint64_t generation_after(uint64_t chunk, uint64_t done, uint64_t chunks)
{
    if (chunk == 0)
        return done / chunks;
    if (done < chunk)
        return 0;
    return (done - chunk) / chunks + 1;
}

/* Checks every word of one chunk and returns the chunk's sum. */
static uint64_t verify_chunk(const uint64_t *buffer, uint64_t chunk, uint64_t generation)
{
    uint64_t first = chunk * CHUNK_WORDS;
    uint64_t sum = 0;

    for (uint64_t i = first; i < first + CHUNK_WORDS; i++) {
        uint64_t expected = pattern(i, generation);
        if (buffer[i] != expected)
            fail("buffer word %" PRIu64 " (chunk %" PRIu64 ", generation %" PRIu64
                 ") is 0x%016" PRIx64 ", expected 0x%016" PRIx64,
                 i, chunk, generation, buffer[i], expected);
        sum += buffer[i];
    }
    return sum;
}

/* Rewrites one chunk with `generation` and returns the new sum minus the old one. */
static uint64_t rewrite_chunk(uint64_t *buffer, uint64_t chunk, uint64_t generation)
{
    uint64_t first = chunk * CHUNK_WORDS;
    uint64_t old_sum = 0;
    uint64_t new_sum = 0;

    for (uint64_t i = first; i < first + CHUNK_WORDS; i++) {
        old_sum += buffer[i];
        buffer[i] = pattern(i, generation);
        new_sum += buffer[i];
    }
    return new_sum - old_sum;
}

static void write_all_at(int fd, const char *data, size_t length, off_t offset, const char *what)
{
    ssize_t written = pwrite(fd, data, length, offset);
    if (written != (ssize_t)length)
        fail("pwrite to the %s file returned %zd of %zu bytes: %s", what, written, length,
             strerror(errno));
}

static int vector_equals(__m256d actual, __m256d expected)
{
    __m256d equal = _mm256_cmp_pd(actual, expected, _CMP_EQ_OQ);
    return _mm256_movemask_pd(equal) == 0xf;
}

static void check_vector(const char *name, __m256d actual, __m256d step, double done)
{
    __m256d expected = _mm256_mul_pd(step, _mm256_set1_pd(done));
    double a[4], e[4];

    if (vector_equals(actual, expected))
        return;
    _mm256_storeu_pd(a, actual);
    _mm256_storeu_pd(e, expected);
    fail("register %s is {%g, %g, %g, %g}, expected {%g, %g, %g, %g}", name, a[0], a[1], a[2],
         a[3], e[0], e[1], e[2], e[3]);
}

static void check_rounding(double tenth_at_start, long double tenth_x87_at_start)
{
    volatile double one = 1.0, ten = 10.0;
    volatile long double one_x87 = 1.0L, ten_x87 = 10.0L;
    unsigned int mxcsr = _mm_getcsr();
    double tenth;
    long double tenth_x87;

    if ((mxcsr & MXCSR_RC_MASK) != MXCSR_RC_ZERO)
        fail("MXCSR is 0x%08x, expected rounding control bits 0x%04x", mxcsr, MXCSR_RC_ZERO);
    if (fegetround() != FE_TOWARDZERO)
        fail("x87 rounding mode is 0x%x, expected FE_TOWARDZERO 0x%x", fegetround(),
             FE_TOWARDZERO);
    tenth = one / ten;
    if (memcmp(&tenth, &tenth_at_start, sizeof(tenth)) != 0)
        fail("1.0/10.0 is %.20g, at start it was %.20g", tenth, tenth_at_start);
    tenth_x87 = one_x87 / ten_x87;
    if (tenth_x87 != tenth_x87_at_start)
        fail("x87 1.0/10.0 is %.25Lg, at start it was %.25Lg", tenth_x87, tenth_x87_at_start);
}

/* Rereads the log through a new descriptor and checks lines 1..done. */
static void verify_log(const char *log_path, uint64_t done)
{
    size_t expected_size = strlen(LOG_HEADER) + done * LOG_LINE_LEN;
    char *content = malloc(expected_size + 1);
    char line[32];
    ssize_t length;
    int fd;

    if (content == NULL)
        fail("malloc of %zu bytes for the log check failed", expected_size + 1);
    fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail("open %s: %s", log_path, strerror(errno));
    /* Bytes past expected_size are allowed: a copy of this process that kept
     * running after the dump may have written more lines. */
    length = pread(fd, content, expected_size, 0);
    close(fd);
    if (length != (ssize_t)expected_size)
        fail("log %s has %zd bytes, expected at least %zu", log_path, length, expected_size);
    if (memcmp(content, LOG_HEADER, strlen(LOG_HEADER)) != 0)
        fail("log %s has a damaged header", log_path);
    for (uint64_t k = 1; k <= done; k++) {
        const char *actual = content + strlen(LOG_HEADER) + (k - 1) * LOG_LINE_LEN;
        snprintf(line, sizeof(line), "iteration %012" PRIu64 "\n", k);
        if (memcmp(actual, line, LOG_LINE_LEN) != 0)
            fail("log line %" PRIu64 " is \"%.*s\", expected \"%.*s\"", k, LOG_LINE_LEN - 1,
                 actual, LOG_LINE_LEN - 1, line);
    }
    free(content);
}

static void write_ready_file(const char *path)
{
    char text[32];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int length = snprintf(text, sizeof(text), "%d\n", (int)getpid());

    if (fd < 0)
        die_setup("cannot create", path);
    if (write(fd, text, (size_t)length) != length)
        die_setup("cannot write", path);
    close(fd);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: memtest [-m MIB] [-n MAX_ITERATIONS] [-s SLEEP_US] [-l LOG] DIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned long mib = 256;
    unsigned long long max_iterations = 0;
    unsigned long sleep_us = 5000;
    const char *log_path = NULL;
    char status_path[4096], ready_path[4096], finish_path[4096], default_log[4096];
    int option;

    while ((option = getopt(argc, argv, "m:n:s:l:")) != -1) {
        switch (option) {
        case 'm':
            mib = strtoul(optarg, NULL, 10);
            break;
        case 'n':
            max_iterations = strtoull(optarg, NULL, 10);
            break;
        case 's':
            sleep_us = strtoul(optarg, NULL, 10);
            break;
        case 'l':
            log_path = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1 || mib == 0)
        usage();
    snprintf(status_path, sizeof(status_path), "%s/status", argv[optind]);
    snprintf(ready_path, sizeof(ready_path), "%s/ready", argv[optind]);
    snprintf(finish_path, sizeof(finish_path), "%s/finish", argv[optind]);
    snprintf(default_log, sizeof(default_log), "%s/log", argv[optind]);
    if (log_path == NULL)
        log_path = default_log;

    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_usr1;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGUSR1, &action, NULL) != 0)
        die_setup("cannot install a handler for", "SIGUSR1");

    int status_fd = open(status_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (status_fd < 0)
        die_setup("cannot open", status_path);
    int log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0)
        die_setup("cannot open", log_path);
    if (write(log_fd, LOG_HEADER, strlen(LOG_HEADER)) != (ssize_t)strlen(LOG_HEADER))
        die_setup("cannot write", log_path);

    uint64_t chunks = mib * (1024u * 1024u / CHUNK_BYTES);
    uint64_t words = chunks * CHUNK_WORDS;
    uint64_t *buffer = malloc(words * sizeof(uint64_t));
    if (buffer == NULL)
        die_setup("cannot allocate the buffer for", "-m");
    uint64_t running_sum = 0;
    for (uint64_t i = 0; i < words; i++) {
        buffer[i] = pattern(i, 0);
        running_sum += buffer[i];
    }

    if (fesetround(FE_TOWARDZERO) != 0)
        die_setup("cannot set the rounding mode for", "FE_TOWARDZERO");
    volatile double one = 1.0, ten = 10.0;
    volatile long double one_x87 = 1.0L, ten_x87 = 10.0L;
    const double tenth_at_start = one / ten;
    const long double tenth_x87_at_start = one_x87 / ten_x87;

    /* Steps with few significant bits, so every sum stays exact for 2^40 iterations. */
    const __m256d step0 = _mm256_setr_pd(1.0, 2.0, 3.0, 4.0);
    const __m256d step1 = _mm256_setr_pd(-1.0, 0.5, 0.25, 8.0);
    const __m256d step2 = _mm256_setr_pd(0.125, -64.0, 1024.0, -0.5);
    const __m256i step3 = _mm256_setr_epi64x(1, -7, 1ll << 20, 3);
    __m256d v0 = _mm256_setzero_pd();
    __m256d v1 = _mm256_setzero_pd();
    __m256d v2 = _mm256_setzero_pd();
    __m256i v3 = _mm256_setzero_si256();
    double accumulator = 0.0;

    uint64_t first_signal_iteration = 0;
    uint64_t log_offset = strlen(LOG_HEADER);
    struct timespec nap = { .tv_sec = (time_t)(sleep_us / 1000000),
                            .tv_nsec = (long)(sleep_us % 1000000) * 1000 };
    char line[STATUS_LINE_LEN + 1];

    write_ready_file(ready_path);

    for (iteration = 1;; iteration++) {
        uint64_t done = iteration - 1;

        /* Registers and rounding mode. */
        check_vector("v0", v0, step0, (double)done);
        check_vector("v1", v1, step1, (double)done);
        check_vector("v2", v2, step2, (double)done);
        long long lanes[4], steps[4];
        _mm256_storeu_si256((__m256i *)lanes, v3);
        _mm256_storeu_si256((__m256i *)steps, step3);
        for (int lane = 0; lane < 4; lane++)
            if (lanes[lane] != steps[lane] * (long long)done)
                fail("register v3 lane %d is %lld, expected %lld", lane, lanes[lane],
                     steps[lane] * (long long)done);
        if (accumulator != 0.5 * (double)done)
            fail("double accumulator is %.17g, expected %.17g", accumulator, 0.5 * (double)done);
        check_rounding(tenth_at_start, tenth_x87_at_start);

        /* Memory: check one chunk, then rewrite another. */
        uint64_t checked = (done + chunks / 2) % chunks;
        verify_chunk(buffer, checked, generation_after(checked, done, chunks));
        uint64_t rewritten = iteration % chunks;
        running_sum += rewrite_chunk(buffer, rewritten,
                                     generation_after(rewritten, iteration, chunks));

        /* Log file: the offset must be where the last line ended. */
        off_t position = lseek(log_fd, 0, SEEK_CUR);
        if (position != (off_t)log_offset)
            fail("log file offset is %lld, expected %" PRIu64, (long long)position, log_offset);
        char log_line[32];
        snprintf(log_line, sizeof(log_line), "iteration %012llu\n", iteration);
        if (write(log_fd, log_line, LOG_LINE_LEN) != LOG_LINE_LEN)
            fail("write to the log file failed: %s", strerror(errno));
        log_offset += LOG_LINE_LEN;

        int signals = usr1_count;
        if (signals > 0 && first_signal_iteration == 0)
            first_signal_iteration = iteration;
        snprintf(line, sizeof(line),
                 "iteration %llu signals %d first_signal_iteration %" PRIu64
                 " checksum %016" PRIx64,
                 iteration, signals, first_signal_iteration, running_sum);
        size_t used = strlen(line);
        memset(line + used, ' ', STATUS_LINE_LEN - 1 - used);
        line[STATUS_LINE_LEN - 1] = '\n';
        write_all_at(status_fd, line, STATUS_LINE_LEN, 0, "status");

        if (access(finish_path, F_OK) == 0)
            break;
        if (max_iterations != 0 && iteration >= max_iterations)
            break;

        v0 = _mm256_add_pd(v0, step0);
        v1 = _mm256_add_pd(v1, step1);
        v2 = _mm256_add_pd(v2, step2);
        v3 = _mm256_add_epi64(v3, step3);
        accumulator += 0.5;

        /* nanosleep as a raw system call with the vectors and the accumulator as
         * register operands, so they sit in YMM/XMM registers while the process
         * is stopped in the kernel, which is where a dump usually finds it. The
         * return value is ignored: SIGUSR1 or a restore may end the sleep early. */
        long result = SYS_nanosleep;
        __asm__ volatile("syscall"
                         : "+a"(result), "+x"(v0), "+x"(v1), "+x"(v2), "+x"(v3),
                           "+x"(accumulator)
                         : "D"(&nap), "S"(0L)
                         : "rcx", "r11", "memory");
    }

    uint64_t done = iteration;
    uint64_t full_sum = 0;
    for (uint64_t chunk = 0; chunk < chunks; chunk++)
        full_sum += verify_chunk(buffer, chunk, generation_after(chunk, done, chunks));
    if (full_sum != running_sum)
        fail("buffer checksum is %016" PRIx64 ", running checksum is %016" PRIx64, full_sum,
             running_sum);
    verify_log(log_path, done);

    printf("memtest: PASS iterations=%llu signals=%d first_signal_iteration=%" PRIu64
           " checksum=%016" PRIx64 "\n",
           iteration, (int)usr1_count, first_signal_iteration, running_sum);
    return fflush(stdout) == 0 ? 0 : 1;
}
