#!/bin/bash
# t_fsx_memory.sh - the model-checking file tester (emmfsx) on the memory
# backend: 40 seeds of 5000 random ops each (more than on the other backends:
# memory is fast, and its truncate/punch race with readahead shows in a few
# percent of runs) of read, write, mmap read and write, msync, truncate down
# and up, punch hole, fallocate, fsync, close/reopen, reopen with O_TRUNC,
# page-cache invalidation and SEEK_DATA/SEEK_HOLE, every read checked against
# emmfsx's model of the file. A 1M pool and 4 FUSE threads with readahead on
# (lib.sh fsx_backend): pages go to the pager and come back all the time. A
# failure prints the seed, a replay line and the op log; see docs/testing.md
# "emmfsx".
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout

fsx_backend memory 5000 "$(seq 1 40)"
