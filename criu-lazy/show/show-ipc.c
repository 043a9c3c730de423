/*
 * What follows the records of the IPC namespace images (their formats:
 * dump/ipc-ns.c, dump/ipc-msg-sem.c), stepped over as crit reads it but
 * not shown: a queue's messages (framed ipc_msg headers, each followed by
 * its bytes padded to 8), a semaphore set's values (padded to 8), and an
 * older image's segment contents (padded to 4; none with in_pagemaps).
 */

#include "common/log.h"
#include "images/image.h"
#include "show/show-ipc.h"
#include "show/show.h"

#include "ipc-msg.pb-c.h"
#include "ipc-sem.pb-c.h"
#include "ipc-shm.pb-c.h"

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

int show_ipc_skip(struct cr_img *img, enum img_type type, const ProtobufCMessage *msg)
{
	if (type == IMG_IPCNS_SEM)
		return show_skip_raw(img, round_up(((const IpcSemEntry *)msg)->nsems * 2ULL, 8));
	if (type == IMG_IPCNS_SHM) {
		const IpcShmEntry *e = (const IpcShmEntry *)msg;

		return e->has_in_pagemaps && e->in_pagemaps ? 0 :
			show_skip_raw(img, round_up(e->size, 4));
	}
	if (type == IMG_IPCNS_MSG) {
		uint32_t qnum = ((const IpcMsgEntry *)msg)->qnum;

		for (uint32_t n = 0; n < qnum; n++) {
			ProtobufCMessage *m;
			uint32_t size;
			int ret = img_read_entry(img, &ipc_msg__descriptor, &m);

			if (ret <= 0) {
				if (!ret)
					pr_err("%s: message %u of a queue of %u missing", img_name(img),
					       n, qnum);
				return ret ? ret : -EBADMSG;
			}
			size = ((IpcMsg *)m)->msize;
			protobuf_c_message_free_unpacked(m, NULL);
			ret = show_skip_raw(img, round_up(size, 8));
			if (ret)
				return ret;
		}
	}
	return 0;
}
