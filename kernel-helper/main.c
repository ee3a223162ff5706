// SPDX-License-Identifier: GPL-2.0
/*
 * xvgpu kernel helper: the misc device, BIND, the ioctl dispatch, the event ring and STATS.
 * The fault/invalidate protocol itself is in range.c; the p2m back-ends in p2m_soft.c, p2m_xen.c.
 */
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "helper.h"

/* TEST ONLY, load time only (0444): EVICT lets a test stand in for TTM eviction. */
static bool allow_evict;
module_param(allow_evict, bool, 0444);
MODULE_PARM_DESC(allow_evict, "TEST ONLY: enable the EVICT ioctl (zaps the caller's own PTEs of a range)");

void xh_hist_add(u64 *hist, u64 ns)
{
	int b = ns ? fls64(ns) - 1 : 0;

	hist[min(b, XVGPU_HIST_BUCKETS - 1)]++;
}

static void ev_push(struct xh_ctx *ctx, const struct xvgpu_event *ev)
{
	ctx->ring[(ctx->ev_head + ctx->ev_count) % XH_EVENT_RING] = *ev;
	ctx->ev_count++;
}

static struct xvgpu_event *ev_newest(struct xh_ctx *ctx, unsigned int back)
{
	return &ctx->ring[(ctx->ev_head + ctx->ev_count - 1 - back) % XH_EVENT_RING];
}

/*
 * Queues an invalidation event. When XH_EVENT_RING - 2 are waiting, the next one becomes an
 * OVERFLOW event (as inotify's IN_Q_OVERFLOW) that counts every event lost while it is the newest
 * (or just before the FATAL event): the reader learns in-band, at the place of the gap, how many
 * it missed. Slot budget: normal events up to RING - 2, one OVERFLOW at a time, one FATAL ever.
 * Revocation itself never waits for the reader.
 */
void xh_queue_event(struct xh_ctx *ctx, const struct xvgpu_event *ev)
{
	struct xvgpu_event *ov;
	unsigned long flags;

	spin_lock_irqsave(&ctx->ev_lock, flags);
	if (ctx->ev_count < XH_EVENT_RING - 2) {
		ev_push(ctx, ev);
		goto out;
	}
	ov = ev_newest(ctx, 0);
	if (ov->event == XVGPU_EVENT_FATAL)
		ov = ev_newest(ctx, 1); /* ev_count >= RING - 2 > 1 */
	if (ov->event != XVGPU_EVENT_OVERFLOW) {
		struct xvgpu_event fresh = { .event = XVGPU_EVENT_OVERFLOW, .start_ns = ev->start_ns };

		if (WARN_ON_ONCE(ctx->ev_count == XH_EVENT_RING)) { /* the budget above rules it out */
			ctx->ev_dropped++;
			goto out;
		}
		ev_push(ctx, &fresh);
		ov = ev_newest(ctx, 0);
	}
	ov->count++;
	ov->done_ns = ev->done_ns;
	ctx->ev_dropped++;
out:
	spin_unlock_irqrestore(&ctx->ev_lock, flags);
	wake_up_interruptible(&ctx->wq);
}

/* Queues the FATAL event once; the slot kept back for it means it cannot be lost to overflow. */
void xh_queue_fatal(struct xh_ctx *ctx, const struct xvgpu_event *ev)
{
	unsigned long flags;
	bool queued = false;

	spin_lock_irqsave(&ctx->ev_lock, flags);
	if (!ctx->fatal_queued) {
		ev_push(ctx, ev);
		ctx->fatal_queued = true;
		queued = true;
	}
	spin_unlock_irqrestore(&ctx->ev_lock, flags);
	if (queued)
		wake_up_interruptible(&ctx->wq);
}

static int xh_open(struct inode *inode, struct file *file)
{
	struct xh_ctx *ctx = kzalloc(sizeof(*ctx), GFP_KERNEL_ACCOUNT);

	if (!ctx)
		return -ENOMEM;
	ctx->ring = kvcalloc(XH_EVENT_RING, sizeof(*ctx->ring), GFP_KERNEL_ACCOUNT);
	if (!ctx->ring) {
		kfree(ctx);
		return -ENOMEM;
	}
	mutex_init(&ctx->ioctl_lock);
	mutex_init(&ctx->lock);
	spin_lock_init(&ctx->ev_lock);
	mutex_init(&ctx->read_lock);
	init_waitqueue_head(&ctx->wq);
	xa_init_flags(&ctx->ranges, XA_FLAGS_ALLOC1);
	file->private_data = ctx;
	return 0;
}

/* close(): revoke everything and remove every notifier, so a dead back-end leaves nothing mapped. */
static int xh_release(struct inode *inode, struct file *file)
{
	struct xh_ctx *ctx = file->private_data;

	xh_unregister_all(ctx);
	if (ctx->bound)
		ctx->ops->fini(ctx);
	xa_destroy(&ctx->ranges);
	kvfree(ctx->owner_range);
	kvfree(ctx->owner_page);
	kvfree(ctx->ro);
	kvfree(ctx->mapped);
	kvfree(ctx->ring);
	kfree(ctx);
	return 0;
}

static const struct xh_p2m_ops *backend_ops(u32 backend)
{
	if (backend == XVGPU_P2M_SOFT)
		return &xh_p2m_soft_ops;
	if (backend == XVGPU_P2M_XEN)
		return &xh_p2m_xen_ops;
	return NULL;
}

static int xh_bind(struct xh_ctx *ctx, struct xvgpu_bind *arg)
{
	const struct xh_p2m_ops *ops = backend_ops(arg->backend);
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (ctx->bound)
		return -EBUSY;
	if (arg->flags || !ops || !arg->pages || arg->first_gfn + arg->pages < arg->first_gfn)
		return -EINVAL;
	/* Domain 0 is the back-end itself; ids from DOMID_FIRST_RESERVED on are not guests. */
	if (arg->domid == 0 || arg->domid >= XVGPU_DOMID_FIRST_RESERVED)
		return -EINVAL;
	if (arg->pages > XVGPU_MAX_WINDOW_PAGES)
		return -E2BIG;
	ctx->domid = arg->domid;
	ctx->first_gfn = arg->first_gfn;
	ctx->pages = arg->pages;
	ctx->ops = ops;
	ctx->owner_range = kvcalloc(arg->pages, sizeof(u32), GFP_KERNEL_ACCOUNT);
	ctx->owner_page = kvcalloc(arg->pages, sizeof(u32), GFP_KERNEL_ACCOUNT);
	ctx->ro = kvcalloc(BITS_TO_LONGS(arg->pages), sizeof(long), GFP_KERNEL_ACCOUNT);
	ctx->mapped = kvcalloc(BITS_TO_LONGS(arg->pages), sizeof(long), GFP_KERNEL_ACCOUNT);
	if (!ctx->owner_range || !ctx->owner_page || !ctx->ro || !ctx->mapped) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = ops->init(ctx);
	if (ret)
		goto fail;
	/* Published under ctx->lock: GUEST_ACCESS (no ioctl_lock) checks `bound` under it. */
	mutex_lock(&ctx->lock);
	ctx->bound = true;
	mutex_unlock(&ctx->lock);
	return 0;
fail:
	kvfree(ctx->owner_range);
	kvfree(ctx->owner_page);
	kvfree(ctx->ro);
	kvfree(ctx->mapped);
	ctx->owner_range = NULL;
	ctx->owner_page = NULL;
	ctx->ro = NULL;
	ctx->mapped = NULL;
	ctx->ops = NULL;
	return ret;
}

static int xh_stats(struct xh_ctx *ctx, struct xvgpu_stats *arg)
{
	mutex_lock(&ctx->lock);
	*arg = ctx->st;
	mutex_unlock(&ctx->lock);
	spin_lock_irq(&ctx->ev_lock);
	arg->events_dropped = ctx->ev_dropped;
	spin_unlock_irq(&ctx->ev_lock);
	arg->size = sizeof(*arg);
	return 0;
}

/* Copies the argument in, checks its leading size field, runs `op`, copies it back. */
#define XH_IOCTL(type, needs_bind, call)                                        \
	do {                                                                    \
		type a;                                                         \
		if (copy_from_user(&a, uarg, sizeof(a)))                        \
			return -EFAULT;                                         \
		if (a.size != sizeof(a))                                        \
			return -EINVAL;                                         \
		if ((needs_bind) && !ctx->bound)                                \
			return -ENOTCONN;                                       \
		ret = (call);                                                   \
		if (!ret && (_IOC_DIR(cmd) & _IOC_READ) && copy_to_user(uarg, &a, sizeof(a))) \
			return -EFAULT;                                         \
		return ret;                                                     \
	} while (0)

static long xh_dispatch(struct xh_ctx *ctx, unsigned int cmd, void __user *uarg)
{
	long ret;

	switch (cmd) {
	case XVGPU_IOC_BIND:
		XH_IOCTL(struct xvgpu_bind, false, xh_bind(ctx, &a));
	case XVGPU_IOC_REGISTER:
		XH_IOCTL(struct xvgpu_register, true, xh_register(ctx, &a));
	case XVGPU_IOC_UNREGISTER:
		XH_IOCTL(struct xvgpu_unregister, true, xh_unregister(ctx, a.range_id));
	case XVGPU_IOC_MAP:
		XH_IOCTL(struct xvgpu_map, true, xh_map(ctx, &a));
	case XVGPU_IOC_UNMAP:
		XH_IOCTL(struct xvgpu_unmap, true, xh_unmap(ctx, &a));
	case XVGPU_IOC_QUERY:
		XH_IOCTL(struct xvgpu_query, true, xh_query(ctx, &a));
	case XVGPU_IOC_STATS:
		XH_IOCTL(struct xvgpu_stats, false, xh_stats(ctx, &a));
	case XVGPU_IOC_EVICT:
		if (!allow_evict)
			return -EPERM;
		XH_IOCTL(struct xvgpu_evict, true, xh_evict(ctx, &a));
	default:
		return -ENOTTY;
	}
}

static long xh_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct xh_ctx *ctx = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	/*
	 * Guest accesses only take ctx->lock, the lock BIND publishes the binding under: they must not
	 * queue behind a MAP's page lookup. xh_soft_guest_access checks the binding under it.
	 */
	if (cmd == XVGPU_IOC_GUEST_ACCESS) {
		struct xvgpu_guest_access a;

		if (copy_from_user(&a, uarg, sizeof(a)))
			return -EFAULT;
		if (a.size != sizeof(a))
			return -EINVAL;
		ret = xh_soft_guest_access(ctx, &a);
		if (!ret && copy_to_user(uarg, &a, sizeof(a)))
			return -EFAULT;
		return ret;
	}
	mutex_lock(&ctx->ioctl_lock);
	ret = xh_dispatch(ctx, cmd, uarg);
	mutex_unlock(&ctx->ioctl_lock);
	return ret;
}

static ssize_t xh_read(struct file *file, char __user *buf, size_t len, loff_t *off)
{
	struct xh_ctx *ctx = file->private_data;
	struct xvgpu_event ev;
	size_t done = 0;
	int ret, done_err = 0;

	if (len < sizeof(ev))
		return -EINVAL;
	if (!(file->f_flags & O_NONBLOCK)) {
		ret = wait_event_interruptible(ctx->wq, READ_ONCE(ctx->ev_count) > 0);
		if (ret)
			return ret;
	}
	/*
	 * Peek, copy, then commit: an event (the one FATAL event above all) leaves the ring only once
	 * it reached user space. Producers only append, or update the newest entries when the ring is
	 * nearly full, so the oldest entry copied here cannot change under us; read_lock keeps a
	 * second reader from copying the same event.
	 */
	mutex_lock(&ctx->read_lock);
	while (done + sizeof(ev) <= len) {
		bool got = false;

		spin_lock_irq(&ctx->ev_lock);
		if (ctx->ev_count) {
			ev = ctx->ring[ctx->ev_head];
			got = true;
		}
		spin_unlock_irq(&ctx->ev_lock);
		if (!got)
			break;
		if (copy_to_user(buf + done, &ev, sizeof(ev))) {
			if (!done)
				done_err = -EFAULT;
			break;
		}
		spin_lock_irq(&ctx->ev_lock);
		ctx->ev_head = (ctx->ev_head + 1) % XH_EVENT_RING;
		ctx->ev_count--;
		spin_unlock_irq(&ctx->ev_lock);
		done += sizeof(ev);
	}
	mutex_unlock(&ctx->read_lock);
	if (done)
		return done;
	return done_err ? done_err : -EAGAIN;
}

static __poll_t xh_poll(struct file *file, poll_table *wait)
{
	struct xh_ctx *ctx = file->private_data;

	poll_wait(file, &ctx->wq, wait);
	return READ_ONCE(ctx->ev_count) ? EPOLLIN | EPOLLRDNORM : 0;
}

static const struct file_operations xh_fops = {
	.owner = THIS_MODULE,
	.open = xh_open,
	.release = xh_release,
	.unlocked_ioctl = xh_ioctl,
	.read = xh_read,
	.poll = xh_poll,
	.llseek = noop_llseek,
};

static struct miscdevice xh_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "xvgpu_helper",
	.fops = &xh_fops,
	.mode = 0600,
};

module_misc_device(xh_misc);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("xvgpu developers");
MODULE_DESCRIPTION("xvgpu: maps GPU buffer pages into a guest p2m on fault and revokes them from MMU notifiers");
