/*
 * Magic words of CRIU image files (spec 1.1).  Every image starts with
 * IMG_COMMON_MAGIC (or IMG_SERVICE_MAGIC for service files) followed by
 * the type's own magic; inventory.img carries only its own magic, and
 * images of img_version 1 carry only the type magic.  All are host-order u32.
 */
#ifndef CRIU_LAZY_IMAGES_MAGIC_H
#define CRIU_LAZY_IMAGES_MAGIC_H

#define IMG_COMMON_MAGIC	0x54564319
#define IMG_SERVICE_MAGIC	0x55105940

/* Images we read and write (img_type) */
#define INVENTORY_MAGIC		0x58313116
#define PSTREE_MAGIC		0x50273030
#define CORE_MAGIC		0x55053847
#define IDS_MAGIC		0x54432030
#define MM_MAGIC		0x57492820
#define PAGEMAP_MAGIC		0x56084025
#define FS_MAGIC		0x51403912
#define FILES_MAGIC		0x56303138
#define FDINFO_MAGIC		0x56213732
#define PIPES_DATA_MAGIC	0x56453709
#define TTY_INFO_MAGIC		0x59453036
#define TTY_DATA_MAGIC		0x59413026
#define SECCOMP_MAGIC		0x64413049
#define TIMENS_MAGIC		0x43114433
#define CGROUP_MAGIC		0x59383330

/* Service images (IMG_SERVICE_MAGIC first) */
#define STATS_MAGIC		0x57093306
#define IRMAP_CACHE_MAGIC	0x57004059

/* Namespaces and file remapping */
#define UTSNS_MAGIC		0x54473203
#define MNTS_MAGIC		0x55563928
#define USERNS_MAGIC		0x55474906
#define PIDNS_MAGIC		0x61157326
#define REMAP_FPATH_MAGIC	0x59133954
#define GHOST_FILE_MAGIC	0x52583605
#define FIFO_DATA_MAGIC		0x59333054
#define MEMFD_INODE_MAGIC	0x48453499
#define SK_QUEUES_MAGIC		0x56264026
#define FILE_LOCKS_MAGIC	0x54323616
#define TCP_STREAM_MAGIC	0x51465506
#define NETDEV_MAGIC		0x57373951
#define NETNS_MAGIC		0x55933752
#define IPCNS_VAR_MAGIC		0x53115007
#define IPCNS_SHM_MAGIC		0x46283044
#define IPCNS_MSG_MAGIC		0x55453737
#define IPCNS_SEM_MAGIC		0x59573019

/* Legacy per-task images, never written by CRIU 4.2 */
#define SIGACT_MAGIC		0x55344201
#define CREDS_MAGIC		0x54023547
#define RLIMIT_MAGIC		0x57113925
#define ITIMERS_MAGIC		0x57464056
#define POSIX_TIMERS_MAGIC	0x52603957
#define SIGNAL_MAGIC		0x59255647
#define VMAS_MAGIC		0x54123737

/* Legacy global images */
#define REG_FILES_MAGIC		0x50363636
#define PIPES_MAGIC		0x56513555
#define FIFO_MAGIC		0x58364939
#define TTY_FILES_MAGIC		0x59433025
#define EXT_FILES_MAGIC		0x59255641

#endif
