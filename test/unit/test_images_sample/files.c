/* test_images_sample: files.img, the fds of each process, pipe data,
 * the tty. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"

#include "fdinfo.pb-c.h"
#include "pipe-data.pb-c.h"
#include "tty.pb-c.h"

#include "sample.h"

static int write_reg(struct cr_img *img, uint32_t id, const char *name, uint32_t flags,
		     uint32_t mode, uint64_t size)
{
	FileEntry fe = FILE_ENTRY__INIT;
	RegFileEntry reg = REG_FILE_ENTRY__INIT;
	FownEntry fown = FOWN_ENTRY__INIT;

	reg.id = id;
	reg.flags = flags;
	reg.pos = 0;
	reg.fown = &fown;
	reg.name = (char *)name;
	reg.has_mnt_id = true;
	reg.mnt_id = 27;
	reg.has_size = true;
	reg.size = size;
	reg.has_mode = true;
	reg.mode = mode;
	fe.type = FD_TYPES__REG;
	fe.id = id;
	fe.reg = &reg;
	return img_write_entry(img, &fe.base);
}

static int write_pipe(struct cr_img *img, uint32_t id, uint32_t flags)
{
	FileEntry fe = FILE_ENTRY__INIT;
	PipeEntry pipe = PIPE_ENTRY__INIT;
	FownEntry fown = FOWN_ENTRY__INIT;

	pipe.id = id;
	pipe.pipe_id = SAMPLE_PIPE_ID;
	pipe.flags = flags;
	pipe.fown = &fown;
	fe.type = FD_TYPES__PIPE;
	fe.id = id;
	fe.pipe = &pipe;
	return img_write_entry(img, &fe.base);
}

int write_files(int dirfd)
{
	FileEntry fe = FILE_ENTRY__INIT;
	TtyFileEntry tty = TTY_FILE_ENTRY__INIT;
	FownEntry fown = FOWN_ENTRY__INIT;
	struct cr_img *img;
	int ret;

	ret = img_open(dirfd, IMG_FILES, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	ret = write_reg(img, 1, "/usr/bin/sample", 0x8000, 0100755, 16384);
	ret = ret ?: write_reg(img, 2, "/tmp/sample-cwd", 0x18000, 040755, 4096);
	ret = ret ?: write_reg(img, 3, "/", 0x18000, 040755, 4096);
	ret = ret ?: write_reg(img, 4, "/dev/null", 0x8002, 020666, 0);
	ret = ret ?: write_pipe(img, 5, 0);
	ret = ret ?: write_pipe(img, 6, 1);
	ret = ret ?: write_reg(img, 8, "/dev/pts/0", 0x8002, 020620, 0);
	tty.id = 7;
	tty.tty_info_id = 9;
	tty.flags = 0x8002;
	tty.fown = &fown;
	tty.has_regf_id = true;
	tty.regf_id = 8;
	fe.type = FD_TYPES__TTY;
	fe.id = 7;
	fe.tty = &tty;
	ret = ret ?: img_write_entry(img, &fe.base);
	return img_close(img) ?: ret;
}

int write_fdinfo(int dirfd, unsigned long files_id)
{
	static const uint32_t fds[][4] = {	/* fd, id, type, flags */
		{ 0, 4, FD_TYPES__REG, 0 },
		{ 1, 6, FD_TYPES__PIPE, 0 },
		{ 2, 7, FD_TYPES__TTY, 0 },
		{ 3, 5, FD_TYPES__PIPE, 1 },
	};
	struct cr_img *img;
	int ret;

	ret = img_open(dirfd, IMG_FDINFO, files_id, O_WRONLY, &img);
	if (ret)
		return ret;
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]) && !ret; i++) {
		FdinfoEntry fi = FDINFO_ENTRY__INIT;

		fi.fd = fds[i][0];
		fi.id = fds[i][1];
		fi.type = fds[i][2];
		fi.flags = fds[i][3];
		ret = img_write_entry(img, &fi.base);
	}
	return img_close(img) ?: ret;
}

int write_pipes_data(int dirfd)
{
	static const char data[] = "hello pipe!";
	PipeDataEntry pd = PIPE_DATA_ENTRY__INIT;
	struct cr_img *img;
	int ret, fd;

	ret = img_open(dirfd, IMG_PIPES_DATA, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	pd.pipe_id = SAMPLE_PIPE_ID;
	pd.bytes = sizeof(data) - 1;
	pd.has_size = true;
	pd.size = 65536;
	ret = img_write_entry(img, &pd.base);
	if (!ret) {
		fd = img_raw_fd(img);
		if (fd < 0)
			ret = fd;
		else if (write(fd, data, pd.bytes) != (ssize_t)pd.bytes)
			ret = -EIO;
	}
	return img_close(img) ?: ret;
}

int write_tty_info(int dirfd)
{
	uint32_t cc[19] = { 3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22 };
	TtyInfoEntry ti = TTY_INFO_ENTRY__INIT;
	TermiosEntry tio = TERMIOS_ENTRY__INIT;
	WinsizeEntry ws = WINSIZE_ENTRY__INIT;
	TtyPtyEntry pty = TTY_PTY_ENTRY__INIT;
	struct cr_img *img;
	int ret;

	tio.c_iflag = 0x500;
	tio.c_oflag = 0x5;
	tio.c_cflag = 0xbf;
	tio.c_lflag = 0x8a3b;
	tio.c_ispeed = tio.c_ospeed = 15;
	tio.n_c_cc = 19;
	tio.c_cc = cc;
	ws.ws_row = 50;
	ws.ws_col = 132;
	pty.index = 0;
	ti.id = 9;
	ti.type = TTY_TYPE__PTY;
	ti.sid = 1000;
	ti.pgrp = 1000;
	ti.rdev = 0x8800;
	ti.termios = &tio;
	ti.termios_locked = &tio;
	ti.winsize = &ws;
	ti.pty = &pty;
	ti.has_uid = ti.has_gid = true;
	ti.uid = 1000;
	ti.gid = 5;

	ret = img_open(dirfd, IMG_TTY_INFO, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	ret = img_write_entry(img, &ti.base);
	return img_close(img) ?: ret;
}
