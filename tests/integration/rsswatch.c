/*
 * rsswatch.c - samples a process's resident set for the integration tests:
 * reads VmRSS from /proc/PID/status every INTERVAL ms until SIGTERM/SIGINT or
 * until PID is gone, then prints "PEAK_KIB SAMPLES" on stdout. With -l FILE it
 * also appends one "ms_since_start rss_kib" line per new peak to FILE, so a
 * failure can say when the peak happened.
 *
 * Usage: rsswatch [-l FILE] PID INTERVAL_MS
 * Exit: 0 after printing, 1 if not one sample could be taken, 2 on bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* VmRSS of pid in KiB, or -1 when the process is gone. */
static long read_rss(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
    const char *logpath = NULL;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "-l") == 0) {
        logpath = argv[a + 1];
        a += 2;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: rsswatch [-l FILE] PID INTERVAL_MS\n");
        return 2;
    }
    long pid = strtol(argv[a], NULL, 10), ms = strtol(argv[a + 1], NULL, 10);
    if (pid <= 0 || ms <= 0) {
        fprintf(stderr, "rsswatch: bad pid or interval\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    FILE *lf = logpath ? fopen(logpath, "ae") : NULL;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    long peak = 0, samples = 0, t0 = now_ms();
    struct timespec iv = {ms / 1000, (ms % 1000) * 1000000L};
    while (!stop) {
        long kib = read_rss(path);
        if (kib < 0)
            break;
        samples++;
        if (kib > peak) {
            peak = kib;
            if (lf != NULL) {
                fprintf(lf, "%ld %ld\n", now_ms() - t0, kib);
                fflush(lf);
            }
        }
        nanosleep(&iv, NULL);
    }
    if (lf != NULL)
        fclose(lf);
    printf("%ld %ld\n", peak, samples);
    return samples > 0 ? 0 : 1;
}
