#!/bin/bash
# t_fsx_file.sh - the model-checking file tester (emmfsx) on the file plug-in (one sparse host file per object):
# 12 seeds of 4000 random ops each (read, write, mmap read and write, msync,
# truncate down and up, punch hole, fallocate, fsync, close/reopen, reopen with
# O_TRUNC, page-cache invalidation, SEEK_DATA/SEEK_HOLE), every read checked
# against emmfsx's model of the file. A 1M pool and 4 FUSE threads with
# readahead on (lib.sh fsx_backend): pages go to the pager and come back all
# the time. A failure prints the seed, a replay line and the op log; see
# docs/testing.md "emmfsx".
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout

fsx_backend file 4000 "1 2 3 4 5 6 7 8 9 10 11 12"
