/*
 * sigbus_probe.c - touches one byte of a file through a MAP_SHARED mapping in a
 * child process and reports how the child ended, so a test can expect SIGBUS
 * (the mmap face of a pager's data_error) without the test shell being at risk.
 *
 * Usage: sigbus_probe [-w] PATH OFFSET
 *   -w  write the byte instead of reading it
 * OFFSET takes K, M, G, T suffixes. Prints one word: OK:0xNN (the access worked;
 * for a read, NN is the byte),
 * SIGBUS, SIGNAL:N, EXIT:N, TIMEOUT or MMAPERR:ENAME. Exit status 0 unless the
 * probe itself could not run (1) or usage was wrong (2).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static long long parse_num(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 0);
    switch (*end) {
    case 'K': v <<= 10; break;
    case 'M': v <<= 20; break;
    case 'G': v <<= 30; break;
    case 'T': v <<= 40; break;
    default: break;
    }
    return v;
}

int main(int argc, char **argv)
{
    int write_mode = 0, a = 1;
    if (a < argc && !strcmp(argv[a], "-w"))
        write_mode = 1, a++;
    if (argc - a != 2) {
        fprintf(stderr, "usage: sigbus_probe [-w] PATH OFFSET\n");
        return 2;
    }
    const char *path = argv[a];
    long long off = parse_num(argv[a + 1]);
    long pg = sysconf(_SC_PAGESIZE);
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return 1;

    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(pipefd[0]);
        alarm(60);
        int fd = open(path, write_mode ? O_RDWR : O_RDONLY);
        if (fd < 0) {
            dprintf(pipefd[1], "MMAPERR:%s", strerrorname_np(errno));
            _exit(0);
        }
        long long start = off & ~(long long)(pg - 1);
        volatile unsigned char *p =
            mmap(NULL, (size_t)pg, write_mode ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                 fd, (off_t)start);
        if (p == MAP_FAILED) {
            dprintf(pipefd[1], "MMAPERR:%s", strerrorname_np(errno));
            _exit(0);
        }
        unsigned char b;
        if (write_mode) {
            p[off - start] = 0x5a;
            b = 0x5a;
        } else {
            b = p[off - start];
        }
        dprintf(pipefd[1], "OK:0x%02x", b);
        _exit(0);
    }
    close(pipefd[1]);
    char msg[64] = "";
    ssize_t n = read(pipefd[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = 0;
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return 1;
    if (WIFSIGNALED(st)) {
        if (WTERMSIG(st) == SIGBUS)
            printf("SIGBUS\n");
        else if (WTERMSIG(st) == SIGALRM)
            printf("TIMEOUT\n");
        else
            printf("SIGNAL:%d\n", WTERMSIG(st));
    } else if (WEXITSTATUS(st) != 0) {
        printf("EXIT:%d\n", WEXITSTATUS(st));
    } else {
        printf("%s\n", msg[0] ? msg : "EXIT:0");
    }
    return 0;
}
