/*
 * emmctl_top.h - `emmctl top`: the refreshing view (emmctl_top.c).
 */
#ifndef EMMCTL_TOP_H
#define EMMCTL_TOP_H

/* Runs the view against the daemon at sock; argv: [INTERVAL [COUNT]].
 * Returns the exit status: 0, 1 (the daemon went away), 2 (bad arguments). */
int emmctl_top(const char *sock, int argc, char **argv);

#endif
